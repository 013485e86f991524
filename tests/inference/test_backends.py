"""mmseg_plugins/inference/backends.py: the PyTorch and ONNX Runtime
backends give the same logits, the model is prepared for inference in one
step, and what a backend cannot honour is refused."""
import copy

import pytest
import torch

from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.forward import SegmentorForward
from mmseg_plugins.inference import backends
from mmseg_plugins.inference.backends import (Backend, Normalisation,
                                              OnnxBackend, TorchBackend,
                                              TorchOptions, load_backend)
from mmseg_plugins.model_input import ModelInput


def _raw(seed=0, size=64):
    """(1, 3, size, size) BGR images in 0..255."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g) * 255


def test_torch_backend_runs_the_prepared_model(demo_segmentor, monkeypatch):
    cfg, model = demo_segmentor('afformer')
    prepared = []

    def prepare(module):
        prepared.append(module)
        return module.eval()

    monkeypatch.setattr(backends, 'prepare_model', prepare)
    backend = TorchBackend(copy.deepcopy(model).train(), 'cpu')
    assert isinstance(backend, Backend)
    assert prepared == [backend.model] and not backend.model.training
    assert not backend.normalises_inputs and backend.checkpoint_meta is None
    assert backend.num_classes == model.decode_head.out_channels
    normalise = Normalisation.from_input(ModelInput.from_config(cfg))
    x = normalise(_raw())
    with torch.no_grad():
        want = SegmentorForward(model.eval())(x)
    torch.testing.assert_close(backend.logits(x), want)
    last = TorchBackend(copy.deepcopy(model), 'cpu',
                        TorchOptions(channels_last=True))
    torch.testing.assert_close(last.logits(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('family', ['afformer', 'segformer'])
def test_prepared_model_is_fused_with_the_same_logits(demo_segmentor,
                                                      family):
    """Every PyTorch inference path runs the fused model: no BatchNorm is
    left, the logits are the reference forward's."""
    _, model = demo_segmentor(family)
    reference = copy.deepcopy(model).eval()
    prepared = backends.prepare_model(copy.deepcopy(model).train())
    assert not prepared.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d)
                   for m in prepared.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), reference(x), rtol=1e-4,
                                   atol=1e-4)


def test_normalisation_of_a_model_input():
    grey = Normalisation.from_input(ModelInput(channels=1, bands=True))
    assert grey.mean.flatten().tolist() == [0.]
    assert grey.std.flatten().tolist() == [1.] and not grey.bgr_to_rgb
    colour = Normalisation.from_input(ModelInput(
        mean=[1., 2., 3.], std=[2., 2., 2.], bgr_to_rgb=True))
    x = torch.tensor([10., 20., 30.]).view(1, 3, 1, 1)
    # swapped to RGB first, then normalised
    assert colour(x).flatten().tolist() == [14.5, 9., 3.5]
    assert colour.matches([1., 2., 3.], [2., 2., 2.], True)
    assert not colour.matches([1., 2., 3.], [2., 2., 2.], False)
    assert not colour.matches([1., 2.], [2., 2.], True)
    assert not colour.matches([1., 2., 3.01], [2., 2., 2.], True)


def test_onnx_backend_gives_the_torch_logits(demo_segmentor, demo_export):
    pytest.importorskip('onnxruntime')
    cfg, model = demo_segmentor('afformer')
    path, _ = demo_export('afformer')
    normalise = Normalisation.from_input(ModelInput.from_config(cfg))
    backend = OnnxBackend(path, 'cpu', normalise, 3)
    assert isinstance(backend, Backend) and backend.normalises_inputs
    assert backend.num_classes == model.decode_head.out_channels
    raw = _raw(1)
    want = TorchBackend(copy.deepcopy(model), 'cpu').logits(normalise(raw))
    torch.testing.assert_close(backend.logits(raw), want, rtol=1e-4,
                               atol=1e-4)
    other = Normalisation(normalise.mean, normalise.std * 2, True)
    with pytest.raises(InvalidInputError,
                       match=r'was exported with mean \[123\.675.*but the '
                       r'config has mean'):
        OnnxBackend(path, 'cpu', other, 3)
    with pytest.raises(InvalidInputError,
                       match='takes 3-channel images, the config 4'):
        OnnxBackend(path, 'cpu', Normalisation(
            torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1), False), 4)


def test_load_backend_chooses_by_the_checkpoint(demo_checkpoint):
    from helpers import DEMO_CONFIG
    from mmseg_plugins.config import load_config
    cfg = load_config(DEMO_CONFIG)
    normalise = Normalisation.from_input(ModelInput.from_config(cfg))
    for options in (TorchOptions(precision='bf16'),
                    TorchOptions(channels_last=True),
                    TorchOptions(compile='default')):
        with pytest.raises(InvalidInputError,
                           match='apply to PyTorch checkpoints, not to an '
                           'ONNX model'):
            load_backend(cfg, 'model.onnx', 'cpu', options, normalise, 3)
    backend = load_backend(cfg, demo_checkpoint, 'cpu', TorchOptions(),
                           normalise, 3)
    assert isinstance(backend, TorchBackend)
    assert backend.checkpoint_meta['dataset_meta']['classes'][0] == \
        'background'
