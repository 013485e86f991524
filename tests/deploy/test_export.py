"""Tests of mmseg_plugins/deploy/export.py: dynamic ONNX export of every
family, verified with ONNX Runtime; refusal of wrong exports."""
import copy
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import mhca_reference as ref
from helpers import one_block_per_stage_arch
from mmseg_plugins.deploy import OnnxSegmentor, export
from mmseg_plugins.deploy.export import (ExportableAdaptiveAvgPool2d,
                                         ExportableSegmentor, ExportSettings,
                                         export_metadata, export_onnx,
                                         replace_adaptive_pools,
                                         verification_shapes)
from mmseg_plugins.models import AFFormer, MiT, MPViT
from mmseg_plugins.errors import MMSegPluginsError as Refused

pytest.importorskip('onnxruntime')


def _pytorch_logits(model, x):
    with torch.no_grad():
        return ExportableSegmentor(model, True, 'logits')(x)


def _assert_verified_dynamic(path, report, model):
    """The verifier ran ONNX Runtime at three sizes (one not a multiple of
    32, one at batch 2) within the tolerance; a fourth size and batch
    agree too."""
    shapes = [c.shape for c in report.checks]
    assert shapes == verification_shapes((64, 64), 32, True)
    assert any(b == 2 for b, _, _ in shapes)
    assert any(h % 32 or w % 32 for _, h, w in shapes)
    assert all(c.passed and c.relative < 1e-4 for c in report.checks)
    assert not report.external_data and not os.path.exists(path + '.data')
    session = OnnxSegmentor(path)
    dims = session.session.get_inputs()[0].shape
    assert all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))
    x = torch.rand(3, 3, 70, 45) * 255
    expected = _pytorch_logits(model, x)
    diff = (session(x) - expected).abs().max()
    assert diff <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize('family', ['afformer', 'segformer', 'mpvit'])
def test_dynamic_export_matches_onnxruntime(family, demo_export,
                                            demo_segmentor):
    """The tiny variants of all three families (the TorchScript exporter,
    fast; the default exporter below)."""
    path, report = demo_export(family, dynamic=True)
    _assert_verified_dynamic(path, report, demo_segmentor(family)[1])


@pytest.mark.parametrize('family', ['afformer', 'segformer'])
def test_dynamic_dynamo_export_matches_onnxruntime(family, demo_configs,
                                                   tmp_path):
    """The default exporter. AFFormer's low-pass pyramid is what it froze
    to the traced size (silently wrong at other sizes); one block per stage
    keeps this export fast (the modules are AFFormer-tiny's and
    SegFormer-B0's)."""
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.cli import load_config
    cfg = load_config(demo_configs[family])
    cfg.model.backbone.arch = one_block_per_stage_arch(
        AFFormer if family == 'afformer' else MiT, cfg.model.backbone.arch)
    model, _ = build_segmentor(cfg, None, 'cpu')
    ref.randomise(model, seed=0, scale=0.1)
    settings = ExportSettings(shape=(64, 64), dynamic=True)
    path = str(tmp_path / 'model.onnx')
    report = export_onnx(model, export_metadata(cfg, model, settings, {}),
                         path, settings)
    assert OnnxSegmentor(path).exporter == 'dynamo'
    _assert_verified_dynamic(path, report, model)


def _export_backbone(backbone, path, dynamo):
    x = torch.randn(2, 3, 64, 96)
    names = [f'stage{i}' for i in range(4)]
    with torch.no_grad():
        if dynamo:
            dim = torch.export.Dim.DYNAMIC
            torch.onnx.export(backbone, (x, ), path, dynamo=True,
                              dynamic_shapes=({0: dim, 2: dim(min=32),
                                               3: dim(min=32)}, ),
                              input_names=['x'], output_names=names,
                              verbose=False)
        else:
            torch.onnx.export(
                backbone, (x, ), path, dynamo=False, input_names=['x'],
                output_names=names,
                dynamic_axes={n: {0: 'b', 2: 'h', 3: 'w'}
                              for n in ['x'] + names})


@pytest.mark.parametrize('dynamo', [True, False], ids=['dynamo',
                                                       'torchscript'])
def test_mpvit_backbone_exports_right_with_both_exporters(tmp_path, dynamo):
    """Every stage output of the exported MPViT backbone equals PyTorch's
    (the TorchScript exporter used to drop the attention's in-place
    accumulation, and a per-sample loop would be frozen to the traced
    batch). The tiny variant's modules with one block and two paths per
    stage (two chained embeddings and attention encoders beside the
    convolutional branch): every kind of module, in four fifths of the
    dynamo export's time with three paths."""
    import onnxruntime as ort
    backbone = ref.randomise(
        MPViT(one_block_per_stage_arch(MPViT, 'tiny')).eval(), seed=2,
        scale=0.1)
    path = str(tmp_path / 'mpvit.onnx')
    _export_backbone(backbone, path, dynamo)
    session = ort.InferenceSession(path)
    for shape in [(2, 3, 64, 96), (1, 3, 97, 131), (3, 3, 32, 64)]:
        x = torch.randn(*shape)
        outs = session.run(None, {'x': x.numpy()})
        with torch.no_grad():
            expected = backbone(x)
        for ours, theirs in zip(outs, expected):
            err = np.abs(ours - theirs.numpy()).max()
            assert err <= 1e-4 * theirs.abs().max().item(), (shape, err)


def test_verifier_refuses_a_perturbed_graph(demo_segmentor, tmp_path,
                                            monkeypatch):
    """One weight of the exported graph changed by 1%: refused."""
    from onnx import numpy_helper
    cfg, model = demo_segmentor('afformer')
    original = export._export_graph

    def perturbed(*args):
        graph = original(*args)
        largest = max(graph.graph.initializer,
                      key=lambda t: int(np.prod(t.dims)))
        array = numpy_helper.to_array(largest) * 1.01
        largest.CopyFrom(numpy_helper.from_array(array, largest.name))
        return graph

    monkeypatch.setattr(export, '_export_graph', perturbed)
    settings = ExportSettings(shape=(64, 64), dynamic=True,
                              exporter='torchscript')
    with pytest.raises(Refused, match='differ beyond the tolerance'):
        export_onnx(model, export_metadata(cfg, model, settings, {}),
                    str(tmp_path / 'x.onnx'), settings)
    assert os.listdir(tmp_path) == []


def test_exporter_failure_is_one_clear_error(demo_segmentor, tmp_path,
                                             monkeypatch):
    """``F.adaptive_avg_pool2d`` on the export path: the TorchScript
    exporter fails; that is reported, nothing written."""
    from mmseg_plugins.models import ops
    cfg, model = demo_segmentor('afformer')
    monkeypatch.setattr(ops, 'exporting', lambda: False)
    settings = ExportSettings(shape=(64, 64), dynamic=True,
                              exporter='torchscript')
    with pytest.raises(Refused, match='the torchscript exporter failed: '
                       '.*adaptive_avg_pool2d') as info:
        export_onnx(model, export_metadata(cfg, model, settings, {}),
                    str(tmp_path / 'x.onnx'), settings)
    assert '\n' not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_mask_output_and_fused_batchnorm(demo_export, demo_segmentor):
    path, report = demo_export('afformer', dynamic=True, output='mask',
                               fuse=True)
    assert all(c.passed and c.unexplained == 0 for c in report.checks)
    session = OnnxSegmentor(path)
    assert (session.output, session.fused) == ('mask', True)
    x = torch.rand(2, 3, 40, 72) * 255
    mask = session(x)
    assert mask.dtype == torch.int64 and mask.shape == (2, 40, 72)
    logits = _pytorch_logits(demo_segmentor('afformer')[1], x)
    top2 = logits.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 1e-4 * logits.abs().max()
    assert torch.equal(mask[decided], logits.argmax(1)[decided])
    assert decided.float().mean() > 0.99


def test_static_export_takes_only_its_size(demo_export):
    path, report = demo_export('segformer', shape=(64, 96))
    assert [c.shape for c in report.checks] == [(1, 64, 96)]
    session = OnnxSegmentor(path)
    assert session(torch.rand(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    with pytest.raises(ValueError, match='static shapes'):
        session(torch.rand(1, 3, 96, 64))


def test_weights_go_to_a_data_file_above_the_size_limit(
        demo_segmentor, tmp_path, monkeypatch):
    cfg, model = demo_segmentor('segformer')
    monkeypatch.setattr(export, 'SINGLE_FILE_LIMIT', 1000)
    settings = ExportSettings(shape=(64, 64), exporter='torchscript')
    dst = tmp_path / 'split.onnx'
    report = export_onnx(model, export_metadata(cfg, model, settings, {}),
                         str(dst), settings)
    assert report.external_data
    assert sorted(os.listdir(tmp_path)) == ['split.onnx', 'split.onnx.data']
    assert os.path.getsize(tmp_path / 'split.onnx') < 1e6 < \
        report.file_bytes
    x = torch.rand(1, 3, 64, 64) * 255
    expected = _pytorch_logits(model, x)
    assert (OnnxSegmentor(str(dst))(x) - expected).abs().max() <= \
        1e-4 * expected.abs().max()


def test_adaptive_pools_are_replaced_on_a_copy_only(demo_segmentor):
    """mmseg's PPM inside UPerHead pools with nn.AdaptiveAvgPool2d; the
    export copy gets the exportable module, the model keeps its own, and
    both compute the same."""
    _, model = demo_segmentor('mpvit')
    copied = copy.deepcopy(model)
    assert replace_adaptive_pools(copied) == 4  # pool scales 1, 2, 3, 6
    pools = [m for m in copied.modules()
             if isinstance(m, nn.AdaptiveAvgPool2d)]
    assert len(pools) == 4 and all(
        type(m) is ExportableAdaptiveAvgPool2d for m in pools)
    assert sum(type(m) is nn.AdaptiveAvgPool2d
               for m in model.modules()) == 4
    x = torch.randn(1, 3, 97, 67)
    with torch.no_grad():
        torch.testing.assert_close(copied(x, mode='tensor'),
                                   model(x, mode='tensor'), rtol=1e-5,
                                   atol=1e-5 * 2e4)


def test_verification_shapes():
    for shape, min_size in [((512, 512), 32), ((64, 64), 32),
                            ((32, 48), 32), ((1024, 2048), 64)]:
        sizes = verification_shapes(shape, min_size, True)
        assert sizes[0] == (1, *shape) and len(sizes) == 3
        assert len(set(s[1:] for s in sizes)) == 3
        assert all(min(s[1:]) >= min_size for s in sizes)
        assert [b for b, _, _ in sizes] == [1, 2, 1]
        assert sizes[1][1] % 32 == 0 and sizes[1][2] % 32 == 0
        assert sizes[2][1] % 32 and sizes[2][2] % 32
    assert verification_shapes((64, 96), 32, False) == [(1, 64, 96)]


@pytest.mark.parametrize('options, message', [
    (dict(exporter='dynamo', opset=17), 'opset 17 is not supported by the '
     'dynamo exporter'),
    (dict(exporter='torchscript', opset=21), 'supported: 13 to 20'),
    (dict(output='probabilities'), 'output must be logits or mask'),
    (dict(shape=(16, 64)), 'at least 32x32'),
])
def test_settings_refuse_what_no_export_can_do(options, message):
    with pytest.raises(Refused, match=message):
        ExportSettings(**options).validate(32)
