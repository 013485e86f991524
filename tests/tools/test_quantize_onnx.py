"""Tests of tools/deployment/quantize_onnx.py end to end on the demo data:
calibration, verification, mIoU and timing lines; bad input refused."""
import os
import os.path as osp

import pytest

from helpers import ROOT, assert_refused, call

pytest.importorskip('onnxruntime')

TOOL = osp.join(ROOT, 'tools', 'deployment', 'quantize_onnx.py')
# the SegFormer demo: ONNX Runtime's symbolic shape inference (run before
# quantizing) takes a fifth of the time it takes on AFFormer's graph, which
# tests/deploy/test_quantize.py quantizes
CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'segformer_mit-b0_shapes-128x128.py')


def _data(demo_root):
    return ['--cfg-options'] + [
        f'{split}_dataloader.dataset.data_root={demo_root}'
        for split in ('train', 'val', 'test')]


def test_quantizes_evaluates_and_times(demo_export, demo_root, tmp_path):
    fp32, _ = demo_export('segformer', dynamic=True)
    out = tmp_path / 'int8.onnx'
    proc = call(TOOL, CONFIG, fp32, str(out), '--calib-images', '3',
                '--verify-images', '2', '--min-agreement', '0',
                '--evaluate', '--speed-shape', '64', '64', '--repeats', '2',
                *_data(demo_root))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout
    assert 'minmax calibration on 3 images' in lines
    assert 'of the pixels of 2 held-out images' in lines
    assert lines.count('mIoU on the test split (16 images)') == 2
    assert 'int8 speed-up' in lines
    assert os.listdir(tmp_path) == ['int8.onnx']


def test_bad_input_is_refused(demo_export, demo_root, tmp_path):
    fp32, _ = demo_export('segformer', dynamic=True)
    out = str(tmp_path / 'int8.onnx')
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'PK\x03\x04 not a model')
    cases = [
        ([CONFIG, str(tmp_path / 'none.onnx'), out], 'ONNX file not found'),
        ([CONFIG, str(checkpoint), out], 'not a loadable ONNX model'),
        ([CONFIG, fp32, str(tmp_path / 'no' / 'x.onnx')],
         'output directory .* does not exist'),
        ([CONFIG, fp32, out, '--calib-images', '0'], 'must be positive'),
        ([CONFIG, fp32, out, '--min-agreement', '1.5'],
         'a share of pixels between 0 and 1, got 1.5'),
    ]
    for args, pattern in cases:
        counts = [] if '--calib-images' in args else [
            '--calib-images', '2', '--verify-images', '1']
        assert_refused(call(TOOL, *args, *counts, *_data(demo_root)),
                       pattern)
    assert sorted(os.listdir(tmp_path)) == ['model.pth']
