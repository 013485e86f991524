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
* unless ``fuse`` is off, the model is fused for inference first
  (:func:`mmseg_plugins.fuse`: BatchNorm folded, speed forms applied), and
  verified like the rest.
"""
import copy
import io
import logging
import os
import os.path as osp
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import List

import torch
import torch.nn as nn

from ..fileio import atomic_path
from ..errors import ExportError, InvalidInputError, first_line
from ..forward import SegmentorForward, min_input_size, swaps_bgr_to_rgb
from ..model_input import ModelInput
from ..models.fuse import fused_copy
from ..models.ops import exportable_adaptive_avg_pool2d
from ..reporting import quiet_logger
from .metadata import ExportMetadata, dataset_classes, plain
from .settings import (EXPORTERS, INPUT_NAME, OPSETS,  # noqa: F401
                       SINGLE_FILE_LIMIT, ExportSettings)
from .verify import (Check, example_images, verification_shapes,  # noqa: F401
                     verify)

#: What the TorchScript tracer says of each shape it records as a Python
#: value (a constant of the trace); the export's verification decides
#: whether the graph is right.
TRACED_PYTHON_VALUE = (r'(Converting a tensor to a Python \w+|Iterating '
                       r'over a tensor) might cause the trace to be '
                       r'incorrect')

#: The exported module under the name this package has always used.
ExportableSegmentor = SegmentorForward

__all__ = [
    'EXPORTERS', 'OPSETS', 'SINGLE_FILE_LIMIT', 'ExportSettings',
    'ExportableSegmentor', 'ExportableAdaptiveAvgPool2d',
    'replace_adaptive_pools', 'verification_shapes', 'Check', 'ExportReport',
    'export_metadata', 'export_onnx'
]


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
    model_input = ModelInput.from_config(cfg)
    channels = model_input.channels
    return ExportMetadata(
        output=settings.output,
        normalize=settings.normalize,
        mean=plain(pre.mean.flatten()) if normalize else [0.] * channels,
        std=plain(pre.std.flatten()) if normalize else [1.] * channels,
        bgr_to_rgb=swaps_bgr_to_rgb(pre),
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
        fused=settings.fuse,
        in_channels=channels,
        band_input=model_input.bands,
        input_dtype=model_input.dtype)


def _graph_module(segmentor: nn.Module,
                  settings: ExportSettings) -> SegmentorForward:
    """The module that is exported: a copy, with export replacements."""
    model = fused_copy(segmentor) if settings.fuse else \
        copy.deepcopy(segmentor).eval()
    replace_adaptive_pools(model)
    return SegmentorForward(model, settings.normalize,
                            settings.output).eval()


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
            # the tracer warns about every shape it records as a Python
            # value (the models' own shape checks, torch's functional
            # layers); whether the graph is right is decided by the
            # verification that follows
            warnings.filterwarnings(
                'ignore', message=TRACED_PYTHON_VALUE,
                category=torch.jit.TracerWarning)
            # the tool's --exporter torchscript asks for it on purpose
            warnings.filterwarnings(
                'ignore', message='You are using the legacy TorchScript',
                category=DeprecationWarning)
            # and the exporter's own use of its deprecated logging setup
            warnings.filterwarnings(
                'ignore', message='The feature will be removed',
                category=DeprecationWarning,
                module='torch.onnx._internal.torchscript_exporter')
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
        ExportError: An exporter failure, or ONNX Runtime outputs that
            differ from PyTorch by more than ``settings.tolerance``.
            Nothing is written then.
    """
    min_size = min_input_size(segmentor)
    settings.validate(min_size)
    parent = osp.dirname(osp.abspath(dst))
    if not osp.isdir(parent):
        raise InvalidInputError(f'output directory {parent} does not exist')
    reference = SegmentorForward(segmentor, settings.normalize, 'logits')
    module = _graph_module(segmentor, settings)
    model_input = metadata.model_input()
    example = example_images(2 if settings.dynamic else 1, *settings.shape,
                             settings.normalize, seed=0,
                             model_input=model_input)
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
        checks = verify(staged, reference, settings, min_size, model_input)
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
