"""Tests of mmseg_plugins/models/fuse.py: the one reference forward of every
family calls every parameterised module (forward hooks fire), and
``mmseg_plugins.fuse`` gives the same logits with every BatchNorm folded,
verifies itself, and touches no global state."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

import mhca_reference as ref
import mmseg_plugins
from helpers import ROOT
from mmseg_plugins.errors import FuseError
from mmseg_plugins.models import AFFormer, MiT, MPViT

CONFIGS = [
    'configs/demo/afformer_tiny_shapes-128x128.py',
    'configs/demo/segformer_mit-b0_shapes-128x128.py',
    'configs/demo/mpvit_tiny_upernet_shapes-128x128.py'
]


def _segmentor(config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(f'{ROOT}/{config}')
    if 'segformer' in config:  # a BatchNorm in the fusion conv, to fold
        cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return ref.randomise(model, seed=11, scale=0.1)


def _parameterised(model):
    return {n for n, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))}


@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('training', [True, False])
def test_forward_hooks_fire_on_every_parameterised_module(config, training):
    """One forward (train or eval mode, with or without autograd) calls
    every module that holds parameters, so tools that hook modules
    (feature maps, Grad-CAM, observers) see every layer."""
    model = _segmentor(config).train(training)
    called = set()
    for name, m in model.named_modules():
        m.register_forward_hook(
            lambda *a, name=name: called.add(name))
    with torch.set_grad_enabled(training):
        model(torch.randn(2, 3, 64, 64), mode='tensor')
    skipped = _parameterised(model) - called
    # the auxiliary head runs in the loss only, as in mmseg
    assert not {n for n in skipped if not n.startswith('auxiliary_head')}


@pytest.mark.parametrize('config', CONFIGS)
def test_fused_segmentor_gives_the_same_logits(config):
    model = _segmentor(config).eval()
    reference = copy.deepcopy(model)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert mmseg_plugins.fuse(model) is model
    assert n_bn > 0 and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'),
                                   reference(x, mode='tensor'), atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize('backbone', [
    lambda: MiT('b0'), lambda: AFFormer('tiny'), lambda: MPViT('tiny')
], ids=['MiT', 'AFFormer', 'MPViT'])
def test_fused_backbone_gives_the_same_features(backbone):
    model = ref.randomise(backbone(), seed=3, scale=0.1).eval()
    reference = copy.deepcopy(model)
    mmseg_plugins.fuse(model)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for ours, theirs in zip(model(x), reference(x)):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_fuse_refuses_a_model_in_training_mode():
    model = AFFormer('tiny').train()
    with pytest.raises(FuseError, match='call model.eval'):
        mmseg_plugins.fuse(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fuse_refuses_a_wrong_fusion_and_changes_nothing(monkeypatch):
    from mmseg_plugins.models import blocks
    model = ref.randomise(MPViT('tiny'), seed=3, scale=0.1).eval()
    before = copy.deepcopy(model.state_dict())
    right_fuse = blocks.ConvRelPosEnc.fuse

    def wrong_fuse(self):  # a merged kernel 1% off
        right_fuse(self)
        with torch.no_grad():
            self.merged.weight.mul_(1.01)

    monkeypatch.setattr(blocks.ConvRelPosEnc, 'fuse', wrong_fuse)
    with pytest.raises(FuseError, match='differs from the reference'):
        mmseg_plugins.fuse(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_fuse_leaves_the_global_random_state_alone():
    model = AFFormer('tiny').eval()
    state = torch.random.get_rng_state()
    mmseg_plugins.fuse(model)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_fused_copy_leaves_the_model_as_it_was():
    """The exporter's and benchmark's copy: fused and verified, while the
    model keeps its BatchNorms and every module's training flag."""
    from mmseg_plugins.models.fuse import fused_copy
    model = ref.randomise(AFFormer('tiny'), seed=3, scale=0.1).train()
    model.stages[0].eval()  # a mixed state, as frozen_stages leaves it
    modes = [m.training for m in model.modules()]
    copied = fused_copy(model)
    assert [m.training for m in model.modules()] == modes
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not copied.training and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in copied.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for ours, theirs in zip(copied(x), model.eval()(x)):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mlp', ['mpvit', 'afformer', 'mit'])
def test_fused_mlp_writes_gelu_over_its_input_and_keeps_gradients(mlp):
    """After fuse the MLP's GELU overwrites its input (the hidden tensor is
    allocated once at inference); with autograd on the fused module the
    output and every gradient still equal the reference's in float64 (an
    in-place GELU whose input were recomputed from the overwritten tensor
    would differ)."""
    from mmseg_plugins.models.afformer import DWConvResidualMlp
    from mmseg_plugins.models.fuse import InplaceGELU
    from mmseg_plugins.models.mpvit import Mlp
    from mmseg_plugins.models.segformer import MixFFN
    cls = dict(mpvit=Mlp, afformer=DWConvResidualMlp, mit=MixFFN)[mlp]
    torch.manual_seed(0)
    module = cls(8, 16).double().eval()
    reference = copy.deepcopy(module)
    module.fuse()
    assert isinstance(module.act, InplaceGELU)
    seen = []
    module.act.register_forward_hook(
        lambda m, args, out: seen.append(args[0] is out))
    x0 = torch.randn(2, 12, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module(x0, (3, 4)), reference(x0, (3, 4)))
    assert seen == [True]  # written over its input
    outs, grads = [], []
    for m in (module, reference):
        x = x0.clone().requires_grad_()
        out = m(x, (3, 4))
        out.pow(2).sum().backward()
        outs.append(out)
        grads.append([x.grad] + [p.grad for p in m.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_mix_ffn_keeps_another_activation():
    """mmseg's ``act_cfg`` may name another activation: fuse leaves it."""
    from mmseg_plugins.models.segformer import MixFFN
    module = MixFFN(8, 16, act_cfg=dict(type='ReLU'))
    module.fuse()
    assert type(module.act) is torch.nn.ReLU
