"""Tests of tools/deployment/pytorch2onnx.py end to end: a verified export
that gives PyTorch's masks, and one ``error:`` line (exit 2, nothing
written) for bad input."""
import os
import os.path as osp

import pytest
import torch

from helpers import ROOT, assert_refused, call
from mmseg_plugins.checkpoint import atomic_save

pytest.importorskip('onnxruntime')

TOOL = osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
AFFORMER = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')
SEGFORMER = osp.join(ROOT, 'configs', 'demo',
                     'segformer_mit-b0_shapes-128x128.py')


def _checkpoint(config, path, arch=None):
    """A random-weight checkpoint of a config's model (optionally another
    backbone variant), as mmengine saves it."""
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.cli import load_config
    cfg = load_config(config)
    if arch:
        cfg.model.backbone.arch = arch
    model, _ = build_segmentor(cfg, None, 'cpu')
    atomic_save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=('bg', 'disk', 'square', 'triangle')))),
        str(path))
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp('checkpoints')
    return dict(
        tiny=_checkpoint(AFFORMER, folder / 'afformer_tiny.pth'),
        base=_checkpoint(AFFORMER, folder / 'afformer_base.pth', 'base'),
        segformer=_checkpoint(SEGFORMER, folder / 'segformer.pth'))


def test_export_gives_pytorch_masks(checkpoints, tmp_path, demo_root):
    from mmseg.structures import SegDataSample

    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.deploy import OnnxSegmentor
    from mmseg_plugins.deploy.evaluate import build_split, dataset_samples
    from mmseg_plugins.cli import load_config
    out = tmp_path / 'afformer.onnx'
    proc = call(TOOL, AFFORMER, checkpoints['tiny'], str(out),
                '--shape', '64', '64', '--dynamic', '--output', 'mask',
                '--exporter', 'torchscript')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'verified with onnxruntime' in proc.stdout
    assert proc.stdout.count('outside near-ties') == 3
    assert os.listdir(tmp_path) == ['afformer.onnx']
    session = OnnxSegmentor(str(out))
    assert session.classes == ['bg', 'disk', 'square', 'triangle']
    cfg = load_config(AFFORMER, {'test_dataloader.dataset.data_root':
                                 demo_root})
    model, _ = build_segmentor(cfg, checkpoints['tiny'], 'cpu')
    for image, _, shape in dataset_samples(build_split(cfg), 0, 2):
        sample = SegDataSample(metainfo=dict(img_shape=shape,
                                             ori_shape=shape))
        with torch.no_grad():
            expected = model.test_step(dict(inputs=[image],
                                            data_samples=[sample]))[0]
        mask = session(session.prepare(image))[0]
        same = (mask == expected.pred_sem_seg.data[0]).float().mean()
        assert same > 0.999


@pytest.mark.parametrize('case', [
    'config without a model', 'another variant', 'another model',
    'unsupported opset', 'missing output directory', 'onnx as checkpoint'
])
def test_bad_input_is_refused_and_nothing_written(case, checkpoints,
                                                  tmp_path):
    out = tmp_path / 'out.onnx'
    args = [AFFORMER, checkpoints['tiny'], str(out)]
    pattern = dict(
        {'config without a model': 'defines no "model"',
         'another variant': r'does not fit the model of '
         r'afformer_tiny_shapes-128x128.py: .*size mismatch',
         'another model': 'does not fit the model',
         'unsupported opset': 'opset 9 is not supported by the dynamo '
         r'exporter \(supported: 18 to 23\)',
         'missing output directory': 'output directory .*missing does not '
         'exist',
         'onnx as checkpoint': r'model\.onnx is an ONNX model; this tool '
         r'exports a PyTorch checkpoint'})[case]
    if case == 'config without a model':
        config = tmp_path / 'no_model.py'
        config.write_text('crop_size = (64, 64)\n')
        args[0] = str(config)
    elif case == 'another variant':
        args[1] = checkpoints['base']
    elif case == 'another model':
        args[1] = checkpoints['segformer']
    elif case == 'unsupported opset':
        args += ['--opset', '9']
    elif case == 'missing output directory':
        args[2] = str(tmp_path / 'missing' / 'out.onnx')
    else:
        import torch.nn as nn
        onnx_file = tmp_path / 'model.onnx'
        torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8), ),
                          str(onnx_file), dynamo=False)
        args[1] = str(onnx_file)
    before = sorted(os.listdir(tmp_path))
    assert_refused(call(TOOL, *args, '--exporter', 'dynamo'),
                   pattern)
    assert sorted(os.listdir(tmp_path)) == before
