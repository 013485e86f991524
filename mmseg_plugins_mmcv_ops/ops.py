"""The ``mmcv.ops`` module that :class:`mmseg_plugins_mmcv_ops.MMCVOpsFinder`
provides when ``mmcv._ext`` is missing: pure-PyTorch versions of the two ops
mmseg imports without a ``try`` (``point_sample`` in ``mmseg.models.utils``
and ``sigmoid_focal_loss`` in ``mmseg.models.losses``); every other op
raises a ``ModuleNotFoundError`` naming full mmcv, which is what mmseg's
guarded ``try: from mmcv.ops import X`` imports catch."""
import types
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    'FALLBACK_FLAG', 'FULL_MMCV_HINT', 'point_sample', 'sigmoid_focal_loss',
    'make_fallback_module'
]

#: Attribute set on the fallback module, so it can be told from mmcv's own.
FALLBACK_FLAG = '__mmseg_plugins_fallback__'
FULL_MMCV_HINT = ('it needs the compiled ops of full mmcv (mmcv._ext), but '
                  'only mmcv-lite is installed; install full mmcv '
                  '(pip install "mmcv>=2.0.0rc4,<2.2.0" --no-build-isolation)')


def point_sample(input: torch.Tensor,
                 points: torch.Tensor,
                 align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Pure-PyTorch ``mmcv.ops.point_sample`` (``grid_sample`` on [0, 1]
    coordinates).

    Args:
        input (Tensor): Feature map, shape (N, C, H, W).
        points (Tensor): Normalised point coordinates in [0, 1], shape
            (N, P, 2) or (N, Hg, Wg, 2).
        align_corners (bool): Passed to ``grid_sample``. Default: False.

    Returns:
        Tensor: (N, C, P) or (N, C, Hg, Wg).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)  # (N, P, 1, 2)
    out = F.grid_sample(
        input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(input: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Pure-PyTorch ``mmcv.ops.sigmoid_focal_loss`` with mmcv's semantics.

    Args:
        input (Tensor): Logits, shape (N, C).
        target (Tensor): Class indices, shape (N,); index ``C`` (or any
            index outside ``[0, C)``) means background (all-negative).
        gamma (float): Focusing parameter. Default: 2.0.
        alpha (float): Positive/negative balance. Default: 0.25.
        weight (Tensor, optional): Per-class weight, shape (C,).
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        Tensor: The loss, (N, C) for ``'none'``.
    """
    num_classes = input.size(1)
    classes = torch.arange(num_classes, device=input.device)
    t = (target.view(-1, 1) == classes.view(1, -1)).to(input.dtype)  # (N, C)
    p = input.sigmoid()
    ce = F.binary_cross_entropy_with_logits(input, t, reduction='none')
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t).pow(gamma) * (alpha * t + (1 - alpha) * (1 - t))
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


class _MMCVOpsFallback(types.ModuleType):
    """Module type of the fallback ``mmcv.ops``: looking up an op that needs
    compiled code raises ``ModuleNotFoundError`` with a message naming full
    mmcv."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f'mmcv.ops.{name}: {FULL_MMCV_HINT}', name='mmcv._ext')


def make_fallback_module() -> types.ModuleType:
    """A new fallback ``mmcv.ops`` module holding :func:`point_sample` and
    :func:`sigmoid_focal_loss`."""
    # mmcv-lite's transformer bricks then warn, as expected, that they lack
    # mmcv.ops.multi_scale_deform_attn
    from . import quiet_missing_deform_attn
    quiet_missing_deform_attn()
    module = _MMCVOpsFallback(
        'mmcv.ops', 'Pure-PyTorch fallbacks installed by mmseg_plugins '
        'because mmcv._ext (full mmcv) is not available.')
    setattr(module, FALLBACK_FLAG, True)
    module.point_sample = point_sample
    module.sigmoid_focal_loss = sigmoid_focal_loss
    module.__all__ = ['point_sample', 'sigmoid_focal_loss']
    return module
