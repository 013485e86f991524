"""The decode heads of the SegFormer and AFFormer families, on mmseg's
``BaseDecodeHead`` (this module imports mmseg; the backbones of
:mod:`mmseg_plugins.models` do not). MPViT uses mmseg's own ``UPerHead``.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InvalidInputError
from ..registry import MODELS
from .fuse import Fusable, batch_norm_affine
from .pretrained import StrictPretrainedInit
from .validation import check_in_channels

__all__ = ['SegformerHead', 'AFFormerHead', 'ResizeConcatConv']


class ResizeConcatConv(nn.Conv2d):
    """A 1x1 convolution that also takes a list of maps: their
    concatenation over channels, each map resized to the largest one's
    size, convolved.

    A list is computed per map: each map is convolved with its block of
    the weight at its own resolution, then resized and summed. The values
    are the concatenation's (the 1x1 convolution is linear over channels
    and the resize is linear per channel with weights summing to one, so
    they commute), while the products over the concatenated channels at the
    largest size, and the concatenation itself, are never formed. A tensor
    is convolved as by ``nn.Conv2d``. The weight keeps the layout
    ``(out_channels, sum of the maps' channels, 1, 1)``.

    Args:
        in_channels (int): Channels of the concatenation.
        out_channels (int): Output channels.
        bias (bool): Whether there is a bias. Default: True.
        mode (str): The resize mode (linear per channel, weights summing
            to one: ``'bilinear'``, ``'nearest'``, ``'bicubic'``,
            ``'area'``). Default: ``'bilinear'``.
        align_corners (bool): As ``F.interpolate``. Default: False.
        device, dtype: As ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = True, mode: str = 'bilinear',
                 align_corners: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias,
                         device=device, dtype=dtype)
        self.mode = mode
        # (F.interpolate refuses align_corners for the other modes)
        self.align_corners = align_corners if mode in (
            'linear', 'bilinear', 'bicubic', 'trilinear') else None

    def forward(self, maps) -> torch.Tensor:
        if isinstance(maps, torch.Tensor):
            return super().forward(maps)
        size = max((m.shape[2:] for m in maps), key=lambda s: s[0] * s[1])
        weights = self.weight.split([m.shape[1] for m in maps], dim=1)
        out = None
        for m, weight in zip(maps, weights):
            # the bias once, with the first map (a resize keeps constants)
            y = F.conv2d(m, weight.contiguous(),
                         self.bias if out is None else None)
            if y.shape[2:] != size:  # (B, out, h_i, w_i) -> (B, out, H, W)
                y = resize(y, size=size, mode=self.mode,
                           align_corners=self.align_corners)
            # summed in place: the first term is a fresh convolution or
            # resize output, which neither operation keeps for its backward
            out = y if out is None else out.add_(y)
        return out  # (B, out, H, W)


@MODELS.register_module()
class SegformerHead(StrictPretrainedInit, Fusable, BaseDecodeHead):
    """The all-MLP SegFormer decoder of the paper and the NVlabs release.

    Each scale is projected by a Linear layer ``L_i`` (with bias ``b_i``, no
    norm), resized to the 1/4 map, concatenated in c4, c3, c2, c1 order and
    fused by a 1x1 Conv-BN-ReLU; then dropout and the classifier
    ``conv_seg``. The fusion convolution is a :class:`ResizeConcatConv`,
    given the projected maps at their own resolutions: it applies each
    scale's block of its weight before the resize, so the 4E-channel
    concatenation at 1/4 is never formed (the same values; every layer is
    still called as a module). (mmseg's ``SegformerHead`` differs: a 1x1
    Conv-BN-ReLU per scale and c1..c4 order; checkpoints with that head
    convert to mmseg's class.)

    :meth:`fuse` (eval mode, through :func:`~.fuse.fuse`) computes the same
    logits folded: a linear map over channels commutes with a resize
    (bilinear resizing mixes pixels with weights that sum to one, per
    channel), so the fusion convolution ``F = [F_4 F_3 F_2 F_1]`` applied to
    the concatenation equals ``sum_i resize(F_i L_i x_i + F_i b_i)``: each
    product ``M_i = F_i L_i`` (E x C_i, the BatchNorm's affine map folded
    in) runs at its scale's own resolution (one :class:`ResizeConcatConv`
    over the backbone's maps), and the E x E products of the projected
    maps disappear.

    Args:
        interpolate_mode (str): Resize mode (any mode that resizes each
            channel linearly with weights summing to one: ``'bilinear'``,
            ``'nearest'``, ``'bicubic'``, ``'area'``). Default:
            ``'bilinear'``.
        **kwargs: :class:`BaseDecodeHead` arguments (``in_channels``,
            ``in_index``, ``channels``, ``num_classes``, ``norm_cfg``, ...).
    """

    def __init__(self, interpolate_mode: str = 'bilinear', **kwargs) -> None:
        in_channels, in_index = kwargs.get('in_channels'), kwargs.get(
            'in_index', -1)
        if not isinstance(in_channels, (list, tuple)) or not isinstance(
                in_index, (list, tuple)) or len(in_channels) != len(in_index):
            raise InvalidInputError(
                f'SegformerHead needs lists in_channels and in_index of the '
                f'same length (one entry per scale), got in_channels='
                f'{in_channels} and in_index={in_index}')
        super().__init__(input_transform='multiple_select', **kwargs)
        self.interpolate_mode = interpolate_mode
        self.linear_c = nn.ModuleList(
            nn.Linear(c, self.channels) for c in self.in_channels)
        self.fusion_conv = ConvModule(
            self.channels * len(self.in_channels),
            self.channels,
            1,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        plain = self.fusion_conv.conv  # as ConvModule built it: same init
        conv = ResizeConcatConv(plain.in_channels, plain.out_channels,
                                plain.bias is not None, interpolate_mode,
                                self.align_corners)
        conv.load_state_dict(plain.state_dict())
        self.fusion_conv.conv = conv
        self.fused_conv: Optional[ResizeConcatConv] = None  # by fuse()

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        inputs = self._transform_inputs(inputs)
        check_in_channels('SegformerHead', self.in_channels, inputs)
        if self.fused_conv is not None:  # fused: c1 .. c4 maps directly
            out = self.fused_activation(self.fused_conv(inputs))
            return self.cls_seg(out)  # (B, num_classes, H/4, W/4)
        maps = []
        for x, linear in zip(inputs, self.linear_c):  # c1 .. c4
            b, _, h, w = x.shape
            y = linear(x.flatten(2).transpose(1, 2))  # (B, h_i w_i, E)
            maps.append(y.transpose(1, 2).reshape(b, -1, h, w))
        # the concatenation c4 .. c1, each resized to 1/4, convolved
        out = self.fusion_conv(maps[::-1])  # (B, E, H/4, W/4)
        return self.cls_seg(out)  # (B, num_classes, H/4, W/4)

    def fuse(self) -> None:
        """Replace ``linear_c`` and ``fusion_conv`` by one
        :class:`ResizeConcatConv` over the backbone's maps, whose weight
        block for scale i is ``M_i = F_i L_i`` with the fusion BatchNorm
        folded in (its running statistics: eval mode), and whose bias
        gathers the biases."""
        e, n = self.channels, len(self.in_channels)
        fusion = self.fusion_conv
        conv = fusion.conv
        norm = fusion.norm if fusion.with_norm else nn.Identity()
        with torch.no_grad():
            weight = conv.weight.reshape(e, n * e)  # (E, n E): c4 .. c1
            parts = [weight[:, (n - 1 - i) * e:(n - i) * e]  # F_i, c1 .. c4
                     for i in range(n)]
            bias = conv.bias.clone() if conv.bias is not None else \
                weight.new_zeros(e)
            for part, linear in zip(parts, self.linear_c):
                bias += part @ linear.bias
            scale = weight.new_ones(e)
            if isinstance(norm, _BatchNorm):  # folded: y = scale z + shift
                scale, shift = batch_norm_affine(norm)
                bias = bias * scale + shift
                norm = nn.Identity()
            fused = nn.utils.skip_init(
                ResizeConcatConv, sum(self.in_channels), e, True,
                self.interpolate_mode, self.align_corners,
                device=weight.device, dtype=weight.dtype)
            fused.weight.copy_(scale[:, None, None, None] * torch.cat(
                [part @ linear.weight
                 for part, linear in zip(parts, self.linear_c)],
                dim=1)[..., None, None])  # (E, sum C_i, 1, 1)
            fused.bias.copy_(bias)
        self.fused_conv = fused
        self.fused_activation = nn.Sequential(
            norm, fusion.activate if fusion.with_activation else nn.Identity())
        del self.linear_c, self.fusion_conv


@MODELS.register_module()
class AFFormerHead(StrictPretrainedInit, BaseDecodeHead):
    """The official AFFormer head: 1x1 ConvModule (conv, GN, ReLU) on the
    selected backbone output(s), then dropout and the classifier.

    The official class also builds an ``align`` ConvModule that forward
    never calls; it is left out (the converter drops its weights).

    Args:
        **kwargs: :class:`BaseDecodeHead` arguments; the official configs use
            ``in_channels=[216], in_index=[3], channels=256,
            norm_cfg=dict(type='GN', num_groups=32)``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(input_transform='multiple_select', **kwargs)
        self.squeeze = ConvModule(
            sum(self.in_channels),
            self.channels,
            1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        xs = self._transform_inputs(inputs)
        check_in_channels('AFFormerHead', self.in_channels, xs)
        if len(xs) > 1:  # the official configs select one map
            xs = [xs[0]] + [
                resize(x, size=xs[0].shape[2:], mode='bilinear',
                       align_corners=self.align_corners) for x in xs[1:]
            ]
        x = self.squeeze(torch.cat(xs, dim=1))  # (B, channels, H/8, W/8)
        return self.cls_seg(x)
