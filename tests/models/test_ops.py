"""Tests of mmseg_plugins/models/ops.py."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmseg_plugins.models.ops import (_GeluLinear, gelu_linear, nchw_to_nlc,
                                      nlc_to_nchw)


@pytest.mark.parametrize('bias', [True, False])
def test_gelu_linear_backward_passes_gradcheck(bias):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 5, 6, dtype=torch.float64, generator=g,
                    requires_grad=True)
    w = torch.randn(3, 6, dtype=torch.float64, generator=g,
                    requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, generator=g,
                    requires_grad=True) if bias else None
    assert torch.autograd.gradcheck(_GeluLinear.apply, (h, w, b))


def test_gelu_linear_paths_compute_linear_of_gelu():
    lin = nn.Linear(6, 3).double()
    h = torch.randn(4, 6, dtype=torch.float64)
    expected = lin(F.gelu(h))
    # autograd: the GELU output is recomputed in backward, not stored
    hg = h.clone().requires_grad_()
    out = gelu_linear(hg, lin)
    assert type(out.grad_fn).__name__ == '_GeluLinearBackward'
    torch.testing.assert_close(out, expected)
    # inference: the GELU runs in place on the fresh input
    fresh = h.clone()
    with torch.no_grad():
        torch.testing.assert_close(gelu_linear(fresh, lin), expected)
    torch.testing.assert_close(fresh, F.gelu(h))


def test_token_and_map_layouts_are_views():
    x = torch.randn(2, 12, 5)  # (B, H*W, C)
    img = nlc_to_nchw(x, (3, 4))
    assert img.shape == (2, 5, 3, 4)
    assert img.data_ptr() == x.data_ptr()
    assert img.is_contiguous(memory_format=torch.channels_last)
    back = nchw_to_nlc(img)
    assert back.data_ptr() == x.data_ptr() and torch.equal(back, x)
    with pytest.raises(AssertionError, match='does not match 4x4'):
        nlc_to_nchw(x, (4, 4))
