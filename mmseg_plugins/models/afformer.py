"""AFFormer: the adaptive-frequency-filter backbone and its head.

Dong et al., "Head-Free Lightweight Semantic Segmentation with Linear
Transformer", AAAI 2023 (arXiv 2301.04648).

Written for this project from the paper and the documented behaviour of the
official release (github dongbo811/AFFormer); no code of the official
implementation is used. Everything that
changes outputs or weights follows the official code:

* a stride-4 conv stem, then four stages; stage 0 is convolutional only,
  stages 1-3 add a linear-attention branch; outputs at H/4, H/8, H/8, H/8;
* each stage embeds its input twice in sequence with 3x3 depthwise-separable
  convs (strides (1, 1), (2, 1), (1, 2), (1, 4)); the first embedding feeds
  the convolutional branch, the second the transformer; the transformer
  output is resized to the convolutional one (bilinear, ``align_corners``
  True) and the two are summed before a 1x1 Conv-BN-Hardswish;
* attention is factorised: ``scale * q (softmax over tokens of k)^T v`` plus
  the adaptive frequency filter ``q * HP(v) + LP(v)``, where HP are 3/5/7
  depthwise convs over 2/3/3 heads and LP is a parameter-free pyramid of
  adaptive average pools (1, 2, 3, 6) upsampled bilinearly, then ReLU;
* one conv position encoding and one frequency filter per stage, shared by
  all its blocks. Our module tree registers them once: the official
  checkpoints' alias keys are folded by the converter.

The head (:class:`AFFormerHead`) is the official ``CLS`` head without its
never-used ``align`` block.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError
from .backbone_base import ConvStemBackbone
from .blocks import (ConvBN, ConvLocalBlock, ConvRelPosEnc, DWSeparableConvBN,
                     FactorizedAttentionEncoder)
from .fuse import Fusable, InplaceGELU
from .ops import (adaptive_avg_pools, linear_of_activation, nchw_to_nlc,
                  nlc_to_nchw)
from .validation import conflict, pick_argument

__all__ = [
    'AFFORMER_ARCHS', 'AFFORMER_OFFICIAL_DEFAULTS', 'AFFormer',
    'official_variant'
]

#: Every AFFormer variant, declared once. ``embed_dims[i]`` is the width
#: inside stage ``i``; stage ``i`` outputs ``embed_dims[i + 1]`` channels
#: (the last stage keeps ``embed_dims[3]``). ``depths[0]`` is unused: stage 0
#: has no transformer (kept as in the official table, it still takes a slot
#: of the stochastic-depth schedule).
AFFORMER_ARCHS = {
    'tiny': dict(embed_dims=(32, 64, 160, 216), depths=(1, 2, 4, 2),
                 num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2)),
    'small': dict(embed_dims=(32, 64, 176, 216), depths=(1, 2, 4, 2),
                  num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2)),
    'base': dict(embed_dims=(32, 96, 176, 216), depths=(1, 2, 6, 2),
                 num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2)),
}

#: The official ``AFFormer`` class's constructor defaults of its per-stage
#: arguments (``num_layers``, ``embed_dims``, ``mlp_ratios``,
#: ``num_heads``), as ``arch`` keys. (Its ``num_path`` default, 4 per stage,
#: fails in the official forward; every variant uses 1.)
AFFORMER_OFFICIAL_DEFAULTS = dict(
    embed_dims=(64, 128, 256, 512), depths=(1, 1, 1, 1),
    num_heads=(8, 8, 8, 8), mlp_ratios=(8, 8, 4, 4))
#: The ``strides`` of the official configs, which the official code
#: ignores (the stages' strides are fixed: :data:`PATCH_STRIDES`).
OFFICIAL_CONFIG_STRIDES = (4, 2, 2, 2)

#: Strides of the two sequential patch embeddings of each stage.
PATCH_STRIDES = ((1, 1), (2, 1), (1, 2), (1, 4))


class DWConvResidualMlp(Fusable, nn.Module):
    """``fc2(GELU(fc1(x) + DWConv3x3(fc1(x))))`` on tokens; :meth:`fuse`
    makes the GELU write over the sum (inference).

    Args:
        dim (int): Token channels.
        hidden_dim (int): Hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1,
                                groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)  # (B, N, 2C)
        local = nchw_to_nlc(self.dwconv(nlc_to_nchw(x, hw))) + x
        # fc2(GELU(local)), the activation recomputed in backward
        return linear_of_activation(self.fc2, self.act, local)  # (B, N, C)

    def fuse(self) -> None:
        self.act = InplaceGELU(self.act.approximate)  # over ``local``


class LowPassPyramid(nn.Module):
    """Parameter-free low-pass filter: the channels are cut into
    ``len(sizes)`` equal groups, group ``i`` is average-pooled to
    ``sizes[i] x sizes[i]`` (adaptive pooling, in its shape-generic form
    while exporting: :func:`~.ops.adaptive_avg_pools`) and upsampled back
    (bilinear), then ReLU.

    Args:
        sizes (Sequence[int]): Pooled sizes. Default: (1, 2, 3, 6).
    """

    def __init__(self, sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, size = x.shape[1], x.shape[2:]
        if c % len(self.sizes):
            raise InvalidInputError('LowPassPyramid needs channels divisible '
                                    f'by {len(self.sizes)}, got {c}')
        groups = torch.split(x, c // len(self.sizes), dim=1)
        out = [
            F.interpolate(pooled, size=size, mode='bilinear',
                          align_corners=False)
            for pooled in adaptive_avg_pools(groups, self.sizes)
        ]
        return F.relu(torch.cat(out, dim=1))


class FrequencyFilter(ConvRelPosEnc):
    """AFFormer's adaptive frequency filter: ``q * HP(v) + LP(v)``.

    HP is the multi-window depthwise convolution of
    :class:`ConvRelPosEnc`; LP is :class:`LowPassPyramid`.

    Args:
        head_dim (int): Channels per head.
        num_heads (int): Heads.
        windows (dict, optional): ``{kernel: heads}``; default
            {3: 2, 5: 3, 7: 3}.
        pool_sizes (Sequence[int]): Low-pass pyramid sizes.
    """

    def __init__(self,
                 head_dim: int,
                 num_heads: int,
                 windows: Optional[dict] = None,
                 pool_sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__(head_dim, num_heads, windows)
        self.low_pass = LowPassPyramid(pool_sizes)

    def forward(self, q: torch.Tensor, v: torch.Tensor,
                hw: Tuple[int, int]) -> torch.Tensor:
        """q, v: (B, N, C) tokens (heads side by side) -> (B, N, C)."""
        v_img = nlc_to_nchw(v, hw)  # (B, C, H, W), channels last
        high = nchw_to_nlc(self.high_pass(v_img))
        low = nchw_to_nlc(self.low_pass(v_img))
        return torch.addcmul(low, q, high)  # q * HP(v) + LP(v)


class AFFormerStage(nn.Module):
    """One AFFormer stage (see the module docstring).

    Args:
        dim (int): Width inside the stage.
        out_dim (int): Output width (after ``aggregate``).
        depth (int): Transformer blocks (ignored without a transformer).
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP, relative to ``dim``.
        strides (tuple[int, int]): Strides of the two patch embeddings.
        drop_paths (Sequence[float]): Stochastic depth per block.
        with_transformer (bool): False for the convolution-only stage 0.
    """

    def __init__(self, dim: int, out_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, strides: Tuple[int, int],
                 drop_paths: Sequence[float], with_transformer: bool) -> None:
        super().__init__()
        self.out_channels = out_dim
        self.patch_embeds = nn.ModuleList(
            DWSeparableConvBN(dim, dim, 3, s) for s in strides)
        self.local = ConvLocalBlock(dim, dim // 2)
        self.encoder = None
        if with_transformer:
            if dim % num_heads:
                raise InvalidInputError(f'AFFormer width {dim} is not '
                                        f'divisible by num_heads {num_heads}')
            hidden = int(dim * mlp_ratio)
            self.encoder = FactorizedAttentionEncoder(
                dim, num_heads, FrequencyFilter(dim // num_heads, num_heads),
                [DWConvResidualMlp(dim, hidden) for _ in range(depth)],
                drop_paths)
        self.aggregate = ConvBN(dim, out_dim, act=nn.Hardswish)
        # decided by the stride, not by comparing shapes: a comparison of
        # input-dependent sizes is a guard that exporters cannot prove
        self.resize_global = strides[1] > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.patch_embeds[0](x)  # (B, C, H_s, W_s)
        x1 = self.patch_embeds[1](x0)
        if self.encoder is None:
            return self.aggregate(self.local(x0 + x1))
        local = self.local(x0)
        glob = self.encoder(x1)  # (B, C, H_s / s1, W_s / s1)
        if self.resize_global:
            glob = F.interpolate(glob, size=local.shape[2:], mode='bilinear',
                                 align_corners=True)
        return self.aggregate(local + glob)


class AFFormer(ConvStemBackbone):
    """AFFormer backbone (variants ``tiny``, ``small``, ``base``).

    Returns the four stage outputs at strides 4/8/8/8 with
    ``embed_dims[1:] + embed_dims[-1:]`` channels.

    Also takes the official ``AFFormer`` class's arguments (``num_stages``,
    ``num_path``, ``num_layers``, ``embed_dims``, ``mlp_ratios``,
    ``num_heads``, ``in_chans``, ``strides``, ``img_size``,
    ``num_classes``); the official configs' ``type='afformer_tiny'``
    (``_small``, ``_base``) with ``strides=[4, 2, 2, 2]`` become
    ``type='mmseg_plugins.afformer_tiny'`` (registered builders of this
    class with that ``arch``). Without ``arch``, the per-stage arguments
    define the network, completed by the official class's defaults
    (:data:`AFFORMER_OFFICIAL_DEFAULTS`); with ``arch`` they must agree
    with it (else :class:`~mmseg_plugins.errors.ConflictingArgumentsError`).

    Args:
        arch (str | dict, optional): Variant name (see
            :data:`AFFORMER_ARCHS`) or a dict with ``embed_dims``,
            ``depths``, ``num_heads`` and ``mlp_ratios`` (4 entries each).
            Default: ``'base'`` unless the official per-stage arguments are
            given.
        in_channels (int, optional): Input channels. Default: 3.
        out_indices (Sequence[int]): Stages to return. Default: (0, 1, 2, 3).
        drop_path_rate (float): Stochastic depth. Default: 0 (official).
        norm_eval (bool): Keep BatchNorm in eval mode while training.
            Default: False.
        pretrained (str, optional): Deprecated, use ``init_cfg``.
        init_cfg (dict, optional): mmengine initialisation config.
        with_cp (bool): Gradient checkpointing of each stage (see
            :class:`~.backbone_base.StagedBackbone`). Default: False.
        frozen_stages (int): The stem and the first ``frozen_stages``
            stages frozen (mmseg's meaning). Default: -1.
        num_stages (int, optional): Official: must be 4.
        num_path (Sequence[int], optional): Official: must be 1 per stage
            (the official forward fails with more).
        num_layers (Sequence[int], optional): Official: blocks per stage
            (``arch`` key ``depths``).
        embed_dims, mlp_ratios, num_heads (Sequence, optional): Official:
            as the ``arch`` keys.
        in_chans (int, optional): Official name of ``in_channels``.
        strides (Sequence[int], optional): Official, ignored by the
            official code; only its configs' value ``[4, 2, 2, 2]`` is
            accepted (the network's strides are fixed).
        img_size, num_classes (int, optional): Official, unused by the
            official code (fully convolutional, no classifier): accepted
            without effect.
    """

    family = 'AFFormer'
    arch_table = AFFORMER_ARCHS
    default_arch = 'base'
    official_defaults = AFFORMER_OFFICIAL_DEFAULTS
    #: The stage-3 transformer runs at 1/32 of the input.
    min_input_size = 32

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 in_channels: Optional[int] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 norm_eval: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 num_stages: Optional[int] = None,
                 num_path: Optional[Sequence[int]] = None,
                 num_layers: Optional[Sequence[int]] = None,
                 embed_dims: Optional[Sequence[int]] = None,
                 mlp_ratios: Optional[Sequence[float]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 in_chans: Optional[int] = None,
                 strides: Optional[Sequence[int]] = None,
                 img_size: Optional[int] = None,
                 num_classes: Optional[int] = None) -> None:
        if num_path is not None and list(num_path) != [1] * 4:
            raise InvalidInputError(
                f'AFFormer num_path={list(num_path)}: the network has one '
                f'path per stage (the official forward fails with more); '
                f'use [1, 1, 1, 1]')
        if strides is not None and tuple(strides) != OFFICIAL_CONFIG_STRIDES:
            raise InvalidInputError(
                f'AFFormer strides={list(strides)}: the official code '
                f'ignores strides (its stages run at 4, 8, 8, 8); only the '
                f'official configs\' {list(OFFICIAL_CONFIG_STRIDES)} is '
                f'accepted')
        arch = self.official_arch(
            arch, num_stages,
            num_layers=('depths', num_layers),
            embed_dims=('embed_dims', embed_dims),
            mlp_ratios=('mlp_ratios', mlp_ratios),
            num_heads=('num_heads', num_heads))
        in_channels = pick_argument(self.family, 'in_channels', in_channels,
                                    'in_chans', in_chans, 3)
        super().__init__(arch, in_channels, out_indices, drop_path_rate,
                         norm_eval, pretrained, init_cfg, with_cp,
                         frozen_stages)

    def stage_stride(self, index: int) -> int:
        return PATCH_STRIDES[index][0]  # the second embedding is resized back

    def build_stage(self, index: int, in_channels: int,
                    drop_paths: Sequence[float]) -> AFFormerStage:
        s = self.arch_settings
        out_dim = self.stage_width(index)
        return AFFormerStage(in_channels, out_dim, s['depths'][index],
                             s['num_heads'][index], s['mlp_ratios'][index],
                             PATCH_STRIDES[index], drop_paths,
                             with_transformer=index > 0)


def official_variant(variant: str):
    """The builder registered as ``afformer_<variant>``, the official
    configs' backbone type: :class:`AFFormer` with ``arch=variant`` (an
    ``arch`` argument must agree), taking the official variant classes'
    arguments (``strides``, ``drop_path_rate``, ``in_chans``, ...)."""

    def build(**kwargs) -> AFFormer:
        arch = kwargs.pop('arch', variant)
        if arch != variant:
            raise conflict('AFFormer', 'arch', arch, 'type',
                           f'afformer_{variant}')
        return AFFormer(arch=variant, **kwargs)

    build.__name__ = build.__qualname__ = f'afformer_{variant}'
    build.__doc__ = (f'AFFormer-{variant}: ``AFFormer(arch={variant!r}, '
                     f'**kwargs)`` (the official configs\' type name).')
    return build
