"""Building blocks shared by the model families (SegFormer, AFFormer, MPViT).

Each block is implemented once here; family files compose them.
"""
import math
from typing import Dict, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model.weight_init import (constant_init, normal_init,
                                        trunc_normal_init)

__all__ = [
    'nlc_to_nchw', 'nchw_to_nlc', 'OverlapPatchEmbed', 'init_vit_weights',
    'resolve_arch', 'check_min_input_size'
]


def nlc_to_nchw(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    h, w = hw_shape
    b, n, c = x.shape
    assert n == h * w, f'token count {n} does not match {h}x{w}'
    return x.transpose(1, 2).reshape(b, c, h, w)


def nchw_to_nlc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with ``kernel // 2`` padding, then LayerNorm.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        kernel_size (int): Convolution kernel. Default: 7.
        stride (int): Convolution stride. Default: 4.
        norm_eps (float): LayerNorm epsilon. Default: 1e-5.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int = 7,
                 stride: int = 4,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)  # (B, C, H', W')
        hw = (x.shape[2], x.shape[3])
        return self.norm(nchw_to_nlc(x)), hw  # (B, H'*W', C)


def init_vit_weights(module: nn.Module) -> None:
    """The SegFormer/PVT initialisation: truncated-normal Linear (std .02),
    unit LayerNorm, fan-out normal Conv2d, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_init(m, std=.02, bias=0.)
        elif isinstance(m, nn.LayerNorm):
            constant_init(m, val=1.0, bias=0.)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            fan_out //= m.groups
            normal_init(m, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)


def resolve_arch(family: str, arch, table: Mapping[str, Dict],
                 required: Sequence[str]) -> Dict:
    """Look up a variant by name in ``table`` or validate a custom dict.

    Args:
        family (str): Model family, used in error messages.
        arch (str | dict): Variant name or a dict with every ``required``
            key.
        table (Mapping): ``{name: settings}``.
        required (Sequence[str]): Keys a custom dict must provide.

    Returns:
        dict: A copy of the settings.

    Raises:
        ValueError: unknown name or incomplete dict (the message lists the
            valid choices / missing keys).
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in table:
            raise ValueError(f'Unknown {family} arch {arch!r}; valid '
                             f'choices: {", ".join(table)}')
        return dict(table[key])
    if isinstance(arch, Mapping):
        missing = [k for k in required if k not in arch]
        if missing:
            raise ValueError(f'Custom {family} arch is missing keys '
                             f'{missing}; it needs {list(required)}')
        return dict(arch)
    raise TypeError(f'{family} arch must be a name ({", ".join(table)}) or '
                    f'a dict, got {type(arch).__name__}')


def check_min_input_size(x: torch.Tensor, min_size: int, family: str) -> None:
    """Raise a clear error for inputs smaller than ``min_size`` on a side."""
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(f'{family} needs inputs of at least {min_size}x'
                         f'{min_size} pixels, got {h}x{w}')
