"""The inference transform: :func:`fuse`.

Every module of :mod:`mmseg_plugins.models` has one forward, the reference
computation, the same in training, evaluation and export. What makes
inference faster without changing its values lives here, applied on
request (the idiom of timm's ``reparameterize_model`` and mmcv's
``fuse_conv_bn``):

* every BatchNorm of a Conv-BN pair is folded into the convolution (our
  blocks, and mmcv ``ConvModule`` layers of mmseg's heads whose norm
  follows the convolution);
* each module of the package with a speed form (a :class:`Fusable`)
  replaces its reference computation by it: the merged multi-window
  kernel of the relative position encodings, the SegFormer head's
  projections folded into the fusion convolution, and the GELU of the
  AFFormer and MPViT MLPs and of MiT's Mix-FFN written over its input
  (:class:`InplaceGELU`: their widest tensor is then allocated once
  instead of twice).

:func:`fuse` verifies the fused model against the reference forward on a
probe input before it returns, and refuses (:class:`FuseError`) a model
in training mode or a result that differs.

The tools apply it wherever a model only runs inference: ``Segmenter``,
``tools/inference.py``, the benchmark, the ONNX exporter and test-time
evaluation.
"""
import copy
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import FuseError

__all__ = ['Fusable', 'InplaceGELU', 'batch_norm_affine', 'fold_batch_norm',
           'fuse', 'fused_copy', 'fuse_modules', 'probe_input']


class Fusable:
    """Mixin of a module with a speed form: :meth:`fuse` replaces its
    reference computation in place by an equal, faster one for inference
    (eval mode). Called by :func:`fuse`, children first."""

    def fuse(self) -> None:
        raise NotImplementedError(f'{type(self).__name__} must implement fuse')


class InplaceGELU(nn.GELU):
    """``nn.GELU`` that writes its result over its input
    (``torch.ops.aten.gelu_``): the speed form of an activation whose input
    nothing else reads, such as the output of an MLP's first layer. The
    same values; under autograd PyTorch keeps the input the gradient needs,
    so the gradients are GELU's too. ``inplace`` is True, as on
    ``nn.ReLU(inplace=True)``.

    Args:
        approximate (str): ``'none'`` or ``'tanh'``, as ``nn.GELU``.
    """

    inplace = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_(x, approximate=self.approximate)


def batch_norm_affine(
        norm: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as ``y = scale * x + shift`` per channel:
    returns (scale, shift), each (C, ).

    Raises:
        FuseError: the BatchNorm is in training mode or keeps no running
            statistics (its output then depends on the batch).
    """
    if norm.training or norm.running_var is None:
        raise FuseError('a BatchNorm in training mode (or without running '
                        'statistics) cannot be folded: call model.eval() '
                        'first')
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def fold_batch_norm(conv: nn.Conv2d,
                    norm: nn.Module) -> Tuple[nn.Conv2d, nn.Module]:
    """``norm(conv(x))`` as one convolution: returns (the convolution with
    the BatchNorm's affine map over its running statistics folded into its
    weight and bias, ``nn.Identity()``). ``norm`` must be in eval mode;
    anything but a BatchNorm (an ``Identity`` left by an earlier fold) is
    returned unchanged.

    Args:
        conv (nn.Conv2d): The convolution (with or without bias).
        norm (nn.Module): The BatchNorm applied to its output.
    """
    if not isinstance(norm, _BatchNorm):
        return conv, norm
    with torch.no_grad():
        scale, bias = batch_norm_affine(norm)  # (C, ) each
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        fused = copy.deepcopy(conv)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter(bias.to(conv.weight.dtype),
                                  requires_grad=conv.weight.requires_grad)
    return fused, nn.Identity()


def _conv_module_pairs(model: nn.Module) -> Iterator[nn.Module]:
    """mmcv ``ConvModule`` layers (recognised by their attributes, so that
    mmcv is not imported) whose BatchNorm follows the convolution."""
    for m in model.modules():
        order = getattr(m, 'order', None)
        name = getattr(m, 'norm_name', None)
        if isinstance(getattr(m, 'conv', None), nn.Conv2d) and name and \
                getattr(m, 'with_norm', False) and isinstance(order, tuple) \
                and order.index('conv') < order.index('norm') and \
                isinstance(getattr(m, name, None), _BatchNorm):
            yield m


def fuse_modules(model: nn.Module) -> nn.Module:
    """The fusion itself, in place and unverified (:func:`fuse` verifies):
    every :class:`Fusable` fuses, children first, then the Conv-BN pairs of
    mmcv ``ConvModule`` layers are folded."""
    for m in reversed(list(model.modules())):
        if isinstance(m, Fusable):
            m.fuse()
    for m in list(_conv_module_pairs(model)):
        m.conv, norm = fold_batch_norm(m.conv, getattr(m, m.norm_name))
        setattr(m, m.norm_name, norm)
    return model


def probe_input(model: nn.Module, size: int = 64) -> torch.Tensor:
    """A (1, C, size, size) input for ``model``: C from its first
    convolution, dtype and device from its first parameter, values from a
    local generator (the global random state is left alone)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)),
                None)
    param = next(model.parameters(), None)
    if conv is None or param is None:
        raise FuseError(f'{type(model).__name__} has no convolution to '
                        'tell its input channels: pass example=')
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, conv.in_channels, size, size, generator=generator)
    return x.to(device=param.device, dtype=param.dtype)


def _tensors(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, 2e-2)


def _verified_fused_copy(model: nn.Module,
                         example: Optional[torch.Tensor]) -> nn.Module:
    """A fused deep copy of ``model`` (eval mode), checked against
    ``model``'s reference forward on ``example`` (default: a 64x64 probe,
    :func:`probe_input`) within float tolerance (relative to the largest
    output: 1e-4 in float32).

    Raises:
        FuseError: a module in training mode, or a fused result that
            differs from the reference.
    """
    training = [n for n, m in model.named_modules() if m.training]
    if training:
        raise FuseError(f'fuse is for inference: {training[0] or "the model"}'
                        ' is in training mode; call model.eval() first')
    if example is None:
        example = probe_input(model)
    candidate = fuse_modules(copy.deepcopy(model))
    with torch.no_grad():
        expected, got = _tensors(model(example)), _tensors(candidate(example))
    if not expected or len(expected) != len(got):
        raise FuseError(f'{type(model).__name__}: the fused model returned '
                        f'{len(got)} tensors, the reference {len(expected)}')
    for i, (ref, out) in enumerate(zip(expected, got)):
        scale = float(ref.abs().max()) if ref.numel() else 0.
        error = float((ref - out).abs().max()) if ref.numel() else 0.
        if ref.shape != out.shape or not error <= _tolerance(ref.dtype) * \
                max(scale, 1.):
            raise FuseError(
                f'{type(model).__name__}: output {i} of the fused model '
                f'differs from the reference by {error:.3g} (largest value '
                f'{scale:.3g}); nothing was changed')
    return candidate


def fuse(model: nn.Module,
         example: Optional[torch.Tensor] = None) -> nn.Module:
    """Fuse ``model`` for inference, in place, and return it.

    The model must be in eval mode. The fusion (:func:`fuse_modules`) is
    first applied to a copy, whose outputs on ``example`` (default: a
    64x64 probe, :func:`probe_input`) must equal the reference forward's
    within float tolerance (relative to the largest output: 1e-4 in
    float32); only then is ``model`` itself fused. Works on a backbone, a
    decode head's segmentor (its ``model(x)`` tensor mode) or a timm model.

    Raises:
        FuseError: a module in training mode, or a fused result that
            differs from the reference (``model`` is then left unchanged).
    """
    _verified_fused_copy(model, example)
    return fuse_modules(model)


def fused_copy(model: nn.Module,
               example: Optional[torch.Tensor] = None) -> nn.Module:
    """A fused copy of ``model`` in eval mode, verified as :func:`fuse`
    verifies; ``model`` is not changed (its modules' training flags are
    put back)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return _verified_fused_copy(model, example)
    finally:
        for m, training in modes:
            m.training = training
