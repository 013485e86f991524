"""The decode heads of the SegFormer and AFFormer families, on mmseg's
``BaseDecodeHead`` (this module imports mmseg; the backbones of
:mod:`mmseg_plugins.models` do not). MPViT uses mmseg's own ``UPerHead``.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InvalidInputError
from ..registry import MODELS
from .fuse import Fusable, batch_norm_affine
from .pretrained import StrictPretrainedInit
from .validation import check_in_channels

__all__ = ['SegformerHead', 'AFFormerHead']


@MODELS.register_module()
class SegformerHead(StrictPretrainedInit, Fusable, BaseDecodeHead):
    """The all-MLP SegFormer decoder of the paper and the NVlabs release.

    Each scale is projected by a Linear layer ``L_i`` (with bias ``b_i``, no
    norm), resized to the 1/4 map, concatenated in c4, c3, c2, c1 order and
    fused by a 1x1 Conv-BN-ReLU; then dropout and the classifier
    ``conv_seg``. (mmseg's ``SegformerHead`` differs: a 1x1 Conv-BN-ReLU per
    scale and c1..c4 order; checkpoints with that head convert to mmseg's
    class.)

    :meth:`fuse` (eval mode, through :func:`~.fuse.fuse`) computes the same
    logits folded: a linear map over channels commutes with a resize
    (bilinear resizing mixes pixels with weights that sum to one, per
    channel), so the fusion convolution ``F = [F_4 F_3 F_2 F_1]`` applied to
    the concatenation equals ``sum_i resize(F_i L_i x_i + F_i b_i)``: each
    product ``M_i = F_i L_i`` (E x C_i, the BatchNorm's affine map folded
    in) runs as a 1x1 convolution at its scale's own resolution, and the
    E x 4E fusion over the 1/4 map disappears.

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
        self.fused_scales: Optional[nn.ModuleList] = None  # set by fuse()

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        inputs = self._transform_inputs(inputs)
        check_in_channels('SegformerHead', self.in_channels, inputs)
        if self.fused_scales is not None:
            return self.cls_seg(self.fused_forward(inputs))
        size = inputs[0].shape[2:]
        outs = []
        for x, linear in zip(inputs, self.linear_c):  # c1 .. c4
            b, _, h, w = x.shape
            y = linear(x.flatten(2).transpose(1, 2))  # (B, h_i w_i, E)
            y = y.transpose(1, 2).reshape(b, -1, h, w)  # (B, E, h_i, w_i)
            if y.shape[2:] != size:
                y = resize(y, size=size, mode=self.interpolate_mode,
                           align_corners=self.align_corners)
            outs.append(y)
        out = self.fusion_conv(torch.cat(outs[::-1], dim=1))  # c4 .. c1
        return self.cls_seg(out)  # (B, num_classes, H/4, W/4)

    def fused_forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fused decoder up to the classifier (see :meth:`fuse`)."""
        size = inputs[0].shape[2:]
        out = None
        for x, conv in zip(inputs, self.fused_scales):
            y = conv(x)  # (B, E, h_i, w_i)
            if y.shape[2:] != size:
                y = resize(y, size=size, mode=self.interpolate_mode,
                           align_corners=self.align_corners)
            out = y if out is None else out + y
        return self.fused_activation(out)  # (B, E, H/4, W/4)

    def fuse(self) -> None:
        """Replace ``linear_c`` and ``fusion_conv`` by one 1x1 convolution
        per scale, ``M_i = F_i L_i`` with the fusion BatchNorm folded in
        (its running statistics: eval mode), the biases summed into the
        first scale's."""
        e, n = self.channels, len(self.in_channels)
        fusion = self.fusion_conv
        conv = fusion.conv
        norm = fusion.norm if fusion.with_norm else nn.Identity()
        with torch.no_grad():
            weight = conv.weight.reshape(e, n * e)  # (E, n E): c4 .. c1
            bias = conv.bias.clone() if conv.bias is not None else \
                weight.new_zeros(e)
            for i, linear in enumerate(self.linear_c):
                bias += weight[:, (n - 1 - i) * e:(n - i) * e] @ linear.bias
            scale = weight.new_ones(e)
            if isinstance(norm, _BatchNorm):  # folded: y = scale z + shift
                scale, shift = batch_norm_affine(norm)
                bias = bias * scale + shift
                norm = nn.Identity()
            convs = nn.ModuleList()
            for i, linear in enumerate(self.linear_c):
                part = weight[:, (n - 1 - i) * e:(n - i) * e]  # scale i
                scale_conv = nn.utils.skip_init(
                    nn.Conv2d, linear.in_features, e, 1, bias=i == 0,
                    device=weight.device, dtype=weight.dtype)
                scale_conv.weight.copy_(
                    (scale[:, None] * (part @ linear.weight))[..., None,
                                                              None])
                convs.append(scale_conv)
            convs[0].bias.copy_(bias)
        self.fused_scales = convs
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
