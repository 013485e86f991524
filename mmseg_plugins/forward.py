"""The inference computation of a segmentor, stated once.

Every path that runs a trained segmentor outside mmseg's ``predict``
(:class:`mmseg_plugins.inference.Segmenter`, the ONNX export and its ONNX
Runtime runner, the benchmark's FLOP count and timings, tiled inference)
computes what this module defines:

1. :func:`normalize_images`: the data preprocessor's channel swap and
   ``(x - mean) / std`` (mmseg's ``SegDataPreProcessor``, in its order);
2. :class:`SegmentorForward`: backbone, decode head, the logits resized to
   the input (bilinear, the model's ``align_corners``), optionally the
   arg-max (mmseg's ``encode_decode`` without its metadata; no auxiliary
   head);
3. :func:`slide_logits`: overlapping windows averaged, as mmseg's
   ``EncoderDecoder.slide_inference`` when a config's ``test_cfg`` says
   ``mode='slide'``.

:func:`min_input_size` says how small an input the backbone accepts.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import InvalidInputError

__all__ = [
    'DEFAULT_MIN_INPUT_SIZE', 'OUTPUTS', 'min_input_size',
    'normalize_images', 'slide_logits', 'SegmentorForward',
    'swaps_bgr_to_rgb'
]

#: Smallest input side of a backbone that declares none (this package's
#: backbones declare ``min_input_size`` on their base class: 32, their
#: total stride).
DEFAULT_MIN_INPUT_SIZE = 32
#: What :class:`SegmentorForward` returns.
OUTPUTS = ('logits', 'mask')


def min_input_size(segmentor: nn.Module) -> int:
    """The smallest input side of a segmentor's backbone (or of a
    backbone): its ``min_input_size``, else :data:`DEFAULT_MIN_INPUT_SIZE`.
    """
    backbone = getattr(segmentor, 'backbone', segmentor)
    return int(getattr(backbone, 'min_input_size', DEFAULT_MIN_INPUT_SIZE))


def normalize_images(images: torch.Tensor, mean: Optional[torch.Tensor],
                     std: Optional[torch.Tensor],
                     bgr_to_rgb: bool) -> torch.Tensor:
    """mmseg's ``SegDataPreProcessor`` normalisation, in its order: the
    channel swap, then ``(x - mean) / std``.

    Args:
        images (Tensor): (B, C, H, W) float images as OpenCV reads them
            (BGR, 0..255 for 3 channels).
        mean (Tensor, optional): The preprocessor's C means (in the order
            after the swap); None: no mean/std step.
        std (Tensor, optional): Its C standard deviations.
        bgr_to_rgb (bool): Swap the three channels to RGB first.
    """
    if bgr_to_rgb:
        images = images[:, [2, 1, 0]]
    if mean is not None:
        images = (images - mean.reshape(1, -1, 1, 1)) / std.reshape(
            1, -1, 1, 1)
    return images


def slide_windows(height: int, width: int, crop_size: Tuple[int, int],
                  stride: Tuple[int, int]):
    """The windows ``(y1, y2, x1, x2)`` of mmseg's ``slide_inference`` over
    an image of ``height`` x ``width``, row by row (a window larger than the
    image is cut to the image; the last window of a row or column ends at
    the image's border)."""
    h_crop, w_crop = crop_size
    h_stride, w_stride = stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    for h_idx in range(h_grids):
        y2 = min(h_idx * h_stride + h_crop, height)
        y1 = max(y2 - h_crop, 0)
        for w_idx in range(w_grids):
            x2 = min(w_idx * w_stride + w_crop, width)
            yield y1, y2, max(x2 - w_crop, 0), x2


def slide_logits(logits_fn: Callable[[torch.Tensor], torch.Tensor],
                 inputs: torch.Tensor, num_classes: int,
                 crop_size: Tuple[int, int], stride: Tuple[int, int]
                 ) -> torch.Tensor:
    """Logits (B, K, H, W) of ``inputs`` (B, C, H, W) from overlapping
    windows averaged, as mmseg's ``EncoderDecoder.slide_inference``.

    Args:
        logits_fn (callable): (B, C, h, w) -> (B, K, h, w) logits.
        inputs (Tensor): The preprocessed batch.
        num_classes (int): K.
        crop_size (tuple[int, int]): Window (h, w).
        stride (tuple[int, int]): Window step (h, w).
    """
    batch, _, h_img, w_img = inputs.shape
    preds = inputs.new_zeros((batch, num_classes, h_img, w_img))
    count = inputs.new_zeros((batch, 1, h_img, w_img))
    for y1, y2, x1, x2 in slide_windows(h_img, w_img, crop_size, stride):
        preds[:, :, y1:y2, x1:x2] += logits_fn(inputs[:, :, y1:y2, x1:x2])
        count[:, :, y1:y2, x1:x2] += 1
    return preds / count


def swaps_bgr_to_rgb(preprocessor) -> bool:
    """Whether a segmentor's data preprocessor swaps BGR to RGB: upstream
    mmseg's ``SegDataPreProcessor`` keeps its own ``channel_conversion``,
    OneDL's leaves it to mmengine's ``ImgDataPreprocessor`` (as
    ``_channel_conversion``); False for a preprocessor with neither."""
    for name in ('channel_conversion', '_channel_conversion'):
        if hasattr(preprocessor, name):
            return bool(getattr(preprocessor, name))
    return False


class SegmentorForward(nn.Module):
    """What a segmentor computes at test time for a batch of images: the
    optional normalisation, backbone, decode head, the logits resized to
    the input, optionally the arg-max. The ONNX export holds exactly this
    module, the benchmark counts and times it, and the inference API runs
    it.

    Args:
        segmentor (nn.Module): An mmseg ``EncoderDecoder`` (one decode
            head).
        normalize (bool): Apply the data preprocessor's channel swap and
            mean/std to the input first (the input is then raw images).
            Default: False.
        output (str): ``'logits'`` (B, K, H, W) or ``'mask'`` (B, H, W),
            the argmax over classes. Default: ``'logits'``.

    Raises:
        InvalidInputError: ``segmentor`` has several decode heads, or a
            mask is asked of a one-channel (sigmoid) head.
    """

    def __init__(self, segmentor: nn.Module, normalize: bool = False,
                 output: str = 'logits') -> None:
        super().__init__()
        head = getattr(segmentor, 'decode_head', None)
        if not isinstance(head, nn.Module) or isinstance(head,
                                                         nn.ModuleList):
            raise InvalidInputError(
                f'{type(segmentor).__name__} is not a single-head '
                'EncoderDecoder; only those export')
        if output not in OUTPUTS:
            raise InvalidInputError(f'output must be logits or mask, got '
                                    f'{output!r}')
        if output == 'mask' and head.out_channels == 1:
            raise InvalidInputError(
                '--output mask takes the argmax over classes; this head '
                'has one sigmoid output channel: export logits')
        self.segmentor = segmentor
        self.normalize, self.output = normalize, output
        pre = getattr(segmentor, 'data_preprocessor', None)
        self.bgr_to_rgb = swaps_bgr_to_rgb(pre)
        with_mean_std = bool(getattr(pre, '_enable_normalize', False))
        # (1, C, 1, 1) each, or None buffers (no mean/std step)
        self.register_buffer('mean', pre.mean.detach().clone()[None]
                             if with_mean_std else None)
        self.register_buffer('std', pre.std.detach().clone()[None]
                             if with_mean_std else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float images -> logits (B, K, H, W) or mask
        (B, H, W)."""
        x = images
        if self.normalize:
            x = normalize_images(x, self.mean, self.std, self.bgr_to_rgb)
        seg = self.segmentor
        logits = seg.decode_head(seg.extract_feat(x))  # (B, K, h, w)
        logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                               align_corners=seg.align_corners)
        return logits.argmax(dim=1) if self.output == 'mask' else logits
