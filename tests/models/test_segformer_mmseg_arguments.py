"""mmseg's ``MixVisionTransformer`` arguments on our MiT
(mmseg_plugins/models/segformer.py): mmseg's own SegFormer configs with only
the backbone ``type`` changed build mmseg's network, and the argument sets
of mmseg's unit tests for ``MixVisionTransformer`` behave as there."""
import glob
import os.path as osp

import mmseg
import pytest
import torch
from mmengine.config import Config

from mmseg_plugins.converters.rules import convert_state_dict
from mmseg_plugins.converters.segformer import MMSEG_MIT_TO_MIT
from mmseg_plugins.errors import (CheckpointError, ConflictingArgumentsError,
                                  InvalidInputError)
from mmseg_plugins.models import MIT_ARCHS, MiT

CONFIGS = sorted(
    glob.glob(
        osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'segformer',
                 'segformer_mit-b*.py')))
VARIANTS = sorted({osp.basename(c).split('_')[1][4:] for c in CONFIGS})


def _backbone_cfg(config):
    return Config.fromfile(config).model.backbone.to_dict()


def _build(cfg):
    from mmseg.registry import MODELS
    return MODELS.build(cfg)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def meta_linspace(monkeypatch):
    """mmseg's MixVisionTransformer reads its drop-path rates with
    ``.item()``: keep ``torch.linspace`` on the CPU while models are built
    on the meta device (shapes only, no initialisation)."""
    real = torch.linspace
    monkeypatch.setattr(torch, 'linspace',
                        lambda *a, **k: real(*a, **dict(k, device='cpu')))


def test_configs_found():
    # B0-B5 on ADE20K and Cityscapes (and B5 at 640x640)
    assert VARIANTS == list(MIT_ARCHS) and len(CONFIGS) == 13


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_with_type_changed_builds_mmsegs_network(config,
                                                        meta_linspace):
    cfg = _backbone_cfg(config)
    assert cfg['type'] == 'MixVisionTransformer'
    with torch.device('meta'):
        ref = _build(cfg)
        ours = _build(dict(cfg, type='mmseg_plugins.MiT'))
    assert type(ours) is MiT and ours.mmseg_form
    assert _n_params(ours) == _n_params(ref) > 3e6
    variant = osp.basename(config).split('_')[1][4:]
    assert ours.arch_settings == {
        k: tuple(v)
        for k, v in MIT_ARCHS[variant].items()
    }
    # mmseg's LayerNorm eps 1e-6 everywhere, its drop-path rate
    eps = {m.eps for m in ours.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {1e-6}
    assert ours.init_cfg == cfg['init_cfg']
    rates = [b.drop_path.drop_prob for s in ours.stages for b in s.blocks
             if hasattr(b.drop_path, 'drop_prob')]
    assert max(rates) == pytest.approx(cfg['drop_path_rate'])


@pytest.mark.parametrize('variant', VARIANTS)
def test_same_weights_give_mmsegs_outputs(variant, meta_linspace):
    """The ADE20K and Cityscapes configs of a variant have one backbone;
    from the same (random) weights, ours gives mmseg's features."""
    cfgs = [_backbone_cfg(c) for c in CONFIGS if f'mit-{variant}_' in c]
    assert all(c == cfgs[0] for c in cfgs) and len(cfgs) >= 2
    with torch.device('meta'):
        ref = _build(cfgs[0])
        ours = _build(dict(cfgs[0], type='mmseg_plugins.MiT'))
    ref.to_empty(device='cpu').eval()
    ours.to_empty(device='cpu').eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    sd, report = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    assert not report.dropped
    ours.load_state_dict(sd, strict=True)
    x = torch.randn(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x), strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5,
                                       atol=1e-5 * b.abs().max().item())


def test_mmseg_defaults_and_qkv_bias_meaning(meta_linspace):
    """Without ``arch``, missing per-stage arguments take mmseg's defaults
    and ``qkv_bias=False`` drops the output projection's bias too."""
    from mmseg.models.backbones import MixVisionTransformer
    for kwargs in (dict(num_layers=[1, 1, 1, 1]),
                   dict(embed_dims=16, num_layers=[1, 2], num_heads=[1, 2],
                        patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[8, 4],
                        num_stages=2, out_indices=(0, 1)),
                   dict(num_layers=[1, 1, 1, 1], qkv_bias=False,
                        mlp_ratio=2, act_cfg=dict(type='ReLU'),
                        norm_cfg=dict(type='LN', eps=1e-5))):
        with torch.device('meta'):
            ref = MixVisionTransformer(**kwargs)
            ours = MiT(**kwargs)
        assert _n_params(ours) == _n_params(ref)
    assert ours.stages[0].blocks[0].attn.proj.bias is None
    assert isinstance(ours.stages[0].blocks[0].mlp.act, torch.nn.ReLU)
    assert {m.eps for m in ours.modules()
            if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    # with ``arch`` the official meaning stays: the projection keeps its
    # bias, and the official epsilons and drop-path rate are the defaults
    with torch.device('meta'):
        official = MiT('b0', qkv_bias=False)
    assert official.stages[0].blocks[0].attn.proj.bias is not None
    assert official.stages[0].patch_embed.norm.eps == 1e-5
    assert official.stages[3].blocks[1].drop_path.drop_prob == \
        pytest.approx(0.1)


def test_arch_with_agreeing_mmseg_arguments():
    with torch.device('meta'):
        model = MiT('b2', embed_dims=64, num_layers=[3, 4, 6, 3],
                    num_heads=(1, 2, 5, 8), num_stages=4, mlp_ratio=4,
                    norm_cfg=dict(type='LN', eps=1e-6))
    assert model.arch_settings == dict(MIT_ARCHS['b2'])
    assert not model.mmseg_form
    # norm_cfg: its eps everywhere
    assert {m.eps for m in model.modules()
            if isinstance(m, torch.nn.LayerNorm)} == {1e-6}


@pytest.mark.parametrize('kwargs, names', [
    (dict(arch='b0', embed_dims=64), ('embed_dims=64', "arch='b0'")),
    (dict(arch='b1', num_layers=[3, 4, 6, 3]), ('num_layers', "arch='b1'")),
    (dict(arch='b0', num_stages=3), ('num_stages=3', "arch='b0'")),
    (dict(num_layers=[2, 2, 2, 2], num_stages=3),
     ('num_stages=3', 'num_layers')),
    (dict(num_layers=[2, 2, 2], num_heads=[1, 2, 5, 8]),
     ('num_heads', 'num_layers')),
    (dict(norm_cfg=dict(type='LN', eps=1e-6), patch_norm_eps=1e-5),
     ('patch_norm_eps=1e-05', 'norm_cfg')),
    (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained',
                                            checkpoint='b.pth')),
     ('pretrained', 'init_cfg')),
])
def test_contradictions_refused_naming_both(kwargs, names):
    with pytest.raises(ConflictingArgumentsError) as err:
        MiT(**kwargs)
    message = str(err.value)
    assert '\n' not in message
    assert all(name in message for name in names), message
    # also what mmseg raises for these (it asserts them away)
    assert isinstance(err.value, (AssertionError, ValueError))


@pytest.mark.parametrize('kwargs, words', [
    (dict(embed_dims=[32, 64, 160, 256]), 'embed_dims'),
    (dict(norm_cfg=dict(type='BN')), 'LayerNorm'),
    (dict(norm_cfg=dict(type='LN', elementwise_affine=False)),
     'elementwise_affine'),
])
def test_unsupported_values_refused(kwargs, words):
    with pytest.raises(InvalidInputError, match=words):
        MiT(**kwargs)


def test_mmseg_unit_test_argument_sets():
    """The argument sets of mmseg's test_mit.py (v1.2.2), for our class."""
    with pytest.raises(TypeError):
        MiT(pretrained=123)

    model = MiT(embed_dims=32, num_heads=[1, 2, 5, 8],
                out_indices=(0, 1, 2, 3))
    model.init_weights()
    for h, w in ((224, 224), (224, 256)):
        outs = model(torch.randn((1, 3, h, w)))
        assert [tuple(o.shape) for o in outs] == [
            (1, c, h // s, w // s)
            for c, s in zip((32, 64, 160, 256), (4, 8, 16, 32))
        ]

    path = 'PATH_THAT_DO_NOT_EXIST'
    model = MiT(pretrained=None, init_cfg=None)
    assert model.init_cfg is None
    model.init_weights()
    model = MiT(pretrained=None,
                init_cfg=dict(type='Pretrained', checkpoint=path))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    with pytest.raises(CheckpointError) as caught:
        model.init_weights()
    assert isinstance(caught.value, OSError)  # what mmseg raises
    model = MiT(pretrained=None, init_cfg=123)
    with pytest.raises(TypeError):
        model.init_weights()
    model = MiT(pretrained=path, init_cfg=None)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    with pytest.raises(CheckpointError) as caught:
        model.init_weights()
    assert isinstance(caught.value, OSError)  # what mmseg raises
    pretrained_cfg = dict(type='Pretrained', checkpoint=path)
    for pretrained, init_cfg in ((path, pretrained_cfg), (path, 123),
                                 (123, pretrained_cfg), (123, 123)):
        with pytest.raises(AssertionError):
            MiT(pretrained=pretrained, init_cfg=init_cfg)
    with pytest.raises(TypeError):
        MiT(pretrained=123, init_cfg=None)


def test_whole_mmseg_segformer_config_with_type_changed_runs():
    """The whole mmseg config (its EncoderDecoder and SegformerHead) with
    only the backbone type changed builds and runs."""
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(
        [c for c in CONFIGS if 'mit-b0_8xb2-160k_ade20k' in c][0])
    cfg.model.backbone.type = 'mmseg_plugins.MiT'
    init_default_scope('mmseg')
    model = _build(cfg.model).eval()
    assert type(model.backbone) is MiT
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 150, 16, 16)
