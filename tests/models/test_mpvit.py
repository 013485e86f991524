"""Tests of mmseg_plugins/models/mpvit.py."""
import pytest
import torch
import torch.nn.functional as F

import mpvit_reference as ref
from mmseg_plugins.converters.mpvit import MPVIT_RULES
from mmseg_plugins.converters.rules import convert_state_dict
from mmseg_plugins.models import MPVIT_ARCHS, MPViT

# the official classification models' docstrings (1000-class head included)
CLASSIFIER_PARAMS = dict(tiny=5_843_736, xsmall=10_573_448,
                         small=22_892_400, base=74_845_976)
# keys of the official ImageNet checkpoints (mpvit_{tiny,xsmall,small,base}
# .pth): the shared cpe/crpe repeated under every block, plus cls_head
OFFICIAL_KEYS = dict(tiny=873, xsmall=873, small=1263, base=1419)
OUT_CHANNELS = dict(tiny=[96, 176, 216, 216], xsmall=[128, 192, 256, 256],
                    small=[128, 216, 288, 288], base=[224, 368, 480, 480])


def _n(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('arch', list(MPVIT_ARCHS))
def test_parameter_counts_equal_official(arch):
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        backbone = MPViT(arch)
        classifier = torch.nn.Linear(backbone.out_channels[-1], 1000)
    assert _n(backbone) + _n(classifier) == CLASSIFIER_PARAMS[arch]
    # no classifier and no alias keys: every tensor is a distinct object
    sd = backbone.state_dict(keep_vars=True)
    assert len({id(v) for v in sd.values()}) == len(sd)
    assert not any('cls' in k or 'head' in k for k in sd)
    # the official layout of the same weights has the official key count
    assert len(ref.official_state_dict(backbone, 1000)) == \
        OFFICIAL_KEYS[arch]


@pytest.mark.parametrize('arch', list(MPVIT_ARCHS))
def test_shapes_at_odd_sizes(arch):
    model = MPViT(arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    sizes = [(25, 33), (13, 17), (7, 9), (4, 5)]  # ceil at every stride 2
    assert [tuple(o.shape) for o in outs] == [
        (1, c, *s) for c, s in zip(OUT_CHANNELS[arch], sizes)]
    assert model.out_channels == OUT_CHANNELS[arch]
    assert MPViT(arch, out_indices=(1, 3)).out_channels == \
        OUT_CHANNELS[arch][1::2]


@pytest.mark.parametrize('arch', list(MPVIT_ARCHS))
def test_matches_functional_official_definition(arch):
    """Our modules, fed the same (random) weights in the official layout,
    compute what the official code computes."""
    model = ref.randomise(MPViT(arch).eval(), seed=1, scale=0.1)
    official = ref.official_state_dict(model)
    s = MPVIT_ARCHS[arch]
    x = torch.randn(1, 3, 67, 93)
    with torch.no_grad():
        feats = model(x)
        expected = ref.backbone_forward(official, x, s['depths'],
                                        s['num_paths'])
    for a, b in zip(feats, expected):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('layer', [
    'stages.2.encoders.1.crpe.conv_list.2.bias',  # 7x7 window, path 1
    'stages.1.encoders.2.blocks.0.attn.qkv.bias',  # last path
    'stages.3.local.conv2.bn.bias',  # residual conv branch
])
def test_reference_catches_a_wrong_layer(layer):
    model = ref.randomise(MPViT('tiny').eval(), seed=3, scale=0.1)
    official = {k: v.clone()
                for k, v in ref.official_state_dict(model).items()}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model.get_parameter(layer).add_(0.5)
        stage = int(layer.split('.')[1])
        diff = model(x)[stage] - ref.backbone_forward(
            official, x, (1, 2, 4, 1), (2, 3, 3, 3))[stage]
    assert diff.abs().max() > 1e-3


@pytest.mark.parametrize('arch', list(MPVIT_ARCHS))
def test_converter_round_trip(arch):
    model = ref.randomise(MPViT(arch).eval(), seed=4)
    official = ref.official_state_dict(model, num_classes=1000)
    converted, report = convert_state_dict(official, MPVIT_RULES)
    fresh = MPViT(arch)
    fresh.load_state_dict(converted, strict=True)
    for (k, a), b in zip(model.state_dict().items(),
                         fresh.state_dict().values()):
        assert torch.equal(a, b), k
    reasons = list(report.dropped.values())
    assert sum('alias' in r for r in reasons) == \
        OFFICIAL_KEYS[arch] - 2 - len(model.state_dict())
    assert sum('classifier' in r for r in reasons) == 2


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError,
                       match=r"'huge'.*tiny, xsmall, small, base"):
        MPViT('huge')
    with pytest.raises(ValueError, match=r'num_paths=\[2, 3\] must have 4'):
        MPViT(dict(MPVIT_ARCHS['tiny'], num_paths=(2, 3)))
    with pytest.raises(ValueError, match='must add up to num_heads=4'):
        MPViT(dict(MPVIT_ARCHS['tiny'], num_heads=(4, 4, 4, 4)))


def test_too_small_input_is_explained():
    with pytest.raises(ValueError, match=r'at least 32x32 pixels, got 31x64'):
        MPViT('tiny')(torch.randn(1, 3, 31, 64))


def test_drop_path_norm_eval_and_training_step():
    model = MPViT('tiny', drop_path_rate=0.2, norm_eval=True)
    rates = [blk.drop_path.drop_prob for blk in
             model.stages[3].encoders[2].blocks]
    assert rates == pytest.approx([0.2])  # the last of 8 blocks
    assert model.stages[0].encoders[0].blocks[0].drop_path.__class__ is \
        torch.nn.Identity  # the first block has rate 0
    model.train()
    assert not model.stem[0].bn.training  # norm_eval keeps BN frozen
    assert model.stages[1].encoders[0].blocks[0].norm1.training
    feats = model(torch.randn(2, 3, 64, 64))
    loss = sum(F.mse_loss(f, torch.zeros_like(f)) for f in feats)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize('arch', ['tiny', 'xsmall'])
def test_training_matches_official_in_float64(arch):
    """Training mode (batch statistics, the autograd paths of the fast
    blocks): features, every parameter gradient and the updated BatchNorm
    statistics equal the official computation on the same weights, in
    float64."""
    import copy

    from helpers import (assert_relatively_close, assert_same_training_step,
                         projection_loss)
    ours = ref.randomise(MPViT(arch), seed=9, scale=0.1).double().train()
    theirs = copy.deepcopy(ours)
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    feats = ours(x)
    projection_loss(feats).backward()
    official = ref.official_state_dict(theirs, keep_vars=True)
    s = MPVIT_ARCHS[arch]
    with ref.batch_norm_training():
        expected = ref.backbone_forward(official, x, s['depths'],
                                        s['num_paths'])
    projection_loss(expected).backward()
    for i, (a, b) in enumerate(zip(feats, expected)):
        assert_relatively_close(a, b, 1e-10, f'stage {i}')
    assert_same_training_step(ours, theirs)
