"""Building blocks shared by the model families, each implemented once:
the overlapping patch embedding (SegFormer), the convolutional blocks and
the factorised-attention encoder of AFFormer and MPViT.

Each module has one forward, the computation as the papers state it, with
its submodules called as modules (forward hooks see every layer), the same
in training, evaluation and export. Speed forms (BatchNorm folded into the
convolution before it, the merged multi-window kernel) are applied by the
explicit transform :func:`mmseg_plugins.models.fuse.fuse`.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError
from .fuse import Fusable, fold_batch_norm
from .ops import (DropPath, autocast_dtype, nchw_to_nlc, nlc_to_nchw,
                  recomputed_when_saved)

__all__ = [
    'OverlapPatchEmbed', 'ConvBN', 'DWSeparableConvBN', 'ConvLocalBlock',
    'conv_stem', 'ConvPosEnc', 'ConvRelPosEnc', 'FactorizedAttention',
    'FactorizedAttentionBlock', 'FactorizedAttentionEncoder'
]


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


# ---------------------------------------------------------------------------
# Convolutional building blocks shared by AFFormer and MPViT
# ---------------------------------------------------------------------------
class ConvBN(Fusable, nn.Module):
    """Bias-free convolution, BatchNorm, optional activation.

    :meth:`fuse` folds the BatchNorm into the convolution (eval mode).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size. Default: 1.
        stride (int): Stride. Default: 1.
        padding (int): Padding. Default: 0.
        groups (int): Groups. Default: 1.
        act (type, optional): Activation class (e.g. ``nn.Hardswish``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1,
                 act: Optional[type] = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        self.conv, self.bn = fold_batch_norm(self.conv, self.bn)


class DWSeparableConvBN(Fusable, nn.Module):
    """Depthwise conv, pointwise conv (both bias-free), BatchNorm, act.

    :meth:`fuse` folds the BatchNorm into the pointwise conv (eval mode).

    Used as the (overlapping, strided) patch embedding of AFFormer/MPViT.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (the depthwise conv has
            ``groups=out_channels``).
        kernel_size (int): Depthwise kernel. Default: 3.
        stride (int): Depthwise stride. Default: 1.
        act (type, optional): Activation class. Default: ``nn.Hardswish``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 act: Optional[type] = nn.Hardswish) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                (kernel_size - 1) // 2, groups=out_channels,
                                bias=False)
        self.pwconv = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pwconv(self.dwconv(x))))

    def fuse(self) -> None:
        self.pwconv, self.bn = fold_batch_norm(self.pwconv, self.bn)


class ConvLocalBlock(Fusable, nn.Module):
    """Residual convolutional branch: 1x1 ConvBN-Hardswish, 3x3 depthwise
    conv, BN, Hardswish, 1x1 ConvBN, plus the input.

    :meth:`fuse` folds the middle BatchNorm into the depthwise conv (the
    :class:`ConvBN` layers fold their own).

    Args:
        channels (int): Input and output channels.
        hidden_channels (int): Width inside the block.
    """

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, hidden_channels, act=nn.Hardswish)
        self.dwconv = nn.Conv2d(hidden_channels, hidden_channels, 3, 1, 1,
                                groups=hidden_channels, bias=False)
        self.norm = nn.BatchNorm2d(hidden_channels)
        self.act = nn.Hardswish()
        self.conv2 = ConvBN(hidden_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.dwconv(self.conv1(x))))
        return x + self.conv2(y)

    def fuse(self) -> None:
        self.dwconv, self.norm = fold_batch_norm(self.dwconv, self.norm)


def conv_stem(in_channels: int, dim: int) -> nn.Sequential:
    """The stride-4 stem of AFFormer and MPViT: two stride-2 3x3
    Conv-BN-Hardswish, ``dim // 2`` then ``dim`` channels."""
    return nn.Sequential(
        ConvBN(in_channels, dim // 2, 3, 2, 1, act=nn.Hardswish),
        ConvBN(dim // 2, dim, 3, 2, 1, act=nn.Hardswish))


# ---------------------------------------------------------------------------
# Factorised attention with convolutional position encodings
# ---------------------------------------------------------------------------
class ConvPosEnc(nn.Module):
    """Convolutional position encoding: ``x + depthwise_conv(x)`` on the
    token map.

    Args:
        dim (int): Channels.
        kernel_size (int): Depthwise kernel. Default: 3.
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2,
                              groups=dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        feat = nlc_to_nchw(x, hw)  # (B, C, H, W)
        return nchw_to_nlc(self.proj(feat) + feat)  # (B, N, C)


class ConvRelPosEnc(Fusable, nn.Module):
    """Convolutional relative position encoding (CoaT): ``q * DWConv(v)``,
    with one depthwise conv per window size over its share of the heads.

    :meth:`fuse` replaces the per-window convolutions by one depthwise
    convolution whose smaller kernels are zero-padded to the largest
    window (``merged``): the same sums, one pass over the data instead of a
    split, three convolutions and a concatenation.

    Args:
        head_dim (int): Channels per head (Ch).
        num_heads (int): Heads (h).
        windows (dict): ``{kernel_size: number_of_heads}``; the head counts
            must add up to ``num_heads``. Default: {3: 2, 5: 3, 7: 3}.
    """

    def __init__(self,
                 head_dim: int,
                 num_heads: int,
                 windows: Optional[Dict[int, int]] = None) -> None:
        super().__init__()
        windows = windows or {3: 2, 5: 3, 7: 3}
        if sum(windows.values()) != num_heads:
            raise InvalidInputError(f'window head splits {dict(windows)} must '
                                    f'add up to num_heads={num_heads}')
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.kernel_sizes = list(windows)
        self.splits = [n * head_dim for n in windows.values()]
        self.conv_list = nn.ModuleList(
            nn.Conv2d(c, c, k, 1, k // 2, groups=c)
            for k, c in zip(windows, self.splits))
        self.merged: Optional[nn.Conv2d] = None  # set by fuse()

    def high_pass(self, v_img: torch.Tensor) -> torch.Tensor:
        """Multi-window depthwise convolution of (B, C, H, W)."""
        if self.merged is not None:
            return self.merged(v_img)
        parts = torch.split(v_img, self.splits, dim=1)
        return torch.cat([conv(x) for conv, x in zip(self.conv_list, parts)],
                         dim=1)

    def fuse(self) -> None:
        big = max(self.kernel_sizes)
        channels = sum(self.splits)
        like = self.conv_list[0].weight
        merged = nn.utils.skip_init(  # no random initialisation to overwrite
            nn.Conv2d, channels, channels, big, 1, big // 2, groups=channels,
            device=like.device, dtype=like.dtype)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([
                F.pad(conv.weight, [(big - k) // 2] * 4)
                for conv, k in zip(self.conv_list, self.kernel_sizes)
            ]))
            merged.bias.copy_(torch.cat([c.bias for c in self.conv_list]))
        self.merged = merged
        del self.conv_list

    def forward(self, q: torch.Tensor, v: torch.Tensor,
                hw: Tuple[int, int]) -> torch.Tensor:
        """q, v: (B, N, C) tokens (heads side by side) -> (B, N, C)."""
        return q * nchw_to_nlc(self.high_pass(nlc_to_nchw(v, hw)))


class FactorizedAttention(Fusable, nn.Module):
    """Factorised (linear) attention with a convolutional relative position
    term: ``scale * q (softmax_N(k)^T v) + crpe(q, v)``, then a projection.

    Tensors stay in token layout (B, N, C) with the heads side by side; the
    per-head products are batched matrix products over (B, heads). Under
    autograd it keeps what the official code keeps, less the qkv output
    (see :meth:`attend`); :meth:`fuse` leaves out the copies that serve
    only that.

    Under float16 autocast everything after the qkv projection runs in
    float32: the products of q with v (``q * DWConv(v)``, ``q (k^T v)``)
    square the activations' magnitude, so q and v of a few hundred (well
    inside float16's range, 65504) would overflow to infinity there and in
    the projection's input. bfloat16 has float32's range and keeps the
    autocast path.

    Args:
        dim (int): Token channels.
        num_heads (int): Heads. Default: 8.
        qkv_bias (bool): Bias of the qkv projection. Default: True.
    """

    def __init__(self, dim: int, num_heads: int = 8,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise InvalidInputError(f'dim {dim} is not divisible by num_heads '
                                    f'{num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.compact_saved = True  # False after fuse()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                crpe: nn.Module) -> torch.Tensor:
        """x: (B, N, C) tokens of an ``hw`` map -> (B, N, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, N, C) each
        if autocast_dtype(x.device.type) == torch.float16:
            with torch.autocast(x.device.type, enabled=False):
                return self.attend(q.float(), k.float(), v.float(), hw, crpe)
        return self.attend(q, k, v, hw, crpe)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               hw: Tuple[int, int], crpe: nn.Module) -> torch.Tensor:
        """The attention from q, k, v (B, N, C) to the projected output.

        What autograd keeps is q, v, the normalised k, the position term's
        convolution and the projection's input, nothing more: q and v are
        compact copies (the views of the qkv output would keep all of it,
        k's third included, until backward; :meth:`fuse` drops the copies),
        the per-head products read head-major copies of q and v that are
        made again in backward instead of kept
        (:func:`~.ops.recomputed_when_saved`), k is normalised directly in
        the head-major (B, h, Ch, N) layout the product reads, and the
        products are added to the position term through a strided view.
        """
        b, n, c = q.shape
        h, ch = self.num_heads, c // self.num_heads
        if self.compact_saved:
            q, v = q.contiguous(), v.contiguous()

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, h, N, Ch) copy
            return t.reshape(b, n, h, ch).transpose(1, 2).contiguous()

        v_heads = heads(v)
        with recomputed_when_saved([(v_heads, lambda: heads(v))]):
            context = k.transpose(1, 2).reshape(b, h, ch, n).softmax(
                dim=-1) @ v_heads  # (B, h, Ch, Ch)
        del v_heads
        out = crpe(q, v, hw)  # (B, N, C)
        q_heads = heads(q)
        with recomputed_when_saved([(q_heads, lambda: heads(q))]):
            factor = q_heads @ context  # (B, h, N, Ch)
        del q_heads
        out = torch.add(out.reshape(b, n, h, ch), factor.transpose(1, 2),
                        alpha=self.scale)  # (B, N, h, Ch): out's layout
        return self.proj(out.reshape(b, n, c))  # (B, N, C)

    def fuse(self) -> None:
        self.compact_saved = False  # inference keeps nothing for backward


class FactorizedAttentionBlock(nn.Module):
    """``x = cpe(x); x += attn(norm1(x)); x += mlp(norm2(x))``.

    The position encodings ``cpe``/``crpe`` belong to the encoder and are
    passed in at call time (they are shared by all blocks of an encoder and
    must not be registered again here: no alias keys in the state dict).

    Args:
        dim (int): Token channels.
        num_heads (int): Heads.
        mlp (nn.Module): The feed-forward module, called as ``mlp(x, hw)``.
        drop_path (float): Stochastic depth. Default: 0.
        norm_eps (float): LayerNorm epsilon. Default: 1e-6.
    """

    def __init__(self, dim: int, num_heads: int, mlp: nn.Module,
                 drop_path: float = 0., norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.attn = FactorizedAttention(dim, num_heads)
        self.mlp = mlp
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int], cpe: nn.Module,
                crpe: nn.Module) -> torch.Tensor:
        x = cpe(x, hw)
        x = x + self.drop_path(self.attn(self.norm1(x), hw, crpe))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class FactorizedAttentionEncoder(nn.Module):
    """A stack of :class:`FactorizedAttentionBlock` sharing one ``cpe`` and
    one ``crpe``; NCHW in, NCHW out.

    Args:
        dim (int): Channels.
        num_heads (int): Heads.
        crpe (nn.Module): Relative position module shared by the blocks.
        mlps (Sequence[nn.Module]): One feed-forward module per block.
        drop_paths (Sequence[float]): Stochastic depth per block.
    """

    def __init__(self, dim: int, num_heads: int, crpe: nn.Module,
                 mlps: Sequence[nn.Module],
                 drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.cpe = ConvPosEnc(dim, 3)
        self.crpe = crpe
        self.blocks = nn.ModuleList(
            FactorizedAttentionBlock(dim, num_heads, mlp, dp)
            for mlp, dp in zip(mlps, drop_paths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.shape[2], x.shape[3])
        x = nchw_to_nlc(x)  # (B, N, C)
        for block in self.blocks:
            x = block(x, hw, self.cpe, self.crpe)
        return nlc_to_nchw(x, hw)  # (B, C, H, W)
