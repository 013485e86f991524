"""Tests of mmseg_plugins/models/blocks.py."""
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
