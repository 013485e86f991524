"""Benchmarking configs: build each model, take the measurements of
:mod:`.measures` and assemble one table row per config (and, with a
reference, the comparison lines). ``tools/benchmark.py`` parses the command
line and calls :func:`run_benchmark`."""
import contextlib
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..accelerate import compile_in_place
from ..builder import build_segmentor
from ..config import load_config
from ..errors import InvalidInputError
from ..forward import SegmentorForward
from ..models.fuse import fused_copy
from ..model_input import ModelInput
from ..reporting import Progress
from .figures import paper_figures
from .measures import (FlopCount, InferenceTiming,
                       PeakMemory, Subject, Timing, TrainStepTiming,
                       count_params, generic_train_step, make_seg_samples,
                       max_abs_diff, output_tensors, paired_ratio)
from .references import build_reference, load_builder
from .report import comparison_lines, environment_lines
from .settings import BenchmarkSettings

__all__ = ['benchmark_config', 'run_benchmark']


def _with_autocast(fn: Callable, settings: BenchmarkSettings) -> Callable:
    def call(x):
        with settings.autocast():
            return fn(x)
    return call


def _subject(model: nn.Module, target: nn.Module, ref,
             settings: BenchmarkSettings) -> Subject:
    """Our inference call (fused unless ``fuse`` is off) and training
    step, and the reference's: ``model.loss`` (all heads) for a whole
    segmentor alone, the same generic step (mean of the outputs) for both
    models when comparing or for a backbone. With ``versus_eager`` a copy
    of the model taken before any option is applied runs beside ours as
    ``'eager'``: float32, no autocast, not compiled, contiguous layout,
    not fused."""
    eager = copy.deepcopy(model) if settings.versus_eager else None
    infer_target = target
    if settings.fuse:
        infer_target = fused_copy(target)
    if settings.channels_last:
        for m in {id(m): m for m in (target, infer_target)}.values():
            m.to(memory_format=torch.channels_last)
    if settings.compile:  # the networks; the segmentor's plumbing stays
        parts = {}
        for m in (target, infer_target):
            for part in ((m, ) if settings.backbone_only else
                         (m.backbone, m.decode_head)):
                parts[id(part)] = part
        for part in parts.values():
            compile_in_place(part, settings.compile,
                             settings.compile_backend, settings.device)
    infer = {'ours': _infer_call(infer_target, settings)}
    train = {'ours': _train_step(model, target, ref, settings)}
    modules = [target]
    if ref is not None:
        infer['reference'] = ref
        ref_params = list(ref.parameters()) if isinstance(ref, nn.Module) \
            else []
        train['reference'] = generic_train_step(ref, ref_params)
        if isinstance(ref, nn.Module):
            modules.append(ref)
    infer = {k: _with_autocast(v, settings) for k, v in infer.items()}
    train = {k: _with_autocast(v, settings) for k, v in train.items()}
    if eager is not None:  # no autocast; a channels-last input made dense
        eager_target = eager.backbone if settings.backbone_only else eager
        infer_eager = _infer_call(eager_target, settings)
        train_eager = _train_step(eager, eager_target, None, settings)
        infer['eager'] = lambda x: infer_eager(x.contiguous())
        train['eager'] = lambda x: train_eager(x.contiguous())
        modules.append(eager_target)
    return Subject(infer, train, modules, tuple(settings.shape),
                   settings.device, settings.channels_last)


def _infer_call(target: nn.Module,
                settings: BenchmarkSettings) -> Callable:
    """The inference call of ``target``: the backbone itself, or the
    segmentor's inference computation (:class:`SegmentorForward`: logits
    resized to the input, what FLOPs count and ONNX Runtime runs)."""
    return target if settings.backbone_only else SegmentorForward(target)


def _train_step(model: nn.Module, target: nn.Module, ref,
                settings: BenchmarkSettings) -> Callable:
    """``model.loss`` (all heads) plus backward for a whole segmentor
    measured alone; beside a reference or for a backbone, the generic step
    (mean of the outputs) through the inference call's computation (a
    segmentor's logits resized to the input, as the reference returns
    them), so that both steps differentiate the same function."""
    if ref is not None or settings.backbone_only:
        return generic_train_step(_infer_call(target, settings),
                                  list(target.parameters()))
    samples = make_seg_samples(settings.train_batch, tuple(settings.shape),
                               model.decode_head.num_classes,
                               settings.device)

    def loss_step(x):
        losses = model.loss(x, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        model.zero_grad(set_to_none=True)

    return loss_step


def benchmark_config(path: str, settings: BenchmarkSettings,
                     progress=None
                     ) -> Tuple[Dict, Optional[str]]:
    """Measure the model of one config.

    Returns:
        tuple: (the table row, the comparison lines with a reference or
        None).
    """
    step = progress.step if progress else (lambda label='': None)
    cfg = load_config(path)
    channels = ModelInput.from_config(cfg).channels
    model, checkpoint_meta = build_segmentor(cfg, settings.checkpoint,
                                             settings.device)
    target = model.backbone if settings.backbone_only else model
    paper = paper_figures(path)
    stem = osp.splitext(osp.basename(path))[0]
    flops_shape = tuple(settings.flops_shape or (
        paper.flops_shape if paper else settings.shape))
    row = dict(config=stem, model=paper.model if paper else stem,
               params_m=count_params(target) / 1e6,
               paper_params_m=paper and paper.params_m,
               flops_shape=f'{flops_shape[0]}x{flops_shape[1]}',
               paper_gflops=paper and paper.gflops,
               paper_miou=paper and paper.miou)
    if settings.backbone_only:
        row.update(model=f'{row["model"]} (backbone)', paper_params_m=None,
                   paper_gflops=None, paper_miou=None)
    if 'flops' in settings.measures:
        counted = target if settings.backbone_only else SegmentorForward(model)
        row['gflops'] = FlopCount(flops_shape, channels).measure(
            counted, settings.device)
    step(f'{stem}: flops')

    ref = None
    if settings.compare:  # may load its weights into our model
        ref = build_reference(load_builder(settings.compare), target)
        if isinstance(ref, nn.Module):
            ref = ref.to(settings.device)
    with contextlib.ExitStack() as stack:
        if settings.backend == 'onnxruntime':
            subject = _onnxruntime_subject(cfg, model, checkpoint_meta,
                                           settings, row, stack)
            step(f'{stem}: export')
        else:
            subject = _subject(model, target, ref, settings)
        subject.channels = channels  # random inputs of the model's bands
        lines = _measure(subject, ref, row, settings, stem, step)
    return row, lines


def _onnxruntime_subject(cfg, model: nn.Module, checkpoint_meta: dict,
                         settings: BenchmarkSettings, row: Dict,
                         stack: contextlib.ExitStack) -> Subject:
    """Export the segmentor (dynamic shapes, logits, verified at three
    sizes) into a temporary folder that lives as long as ``stack``; record
    the export time, file size and largest differences in ``row``; return
    the PyTorch module that was exported (eager, fused unless ``fuse`` is
    off) beside the ONNX Runtime session of the
    file."""
    import tempfile

    from ..deploy import ExportSettings, export_metadata, export_onnx
    export_settings = ExportSettings(
        shape=tuple(settings.shape), dynamic=True, output='logits',
        normalize=False, exporter=settings.exporter,
        fuse=settings.fuse)
    folder = stack.enter_context(tempfile.TemporaryDirectory())
    path = osp.join(folder, 'model.onnx')
    cpu_model = model.to('cpu')  # the exporter traces on the CPU
    report = export_onnx(
        cpu_model, export_metadata(cfg, cpu_model, export_settings,
                                   checkpoint_meta), path, export_settings)
    model.to(settings.device)
    row.update(export_s=report.export_seconds,
               onnx_mib=report.file_bytes / 2**20,
               onnx_max_diff=' / '.join(f'{c.relative:.1e}'
                                        for c in report.checks))
    ours = model
    if settings.fuse:
        ours = fused_copy(model)
    infer = {'ours': SegmentorForward(ours),
             'onnxruntime': _SessionPerPhase(path, settings.device)}
    return Subject(infer, {}, [], tuple(settings.shape), settings.device)


class _SessionPerPhase:
    """An ONNX Runtime session opened at the first call and released by
    :meth:`close`, so that PyTorch is timed while no session is alive: a
    live session's memory arena slowed PyTorch in the same process
    (measured on the 2-core CPU, SegFormer-B0, batch 8 at 512x512: 1.0-1.1 s
    per call alone or after the session was released, 1.2-4.7 s while it
    was alive; with the arena switched off PyTorch was unaffected but ONNX
    Runtime 45% slower)."""

    def __init__(self, path: str, device: str) -> None:
        self.path, self.device = path, device
        self.session = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            from ..deploy import OnnxSegmentor
            self.session = OnnxSegmentor(self.path, self.device)
        return self.session(batch)

    def close(self) -> None:
        self.session = None
        import gc
        gc.collect()


def _measure(subject: Subject, ref, row: Dict, settings: BenchmarkSettings,
             stem: str, step: Callable) -> Optional[str]:
    """Take the timings and memory peaks of ``subject`` into ``row``;
    returns the comparison lines with a reference, else None."""
    diff = None
    # before training steps change BatchNorm statistics
    if ref is not None:
        diff = _output_difference(subject, 'reference')
    if settings.versus_eager:
        eager_diff = _output_difference(subject, 'eager')
        row['eager_rel_diff'] = None if eager_diff is None else eager_diff[1]

    timings: Dict[str, List[Timing]] = {}
    # ONNX Runtime is timed after PyTorch, not alternating (see
    # _SessionPerPhase); a fresh session's memory arena grows over its first
    # calls at a new batch size (SegFormer-B0, batch 8: 1.4, 1.7, then
    # 1.0 s), so its throughput phase gets the full warm-up
    alternate = settings.backend != 'onnxruntime'
    measurements = dict(
        latency=InferenceTiming(1, settings.repeats, settings.warmup,
                                alternate),
        throughput=InferenceTiming(settings.throughput_batch,
                                   settings.throughput_repeats,
                                   1 if alternate else settings.warmup,
                                   alternate),
        train=TrainStepTiming(settings.train_batch, settings.train_repeats))
    for name, measurement in measurements.items():
        if name in settings.measures:
            timings[name] = measurement.measure(subject)
            step(f'{stem}: {name}')
    if 'latency' in timings:
        row['latency_ms'] = timings['latency'][0].median * 1e3
    if 'throughput' in timings:
        row['throughput'] = settings.throughput_batch / \
            timings['throughput'][0].median
    if settings.backend == 'onnxruntime':  # ratios: PyTorch time / ORT's
        if 'latency' in timings:
            ours, ort = timings['latency']
            row.update(ort_latency_ms=ort.median * 1e3,
                       ort_latency_ratio=ours.median / ort.median)
        if 'throughput' in timings:
            ours, ort = timings['throughput']
            row.update(ort_throughput=settings.throughput_batch / ort.median,
                       ort_throughput_ratio=ours.median / ort.median)
    if 'train' in timings:
        row['train_ms'] = timings['train'][0].median * 1e3
    if settings.versus_eager:  # speed-ups: eager time / ours, paired
        for name in ('latency', 'throughput', 'train'):
            if name in timings:
                ours, eager = timings[name]
                row[f'{name}_speedup'] = paired_ratio(eager, ours)
                if name == 'throughput':
                    row['eager_throughput'] = \
                        settings.throughput_batch / eager.median
                else:
                    row[f'eager_{name}_ms'] = eager.median * 1e3
    peaks = {}
    if 'memory' in settings.measures:
        peaks = PeakMemory(settings.throughput_batch,
                           settings.train_batch).measure(subject)
        step(f'{stem}: memory')
        row['peak_infer_mb'] = peaks[('ours', 'infer')]
        row['peak_train_mb'] = peaks[('ours', 'train')]
    return comparison_lines(timings, peaks, diff, settings) \
        if ref is not None else None


def _output_difference(subject: Subject, other: str
                       ) -> Optional[Tuple[float, float]]:
    """Largest |ours - other| on one random batch-1 input, absolute and
    relative to the largest |other| output value (None: shapes differ)."""
    x = subject.batch(1)
    with torch.no_grad():
        theirs = subject.infer[other](x)
        diff = max_abs_diff(subject.infer['ours'](x), theirs)
    if diff is None:
        return None
    scale = max(t.abs().max().item() for t in output_tensors(theirs))
    return diff, diff / max(scale, 1e-12)


def run_benchmark(configs: Sequence[str], settings: BenchmarkSettings
                  ) -> Tuple[List[Dict], List[str], List[str]]:
    """Benchmark every config with a progress bar.

    Returns:
        tuple: (rows, header lines, comparison reports).
    """
    settings.validate()
    if settings.compare and len(configs) != 1:
        raise InvalidInputError(f'--compare needs exactly one config, got '
                                f'{len(configs)}')
    phases = 1 + sum(m != 'flops' for m in settings.measures) + (
        settings.backend == 'onnxruntime')
    progress = Progress(phases * len(configs), 'measurements')
    rows, reports = [], []
    try:
        for path in configs:
            row, lines = benchmark_config(path, settings, progress)
            rows.append(row)
            if lines:
                reports.append(lines)
    finally:
        progress.close()
    header = ['# Benchmark (`tools/benchmark.py`)', ''] + \
        environment_lines(settings)
    return rows, header, reports
