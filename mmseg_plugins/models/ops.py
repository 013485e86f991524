"""Low-level tensor operations shared by the model families: token/map
layout conversions and the MLP's ``linear(GELU(h))`` with its hand-written
backward.

**Fresh tensors.** Several fast paths in this package update a tensor in
place (``x += y``, ``add_``, ``gelu_``) to save an allocation. They are only
used on a *fresh* tensor: one that the same function has just produced
(a convolution, linear or attention output) and that nothing else reads,
neither another module nor autograd (which may have saved it for backward).
Each in-place site names the operation that produced its operand; an
in-place update of a tensor that a caller still uses would silently change
the caller's values. Under autograd most of these paths fall back to
out-of-place operations, because autograd saves many of those outputs.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'nlc_to_nchw', 'nchw_to_nlc', 'gelu_linear', 'autocast_enabled',
    'autocast_dtype'
]


def nlc_to_nchw(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) map.

    The result is a channels-last *view* of the tokens (no copy when the
    tokens are dense in C), which mkldnn convolutions consume directly.
    """
    h, w = hw_shape
    b, n, c = x.shape
    assert n == h * w, f'token count {n} does not match {h}x{w}'
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


def nchw_to_nlc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens (free for channels-last
    maps)."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` that keeps only ``h`` for backward
    and recomputes ``gelu(h)`` there (one elementwise op), instead of keeping
    both ``h`` and ``gelu(h)``: the MLP's widest activation is stored once."""

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        grad_h = grad_w = grad_b = None
        flat = grad.reshape(-1, grad.shape[-1])
        grad_act = grad @ weight  # (..., hidden)
        if ctx.needs_input_grad[0]:
            grad_h = torch.ops.aten.gelu_backward(grad_act, h)
        if ctx.needs_input_grad[1]:
            # the recomputed GELU reuses grad_act's buffer (no longer needed)
            act = torch._C._nn.gelu(h, out=grad_act)
            grad_w = flat.t() @ act.reshape(-1, act.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        return grad_h, grad_w, grad_b


def gelu_linear(h: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear(GELU(h))`` for a *fresh* ``h`` (a Linear or convolution
    output that nothing else reads, see the module docstring).

    Without autograd the GELU runs in place on ``h``; with autograd
    (outside autocast) the GELU output is recomputed in backward instead of
    stored (:class:`_GeluLinear`). Same values and gradients, less memory.
    """
    if not torch.is_grad_enabled():  # h is fresh: reuse its memory
        return linear(torch.ops.aten.gelu_(h))
    if not autocast_enabled(h.device.type) and h.requires_grad:
        return _GeluLinear.apply(h, linear.weight, linear.bias)
    return linear(F.gelu(h))


def autocast_dtype(device_type: str):
    """The dtype autocast casts to on ``device_type``, None when autocast
    is off."""
    if not autocast_enabled(device_type):
        return None
    try:  # torch >= 2.4
        return torch.get_autocast_dtype(device_type)
    except AttributeError:  # pragma: no cover - torch < 2.4
        return torch.get_autocast_cpu_dtype() if device_type == 'cpu' \
            else torch.get_autocast_gpu_dtype()


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``'cpu'``, ``'cuda'``)."""
    try:  # torch >= 2.4
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # pragma: no cover - torch < 2.4
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()
