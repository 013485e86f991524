"""tools/prepare_dataset.py on tiny datasets: every mask format read back
through the written config's pipeline, the bad inputs refused, the user's
data untouched."""
import os
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config

from mmseg_plugins.own_data.config_writer import (median_frequency_weights,
                                                  resolve_model_config,
                                                  scaled_schedule)

from own_data_helpers import (load_tool, make_dataset, prepared_config,
                              run_tool_main, tree_digest, write_mask)

MODEL = 'demo/segformer_mit-b0_shapes-128x128'
PREPARE = load_tool('prepare_dataset.py')


def _prepare(capsys, root, out, *extra):
    return run_tool_main(PREPARE, [root, '--model', MODEL, '--out', out,
                                   '--iters', '2', '--num-workers', '0',
                                   *extra], capsys)


def _val_labels(config):
    """The label maps mmseg's pipeline gives for the val split."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    return cfg, [dataset[i]['data_samples'].gt_sem_seg.data.numpy()[0]
                 for i in range(len(dataset))]


@pytest.mark.parametrize('fmt,layout,extra', [
    ('index', 'mmseg', []),
    ('palette', 'outside', []),
    ('index16', 'flat', []),
    ('colour', 'flat', []),
    ('binary255', 'mmseg', []),
    ('jpeg', 'mmseg', ['--snap-jpeg']),
])
def test_each_format_reads_back_right(tmp_path, capsys, fmt, layout, extra):
    root = str(tmp_path / 'data')
    ext = '.jpg' if fmt == 'jpeg' else '.png'
    # JPEG masks need flat regions to show their labels: 32x32 shapes
    # have too few and are refused (a class would be lost)
    labels = make_dataset(root, layout=layout, fmt=fmt, mask_ext=ext,
                          size=128 if fmt == 'jpeg' else 32)
    before = tree_digest(root)
    out = str(tmp_path / 'out')
    code, report, err = _prepare(capsys, root, out, *extra)
    assert code == 0, err
    assert 'label histogram' in report and 'recommended settings' in report
    cfg, got = _val_labels(prepared_config(out))
    assert tree_digest(root) == before  # the user's files only read
    converted = osp.isdir(osp.join(out, 'data'))
    assert converted == (fmt in ('colour', 'binary255', 'jpeg'))
    with open(osp.join(out, 'splits', 'val.txt')) as f:
        want = [labels[name] for name in f.read().split()]
    assert len(want) == len(got) == (2 if layout == 'flat' else 3)
    if fmt == 'binary255':
        want = [(w > 0).astype(np.uint8) for w in want]
        assert cfg.model.decode_head.num_classes == 2
    if fmt == 'colour':  # colours in code order: compare through palette
        palette = np.array(cfg.val_dataloader.dataset.metainfo.palette)
        from own_data_helpers import COLOURS
        assert all((palette[g] == COLOURS[w]).all()
                   for g, w in zip(got, want))
    elif fmt == 'jpeg':  # snapped: all but a few edge pixels right
        palette = np.array(cfg.val_dataloader.dataset.metainfo.palette)
        from own_data_helpers import COLOURS
        # each snapped colour is near one true colour
        near = np.array([np.abs(COLOURS.astype(int) - c).sum(1).argmin()
                         for c in palette])
        assert len(palette) == 4 and sorted(near) == [0, 1, 2, 3]
        agree = np.mean([(near[g] == w).mean() for g, w in zip(got, want)])
        assert agree >= 0.99
        assert re.search(r'\d+\.\d\d% of the pixels changed label', report)
    else:
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert cfg.model.decode_head.num_classes == len(
        cfg.val_dataloader.dataset.metainfo.classes)


def test_jpeg_masks_refused_without_snap(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, fmt='jpeg', mask_ext='.jpg', n=(2, 1))
    code, _, err = _prepare(capsys, root, str(tmp_path / 'out'))
    assert code == 2 and 'JPEG' in err and '--snap-jpeg' in err
    assert not osp.exists(tmp_path / 'out')


def test_bad_inputs(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, n=(3, 2))
    before = tree_digest(root)
    code, _, err = _prepare(capsys, root, osp.join(root, 'out'))
    assert code == 2 and 'inside the data folder' in err
    code, _, err = _prepare(capsys, root, str(tmp_path / 'o'),
                            '--classes', 'a', 'b')
    assert code == 2 and '2 class names' in err
    code, _, err = _prepare(capsys, str(tmp_path / 'none'),
                            str(tmp_path / 'o'))
    assert code == 2 and 'not a folder' in err
    write_mask(osp.join(root, 'masks', 'train_01.png'),
               np.zeros((20, 32), np.uint8), 'index')
    before['masks/train_01.png'] = tree_digest(root)['masks/train_01.png']
    code, _, err = _prepare(capsys, root, str(tmp_path / 'o'))
    assert code == 2 and 'train_01.png is 32x20' in err
    assert tree_digest(root) == before
    assert not os.path.exists(tmp_path / 'o')


def test_unreadable_image_is_skipped_and_counted(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, n=(4, 2))
    with open(osp.join(root, 'images', 'train_02.jpg'), 'wb') as f:
        f.write(b'not an image')
    out = str(tmp_path / 'out')
    code, report, err = _prepare(capsys, root, out)
    assert code == 1 and 'unreadable' in err
    assert 'train_02.jpg' in report
    with open(osp.join(out, 'splits', 'train.txt')) as f:
        names = f.read().split()
    with open(osp.join(out, 'splits', 'val.txt')) as f:
        names += f.read().split()
    assert len(names) == 5 and 'train_02' not in names


def test_balance_writes_class_weight(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, layout='mmseg', n=(4, 2))
    out = str(tmp_path / 'out')
    code, report, err = _prepare(capsys, root, out, '--balance',
                                 '--zero-is-ignore')
    assert code == 0, err
    cfg = Config.fromfile(prepared_config(out))
    weights = cfg.model.decode_head.loss_decode.class_weight
    assert len(weights) == 3 == cfg.model.decode_head.num_classes
    assert cfg.val_dataloader.dataset.reduce_zero_label
    assert 'median frequency' in report
    assert cfg.val_evaluator.iou_metrics == ['mIoU', 'mDice', 'mFscore']
    assert cfg.val_evaluator.type == 'mmseg_plugins.ClassMeanIoUMetric'
    assert cfg.default_hooks.checkpoint.save_best == 'mIoU'


def test_weights_schedule_and_model_names():
    w = median_frequency_weights(np.array([900, 90, 10, 0]))
    assert w[1] == 1.0 and w[0] == pytest.approx(0.1) and w[2] == 9.0
    assert w[3] == 1.0
    sched = scaled_schedule([dict(type='LinearLR', begin=0, end=1500),
                             dict(type='PolyLR', begin=0, end=160000)],
                            160000, 3200)
    assert [s['end'] for s in sched] == [30, 3200]
    for short, part in [('afformer_tiny', 'afformer_tiny_ade20k'),
                        ('segformer_mit-b2', 'mit-b2_8xb2-160k_ade20k'),
                        ('mpvit_small', 'mpvit_small_upernet_ade20k')]:
        path = resolve_model_config(short)
        assert osp.isabs(path) and part in path
    with pytest.raises(ValueError, match='no model config'):
        resolve_model_config('resnet_huge')


def test_config_named_after_dataset_and_model_and_weights_checked(
        tmp_path, capsys):
    root = str(tmp_path / 'leaves')
    make_dataset(root, n=(3, 2))
    out = str(tmp_path / 'out')
    code, text, err = run_tool_main(PREPARE, [
        root, '--model', 'afformer_tiny', '--out', out, '--iters', '2',
        '--num-workers', '0'], capsys)
    assert code == 0, err
    config = osp.join(out, 'leaves_afformer_tiny.py')
    assert osp.isfile(config)
    assert f'train:  python tools/train.py {config}   # into ' \
        f'{osp.join("work_dirs", "leaves_afformer_tiny")}' in text
    # the ImageNet file the config starts from is not here: said now,
    # with where it is published and the command that trains from scratch
    line = next(ln for ln in text.splitlines() if ln.startswith('weights:'))
    assert 'MISSING ./pretained_weight/AFFormer_tiny_ImageNet1k.pth' in line
    assert 'published by' in line
    assert line.endswith(f'python tools/train.py {config} --cfg-options '
                         'model.pretrained=None')
    with open(osp.join(out, 'report.txt')) as f:
        assert line in f.read()
    # a demo model trains from scratch
    code, text, err = _prepare(capsys, root, str(tmp_path / 'demo'))
    assert code == 0, err
    assert 'weights: none (the model config trains from scratch)' in text
    assert osp.isfile(osp.join(str(tmp_path / 'demo'),
                               'leaves_segformer_mit-b0_shapes-128x128.py'))


@pytest.mark.parametrize('case', ['data root', 'classes file', 'out file',
                                  'jpeg merged'])
def test_refusals_one_line_nothing_written(tmp_path, capsys, case):
    """Each refusal: one error line, exit 2, no output folder, the user's
    folder untouched."""
    import cv2
    from own_data_helpers import region_label
    root = str(tmp_path / 'data')
    make_dataset(root, n=(2, 1))
    out = str(tmp_path / 'out')
    extra = []
    if case == 'data root':
        root = str(tmp_path / 'none')
        want = 'data root .*none is not a folder'
    elif case == 'classes file':
        extra = ['--classes-file', str(tmp_path / 'classes.txt')]
        want = 'classes file .*classes.txt does not exist'
    elif case == 'out file':
        (tmp_path / 'out').write_text('')
        want = 'output folder .* is a file'
    else:  # the masks: index 0..7 saved as JPEG
        for name in os.listdir(osp.join(root, 'masks')):
            os.remove(osp.join(root, 'masks', name))
            cv2.imwrite(osp.join(root, 'masks', name[:-4] + '.jpg'),
                        region_label(8, 32, seed=len(name)))
        extra = ['--snap-jpeg']
        want = r'JPEG masks: .*save the masks as PNG'
    before = tree_digest(root) if osp.isdir(root) else None
    code, _, err = _prepare(capsys, root, out, *extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match('error: ' + want, lines[0]), err
    assert (not osp.exists(out)) or case == 'out file' and \
        osp.getsize(out) == 0
    if before is not None:
        assert tree_digest(root) == before


def test_wrong_path_refused_before_the_libraries_load(tmp_path):
    """A wrong path costs no torch/mmseg import (`-X importtime` lists
    every module imported)."""
    import subprocess
    import sys
    from helpers import ROOT
    proc = subprocess.run(
        [sys.executable, '-X', 'importtime',
         osp.join(ROOT, 'tools', 'prepare_dataset.py'),
         str(tmp_path / 'none'), '--model', 'afformer_tiny', '--out',
         str(tmp_path / 'out')], capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines()
              if not ln.startswith('import time:')]
    assert errors == [f'error: data root {tmp_path / "none"} is not a '
                      'folder']
    imported = {ln.split('|')[-1].strip() for ln in proc.stderr.splitlines()
                if ln.startswith('import time:')}
    assert not imported & {'torch', 'mmseg', 'mmengine', 'mmseg_plugins'}
