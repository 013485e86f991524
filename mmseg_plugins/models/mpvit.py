"""MPViT: the multi-path vision transformer backbone.

Lee et al., "MPViT: Multi-Path Vision Transformer for Dense Prediction",
CVPR 2022 (arXiv 2112.11010).

Written for this project from the paper and the documented behaviour of the
official release (github youngwanLEE/MPViT); no code of the official
implementation is used. Everything that
changes outputs or weights follows the official segmentation backbone:

* a stride-4 stem of two 3x3 Conv-BN-Hardswish (C0/2 then C0 channels);
* four stages; each embeds its input ``num_paths`` times with *chained*
  3x3 depthwise-separable Conv-BN-Hardswish (path p consumes path p-1, so
  the receptive fields are 3, 5, 7; only the first embedding of stages 1-3
  has stride 2);
* path p runs a factorised-attention encoder: one conv position encoding
  and one convolutional relative position encoding (3/5/7 windows on 2/3/3
  of the 8 heads) shared by all blocks of the path, pre-norm blocks with a
  plain GELU MLP; the first embedding also feeds a residual conv branch;
* ``[local, path 0, path 1, ...]`` are concatenated and fused by a 1x1
  Conv-BN-Hardswish into the *next* stage's width, so the outputs have
  ``embed_dims[1:] + embed_dims[-1:]`` channels at strides 4/8/16/32, with
  no extra norms.

The shared position encodings are registered once per path (the official
checkpoints repeat them under every block; the converter folds those alias
keys). There is no classifier.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..errors import InvalidInputError
from .backbone_base import ConvStemBackbone
from .blocks import (ConvBN, ConvLocalBlock, ConvRelPosEnc, DWSeparableConvBN,
                     FactorizedAttentionEncoder)
from .fuse import Fusable, InplaceGELU
from .ops import linear_of_activation
from .validation import pick_argument

__all__ = ['MPVIT_ARCHS', 'MPVIT_OFFICIAL_DEFAULTS', 'Mlp', 'MPViTStage',
           'MPViT']

#: Every MPViT variant, declared once (the official factory functions).
#: ``embed_dims[i]`` is the width inside stage ``i``; stage ``i`` outputs
#: ``embed_dims[i + 1]`` channels (the last keeps ``embed_dims[3]``).
MPVIT_ARCHS = {
    'tiny': dict(embed_dims=(64, 96, 176, 216), depths=(1, 2, 4, 1),
                 num_paths=(2, 3, 3, 3), num_heads=(8, 8, 8, 8),
                 mlp_ratios=(2, 2, 2, 2)),
    'xsmall': dict(embed_dims=(64, 128, 192, 256), depths=(1, 2, 4, 1),
                   num_paths=(2, 3, 3, 3), num_heads=(8, 8, 8, 8),
                   mlp_ratios=(4, 4, 4, 4)),
    'small': dict(embed_dims=(64, 128, 216, 288), depths=(1, 3, 6, 3),
                  num_paths=(2, 3, 3, 3), num_heads=(8, 8, 8, 8),
                  mlp_ratios=(4, 4, 4, 4)),
    'base': dict(embed_dims=(128, 224, 368, 480), depths=(1, 3, 8, 3),
                 num_paths=(2, 3, 3, 3), num_heads=(8, 8, 8, 8),
                 mlp_ratios=(4, 4, 4, 4)),
}

#: The official segmentation backbone's constructor defaults of its
#: per-stage arguments (``num_path``, ``num_layers``, ``embed_dims``,
#: ``num_heads``, ``mlp_ratios``), as ``arch`` keys.
MPVIT_OFFICIAL_DEFAULTS = dict(
    embed_dims=(64, 128, 256, 512), depths=(1, 1, 1, 1),
    num_paths=(4, 4, 4, 4), num_heads=(8, 8, 8, 8), mlp_ratios=(8, 8, 4, 4))


class Mlp(Fusable, nn.Module):
    """``fc2(GELU(fc1(x)))`` on tokens (the ``hw`` argument is unused; it
    keeps the call signature of the other feed-forward modules). Autograd
    keeps the hidden activation once (:func:`~.ops.linear_of_activation`);
    :meth:`fuse` makes the GELU write over fc1's output (inference).

    Args:
        dim (int): Token channels.
        hidden_dim (int): Hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        # fc2(act(fc1 x)), the activation recomputed in backward
        return linear_of_activation(self.fc2, self.act, self.fc1(x))

    def fuse(self) -> None:
        self.act = InplaceGELU(self.act.approximate)  # over fc1's output


class MPViTStage(nn.Module):
    """One MPViT stage: chained multi-scale patch embeddings, one
    factorised-attention encoder per path, the residual conv branch and the
    1x1 aggregation (see the module docstring).

    Args:
        dim (int): Width inside the stage (and its input channels: the
            previous stage aggregates into this width).
        out_dim (int): Output width (after ``aggregate``).
        depth (int): Blocks per path.
        num_paths (int): Parallel paths.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width relative to ``dim``.
        stride (int): Stride of the first patch embedding.
        drop_paths (Sequence[float]): Stochastic depth per block (the same
            for every path).
    """

    def __init__(self, dim: int, out_dim: int, depth: int,
                 num_paths: int, num_heads: int, mlp_ratio: float,
                 stride: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        if dim % num_heads:
            raise InvalidInputError(f'MPViT width {dim} is not divisible by '
                                    f'num_heads {num_heads}')
        self.out_channels = out_dim
        self.patch_embeds = nn.ModuleList(
            DWSeparableConvBN(dim, dim, 3, stride if p == 0 else 1)
            for p in range(num_paths))
        hidden = int(dim * mlp_ratio)
        self.encoders = nn.ModuleList(
            FactorizedAttentionEncoder(
                dim, num_heads, ConvRelPosEnc(dim // num_heads, num_heads),
                [Mlp(dim, hidden) for _ in range(depth)], drop_paths)
            for _ in range(num_paths))
        self.local = ConvLocalBlock(dim, dim)
        self.aggregate = ConvBN(dim * (num_paths + 1), out_dim,
                                act=nn.Hardswish)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for embed, encoder in zip(self.patch_embeds, self.encoders):
            x = embed(x)  # (B, C, H_s, W_s); chained: path p sees path p-1
            if not feats:
                feats.append(self.local(x))
            feats.append(encoder(x))
        return self.aggregate(torch.cat(feats, dim=1))  # (B, C_out, ...)


class MPViT(ConvStemBackbone):
    """MPViT backbone (variants ``tiny``, ``xsmall``, ``small``, ``base``).

    Returns the four stage outputs at strides 4/8/16/32 with
    ``embed_dims[1:] + embed_dims[-1:]`` channels (e.g. small:
    [128, 216, 288, 288]), like the official segmentation backbone.

    Also takes the official segmentation backbone's arguments (its
    configs' ``num_path``, ``num_layers``, ``embed_dims``, ``num_heads``,
    ``mlp_ratios``, ``norm_cfg``, ``norm_eval``, ``drop_path_rate``, and
    ``num_stages``, ``in_chans``, ``num_classes``), so its configs build
    the same network by changing the backbone ``type`` only. Without
    ``arch``, the per-stage ones define the network, completed by the
    official defaults (:data:`MPVIT_OFFICIAL_DEFAULTS`); with ``arch`` they
    must agree with it (else
    :class:`~mmseg_plugins.errors.ConflictingArgumentsError`).

    Args:
        arch (str | dict, optional): Variant name (see :data:`MPVIT_ARCHS`)
            or a dict with ``embed_dims``, ``depths``, ``num_paths``,
            ``num_heads`` and ``mlp_ratios`` (4 entries each). Default:
            ``'small'`` unless the official per-stage arguments are given.
        in_channels (int, optional): Input channels. Default: 3.
        out_indices (Sequence[int]): Stages to return. Default: (0, 1, 2, 3).
        drop_path_rate (float): Stochastic depth, linear from 0 over all
            blocks of one path. Default: 0.
        norm_eval (bool): Keep BatchNorm layers in eval mode while
            training. Default: False (the official ADE20K configs; the
            official signature's default is True).
        pretrained (str, optional): Deprecated, use ``init_cfg``.
        init_cfg (dict, optional): mmengine initialisation config.
        with_cp (bool): Gradient checkpointing of each stage (see
            :class:`~.backbone_base.StagedBackbone`). Default: False.
        frozen_stages (int): The stem and the first ``frozen_stages``
            stages frozen (mmseg's meaning). Default: -1.
        num_stages (int, optional): Official: must be 4.
        num_path (Sequence[int], optional): Official: paths per stage
            (``arch`` key ``num_paths``).
        num_layers (Sequence[int], optional): Official: blocks per path
            (``arch`` key ``depths``).
        embed_dims, mlp_ratios, num_heads (Sequence, optional): Official:
            as the ``arch`` keys.
        norm_cfg (dict, optional): Official: the BatchNorms' mmcv config,
            ``type`` 'BN' or 'SyncBN' (plus ``eps``, ``momentum``,
            ``requires_grad``). Default: None (BatchNorm2d).
        in_chans (int, optional): Official name of ``in_channels``.
        num_classes (int, optional): Official, unused (the segmentation
            backbone has no classifier): accepted without effect.
    """

    family = 'MPViT'
    arch_table = MPVIT_ARCHS
    default_arch = 'small'
    official_defaults = MPVIT_OFFICIAL_DEFAULTS
    #: The stage-3 encoders run at 1/32 of the input.
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
                 norm_cfg: Optional[dict] = None,
                 in_chans: Optional[int] = None,
                 num_classes: Optional[int] = None) -> None:
        arch = self.official_arch(
            arch, num_stages,
            num_path=('num_paths', num_path),
            num_layers=('depths', num_layers),
            embed_dims=('embed_dims', embed_dims),
            mlp_ratios=('mlp_ratios', mlp_ratios),
            num_heads=('num_heads', num_heads))
        in_channels = pick_argument(self.family, 'in_channels', in_channels,
                                    'in_chans', in_chans, 3)
        super().__init__(arch, in_channels, out_indices, drop_path_rate,
                         norm_eval, pretrained, init_cfg, with_cp,
                         frozen_stages)
        self.apply_norm_cfg(norm_cfg)

    def stage_stride(self, index: int) -> int:
        return 2 if index else 1

    def build_stage(self, index: int, in_channels: int,
                    drop_paths: Sequence[float]) -> MPViTStage:
        s = self.arch_settings
        out_dim = self.stage_width(index)
        return MPViTStage(in_channels, out_dim, s['depths'][index],
                          s['num_paths'][index], s['num_heads'][index],
                          s['mlp_ratios'][index], self.stage_stride(index),
                          drop_paths)
