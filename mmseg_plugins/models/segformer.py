"""SegFormer: the Mix Transformer (MiT) backbone and the SegFormer head.

Xie et al., "SegFormer: Simple and Efficient Design for Semantic
Segmentation with Transformers", NeurIPS 2021 (arXiv 2105.15203).

Written for this project from the paper and the documented structure of the
official NVlabs release (github NVlabs/SegFormer); no code of the official
implementation is used. Differences from mmseg's own
``MixVisionTransformer`` are deliberate and documented:

* attention uses ``F.scaled_dot_product_attention`` (fused kernels) with
  separate ``q`` and ``kv`` projections, as in the official checkpoints;
* LayerNorm epsilons follow the official code (1e-5 in the patch embedding
  and the spatial-reduction norm, 1e-6 elsewhere); mmseg uses 1e-6
  everywhere, selectable here through ``patch_norm_eps``/``sr_norm_eps`` or
  mmseg's ``norm_cfg`` (:class:`MiT` takes all of mmseg's arguments);
* every stage-end norm is named ``norm`` so mmseg's ``'norm'`` paramwise
  rule exempts it from weight decay, as the official recipe does;
* the head has the official form (per-scale Linear, fused 1x1 Conv-BN-ReLU,
  concatenation in c4..c1 order; the configs set the official decoder width,
  256 for B0/B1 and 768 for B2-B5). mmseg's own ``SegformerHead`` (a
  Conv-BN-ReLU per scale, c1..c4) is a different head; checkpoints with it
  run with ``type='SegformerHead'`` from mmseg.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..errors import InvalidInputError
from .backbone_base import StagedBackbone
from .blocks import OverlapPatchEmbed
from .fuse import Fusable, InplaceGELU
from .ops import DropPath, nlc_to_nchw
from .validation import MMSEG_MIT_DEFAULTS, mmseg_mit_arguments

__all__ = ['MIT_ARCHS', 'MMSEG_MIT_DEFAULTS', 'MiT', 'activation_layer']
PerStage = Optional[Sequence[int]]  # mmseg's per-stage arguments

_MIT_COMMON = dict(
    num_heads=(1, 2, 5, 8),
    sr_ratios=(8, 4, 2, 1),
    patch_sizes=(7, 3, 3, 3),
    strides=(4, 2, 2, 2),
    mlp_ratios=(4, 4, 4, 4))
_MIT_WIDE = (64, 128, 320, 512)

#: Every MiT variant, declared once (official code; mlp ratio 4 throughout,
#: see NVlabs/SegFormer#63 on the paper's table).
MIT_ARCHS = {
    'b0': dict(_MIT_COMMON, embed_dims=(32, 64, 160, 256),
               depths=(2, 2, 2, 2)),
    'b1': dict(_MIT_COMMON, embed_dims=_MIT_WIDE, depths=(2, 2, 2, 2)),
    'b2': dict(_MIT_COMMON, embed_dims=_MIT_WIDE, depths=(3, 4, 6, 3)),
    'b3': dict(_MIT_COMMON, embed_dims=_MIT_WIDE, depths=(3, 4, 18, 3)),
    'b4': dict(_MIT_COMMON, embed_dims=_MIT_WIDE, depths=(3, 8, 27, 3)),
    'b5': dict(_MIT_COMMON, embed_dims=_MIT_WIDE, depths=(3, 6, 40, 3)),
}


def activation_layer(act_cfg: Optional[dict]) -> nn.Module:
    """GELU, or the activation of mmseg's ``act_cfg`` (built by mmcv,
    imported only then)."""
    if act_cfg is None or act_cfg == dict(type='GELU'):
        return nn.GELU()
    from mmcv.cnn import build_activation_layer
    return build_activation_layer(act_cfg)


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention with spatial reduction of keys/values.

    Args:
        dim (int): Token channels C.
        num_heads (int): Attention heads.
        sr_ratio (int): Keys/values are computed on a map downsampled by
            this factor (strided conv + LayerNorm). 1 disables it.
        qkv_bias (bool): Bias in the q and kv projections. Default: True.
        attn_drop (float): Attention dropout. Default: 0.
        proj_drop (float): Output dropout. Default: 0.
        sr_norm_eps (float): Epsilon of the reduction LayerNorm.
        proj_bias (bool): Bias in the output projection (mmseg's
            ``qkv_bias=False`` drops it as well). Default: True.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 sr_ratio: int = 1,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 sr_norm_eps: float = 1e-5,
                 proj_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise InvalidInputError(f'embed dim {dim} is not divisible by '
                                    f'num_heads {num_heads}')
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=sr_norm_eps)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape  # (B, N, C)
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, c // h).transpose(1, 2)  # (B, h, N, d)
        if self.sr_ratio > 1:
            x = self.sr(nlc_to_nchw(x, hw)).flatten(2).transpose(1, 2)
            x = self.norm(x)  # (B, N', C)
        kv = self.kv(x).reshape(b, -1, 2, h, c // h).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # (B, h, N', d) each
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B, N, C)
        return self.proj_drop(self.proj(out))


class MixFFN(Fusable, nn.Module):
    """Linear -> 3x3 depthwise conv -> GELU -> Linear (Mix-FFN).

    :meth:`fuse` makes a GELU write over the depthwise convolution's
    output, which nothing else reads (the widest tensor of the block is
    then allocated once at inference).

    Args:
        dim (int): Token channels.
        hidden_dim (int): Expanded channels.
        drop (float): Dropout after the activation and the output.
        act_cfg (dict, optional): mmcv activation config replacing GELU
            (mmseg's ``act_cfg``). Default: None (GELU).
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(
            hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)  # (B, N, 4C)
        x = self.dwconv(nlc_to_nchw(x, hw)).flatten(2).transpose(1, 2)
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))  # (B, N, C)

    def fuse(self) -> None:
        if type(self.act) is nn.GELU:  # not another act_cfg's activation
            self.act = InplaceGELU(self.act.approximate)


class MiTBlock(nn.Module):
    """Pre-norm transformer block: attention and Mix-FFN with drop path."""

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 sr_ratio: int,
                 qkv_bias: bool = True,
                 drop: float = 0.,
                 attn_drop: float = 0.,
                 drop_path: float = 0.,
                 norm_eps: float = 1e-6,
                 sr_norm_eps: float = 1e-5,
                 with_cp: bool = False,
                 proj_bias: bool = True,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, qkv_bias,
                                           attn_drop, drop, sr_norm_eps,
                                           proj_bias)
        self.drop_path = (DropPath(drop_path)
                          if drop_path > 0 else nn.Identity())
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), drop, act_cfg)

    def _forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, hw, use_reentrant=False)
        return self._forward(x, hw)


class MiTStage(nn.Module):
    """Overlapping patch embedding, transformer blocks, then LayerNorm.

    Args:
        in_channels (int): Input channels.
        dim (int): Token channels (``out_channels``).
        patch_size (int): Patch-embedding kernel.
        stride (int): Patch-embedding stride.
        patch_norm_eps (float): Epsilon of the patch-embedding LayerNorm.
        norm_eps (float): Epsilon of the stage-end LayerNorm.
        block_cfgs (list[dict]): :class:`MiTBlock` arguments, one per block.
    """

    def __init__(self, in_channels: int, dim: int, patch_size: int,
                 stride: int, patch_norm_eps: float, norm_eps: float,
                 block_cfgs: Sequence[dict]) -> None:
        super().__init__()
        self.out_channels = dim
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, patch_size,
                                             stride, patch_norm_eps)
        self.blocks = nn.ModuleList(MiTBlock(dim, **c) for c in block_cfgs)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, hw = self.patch_embed(x)  # (B, N, C)
        for block in self.blocks:
            x = block(x, hw)
        return nlc_to_nchw(self.norm(x), hw)  # (B, C, H, W)


class MiT(StagedBackbone):
    """Mix Transformer backbone of SegFormer (variants B0-B5).

    Takes the variant as ``arch`` or as mmseg ``MixVisionTransformer``'s
    arguments, with mmseg's meaning and defaults (so mmseg's configs build
    mmseg's network by changing the backbone ``type`` only; with ``arch``
    they must agree with it): see :func:`~.validation.mmseg_mit_arguments`
    and docs/migration.md.

    Args:
        arch (str | dict, optional): ``'b0'`` ... ``'b5'`` (see
            :data:`MIT_ARCHS`) or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``sr_ratios``, ``patch_sizes``, ``strides``,
            ``mlp_ratios`` (one entry per stage). Default: ``'b0'`` unless
            mmseg's per-stage arguments are given.
        in_channels (int): Input image channels. Default: 3.
        out_indices (Sequence[int] | int): Stages whose outputs are
            returned. Default: (0, 1, 2, 3).
        qkv_bias (bool): Bias in q/kv projections. Default: True.
        drop_rate (float): Dropout in attention output and FFN. Default: 0.
        attn_drop_rate (float): Attention dropout. Default: 0.
        drop_path_rate (float, optional): Stochastic depth, linearly
            increasing over all blocks. Default: 0.1 (official), 0 in
            mmseg's form.
        norm_eps (float, optional): Epsilon of block and stage LayerNorms.
            Default: 1e-6.
        patch_norm_eps, sr_norm_eps (float, optional): Epsilons of the
            patch-embedding and key/value-reduction LayerNorms. Default:
            1e-5 (official), 1e-6 in mmseg's form.
        with_cp (bool): Gradient checkpointing of each block. Default: False.
        norm_eval (bool): See :class:`StagedBackbone` (MiT has no
            BatchNorm). Default: False.
        pretrained (str, optional): Deprecated, use ``init_cfg``.
        init_cfg (dict, optional): mmengine initialisation config.
        frozen_stages (int): See :class:`StagedBackbone`; ``0`` freezes the
            first patch embedding. Default: -1.
        embed_dims, num_stages, num_layers, num_heads, patch_sizes,
            strides, sr_ratios, mlp_ratio, act_cfg, norm_cfg: mmseg's.
    """

    family = 'MiT'
    arch_table = MIT_ARCHS
    default_arch = 'b0'
    num_stages = None  # as many as ``depths`` has entries
    #: Smallest input side: the stride-4 stage-1 map must cover the 8x8
    #: key/value reduction window.
    min_input_size = 32
    checkpoint_stages = False  # ``with_cp`` checkpoints each block

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 in_channels: int = 3,
                 out_indices: Union[Sequence[int], int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: Optional[float] = None,
                 norm_eps: Optional[float] = None,
                 patch_norm_eps: Optional[float] = None,
                 sr_norm_eps: Optional[float] = None,
                 with_cp: bool = False,
                 norm_eval: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 frozen_stages: int = -1,
                 embed_dims: Optional[int] = None,
                 num_stages: Optional[int] = None,
                 num_layers: PerStage = None, num_heads: PerStage = None,
                 patch_sizes: PerStage = None, strides: PerStage = None,
                 sr_ratios: PerStage = None,
                 mlp_ratio: Optional[float] = None,
                 act_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None) -> None:
        given = dict(embed_dims=embed_dims, num_stages=num_stages,
                     num_layers=num_layers, num_heads=num_heads,
                     patch_sizes=patch_sizes, strides=strides,
                     sr_ratios=sr_ratios, mlp_ratio=mlp_ratio)
        arch, self.mmseg_form, epsilons, self.norm_requires_grad = \
            mmseg_mit_arguments(
                arch, MIT_ARCHS, given, norm_cfg,
                dict(norm_eps=norm_eps, patch_norm_eps=patch_norm_eps,
                     sr_norm_eps=sr_norm_eps))
        if drop_path_rate is None:
            drop_path_rate = 0. if self.mmseg_form else 0.1
        self.norm_eps = epsilons['norm_eps']
        self.patch_norm_eps = epsilons['patch_norm_eps']
        self.block_options = dict(
            qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
            norm_eps=epsilons['norm_eps'], with_cp=with_cp,
            sr_norm_eps=epsilons['sr_norm_eps'], act_cfg=act_cfg,
            proj_bias=qkv_bias if self.mmseg_form else True)
        super().__init__(arch, in_channels, out_indices, drop_path_rate,
                         norm_eval, pretrained, init_cfg, with_cp,
                         frozen_stages)
        if not self.norm_requires_grad:
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.requires_grad_(False)

    def stage_stride(self, index: int) -> int:
        return self.arch_settings['strides'][index]

    def stem_modules(self) -> List[nn.Module]:
        """No stem: ``frozen_stages=0`` freezes the first patch embed."""
        return [self.stages[0].patch_embed]

    def build_stage(self, index: int, in_channels: int,
                    drop_paths: Sequence[float]) -> MiTStage:
        s = {k: v[index] for k, v in self.arch_settings.items()}
        blocks = [
            dict(num_heads=s['num_heads'], mlp_ratio=s['mlp_ratios'],
                 sr_ratio=s['sr_ratios'], drop_path=rate,
                 **self.block_options) for rate in drop_paths
        ]
        return MiTStage(in_channels, s['embed_dims'], s['patch_sizes'],
                        s['strides'], self.patch_norm_eps, self.norm_eps,
                        blocks)
