"""Tests of mmseg_plugins/models/segformer.py (MiT and SegformerHead)."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_plugins.converters.rules import convert_state_dict
from mmseg_plugins.converters.segformer import MMSEG_MIT_TO_MIT
from mmseg_plugins.models import MIT_ARCHS, MiT, SegformerHead

# mmseg's MixVisionTransformer arguments for each variant
MMSEG_ARGS = {
    'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
    'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
    'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
    'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
    'b4': dict(embed_dims=64, num_layers=[3, 8, 27, 3]),
    'b5': dict(embed_dims=64, num_layers=[3, 6, 40, 3]),
}
# encoder parameters (millions, 2 decimals) of the official structure,
# counted analytically; the paper's Table 1 prints 3.4 / 13.1 / 24.2 / 44.0 /
# 60.8 / 81.4
PAPER_ENCODER_M = dict(b0=3.32, b1=13.15, b2=24.20, b3=44.07, b4=60.84,
                       b5=81.44)


def _mmseg_mit(arch, **kwargs):
    from mmseg.models.backbones import MixVisionTransformer
    return MixVisionTransformer(num_heads=[1, 2, 5, 8], **MMSEG_ARGS[arch],
                                **kwargs)


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('arch', list(MIT_ARCHS))
def test_param_count_equals_mmseg_and_paper(arch):
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        ours = _n_params(MiT(arch))
    # mmseg's MixVisionTransformer reads its drop-path rates with .item(),
    # which needs real tensors
    assert ours == _n_params(_mmseg_mit(arch))
    assert round(ours / 1e6, 2) == pytest.approx(PAPER_ENCODER_M[arch],
                                                 abs=0.011)


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_output_shapes_at_odd_sizes(arch):
    model = MiT(arch, drop_path_rate=0.).eval()
    c = MIT_ARCHS[arch]['embed_dims']
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    # conv with padding k//2: ceil division at each stride
    sizes = [(25, 33), (13, 17), (7, 9), (4, 5)]
    assert [tuple(o.shape) for o in outs] == [(1, c[i], *sizes[i])
                                              for i in range(4)]


def test_out_indices_select_stages():
    model = MiT('b0', out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 256] == model.out_channels


def _randomise(module, seed=0):
    """Random weights everywhere, so a wrongly mapped tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize('size', [(64, 64), (97, 131)])
def test_equals_mmseg_mix_vision_transformer(size):
    """Same weights (mmseg -> ours through the converter rules) give the
    same features; mmseg uses LayerNorm eps 1e-6 everywhere."""
    ref = _mmseg_mit('b0').eval()
    _randomise(ref)
    ours = MiT('b0', patch_norm_eps=1e-6, sr_norm_eps=1e-6).eval()
    sd, report = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    assert not report.dropped
    ours.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x)):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the official epsilons (1e-5 in patch/sr norms) are a different model
    official = MiT('b0').eval()
    official.load_state_dict(sd)
    with torch.no_grad():
        assert (official(x)[0] - ref(x)[0]).abs().max() > 1e-6


def test_wrong_mapping_would_be_caught():
    """Swapping two same-shaped tensors must break the comparison."""
    ref = _mmseg_mit('b0').eval()
    _randomise(ref, seed=1)
    ours = MiT('b0', patch_norm_eps=1e-6, sr_norm_eps=1e-6).eval()
    sd, _ = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    a, b = 'stages.1.blocks.0.norm1.weight', 'stages.1.blocks.0.norm2.weight'
    sd[a], sd[b] = sd[b], sd[a]
    ours.load_state_dict(sd)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x)[1] - ref(x)[1]).abs().max() > 1e-3


def test_uses_fused_scaled_dot_product_attention(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    model = MiT('b0').eval()
    model(torch.randn(1, 3, 64, 64))
    assert len(calls) == sum(MIT_ARCHS['b0']['depths'])


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    a = MiT('b0', drop_path_rate=0.)
    b = MiT('b0', drop_path_rate=0., with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    sum(o.sum() for o in a(x)).backward()
    sum(o.sum() for o in b(x)).backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_init_weights_official_scheme():
    model = MiT('b0')
    model.init_weights()
    fc = model.stages[0].blocks[0].mlp.fc1
    assert fc.bias.abs().max() == 0
    assert 0.01 < fc.weight.std() < 0.03
    assert torch.all(model.stages[0].norm.weight == 1)


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match=r"'b9'.*b0, b1, b2, b3, b4, b5"):
        MiT('b9')


def test_bad_custom_arch():
    arch = dict(MIT_ARCHS['b0'], depths=(2, 2, 2))
    with pytest.raises(ValueError, match='depths has 3'):
        MiT(arch)
    with pytest.raises(ValueError, match='missing keys'):
        MiT(dict(embed_dims=(32, 64)))
    with pytest.raises(ValueError, match='not divisible'):
        MiT(dict(MIT_ARCHS['b0'], embed_dims=(32, 64, 161, 256)))
    with pytest.raises(ValueError, match='out_indices'):
        MiT('b0', out_indices=(4, ))


def test_too_small_input():
    with pytest.raises(ValueError, match='at least 32x32.*got 16x64'):
        MiT('b0')(torch.randn(1, 3, 16, 64))


def test_pretrained_argument():
    m = MiT('b0', pretrained='x.pth')
    assert m.init_cfg == dict(type='Pretrained', checkpoint='x.pth')
    with pytest.raises(ValueError):
        MiT('b0', pretrained='x.pth', init_cfg=dict(type='Pretrained'))
    with pytest.raises(TypeError):
        MiT('b0', pretrained=123)


# ----------------------------------------------------------------------------
# SegformerHead
# ----------------------------------------------------------------------------
IN_CH = [32, 64, 160, 256]


def _inputs(batch=2):
    torch.manual_seed(0)
    return [torch.randn(batch, c, 16 // 2**i, 20 // 2**i)
            for i, c in enumerate(IN_CH)]


def _head(**kwargs):
    cfg = dict(in_channels=IN_CH, in_index=[0, 1, 2, 3], channels=24,
               num_classes=5, norm_cfg=dict(type='BN'))
    cfg.update(kwargs)
    return SegformerHead(**cfg)


def _unfolded_head(head, xs):
    """The official head as the paper states it, with plain torch ops:
    Linear per scale, bilinear resize, concatenation c4..c1, 1x1
    convolution, BatchNorm (the module itself: batch statistics in training
    mode, running ones in eval mode), ReLU, classifier."""
    size = xs[0].shape[2:]
    projected = []
    for x, lin in zip(xs, head.linear_c):
        y = lin(x.flatten(2).transpose(1, 2))  # (B, N, E)
        y = y.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[2:])
        projected.append(F.interpolate(y, size=size, mode='bilinear',
                                       align_corners=False))
    fused = torch.cat(projected[::-1], dim=1)
    fc = head.fusion_conv
    y = F.relu(fc.bn(F.conv2d(fused, fc.conv.weight)))
    return head.conv_seg(y)


def test_official_head_matches_its_definition():
    """The head's forward and its fused form (BatchNorm folded too) both
    equal the unfolded definition in eval mode."""
    head = _head().eval()
    _randomise(head, seed=2)
    head.fusion_conv.bn.running_mean.uniform_(-1, 1)
    head.fusion_conv.bn.running_var.uniform_(0.5, 2)
    xs = _inputs()
    with torch.no_grad():
        expected = _unfolded_head(head, xs)
        torch.testing.assert_close(head(xs), expected, atol=1e-5, rtol=1e-5)
        assert head.fusion_conv.conv.bias is None
        assert all(lin.bias is not None for lin in head.linear_c)
        head.fuse()
        torch.testing.assert_close(head(xs), expected, atol=1e-5, rtol=1e-5)
    assert not hasattr(head, 'linear_c') and not hasattr(head, 'fusion_conv')


def test_head_fuse_catches_a_wrong_fold(monkeypatch):
    """The fused head must equal the reference: mmseg_plugins.fuse refuses
    a fold whose BatchNorm shift is off."""
    import mmseg_plugins.models.heads as heads
    from mmseg_plugins.errors import FuseError
    from mmseg_plugins.models.fuse import fuse
    affine = heads.batch_norm_affine
    monkeypatch.setattr(heads, 'batch_norm_affine',
                        lambda norm: (affine(norm)[0], affine(norm)[1] + .1))
    head = _head().eval()

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, x):
            return self.head(_inputs())

    with pytest.raises(FuseError, match='differs from the reference'):
        fuse(Wrapped().eval(), example=torch.zeros(1))
    assert hasattr(head, 'linear_c')  # left unchanged


def test_folded_head_computes_less(monkeypatch):
    """Every convolution of the fused head runs at its scale's own
    resolution or is the classifier: none reads the 4E-channel
    concatenation."""
    seen = []
    real = F.conv2d

    def spy(x, w, *args, **kwargs):
        seen.append((x.shape[1], x.shape[2:]))
        return real(x, w, *args, **kwargs)

    monkeypatch.setattr(F, 'conv2d', spy)
    head = _head().eval()
    head.fuse()
    with torch.no_grad():
        head(_inputs())
    assert max(c for c, _ in seen) == max(IN_CH + [24])  # no 4 x 24 input
    assert all(c != 4 * 24 for c, _ in seen)


def test_head_trains_like_the_unfolded_definition_in_float64():
    """Training mode (BatchNorm on batch statistics): logits, the gradients
    of every parameter (the fusion convolution applies its weight per
    scale, before the resize) and the updated BatchNorm statistics equal
    the unfolded head's, in float64."""
    import copy

    from helpers import (assert_relatively_close, assert_same_training_step,
                         projection_loss)
    head = _head(dropout_ratio=0.).double().train()
    _randomise(head, seed=6)
    reference = copy.deepcopy(head)
    xs = [x.double() for x in _inputs()]
    out = head(xs)
    projection_loss([out]).backward()
    expected = _unfolded_head(reference, xs)
    projection_loss([expected]).backward()
    assert_relatively_close(out, expected, 1e-10, 'logits')
    assert_same_training_step(head, reference)


def test_head_output_and_loss():
    """Logits at the 1/4 scale; the loss is cross entropy of the logits
    resized to the label map, ignoring 255 (mmseg's default
    ``avg_non_ignore=False``: averaged over all pixels)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    head = _head().eval()
    _randomise(head, seed=4)
    xs = _inputs()
    with torch.no_grad():
        out = head(xs)
    assert out.shape == (2, 5, 16, 20)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2, 1, 64, 80), generator=g)
    labels[:, :, :4] = 255
    samples = []
    for label in labels:
        s = SegDataSample(gt_sem_seg=PixelData(data=label))
        s.set_metainfo(dict(img_shape=(64, 80), pad_shape=(64, 80)))
        samples.append(s)
    with torch.no_grad():
        loss = head.loss_by_feat(out, samples)['loss_ce']
    expected = F.cross_entropy(
        F.interpolate(out, size=(64, 80), mode='bilinear',
                      align_corners=False), labels[:, 0], ignore_index=255,
        reduction='none').mean()
    torch.testing.assert_close(loss, expected)


def test_head_channel_mismatch_is_explained():
    head = _head(in_channels=[32, 64, 160, 512])
    with pytest.raises(ValueError,
                       match=r'backbone gives \[32, 64, 160, 256\]'):
        head(_inputs())


def test_head_bad_arguments():
    with pytest.raises(ValueError, match=r'same length.*in_index=\[0, 1, 2\]'):
        _head(in_index=[0, 1, 2])
    with pytest.raises(ValueError, match='one entry per scale'):
        _head(in_index=3)


def test_training_matches_mmseg_in_float64():
    """Training mode: features and every parameter gradient of our MiT equal
    mmseg's MixVisionTransformer for the same weights, in float64; mmseg's
    gradients are mapped to our names by the converter's own rules (the
    fused in_proj gradient split into q and kv)."""
    from helpers import assert_same_training_step, projection_loss
    ref = _mmseg_mit('b0', drop_path_rate=0.).double().train()
    _randomise(ref, seed=5)
    ours = MiT('b0', drop_path_rate=0., patch_norm_eps=1e-6,
               sr_norm_eps=1e-6).double().train()
    sd, _ = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    ours.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    feats = ours(x)
    projection_loss(feats).backward()
    expected = ref(x)
    projection_loss(expected).backward()
    for a, b in zip(feats, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    grads, _ = convert_state_dict(
        {n: p.grad for n, p in ref.named_parameters()}, MMSEG_MIT_TO_MIT)
    as_module = MiT('b0', drop_path_rate=0.).double()
    for name, p in as_module.named_parameters():
        p.grad = grads[name]
    assert_same_training_step(ours, as_module)


@pytest.mark.parametrize('mode', ['bilinear', 'nearest'])
def test_resize_concat_conv_equals_the_concatenation(mode):
    """ResizeConcatConv: a tensor is convolved as nn.Conv2d does; a list
    gives the convolution of the maps resized to the largest one and
    concatenated (float64: a swapped weight block or a missing bias would
    show)."""
    from mmseg_plugins.models.heads import ResizeConcatConv
    g = torch.Generator().manual_seed(0)
    conv = ResizeConcatConv(3 + 5 + 2, 4, mode=mode).double()
    plain = torch.nn.Conv2d(10, 4, 1).double()
    plain.load_state_dict(conv.state_dict())
    maps = [torch.randn(2, c, *hw, generator=g, dtype=torch.float64)
            for c, hw in ((3, (4, 5)), (5, (8, 10)), (2, (16, 20)))]
    cat = torch.cat([F.interpolate(m, size=(16, 20), mode=mode) if m.shape[
        2:] != (16, 20) else m for m in maps], dim=1)
    torch.testing.assert_close(conv(cat), plain(cat), rtol=0, atol=0)
    torch.testing.assert_close(conv(maps), plain(cat), rtol=1e-12,
                               atol=1e-12)
    with pytest.raises(AssertionError):  # the blocks belong to their maps
        torch.testing.assert_close(conv(maps[::-1]), plain(cat))
