"""Low-level tensor operations shared by the model families: token/map
layout conversions, stochastic depth, and adaptive average pooling in a
form the exporters keep shape-generic.

Everything here imports only torch: the networks of
:mod:`mmseg_plugins.models` build without mmseg, mmengine or mmcv (the timm
models of :mod:`mmseg_plugins.timm` rely on it).
"""
import contextlib
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'nlc_to_nchw', 'nchw_to_nlc', 'DropPath', 'linear_of_activation',
    'recomputed_when_saved',
    'autocast_enabled',
    'autocast_dtype', 'exporting', 'adaptive_pooling_matrix',
    'exportable_adaptive_avg_pool2d', 'adaptive_avg_pools'
]


def nlc_to_nchw(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) map.

    The result is a channels-last *view* of the tokens (no copy when the
    tokens are dense in C), which mkldnn convolutions consume directly.
    """
    h, w = hw_shape
    b, n, c = x.shape
    assert n == h * w, f'token count {n} does not match {h}x{w}'
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


def nchw_to_nlc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens (free for channels-last
    maps)."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, each sample's
    residual branch is zeroed with probability ``drop_prob`` and the
    survivors scaled by ``1 / (1 - drop_prob)``; identity in eval mode.
    The same computation as timm's and mmcv's ``DropPath`` (one uniform
    draw per sample, floored), so it consumes the random stream alike.

    Args:
        drop_prob (float): Probability of dropping the branch. Default: 0.
    """

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        mask = (keep + torch.rand(shape, dtype=x.dtype,
                                  device=x.device)).floor_()
        return x.div(keep) * mask

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


def _compiling() -> bool:
    """Whether TorchDynamo is tracing (``torch.compiler.is_compiling``,
    torch >= 2.3)."""
    is_compiling = getattr(torch.compiler, 'is_compiling', None)
    return bool(is_compiling is not None and is_compiling())


@contextlib.contextmanager
def recomputed_when_saved(
        recipes: Sequence[Tuple[torch.Tensor, Callable[[], torch.Tensor]]]):
    """Within the block, autograd does not store the given tensors (or
    views of them) for backward: each ``(tensor, recompute)`` pair stores a
    note, and backward calls ``recompute()`` (without autograd) for a new
    tensor of the same values and layout when it needs them
    (``torch.autograd.graph.saved_tensors_hooks``). For tensors that are
    cheap to make again from ones autograd keeps anyway (an activation's
    output, a reordered copy). The same values and gradients; without
    autograd, or while TorchDynamo traces (AOTAutograd rematerialises
    cheap ops itself), the block runs unchanged.

    The recipes' closures must not hold the tensors themselves (that would
    keep them alive); only their storage addresses are kept here.
    """
    if not torch.is_grad_enabled() or _compiling():
        yield
        return
    index = {t.untyped_storage().data_ptr(): i
             for i, (t, _) in enumerate(recipes)}
    remakes = [remake for _, remake in recipes]

    def pack(saved: torch.Tensor):
        i = index.get(saved.untyped_storage().data_ptr())
        if i is None:
            return saved  # not ours (a weight, an autocast copy): kept
        return i, saved.shape, saved.stride(), saved.storage_offset()

    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        i, shape, stride, offset = packed
        with torch.no_grad():
            again = remakes[i]()  # the same layout as the original
        return again.as_strided(shape, stride, offset)

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def linear_of_activation(linear: nn.Module, act: nn.Module,
                         h: torch.Tensor) -> torch.Tensor:
    """``linear(act(h))``, both called as modules, where autograd keeps the
    MLP's widest activation once: ``linear`` saves its input ``act(h)`` for
    its weight gradient, and ``act`` saves ``h``; here the former is not
    stored but recomputed from ``h`` when backward unpacks it
    (:func:`recomputed_when_saved`). Same values and gradients; without
    autograd, or for an in-place ``act`` (one with ``inplace=True``:
    :func:`~.fuse.fuse` installs them, and ``h`` is then overwritten), it
    is ``linear(act(h))``.

    Args:
        linear (nn.Module): The layer after the activation (e.g. ``fc2``).
        act (nn.Module): The activation (elementwise, e.g. ``nn.GELU``).
        h (Tensor): Its input.
    """
    a = act(h)
    if getattr(act, 'inplace', False):
        return linear(a)
    with recomputed_when_saved([(a, lambda: act(h))]):
        return linear(a)


def autocast_dtype(device_type: str):
    """The dtype autocast casts to on ``device_type``, None when autocast
    is off."""
    if not autocast_enabled(device_type):
        return None
    try:  # torch >= 2.4
        return torch.get_autocast_dtype(device_type)
    except AttributeError:  # pragma: no cover - torch < 2.4
        return torch.get_autocast_cpu_dtype() if device_type == 'cpu' \
            else torch.get_autocast_gpu_dtype()


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``'cpu'``, ``'cuda'``)."""
    try:  # torch >= 2.4
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # pragma: no cover - torch < 2.4
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def exporting() -> bool:
    """Whether the forward pass is being captured for export: by either ONNX
    exporter (TorchScript tracing or dynamo) or by ``torch.export``.

    Adaptive pooling takes an export-safe form then
    (:func:`adaptive_avg_pools`); eager calls, ``torch.compile`` and the
    FLOP counter's trace keep PyTorch's kernel.
    """
    is_exporting = getattr(torch.compiler, 'is_exporting', None)  # >= 2.7
    return torch.onnx.is_in_onnx_export() or bool(
        is_exporting is not None and is_exporting())


def adaptive_pooling_matrix(size: Union[int, torch.SymInt],
                            bins: Union[int, Sequence[int]],
                            like: torch.Tensor) -> torch.Tensor:
    """The (bins, size) matrix whose row ``i`` averages bin ``i`` of
    adaptive average pooling along one axis: the positions
    ``[floor(i * size / bins), ceil((i + 1) * size / bins))``, as in
    ``F.adaptive_avg_pool2d`` (bins overlap when ``size`` is not a multiple
    of ``bins`` and repeat positions when ``size < bins``). Several bin
    counts give their matrices stacked, (sum of bins, size), built at once.

    It is built from ``torch.arange`` over ``size``, so an exporter tracing
    ``size`` from an input shape records the computation, not its value.

    Args:
        size (int): Input length along the axis (may be symbolic).
        bins (int | Sequence[int]): Output length, or lengths.
        like (Tensor): Gives the dtype and device.
    """
    counts = [bins] if isinstance(bins, int) else list(bins)
    # per row: its bin count n and its index i within that count
    n = torch.cat([torch.full((c, ), c, device=like.device) for c in counts])
    i = torch.cat([torch.arange(c, device=like.device) for c in counts])
    start = torch.div(i * size, n, rounding_mode='floor')
    end = torch.div((i + 1) * size + n - 1, n, rounding_mode='floor')
    j = torch.arange(size, device=like.device)
    inside = (j[None] >= start[:, None]) & (j[None] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def exportable_adaptive_avg_pool2d(
        x: torch.Tensor,
        output_size: Union[int, Tuple[Optional[int], Optional[int]]]
) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)`` as two products with the
    averaging matrices of :func:`adaptive_pooling_matrix`, equal for every
    input size up to float rounding.

    Both ONNX exporters freeze ``F.adaptive_avg_pool2d`` to the bins of the
    traced size when the bin count does not divide it (wrong values at other
    sizes, or an index out of range in the runtime); this form keeps the
    dependence on the input size.

    Args:
        x (Tensor): (B, C, H, W).
        output_size (int | tuple): Bins (S_h, S_w); ``None`` keeps that
            axis' size.

    Returns:
        Tensor: (B, C, S_h, S_w).
    """
    bins_h, bins_w = (output_size, output_size) if isinstance(
        output_size, int) else output_size
    if bins_w is not None:  # (B, C, H, W) @ (W, S_w) -> (B, C, H, S_w)
        x = x @ adaptive_pooling_matrix(x.shape[3], bins_w, x).t()
    if bins_h is not None:  # (S_h, H) @ (B, C, H, S_w) -> (B, C, S_h, S_w)
        x = adaptive_pooling_matrix(x.shape[2], bins_h, x) @ x
    return x


def adaptive_avg_pools(maps: Sequence[torch.Tensor],
                       sizes: Sequence[int]) -> List[torch.Tensor]:
    """``[F.adaptive_avg_pool2d(m, s) for m, s in zip(maps, sizes)]`` for
    maps of one spatial size (a pooling pyramid); while :func:`exporting`,
    the same values as products with the averaging matrices of
    :func:`adaptive_pooling_matrix`, built once per axis for all the sizes
    (about half the graph nodes of one pair of matrices per size), which
    keep the dependence on the input size.

    Eager calls keep PyTorch's kernel: the matrix form made AFFormer-base
    5-8% slower at batch 1 on the CPU, and FLOP counters would count its
    products.

    Args:
        maps (Sequence[Tensor]): (B, C_i, H, W) each, one (H, W).
        sizes (Sequence[int]): Square output size of each map.

    Returns:
        list[Tensor]: (B, C_i, S_i, S_i) each.
    """
    if not exporting():
        return [F.adaptive_avg_pool2d(m, s) for m, s in zip(maps, sizes)]
    height, width = maps[0].shape[2:]
    rows = adaptive_pooling_matrix(height, sizes, maps[0]).split(sizes)
    columns = adaptive_pooling_matrix(width, sizes, maps[0]).split(sizes)
    # (S, H) @ (B, C, H, W) @ (W, S) -> (B, C, S, S)
    return [r @ m @ c.t() for m, r, c in zip(maps, rows, columns)]
