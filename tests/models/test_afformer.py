"""Tests of mmseg_plugins/models/afformer.py."""
import pytest
import torch
import torch.nn.functional as F

import afformer_reference as ref
from mmseg_plugins.converters.afformer import AFFORMER_RULES
from mmseg_plugins.converters.rules import convert_state_dict
from mmseg_plugins.models import AFFORMER_ARCHS, AFFormer, AFFormerHead

# the official code's model.parameters() counts (de-duplicated shared
# modules), measured by running it
BACKBONE_PARAMS = dict(tiny=2_032_948, small=2_228_748, base=2_843_548)
# ADE20K head (150 classes) without the never-used `align` block
TOTAL_PARAMS = dict(tiny=2_127_306, small=2_323_106, base=2_937_906)
OUT_CHANNELS = dict(tiny=[64, 160, 216, 216], small=[64, 176, 216, 216],
                    base=[96, 176, 216, 216])


def _head(num_classes=150):
    return AFFormerHead(in_channels=[216], in_index=[3], channels=256,
                        num_classes=num_classes,
                        norm_cfg=dict(type='GN', num_groups=32,
                                      requires_grad=True))


def _n(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('arch', list(AFFORMER_ARCHS))
def test_parameter_counts_equal_official(arch):
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        backbone, head = AFFormer(arch), _head()
    assert _n(backbone) == BACKBONE_PARAMS[arch]
    assert _n(backbone) + _n(head) == TOTAL_PARAMS[arch]
    # no alias keys: every state-dict tensor is a distinct object
    sd = backbone.state_dict(keep_vars=True)
    assert len({id(v) for v in sd.values()}) == len(sd)


@pytest.mark.parametrize('arch', list(AFFORMER_ARCHS))
def test_shapes_at_odd_sizes(arch):
    model = AFFormer(arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    sizes = [(25, 33), (13, 17), (13, 17), (13, 17)]
    assert [tuple(o.shape) for o in outs] == [
        (1, c, *s) for c, s in zip(OUT_CHANNELS[arch], sizes)]
    assert model.out_channels == OUT_CHANNELS[arch]
    logits = _head().eval()(outs)
    assert logits.shape == (1, 150, 13, 17)


@pytest.mark.parametrize('arch', list(AFFORMER_ARCHS))
@pytest.mark.parametrize('size', [(97, 131), (64, 160)])
def test_matches_functional_official_definition(arch, size):
    """Our modules, fed the same (random) weights in the official layout,
    compute what the official code computes."""
    model = ref.randomise(AFFormer(arch).eval(), seed=1)
    head = ref.randomise(_head().eval(), seed=2)
    official = ref.official_state_dict(model)
    head_sd = head.state_dict()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        feats = model(x)
        expected = ref.backbone_forward(official, x,
                                        AFFORMER_ARCHS[arch]['depths'])
        for a, b in zip(feats, expected):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(head(feats),
                                   ref.head_forward(head_sd, expected),
                                   atol=1e-4, rtol=1e-4)


def test_reference_catches_a_wrong_layer():
    model = ref.randomise(AFFormer('tiny').eval(), seed=3)
    official = ref.official_state_dict(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model.stages[2].encoder.crpe.conv_list[2].bias.add_(0.05)
        diff = (model(x)[2]
                - ref.backbone_forward(official, x, (1, 2, 4, 2))[2])
    assert diff.abs().max() > 1e-3


@pytest.mark.parametrize('arch', list(AFFORMER_ARCHS))
def test_converter_round_trip(arch):
    model = ref.randomise(AFFormer(arch).eval(), seed=4)
    head = ref.randomise(_head().eval(), seed=5)
    official = ref.official_state_dict(model, head)
    converted, report = convert_state_dict(official, AFFORMER_RULES)
    fresh_b, fresh_h = AFFormer(arch).eval(), _head().eval()
    fresh_b.load_state_dict({k[9:]: v for k, v in converted.items()
                             if k.startswith('backbone.')}, strict=True)
    fresh_h.load_state_dict({k[12:]: v for k, v in converted.items()
                             if k.startswith('decode_head.')}, strict=True)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(fresh_h(fresh_b(x)), head(model(x)))
    reasons = set(report.dropped.values())
    assert any('align' in r for r in reasons)
    assert any('alias' in r for r in reasons)


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match=r"'huge'.*tiny, small, base"):
        AFFormer('huge')
    with pytest.raises(ValueError, match=r'depths=\[1, 2, 4\] must have 4'):
        AFFormer(dict(AFFORMER_ARCHS['tiny'], depths=(1, 2, 4)))


def test_too_small_input_is_explained():
    with pytest.raises(ValueError, match=r'at least 32x32 pixels, got 31x64'):
        AFFormer('tiny')(torch.randn(1, 3, 31, 64))


def test_head_channel_mismatch_is_explained():
    head = AFFormerHead(in_channels=[128], in_index=[3], channels=64,
                        num_classes=3, norm_cfg=dict(type='GN', num_groups=32))
    feats = AFFormer('tiny').eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'backbone gives \[216\]'):
        head(feats)


def test_low_pass_pyramid_is_parameter_free_and_smooth():
    from mmseg_plugins.models.afformer import LowPassPyramid
    lp = LowPassPyramid()
    assert not list(lp.parameters())
    x = torch.randn(1, 8, 12, 12)
    out = lp(x)
    # group 0 (pool size 1) is the ReLU of the per-channel mean everywhere
    torch.testing.assert_close(
        out[:, :2], F.relu(x[:, :2].mean((2, 3), keepdim=True)).expand(
            -1, -1, 12, 12))


def test_drop_path_and_training_step():
    model = AFFormer('tiny', drop_path_rate=0.1)
    head = _head(5)
    model.train(), head.train()
    logits = head(model(torch.randn(2, 3, 64, 64)))
    loss = F.cross_entropy(logits, torch.randint(0, 5, (2, 8, 8)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def _compare_training_with_official(arch):
    """Training mode (BatchNorm on batch statistics, the autograd paths of
    the fast blocks): features, logits, every parameter gradient and the
    updated BatchNorm statistics equal the official computation on the
    same weights, in float64 so that rounding cannot hide a wrong
    gradient."""
    import copy

    from helpers import (assert_relatively_close, assert_same_training_step,
                         projection_loss)
    ours_b = ref.randomise(AFFormer(arch), seed=7, scale=0.1).double()
    ours_h = ref.randomise(AFFormerHead(
        in_channels=[216], in_index=[3], channels=64, num_classes=5,
        dropout_ratio=0., norm_cfg=dict(type='GN', num_groups=32)),
        seed=8).double()
    theirs_b, theirs_h = copy.deepcopy(ours_b), copy.deepcopy(ours_h)
    for m in (ours_b, ours_h, theirs_b, theirs_h):
        m.train()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)

    feats = ours_b(x)
    outs = feats + [ours_h(feats)]
    projection_loss(outs).backward()

    official = ref.official_state_dict(theirs_b, keep_vars=True)
    head_sd = theirs_h.state_dict(keep_vars=True)
    with ref.batch_norm_training():
        expected = ref.backbone_forward(official, x,
                                        AFFORMER_ARCHS[arch]['depths'])
    expected = expected + [ref.head_forward(head_sd, expected)]
    projection_loss(expected).backward()

    for i, (a, b) in enumerate(zip(outs, expected)):
        assert_relatively_close(a, b, 1e-10, f'output {i}')
    assert_same_training_step(ours_b, theirs_b)
    assert_same_training_step(ours_h, theirs_h)
    assert all(torch.equal(b, torch.tensor(1)) for n, b in
               ours_b.named_buffers() if n.endswith('num_batches_tracked'))


@pytest.mark.parametrize('arch', ['tiny', 'base'])
def test_training_matches_official_in_float64(arch):
    _compare_training_with_official(arch)


def test_training_comparison_catches_a_slightly_wrong_gradient(monkeypatch):
    """A relative error of 1e-6 in the gradient through the MLP's GELU
    fails the float64 comparison."""

    class OffByALittle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h):
            ctx.save_for_backward(h)
            return F.gelu(h)

        @staticmethod
        def backward(ctx, grad):
            h, = ctx.saved_tensors
            return torch.ops.aten.gelu_backward(grad, h) * (1 + 1e-6)

    monkeypatch.setattr(torch.nn.GELU, 'forward',
                        lambda self, h: OffByALittle.apply(h))
    with pytest.raises(AssertionError, match=r'\.grad: max abs difference'):
        _compare_training_with_official('tiny')
