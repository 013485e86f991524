"""ONNX export of a segmentor's inference path, verified with ONNX Runtime
before anything is written.

:class:`~mmseg_plugins.forward.SegmentorForward` (exported under the name
``ExportableSegmentor``) is what the graph computes for a batch of
images: mmseg's whole-image inference of an ``EncoderDecoder``, i.e. the
data preprocessor's BGR->RGB swap and normalisation (optional), backbone,
decode head, bilinear resize of the logits to the input size, and
optionally the argmax. :func:`export_onnx` exports it with either exporter,
stores :class:`~.metadata.ExportMetadata` in the file, runs the file with
ONNX Runtime at the export size and at two other sizes, compares with
PyTorch, and refuses (``ExportError``, nothing written) when they differ by
more than the tolerance.

Where the exporters fail on the models as written, the copy that is
exported is changed, never the caller's model:

* every ``nn.AdaptiveAvgPool2d`` (mmseg's ``PPM`` inside ``UPerHead``, which
  cannot be changed at the source) becomes an
  :class:`ExportableAdaptiveAvgPool2d`, which computes the same bins for
  every input size; our own models switch to their export forms themselves
  (:func:`mmseg_plugins.models.ops.exporting`);
* with ``fuse_bn``, BatchNorm is folded into the convolutions (mmcv's
  ``fuse_conv_bn``), and verified like the rest.
"""
import contextlib
import copy
import io
import logging
import os
import os.path as osp
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from ..fileio import atomic_path
from ..errors import ExportError, InvalidInputError, first_line
from ..forward import SegmentorForward, folded_bn_copy, min_input_size
from ..models.ops import exportable_adaptive_avg_pool2d
from ..reporting import quiet_logger

#: The exported module under the name this package has always used.
ExportableSegmentor = SegmentorForward
from .metadata import ExportMetadata, dataset_classes, plain

__all__ = [
    'EXPORTERS', 'OPSETS', 'SINGLE_FILE_LIMIT', 'ExportSettings',
    'ExportableSegmentor', 'ExportableAdaptiveAvgPool2d',
    'replace_adaptive_pools', 'verification_shapes', 'Check', 'ExportReport',
    'export_metadata', 'export_onnx'
]

EXPORTERS = ('dynamo', 'torchscript')

#: ONNX opsets each exporter writes, (lowest, highest): dynamo's operator
#: library is written for opset 18 (it silently keeps 18 when asked for
#: less) up to torch's newest; the TorchScript exporter stops at 20, and
#: below 13 it cannot export these models' operators with dynamic shapes.
OPSETS = {'dynamo': (18, 23), 'torchscript': (13, 20)}

#: A protobuf message, hence a self-contained ONNX file, must stay under
#: 2 GiB; larger models keep their weights in ``<file>.data``.
SINGLE_FILE_LIMIT = 2**31 - 1

#: Input and output names of the graph.
INPUT_NAME = 'images'


@dataclass
class ExportSettings:
    """How to export (the options of ``tools/deployment/pytorch2onnx.py``).

    Args:
        shape (tuple): (H, W) of the traced input; with ``dynamic`` one of
            the verified sizes, else the only size the graph takes.
        dynamic (bool): Free batch, height and width.
        output (str): ``'logits'`` or ``'mask'`` (argmax in the graph).
        normalize (bool): BGR->RGB and mean/std normalisation in the graph
            (raw images in), as the config's data preprocessor does.
        exporter (str): ``'dynamo'`` (``torch.onnx.export(dynamo=True)``)
            or ``'torchscript'`` (``dynamo=False``).
        opset (int, optional): ONNX opset; None: the exporter's default.
        fuse_bn (bool): Fold BatchNorm into the convolutions first.
        tolerance (float): Largest accepted difference between ONNX Runtime
            and PyTorch, relative to the largest PyTorch logit.
    """
    shape: Tuple[int, int] = (512, 512)
    dynamic: bool = False
    output: str = 'logits'
    normalize: bool = True
    exporter: str = 'dynamo'
    opset: Optional[int] = None
    fuse_bn: bool = False
    tolerance: float = 1e-4

    def validate(self, min_input_size: int) -> None:
        """Raise ``InvalidInputError`` for settings no export can satisfy."""
        if self.exporter not in EXPORTERS:
            raise InvalidInputError(f'unknown exporter {self.exporter!r}; choose '
                            f'from {", ".join(EXPORTERS)}')
        if self.output not in ('logits', 'mask'):
            raise InvalidInputError(f'output must be logits or mask, got '
                            f'{self.output!r}')
        low, high = OPSETS[self.exporter]
        if self.opset is not None and not low <= self.opset <= high:
            raise InvalidInputError(
                f'opset {self.opset} is not supported by the {self.exporter} '
                f'exporter (supported: {low} to {high})')
        h, w = self.shape
        if min(h, w) < min_input_size:
            raise InvalidInputError(f'--shape {h} {w}: the model needs inputs of at '
                            f'least {min_input_size}x{min_input_size}')
        if not self.tolerance > 0:
            raise InvalidInputError(f'tolerance must be positive, got '
                            f'{self.tolerance}')


class ExportableAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` computed by
    :func:`~mmseg_plugins.models.ops.exportable_adaptive_avg_pool2d`: the
    same values for every input size, which both exporters keep
    size-generic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return exportable_adaptive_avg_pool2d(x, self.output_size)


def replace_adaptive_pools(module: nn.Module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` inside ``module`` by an
    :class:`ExportableAdaptiveAvgPool2d` (in place; call it on a copy).
    Returns how many were replaced."""
    count = 0
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.AdaptiveAvgPool2d:
                setattr(parent, name,
                        ExportableAdaptiveAvgPool2d(child.output_size))
                count += 1
    return count


def verification_shapes(shape: Tuple[int, int], min_size: int,
                        dynamic: bool) -> List[Tuple[int, int, int]]:
    """(batch, H, W) of the verification runs: the export size; with
    ``dynamic`` also a multiple of 32 of another aspect ratio (half the
    height, 1.5 times the width, rounded) at batch 2, and odd sides, so not
    multiples of 32 (about 3/4 of the height and 5/8 of the width)."""
    h, w = shape
    sizes = [(1, h, w)]
    if dynamic:
        sizes.append((2, max(min_size, h // 64 * 32),
                      max(min_size, (w * 3 // 2 + 31) // 32 * 32)))
        sizes.append((1, max(min_size, h * 3 // 4) | 1,
                      max(min_size, w * 5 // 8) | 1))
    return sizes


@dataclass
class Check:
    """ONNX Runtime against PyTorch at one input size.

    Attributes:
        shape (tuple): (batch, H, W).
        max_abs_diff (float): Largest logit difference (logits output), or
            the fraction of pixels whose class differs (mask output).
        magnitude (float): Largest PyTorch logit.
        unexplained (int): Mask pixels that differ although PyTorch's top-2
            margin there exceeds the tolerance (0 for logits).
        passed (bool): Within the tolerance.
        error (str, optional): Why ONNX Runtime gave no output.
    """
    shape: Tuple[int, int, int]
    max_abs_diff: float
    magnitude: float
    unexplained: int
    passed: bool
    error: Optional[str] = None

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.magnitude, 1e-30)

    def describe(self, output: str) -> str:
        b, h, w = self.shape
        where = f'{h}x{w} (batch {b})'
        if self.error is not None:
            return f'{where}: onnxruntime failed: {self.error}'
        if output == 'mask':
            return (f'{where}: {self.max_abs_diff:.3%} of the pixels differ, '
                    f'{self.unexplained} outside near-ties')
        return (f'{where}: max abs diff {self.max_abs_diff:.3g} '
                f'({self.relative:.2g} of the largest logit '
                f'{self.magnitude:.3g})')


@dataclass
class ExportReport:
    """What an export did and measured."""
    path: str
    settings: ExportSettings
    opset: int
    export_seconds: float
    verify_seconds: float
    file_bytes: int
    external_data: bool
    checks: List[Check] = field(default_factory=list)

    @property
    def max_relative_diff(self) -> float:
        return max(c.relative for c in self.checks)

    def lines(self) -> List[str]:
        """A human-readable summary."""
        s = self.settings
        data = f' + {self.path}.data' if self.external_data else ''
        return [
            f'exported {self.path}{data} ({self.file_bytes / 2**20:.1f} MiB, '
            f'{s.exporter} exporter, opset {self.opset}, '
            f'{"dynamic batch/height/width" if s.dynamic else "static"}, '
            f'output {s.output}) in {self.export_seconds:.1f} s',
            f'verified with onnxruntime against PyTorch in '
            f'{self.verify_seconds:.1f} s (tolerance {s.tolerance:g} of the '
            'largest logit):'
        ] + ['  ' + c.describe(s.output) for c in self.checks]


def export_metadata(cfg, segmentor: nn.Module, settings: ExportSettings,
                    checkpoint_meta: dict) -> ExportMetadata:
    """The metadata of an export of ``segmentor`` built from ``cfg``."""
    pre = segmentor.data_preprocessor
    normalize = bool(getattr(pre, '_enable_normalize', False))
    classes, palette = dataset_classes(cfg, checkpoint_meta)
    return ExportMetadata(
        output=settings.output,
        normalize=settings.normalize,
        mean=plain(pre.mean.flatten()) if normalize else [0., 0., 0.],
        std=plain(pre.std.flatten()) if normalize else [1., 1., 1.],
        bgr_to_rgb=bool(getattr(pre, 'channel_conversion', False)),
        num_classes=int(segmentor.decode_head.num_classes),
        align_corners=bool(segmentor.align_corners),
        test_cfg=plain(cfg.model.get('test_cfg') or dict(mode='whole')),
        min_input_size=min_input_size(segmentor),
        classes=classes,
        palette=palette,
        config=osp.basename(cfg.filename or ''),
        exporter=settings.exporter,
        opset=settings.opset or 0,
        dynamic=settings.dynamic,
        shape=list(settings.shape),
        fuse_bn=settings.fuse_bn)


def _graph_module(segmentor: nn.Module,
                  settings: ExportSettings) -> SegmentorForward:
    """The module that is exported: a copy, with export replacements."""
    model = folded_bn_copy(segmentor) if settings.fuse_bn else \
        copy.deepcopy(segmentor).eval()
    replace_adaptive_pools(model)
    return SegmentorForward(model, settings.normalize,
                               settings.output).eval()


def _example(batch: int, h: int, w: int, normalize: bool,
             seed: int) -> torch.Tensor:
    """Random images: raw-looking 0..255 values when the graph normalises,
    else standard normal."""
    g = torch.Generator().manual_seed(seed)
    if normalize:
        return torch.rand(batch, 3, h, w, generator=g) * 255
    return torch.randn(batch, 3, h, w, generator=g)


def _export_graph(module: nn.Module, example: torch.Tensor,
                  settings: ExportSettings, min_size: int):
    """Run the exporter; returns the ``onnx.ModelProto`` without the
    exporter's per-node debug entries (stack traces with local paths, a
    third of the file of a small model)."""
    import onnx
    output = settings.output
    if settings.exporter == 'dynamo':
        dynamic_shapes = None
        if settings.dynamic:
            # DYNAMIC lets torch.export narrow the declared range where
            # PyTorch's own shape logic needs it (its convolution picks a
            # memory format by whether a side is 1, which bounds the input
            # sides to > 32 for a stride-32 network) instead of failing
            # and exporting a second time; the ONNX graph has no range
            dim = torch.export.Dim.DYNAMIC
            dynamic_shapes = {
                INPUT_NAME: {0: dim, 2: dim(min=min_size),
                             3: dim(min=min_size)}
            }
        # the optimizer logs every Split it leaves unfolded
        with quiet_logger('onnxscript.optimizer', logging.ERROR):
            program = torch.onnx.export(
                module, (example, ), dynamo=True,
                dynamic_shapes=dynamic_shapes, opset_version=settings.opset,
                input_names=[INPUT_NAME], output_names=[output],
                verbose=False)
        model = program.model_proto
    else:
        out_axes = {0: 'batch', 2: 'height', 3: 'width'} \
            if output == 'logits' else {0: 'batch', 1: 'height', 2: 'width'}
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # the tracer warns about every Python value it records; whether
            # the graph is right is decided by the verification that follows
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(
                module, (example, ), buffer, dynamo=False,
                opset_version=settings.opset, input_names=[INPUT_NAME],
                output_names=[output],
                dynamic_axes={
                    INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                    output: out_axes
                } if settings.dynamic else None)
        model = onnx.load_from_string(buffer.getvalue())
    for node in model.graph.node:
        del node.metadata_props[:]
    return model


def _save(model, path: str) -> bool:
    """Write ``model`` to ``path``, as one file when it fits (returns
    whether the weights went to ``<path>.data``)."""
    import onnx
    external = model.ByteSize() > SINGLE_FILE_LIMIT
    onnx.save_model(model, path, save_as_external_data=external,
                    all_tensors_to_one_file=True,
                    location=osp.basename(path) + '.data')
    return external


def _compare(ours: torch.Tensor, logits: torch.Tensor, output: str,
             tolerance: float, shape) -> Check:
    """One :class:`Check` of an ONNX Runtime output against PyTorch's
    logits."""
    magnitude = logits.abs().max().item()
    bound = tolerance * magnitude
    if output == 'logits':
        diff = (ours - logits).abs().max().item() if \
            ours.shape == logits.shape else float('inf')
        return Check(shape, diff, magnitude, 0, diff <= bound)
    expected = logits.argmax(dim=1)
    if ours.shape != expected.shape:
        return Check(shape, 1.0, magnitude, ours.numel(), False)
    differ = ours != expected
    top2 = logits.topk(2, dim=1).values
    near_tie = (top2[:, 0] - top2[:, 1]) <= bound
    unexplained = int((differ & ~near_tie).sum())
    return Check(shape, differ.float().mean().item(), magnitude, unexplained,
                 unexplained == 0)


def verify(path: str, reference: nn.Module, settings: ExportSettings,
           min_size: int) -> List[Check]:
    """Run the ONNX file with ONNX Runtime (CPU) at the
    :func:`verification_shapes` and compare with ``reference`` (an
    :class:`SegmentorForward` of the original model giving logits)."""
    from .onnx_runtime import OnnxSegmentor
    session = OnnxSegmentor(path, 'cpu')
    checks = []
    for seed, shape in enumerate(
            verification_shapes(settings.shape, min_size, settings.dynamic)):
        x = _example(*shape, settings.normalize, seed)
        with torch.no_grad():
            logits = reference(x)
        try:
            ours = session(x)
        except Exception as err:  # onnxruntime raises its own types
            checks.append(Check(shape, float('inf'), 0., 0, False,
                                first_line(err)))
            continue
        checks.append(_compare(ours, logits, settings.output,
                               settings.tolerance, shape))
    return checks


def export_onnx(segmentor: nn.Module, metadata: ExportMetadata, dst: str,
                settings: ExportSettings) -> ExportReport:
    """Export, verify, and only then write ``dst``.

    Args:
        segmentor (nn.Module): The model (eval mode); it is not modified.
        metadata (ExportMetadata): Stored in the file.
        dst (str): The ``.onnx`` file to write; its directory must exist.
        settings (ExportSettings): How to export.

    Returns:
        ExportReport: Times, size and the verification checks.

    Raises:
        InvalidInputError: Bad settings or a missing output directory.
        ExportError: An exporter failure, or ONNX Runtime outputs that differ from PyTorch by
            more than ``settings.tolerance``. Nothing is written then.
    """
    min_size = min_input_size(segmentor)
    settings.validate(min_size)
    parent = osp.dirname(osp.abspath(dst))
    if not osp.isdir(parent):
        raise InvalidInputError(f'output directory {parent} does not exist')
    reference = SegmentorForward(segmentor, settings.normalize, 'logits')
    module = _graph_module(segmentor, settings)
    example = _example(2 if settings.dynamic else 1, *settings.shape,
                       settings.normalize, seed=0)
    base = osp.basename(dst)
    with tempfile.TemporaryDirectory(prefix=f'.{base}.', dir=parent) as work:
        staged = osp.join(work, base)  # final name: <base>.data resolves
        start = time.perf_counter()
        try:
            with torch.no_grad():
                model = _export_graph(module, example, settings, min_size)
        except Exception as err:  # exporters raise many types
            raise ExportError(f'the {settings.exporter} exporter failed: '
                            f'{type(err).__name__}: {first_line(err)}'
                            ) from None
        metadata.opset = next(o.version for o in model.opset_import
                              if o.domain in ('', 'ai.onnx'))
        metadata.write_to(model)
        external = _save(model, staged)
        export_seconds = time.perf_counter() - start
        start = time.perf_counter()
        checks = verify(staged, reference, settings, min_size)
        verify_seconds = time.perf_counter() - start
        report = ExportReport(dst, settings, metadata.opset, export_seconds,
                              verify_seconds,
                              os.path.getsize(staged) + (os.path.getsize(
                                  staged + '.data') if external else 0),
                              external, checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise ExportError(
                f'refusing to write {dst}: onnxruntime and PyTorch differ '
                f'beyond the tolerance ({settings.tolerance:g} of the '
                'largest logit) at ' + '; '.join(
                    c.describe(settings.output) for c in failed))
        staged_files = [staged + '.data'] if external else []
        for src in staged_files + [staged]:  # the weights before the model
            final = osp.join(parent, osp.basename(src))
            with atomic_path(final) as tmp:
                os.replace(src, tmp)
    return report
