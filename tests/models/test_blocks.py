"""Tests of mmseg_plugins/models/blocks.py: the float16 path, the
factorised attention's formula and the fused position encoding."""
import pytest
import torch

from mmseg_plugins.models.afformer import FrequencyFilter
from mmseg_plugins.models.blocks import ConvRelPosEnc, FactorizedAttention


def _large_attention(crpe_class, seed=0):
    """An attention whose q and v reach a few hundred: inside float16's
    range, but their products are not."""
    torch.manual_seed(seed)
    attn = FactorizedAttention(64, 8).eval()
    crpe = crpe_class(8, 8).eval()
    with torch.no_grad():
        attn.qkv.weight.mul_(60)
        attn.qkv.bias.mul_(60)
        for p in crpe.parameters():
            p.mul_(30)
        attn.proj.weight.mul_(0.05)
    return attn, crpe


@pytest.mark.parametrize('crpe_class', [ConvRelPosEnc, FrequencyFilter])
def test_float16_autocast_does_not_overflow(crpe_class):
    """MPViT's and AFFormer's attention under float16 autocast stay finite
    and close to float32 where float16 products of q and v overflow."""
    attn, crpe = _large_attention(crpe_class)
    x = torch.randn(2, 16 * 12, 64)
    with torch.no_grad():
        expected = attn(x, (16, 12), crpe)
        q, _, v = attn.qkv(x).chunk(3, dim=-1)
        assert q.abs().max() < 2000 and v.abs().max() < 2000
        assert not torch.isfinite(
            q.half() * crpe.high_pass(
                v.reshape(2, 16, 12, 64).permute(0, 3, 1, 2)).permute(
                    0, 2, 3, 1).reshape(2, -1, 64).half()).all()
        assert expected.abs().max() < 60000  # the result itself fits
        with torch.autocast('cpu', dtype=torch.float16):
            out = attn(x, (16, 12), crpe)
    assert torch.isfinite(out).all()
    err = (out.float() - expected).abs().max() / expected.abs().max()
    assert err < 1e-2


@pytest.mark.parametrize('crpe_class', [ConvRelPosEnc, FrequencyFilter])
def test_bfloat16_autocast_matches_float32(crpe_class):
    attn, crpe = _large_attention(crpe_class, seed=1)
    x = torch.randn(1, 64, 64)
    with torch.no_grad():
        expected = attn(x, (8, 8), crpe)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = attn(x, (8, 8), crpe)
    assert out.dtype == torch.bfloat16
    err = (out.float() - expected).abs().max() / expected.abs().max()
    assert err < 3e-2


def test_factorized_attention_is_the_per_head_formula():
    """scale * q_h (softmax_N(k_h)^T v_h) + crpe(q, v), projected; the
    qkv projection is called as a module."""
    torch.manual_seed(0)
    attn = FactorizedAttention(16, num_heads=8).eval()
    crpe = ConvRelPosEnc(2, 8).eval()
    x = torch.randn(3, 6, 16)
    calls = []
    attn.qkv.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        out = attn(x, (2, 3), crpe)
        q, k, v = attn.qkv(x).chunk(3, dim=-1)
    assert len(calls) == 2
    kh, vh, qh = (t.reshape(3, 6, 8, 2) for t in (k.softmax(1), v, q))
    factor = torch.einsum('bnhc,bnhd,bmhc->bmhd', kh, vh, qh)
    expected = attn.proj(attn.scale * factor.reshape(3, 6, 16) +
                         crpe(q, v, (2, 3)))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('fused', [False, True])
def test_factorized_attention_trains_as_the_formula_and_frees_qkv(fused):
    """With autograd, in float64: the output and every gradient equal the
    per-head formula's; the reference forward saves nothing that shares the
    qkv output's memory for backward (q and v are kept as compact copies,
    the head-major copies are made again), the fused form does."""
    g = torch.Generator().manual_seed(0)
    attn = FactorizedAttention(16, num_heads=8).double()
    crpe = ConvRelPosEnc(2, 8).double()
    if fused:
        attn.fuse()
    qkv_storage, saved_storages = [], []
    attn.qkv.register_forward_hook(lambda m, a, out: qkv_storage.append(
        out.untyped_storage().data_ptr()))

    def record(t):
        saved_storages.append(t.untyped_storage().data_ptr())
        return t

    x0 = torch.randn(3, 6, 16, dtype=torch.float64, generator=g)
    x = x0.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(record, lambda t: t):
        out = attn(x, (2, 3), crpe)
    assert (qkv_storage[0] in saved_storages) == fused
    out.pow(2).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in attn.parameters()] + [
        p.grad.clone() for p in crpe.parameters()]
    attn.zero_grad()
    crpe.zero_grad()
    y = x0.clone().requires_grad_()
    q, k, v = attn.qkv(y).chunk(3, dim=-1)
    kh, vh, qh = (t.reshape(3, 6, 8, 2) for t in (k.softmax(1), v, q))
    factor = torch.einsum('bnhc,bnhd,bmhc->bmhd', kh, vh, qh)
    expected = attn.proj(attn.scale * factor.reshape(3, 6, 16) +
                         crpe(q, v, (2, 3)))
    expected.pow(2).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    theirs = [y.grad] + [p.grad for p in attn.parameters()] + [
        p.grad for p in crpe.parameters()]
    for a, b in zip(grads, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('crpe_class', [ConvRelPosEnc, FrequencyFilter])
def test_fused_relative_position_encoding_equals_the_windows(crpe_class):
    """fuse() merges the per-window kernels into one depthwise conv with
    the same output."""
    torch.manual_seed(0)
    crpe = crpe_class(4, 8).eval()
    q, v = torch.randn(2, 35, 32), torch.randn(2, 35, 32)
    with torch.no_grad():
        expected = crpe(q, v, (5, 7))
        crpe.fuse()
        out = crpe(q, v, (5, 7))
    assert not hasattr(crpe, 'conv_list')
    assert crpe.merged.kernel_size == (7, 7)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
