"""Tests of mmseg_plugins/models/blocks.py: the float16 path and the
export form of the factorised attention."""
import pytest
import torch

from mmseg_plugins.models import blocks
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


def test_factorized_attention_export_form_equals_eager_loop(monkeypatch):
    """While exporting, the per-sample in-place loop becomes one batched,
    out-of-place product with the same values (batch 3: a loop traced at
    another batch size would not fit)."""
    torch.manual_seed(0)
    attn = FactorizedAttention(32, num_heads=8).eval()
    crpe = ConvRelPosEnc(4, 8).eval()
    x = torch.randn(3, 5 * 7, 32)
    with torch.no_grad():
        eager = attn(x, (5, 7), crpe)
        monkeypatch.setattr(blocks, 'exporting', lambda: True)
        exported_form = attn(x, (5, 7), crpe)
    torch.testing.assert_close(exported_form, eager, rtol=1e-5, atol=1e-6)
    # the sample loop would leave samples untouched if it stopped early:
    # every sample differs from its crpe term alone
    with torch.no_grad():
        q = torch.nn.functional.linear(x, attn.qkv.weight[:32],
                                       attn.qkv.bias[:32])
        v = torch.nn.functional.linear(x, attn.qkv.weight[64:],
                                       attn.qkv.bias[64:])
        crpe_only = attn.proj(crpe(q, v, (5, 7)))
    for i in range(3):
        assert not torch.allclose(exported_form[i], crpe_only[i])


def test_factorized_product_has_no_in_place_update(monkeypatch):
    """The export form creates its output instead of updating the crpe
    output through views (which the TorchScript exporter drops)."""
    attn = FactorizedAttention(16, num_heads=8).eval()
    q, k, v = (torch.randn(2, 6, 16) for _ in range(3))
    versions = [t._version for t in (q, k, v)]
    out = attn.factorized_product(q, k.softmax(1), v)
    assert out.shape == (2, 6, 16)
    assert [t._version for t in (q, k, v)] == versions
    # per head: scale * q_h (k_h^T v_h)
    kh, vh, qh = (t.view(2, 6, 8, 2) for t in (k.softmax(1), v, q))
    expected = torch.einsum('bnhc,bnhd,bmhc->bmhd', kh, vh, qh)
    torch.testing.assert_close(out, attn.scale * expected.reshape(2, 6, 16))


@pytest.mark.parametrize('training', [False, True])
def test_eager_paths_do_not_take_the_export_form(monkeypatch, training):
    attn = FactorizedAttention(16, num_heads=8).train(training)
    called = []
    monkeypatch.setattr(FactorizedAttention, 'factorized_product',
                        lambda self, *a: called.append(1))
    with torch.set_grad_enabled(training):
        attn(torch.randn(2, 6, 16), (2, 3), ConvRelPosEnc(2, 8))
    assert not called
