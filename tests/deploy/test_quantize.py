"""Tests of mmseg_plugins/deploy/quantize.py: static int8 quantization,
verified against the float model before it is written."""
import os
import os.path as osp

import pytest
import torch

from mmseg_plugins.deploy.onnx_runtime import OnnxSegmentor
from mmseg_plugins.deploy.quantize import mask_agreement, quantize_int8
from mmseg_plugins.errors import MMSegPluginsError as Refused

pytest.importorskip('onnxruntime')


def _images(count, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, 64, 64), generator=g,
                          dtype=torch.uint8) for _ in range(count)]


@pytest.fixture(scope='module')
def quantized(demo_configs, tmp_path_factory):
    """The AFFormer demo model with one block per stage (the tiny variant's
    modules; ONNX Runtime's symbolic shape inference, run before
    quantizing, takes time per block), random weights, exported with
    dynamic shapes and quantized on 4 images; agreement is not asserted by
    the quantizer here (random weights give near-ties everywhere), the
    tests check what it measured."""
    import mhca_reference as ref
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.cli import load_config
    from mmseg_plugins.deploy import (ExportSettings, export_metadata,
                                      export_onnx)
    from helpers import one_block_per_stage_arch
    from mmseg_plugins.models import AFFormer
    cfg = load_config(demo_configs['afformer'])
    cfg.model.backbone.arch = one_block_per_stage_arch(AFFormer, 'tiny')
    model, _ = build_segmentor(cfg, None, 'cpu')
    ref.randomise(model, seed=0, scale=0.1)
    settings = ExportSettings(shape=(64, 64), dynamic=True,
                              exporter='torchscript')
    folder = tmp_path_factory.mktemp('int8')
    fp32 = str(folder / 'fp32.onnx')
    export_onnx(model, export_metadata(cfg, model, settings, {}), fp32,
                settings)
    dst = str(folder / 'out' / 'int8.onnx')
    os.makedirs(osp.dirname(dst))
    report = quantize_int8(fp32, dst, _images(4, 0), _images(2, 1),
                           min_agreement=0.0, description='random images')
    return fp32, dst, report


def test_int8_graph_with_the_float_metadata(quantized):
    import onnx
    fp32, dst, report = quantized
    assert os.listdir(os.path.dirname(dst)) == ['int8.onnx']
    ops = {n.op_type for n in onnx.load(dst).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    int8, float_model = OnnxSegmentor(dst), OnnxSegmentor(fp32)
    assert int8.quantization.startswith('static int8 (QDQ, minmax '
                                        'calibration on 4 images of random')
    assert (int8.classes, int8.mean, int8.normalize, int8.dynamic) == (
        float_model.classes, float_model.mean, float_model.normalize,
        float_model.dynamic)
    assert report.file_bytes == os.path.getsize(dst)
    assert (report.calibration_images, report.verification_images) == (4, 2)
    # the reported agreement is what the two files give on those images
    assert report.agreement == pytest.approx(mask_agreement(
        float_model, int8, _images(2, 1)))
    # int8 changes the logits (it is not the float graph renamed) but stays
    # close to them
    x = float_model.prepare(_images(1, 2)[0])
    a, b = float_model(x), int8(x)
    assert 0 < (a - b).abs().max() < 0.5 * a.abs().max()


def test_mask_agreement_counts_pixels(quantized):
    fp32, _, _ = quantized
    model = OnnxSegmentor(fp32)
    assert mask_agreement(model, model, _images(2, 3)) == 1.0

    class Shifted:
        output, prepare = 'logits', staticmethod(model.prepare)

        def __call__(self, x):  # one class more everywhere: all differ
            logits = model(x)
            return logits.roll(1, dims=1)

    x = _images(1, 4)
    mask = model(model.prepare(x[0])).argmax(1)
    differ = (mask != model(model.prepare(x[0])).roll(1, 1).argmax(1))
    assert mask_agreement(model, Shifted(), x) == pytest.approx(
        1 - differ.float().mean().item())


def test_refuses_and_writes_nothing(quantized, demo_export, tmp_path,
                                    monkeypatch):
    from mmseg_plugins.deploy import quantize
    fp32, dst, _ = quantized
    out = tmp_path / 'out.onnx'
    # the verification runs after quantizing (on the SegFormer demo: its
    # symbolic shape inference takes a fifth of AFFormer's; its random
    # weights give one class everywhere, so the agreement is stubbed)
    segformer, _ = demo_export('segformer', dynamic=True)
    with monkeypatch.context() as patch:
        patch.setattr(quantize, 'mask_agreement', lambda *args: 0.5)
        with pytest.raises(Refused, match=r'refusing to write .*out\.onnx: '
                           r'the int8 masks agree with the float model on '
                           r'50\.00% .* below the minimum 90\.00%'):
            quantize_int8(segformer, str(out), _images(2, 0),
                          _images(1, 1), min_agreement=0.9)
    with pytest.raises(Refused, match='between 0 and 1, got 1.01'):
        quantize_int8(fp32, str(out), _images(2, 0), _images(1, 1),
                      min_agreement=1.01)
    with pytest.raises(Refused, match='already quantized'):
        quantize_int8(dst, str(out), _images(2, 0), _images(1, 1))
    with pytest.raises(Refused, match='unknown calibration method'):
        quantize_int8(fp32, str(out), _images(2, 0), _images(1, 1),
                      method='median')
    with pytest.raises(Refused, match='no calibration images'):
        quantize_int8(fp32, str(out), [], _images(1, 1))
    with pytest.raises(Refused, match='output directory .* does not '
                       'exist'):
        quantize_int8(fp32, str(tmp_path / 'no' / 'x.onnx'), _images(2, 0),
                      _images(1, 1))
    assert os.listdir(tmp_path) == []


def test_leaves_no_files_in_the_working_directory(demo_export, tmp_path,
                                                  monkeypatch):
    """ONNX Runtime's shape inference writes temporary files into the
    current directory when it gives up; the quantizer runs it elsewhere."""
    fp32, _ = demo_export('segformer', dynamic=True)
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    quantize_int8(fp32, str(tmp_path / 'int8.onnx'), _images(2, 0),
                  _images(1, 1), min_agreement=0.0)
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp_path)) == ['cwd', 'int8.onnx']
