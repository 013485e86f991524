"""mmseg's own entry points on plugin configs, in a fresh interpreter that
never imports mmseg_plugins itself: ``mmseg.apis`` (MMSegInferencer,
init_model + inference_model) first, then the scripts shipped inside the
mmseg wheel (print_config, both browse_dataset, test.py with --out and
--tta, confusion_matrix, benchmark), each run as its command line runs it
(``run_scripts.py``: ``__main__``, its own arguments and working
directory). What makes them work: the start-up finder for ``mmcv.ops``
(mmseg_plugins_mmcv_ops), the configs' ``custom_imports``, the dataset
class and the compatibility fixes. One interpreter for all of them: each
fresh interpreter spends seconds importing torch, mmengine and mmseg."""
import glob
import json
import os
import os.path as osp

import pytest

from helpers import DEMO_CONFIG, demo_overrides, mmseg_tool
from run_scripts import run_steps

#: The demo data's validation images a test runs on (first N of 16).
FEW = 4


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _test_options(data_root: str, images: int = FEW) -> list:
    """--cfg-options: demo data at ``data_root``, one worker, the first
    ``images`` training and test images."""
    return demo_overrides(data_root, 2) + [
        f'train_dataloader.dataset.indices={images}',
        f'test_dataloader.dataset.indices={images}']


def _apis_code(image: str, checkpoint: str, out_dir: str) -> str:
    return f'''
import sys
from mmseg.apis import MMSegInferencer, inference_model, init_model
print('mmseg_plugins imported by mmseg.apis:', 'mmseg_plugins' in sys.modules)
inferencer = MMSegInferencer({DEMO_CONFIG!r}, {checkpoint!r},
                             device='cpu')
out = inferencer({image!r}, out_dir={out_dir!r})
print('inferencer', out['predictions'].shape,
      inferencer.model.dataset_meta['classes'])
model = init_model({DEMO_CONFIG!r}, {checkpoint!r}, device='cpu')
result = inference_model(model, {image!r})
print('inference_model', tuple(result.pred_sem_seg.data.shape),
      type(model.backbone).__module__)
'''


def _benchmark_config(path, demo_root: str) -> str:
    """The demo config on its validation set repeated 13 times, at 32x32
    so that 205 batches stay short (benchmark.py runs the data preprocessor
    in training mode, which pads to ``size``: set to the same 32x32)."""
    with open(path, 'w') as f:
        f.write(f'''_base_ = [{DEMO_CONFIG!r}]
model = dict(data_preprocessor=dict(size=(32, 32)))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='RepeatDataset', times=13,
        dataset=dict(
            type='mmseg_plugins.DemoShapesDataset', data_root={demo_root!r},
            data_prefix=dict(img_path='images/validation',
                             seg_map_path='annotations/validation'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='Resize', scale=(32, 32)),
                      dict(type='PackSegInputs')])))
''')
    return str(path)


@pytest.fixture(scope='module')
def runs(demo_root, demo_checkpoint, tmp_path_factory):
    """Every entry point once, in this order, in one fresh interpreter:
    ``{step: CompletedProcess}`` and the folders they wrote to."""
    root = tmp_path_factory.mktemp('entry_points')
    dirs = {name: str(root / name) for name in (
        'apis', 'print_config', 'browse_analysis', 'browse_misc', 'pred',
        'test', 'matrix', 'tta', 'benchmark')}
    for folder in dirs.values():
        os.makedirs(folder)
    image = osp.join(demo_root, 'images', 'validation',
                     'shapes_validation_000.png')
    options = ['--cfg-options', *_test_options(demo_root)]
    steps = dict(
        apis=['-c', _apis_code(image, demo_checkpoint, dirs['apis'])],
        print_config=[mmseg_tool('misc/print_config.py'), DEMO_CONFIG,
                      *options],
        browse_analysis=[mmseg_tool('analysis_tools/browse_dataset.py'),
                         DEMO_CONFIG, '--output-dir',
                         dirs['browse_analysis'], '--not-show', *options],
        browse_misc=[mmseg_tool('misc/browse_dataset.py'), DEMO_CONFIG,
                     '--output-dir', dirs['browse_misc'], '--not-show',
                     *options],
        test=[mmseg_tool('test.py'), DEMO_CONFIG, demo_checkpoint, '--out',
              dirs['pred'], '--work-dir', dirs['test'], *options],
        confusion_matrix=[
            mmseg_tool('analysis_tools/confusion_matrix.py'), DEMO_CONFIG,
            dirs['pred'], dirs['matrix'], *options],
        tta=[mmseg_tool('test.py'), DEMO_CONFIG, demo_checkpoint, '--tta',
             '--work-dir', dirs['tta'], '--cfg-options',
             *_test_options(demo_root, images=2)],
        benchmark=[mmseg_tool('analysis_tools/benchmark.py'),
                   _benchmark_config(root / 'benchmark_config.py',
                                     demo_root),
                   demo_checkpoint, '--work-dir', dirs['benchmark']])
    # print_config writes ./example.py: each step in a folder of its own
    listed = [dict(name=name, argv=argv, cwd=dirs.get(name, str(root)))
              for name, argv in steps.items()]
    return run_steps(listed, root), dirs


def test_inferencer_and_inference_model_run_a_plugin_model(runs):
    """``mmseg.apis`` imports without mmseg_plugins (no import-order
    trick); its MMSegInferencer and init_model + inference_model then build
    and run a plugin model from its config (``custom_imports``)."""
    found, dirs = runs
    proc = _ok(found['apis'])
    assert 'mmseg_plugins imported by mmseg.apis: False' in proc.stdout
    assert ("inferencer (128, 128) ('background', 'disk', 'square', "
            "'triangle')") in proc.stdout
    assert 'inference_model (1, 128, 128) mmseg_plugins.models.segformer' \
        in proc.stdout
    assert osp.isfile(osp.join(dirs['apis'], 'vis',
                               'shapes_validation_000.png'))
    assert osp.isfile(osp.join(dirs['apis'], 'pred', '00000000_pred.png'))


def test_print_config(runs):
    """It prints the merged config and dumps it to ./example.py."""
    found, dirs = runs
    proc = _ok(found['print_config'])
    with open(osp.join(dirs['print_config'], 'example.py')) as f:
        dumped = f.read()
    for text in (proc.stdout, dumped):
        assert "type='mmseg_plugins.MiT'" in text
        assert "type='mmseg_plugins.DemoShapesDataset'" in text


@pytest.mark.parametrize('tool', ['analysis_tools/browse_dataset.py',
                                  'misc/browse_dataset.py'])
def test_browse_dataset_draws_labelled_samples(runs, tool):
    """Both dataset browsers draw the ground truth with class names
    (mmseg's visualiser, OpenCV) and save one image per sample."""
    import cv2
    found, dirs = runs
    step = 'browse_' + tool.split('/')[0].split('_')[0]
    proc = _ok(found[step])
    assert 'Traceback' not in proc.stderr
    drawn = sorted(glob.glob(osp.join(dirs[step], '**', '*.png'),
                             recursive=True))
    assert len(drawn) == FEW
    image = cv2.imread(drawn[0])
    assert image.shape[0] == 128 and image.std() > 0


def test_confusion_matrix_from_test_predictions(runs, demo_checkpoint):
    """mmseg's test.py writes the predictions (and its log says the
    checkpoint was loaded strictly, by the runtime config's
    StrictLoadHook), confusion_matrix.py
    reads them with the dataset class's METAINFO."""
    found, dirs = runs
    proc = _ok(found['test'])
    assert f'StrictLoadHook: {demo_checkpoint} will load strictly' \
        in proc.stdout
    assert 'mIoU' in proc.stdout
    assert len(glob.glob(osp.join(dirs['pred'], '*.png'))) == FEW
    _ok(found['confusion_matrix'])
    assert osp.getsize(osp.join(dirs['matrix'], 'confusion_matrix.png')) > 0


def test_test_time_augmentation(runs):
    """mmseg's test.py --tta on the demo config: its tta_pipeline (scales
    and flips) and mmseg's SegTTAModel."""
    found, _ = runs
    assert 'mIoU' in _ok(found['tta']).stdout


def test_benchmark(runs):
    """mmseg's analysis_tools/benchmark.py times 200 test batches after 5
    warm-up ones (see _benchmark_config)."""
    found, dirs = runs
    assert 'Overall fps' in _ok(found['benchmark']).stdout
    (result, ) = glob.glob(osp.join(dirs['benchmark'], 'fps_*.json'))
    with open(result) as f:
        assert json.load(f)['average_fps'] > 0
