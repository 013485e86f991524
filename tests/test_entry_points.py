"""mmseg's own entry points on plugin configs, each in a fresh interpreter
that never imports mmseg_plugins itself: ``mmseg.apis`` (MMSegInferencer,
init_model + inference_model) and the scripts shipped inside the mmseg wheel
(print_config, both browse_dataset, confusion_matrix, benchmark, test.py
with --out and --tta). What makes them work: the start-up finder for
``mmcv.ops`` (mmseg_plugins_mmcv_ops), the configs' ``custom_imports``, the
dataset class and the compatibility fixes."""
import glob
import json
import os.path as osp

import pytest

from helpers import DEMO_CONFIG, PYTHON, demo_overrides, mmseg_tool, run

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


def test_inferencer_and_inference_model_run_a_plugin_model(
        demo_root, demo_checkpoint, tmp_path):
    """``mmseg.apis`` imports without mmseg_plugins (no import-order
    trick); its MMSegInferencer and init_model + inference_model then build
    and run a plugin model from its config (``custom_imports``)."""
    image = osp.join(demo_root, 'images', 'validation',
                     'shapes_validation_000.png')
    code = f'''
import sys
from mmseg.apis import MMSegInferencer, inference_model, init_model
print('mmseg_plugins imported by mmseg.apis:', 'mmseg_plugins' in sys.modules)
inferencer = MMSegInferencer({DEMO_CONFIG!r}, {demo_checkpoint!r},
                             device='cpu')
out = inferencer({image!r}, out_dir={str(tmp_path)!r})
print('inferencer', out['predictions'].shape,
      inferencer.model.dataset_meta['classes'])
model = init_model({DEMO_CONFIG!r}, {demo_checkpoint!r}, device='cpu')
result = inference_model(model, {image!r})
print('inference_model', tuple(result.pred_sem_seg.data.shape),
      type(model.backbone).__module__)
'''
    proc = _ok(run([PYTHON, '-c', code]))
    assert 'mmseg_plugins imported by mmseg.apis: False' in proc.stdout
    assert ("inferencer (128, 128) ('background', 'disk', 'square', "
            "'triangle')") in proc.stdout
    assert 'inference_model (1, 128, 128) mmseg_plugins.models.segformer' \
        in proc.stdout
    assert osp.isfile(osp.join(tmp_path, 'vis', 'shapes_validation_000.png'))
    assert osp.isfile(osp.join(tmp_path, 'pred', '00000000_pred.png'))


def test_print_config(demo_root, tmp_path):
    """It prints the merged config and dumps it to ./example.py."""
    proc = _ok(run([PYTHON, mmseg_tool('misc/print_config.py'), DEMO_CONFIG,
                    '--cfg-options', *_test_options(demo_root)],
                   cwd=str(tmp_path)))
    for text in (proc.stdout, (tmp_path / 'example.py').read_text()):
        assert "type='mmseg_plugins.MiT'" in text
        assert "type='mmseg_plugins.DemoShapesDataset'" in text


@pytest.mark.parametrize('tool', ['analysis_tools/browse_dataset.py',
                                  'misc/browse_dataset.py'])
def test_browse_dataset_draws_labelled_samples(demo_root, tmp_path, tool):
    """Both dataset browsers draw the ground truth with class names
    (mmseg's visualiser, OpenCV) and save one image per sample."""
    import cv2
    proc = _ok(run([PYTHON, mmseg_tool(tool), DEMO_CONFIG, '--output-dir',
                    str(tmp_path), '--not-show', '--cfg-options',
                    *_test_options(demo_root)]))
    assert 'Traceback' not in proc.stderr
    drawn = sorted(glob.glob(osp.join(str(tmp_path), '**', '*.png'),
                             recursive=True))
    assert len(drawn) == FEW
    image = cv2.imread(drawn[0])
    assert image.shape[0] == 128 and image.std() > 0


def test_confusion_matrix_from_test_predictions(demo_root, demo_checkpoint,
                                                tmp_path):
    """mmseg's test.py writes the predictions (and its log says the
    checkpoint was loaded strictly, by the runtime config's
    StrictLoadHook), confusion_matrix.py
    reads them with the dataset class's METAINFO."""
    pred, out = str(tmp_path / 'pred'), str(tmp_path / 'matrix')
    proc = _ok(run([PYTHON, mmseg_tool('test.py'), DEMO_CONFIG,
                    demo_checkpoint, '--out', pred, '--work-dir',
                    str(tmp_path / 'work'), '--cfg-options',
                    *_test_options(demo_root)]))
    assert f'StrictLoadHook: {demo_checkpoint} will load strictly' \
        in proc.stdout
    assert 'mIoU' in proc.stdout
    assert len(glob.glob(osp.join(pred, '*.png'))) == FEW
    _ok(run([PYTHON, mmseg_tool('analysis_tools/confusion_matrix.py'),
             DEMO_CONFIG, pred, out, '--cfg-options',
             *_test_options(demo_root)]))
    assert osp.getsize(osp.join(out, 'confusion_matrix.png')) > 0


def test_test_time_augmentation(demo_root, demo_checkpoint, tmp_path):
    """mmseg's test.py --tta on the demo config: its tta_pipeline (scales
    and flips) and mmseg's SegTTAModel."""
    proc = _ok(run([PYTHON, mmseg_tool('test.py'), DEMO_CONFIG,
                    demo_checkpoint, '--tta', '--work-dir', str(tmp_path),
                    '--cfg-options', *_test_options(demo_root, images=2)]))
    assert 'mIoU' in proc.stdout


def test_benchmark(demo_root, demo_checkpoint, tmp_path):
    """mmseg's analysis_tools/benchmark.py times 200 test batches after 5
    warm-up ones: the demo validation set repeated 13 times, at 32x32 so
    that it stays short (benchmark.py runs the data preprocessor in
    training mode, which pads to ``size``: set to the same 32x32)."""
    config = tmp_path / 'benchmark_config.py'
    config.write_text(f'''_base_ = [{DEMO_CONFIG!r}]
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
    proc = _ok(run([PYTHON, mmseg_tool('analysis_tools/benchmark.py'),
                    str(config), demo_checkpoint, '--work-dir',
                    str(tmp_path)]))
    assert 'Overall fps' in proc.stdout
    (result, ) = glob.glob(str(tmp_path / 'fps_*.json'))
    with open(result) as f:
        assert json.load(f)['average_fps'] > 0
