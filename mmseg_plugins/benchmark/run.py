"""Benchmarking configs: build each model, take the measurements of
:mod:`.measures` and assemble one table row per config (and, with a
reference, the comparison lines). ``tools/benchmark.py`` parses the command
line and calls :func:`run_benchmark`."""
import contextlib
import copy
import fnmatch
import os
import os.path as osp
import platform
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..accelerate import (autocast, check_compile, check_precision,
                          compile_in_place)
from ..builder import build_model, build_segmentor  # noqa: F401
from ..config import load_config
from ..errors import ConfigError, InvalidInputError
from ..forward import SegmentorForward, folded_bn_copy
from ..reporting import Progress
from .figures import paper_figures
from .measures import (FlopCount, InferenceForward, InferenceTiming,
                       PeakMemory, Subject, Timing, TrainStepTiming,
                       count_params, generic_train_step, make_seg_samples,
                       max_abs_diff, output_tensors, paired_ratio)
from .references import build_reference, load_builder

__all__ = [
    'MEASURES', 'BenchmarkSettings', 'collect_configs', 'build_segmentor',
    'build_model', 'benchmark_config', 'comparison_lines',
    'environment_lines', 'run_benchmark'
]

#: The measurements a run may skip.
MEASURES = ('flops', 'latency', 'throughput', 'train', 'memory')


@dataclass
class BenchmarkSettings:
    """Everything a benchmark run is told (the tool's options)."""
    shape: Tuple[int, int] = (512, 512)
    flops_shape: Optional[Tuple[int, int]] = None
    repeats: int = 10
    warmup: int = 2
    throughput_batch: int = 8
    throughput_repeats: int = 3
    train_batch: int = 2
    train_repeats: int = 3
    skip: Sequence[str] = ()
    device: str = 'cpu'
    precision: str = 'fp32'
    checkpoint: Optional[str] = None
    fuse_bn: bool = False
    backbone_only: bool = False
    compare: Optional[str] = None
    compile: Optional[str] = None
    compile_backend: str = 'inductor'
    channels_last: bool = False
    backend: str = 'pytorch'
    exporter: str = 'dynamo'
    versus_eager: bool = False
    measures: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        # ONNX Runtime runs inference only, and its memory is not tensors
        # the PyTorch profiler sees: no training step, no peak memory
        pytorch_only = ('train', 'memory') if self.backend == 'onnxruntime' \
            else ()
        self.measures = [m for m in MEASURES
                         if m not in self.skip and m not in pytorch_only]

    def validate(self) -> None:
        """Raise ``InvalidInputError`` for settings no measurement can use."""
        h, w = self.shape
        sizes = [h, w] + list(self.flops_shape or [])
        if min(sizes) < 32:
            raise InvalidInputError(
                f'input sizes must be at least 32x32, got --shape {h}x{w}' +
                (f', --flops-shape {self.flops_shape[0]}x'
                 f'{self.flops_shape[1]}' if self.flops_shape else ''))
        counts = (self.repeats, self.throughput_batch,
                  self.throughput_repeats, self.train_batch,
                  self.train_repeats)
        if min(counts) < 1 or self.warmup < 0:
            raise InvalidInputError('batch sizes and repeats must be positive and '
                            '--warmup not negative')
        check_precision(self.precision, self.device)
        if self.compile:
            check_compile(self.compile, self.compile_backend, self.device)
        if self.compare:
            load_builder(self.compare)  # fail before any measurement
        if self.versus_eager and (self.compare or
                                  self.backend == 'onnxruntime'):
            raise InvalidInputError('--versus-eager times our model beside its own '
                            'eager fp32 copy: no --compare, no --backend '
                            'onnxruntime')
        if self.backend == 'onnxruntime':
            self._validate_onnxruntime()

    def _validate_onnxruntime(self) -> None:
        if self.compare or self.backbone_only:
            raise InvalidInputError('--backend onnxruntime measures the exported '
                            'segmentor: no --compare, no --backbone-only')
        if self.precision != 'fp32' or self.compile or self.channels_last:
            raise InvalidInputError('--backend onnxruntime times the fp32 export '
                            'beside PyTorch eager: no --precision '
                            'fp16/bf16, --compile or --channels-last')
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidInputError("--backend onnxruntime needs the deploy extra: "
                            "pip install 'mmseg_plugins[deploy]'") from None
        if self.device.startswith('cuda') and \
                'CUDAExecutionProvider' not in ort.get_available_providers():
            raise InvalidInputError('--device cuda: this onnxruntime has no CUDA '
                            'execution provider (install onnxruntime-gpu)')

    def autocast(self):
        """The precision context of every measured call."""
        return autocast(self.precision, self.device)


def collect_configs(paths: Sequence[str],
                    patterns: Sequence[str]) -> List[str]:
    """Config files named in ``paths``, or found recursively in folders
    (``_base_`` skipped) with a file name matching one of ``patterns``."""
    found = []
    for path in paths:
        if osp.isfile(path):
            found.append(path)
        elif osp.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != '_base_')
                found += [osp.join(root, f) for f in sorted(files)
                          if f.endswith('.py') and any(
                              fnmatch.fnmatch(f, p) for p in patterns)]
        else:
            raise ConfigError(f'config file not found: {path}')
    if not found:
        raise ConfigError(f'no config matching {list(patterns)} under '
                        f'{list(paths)}')
    return found


def _with_autocast(fn: Callable, settings: BenchmarkSettings) -> Callable:
    def call(x):
        with settings.autocast():
            return fn(x)
    return call


def _subject(model: nn.Module, target: nn.Module, ref,
             settings: BenchmarkSettings) -> Subject:
    """Our inference call (BatchNorm folded with ``fuse_bn``) and training
    step, and the reference's: ``model.loss`` (all heads) for a whole
    segmentor alone, the same generic step (mean of the outputs) for both
    models when comparing or for a backbone. With ``versus_eager`` a copy
    of the model taken before any option is applied runs beside ours as
    ``'eager'``: float32, no autocast, not compiled, contiguous layout,
    BatchNorm not folded."""
    eager = copy.deepcopy(model) if settings.versus_eager else None
    infer_target = target
    if settings.fuse_bn:
        infer_target = folded_bn_copy(target)
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
    measured alone; the generic step (mean of the outputs) beside a
    reference or for a backbone."""
    if ref is not None or settings.backbone_only:
        return generic_train_step(target, list(target.parameters()))
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
        row['gflops'] = FlopCount(flops_shape).measure(counted,
                                                       settings.device)
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
        lines = _measure(subject, ref, row, settings, stem, step)
    return row, lines


def _onnxruntime_subject(cfg, model: nn.Module, checkpoint_meta: dict,
                         settings: BenchmarkSettings, row: Dict,
                         stack: contextlib.ExitStack) -> Subject:
    """Export the segmentor (dynamic shapes, logits, verified at three
    sizes) into a temporary folder that lives as long as ``stack``; record
    the export time, file size and largest differences in ``row``; return
    the PyTorch module that was exported (eager, BatchNorm folded with
    ``fuse_bn``) beside the ONNX Runtime session of the file."""
    import tempfile

    from ..deploy import ExportSettings, export_metadata, export_onnx
    export_settings = ExportSettings(
        shape=tuple(settings.shape), dynamic=True, output='logits',
        normalize=False, exporter=settings.exporter,
        fuse_bn=settings.fuse_bn)
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
    if settings.fuse_bn:
        ours = folded_bn_copy(model)
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


def comparison_lines(timings: Dict[str, List[Timing]],
                     peaks: Dict[Tuple[str, str], float],
                     diff: Optional[Tuple[float, float]],
                     settings: BenchmarkSettings) -> str:
    """Ours against the reference: times, ratios, memory, output
    difference."""
    lines = []
    labels = dict(
        latency='latency (batch 1)',
        throughput=f'throughput (batch {settings.throughput_batch})',
        train=f'train step (batch {settings.train_batch})')
    for key, label in labels.items():
        if key not in timings:
            continue
        ours, ref = timings[key]
        lines.append(
            f'  {label}: ours median {ours.median * 1e3:.1f} ms, reference '
            f'median {ref.median * 1e3:.1f} ms; throughput ratio (reference'
            f' / ours): {ref.median / ours.median:.2f}x of medians, '
            f'{paired_ratio(ref, ours):.2f}x median of paired repeats')
    for mode, label in (
            ('infer', f'inference (batch {settings.throughput_batch})'),
            ('train', f'train step (batch {settings.train_batch})')):
        if ('ours', mode) in peaks:
            o, r = peaks[('ours', mode)], peaks[('reference', mode)]
            lines.append(f'  peak memory {label}: ours {o:.0f} MiB, '
                         f'reference {r:.0f} MiB; ours / reference '
                         f'{o / r:.2f}x')
    lines.append('  max abs output difference: ' + (
        'shapes differ' if diff is None else
        f'{diff[0]:.3g} ({diff[1]:.2g} of the largest output value)'))
    return '\n'.join(lines)


def environment_lines(settings: BenchmarkSettings) -> List[str]:
    """The header of a table: device, versions, settings, conventions."""
    import mmcv
    import mmengine
    import mmseg
    if settings.device.startswith('cuda'):
        where = torch.cuda.get_device_name(0)
    else:
        where = (f'CPU ({platform.processor() or platform.machine()}, '
                 f'{os.cpu_count()} cores, {torch.get_num_threads()} '
                 'threads)')
    h, w = settings.shape
    lines = [
        f'- device: {where}; precision {settings.precision}',
        f'- torch {torch.__version__}, mmseg {mmseg.__version__}, mmengine '
        f'{mmengine.__version__}, mmcv {mmcv.__version__}, python '
        f'{platform.python_version()}',
        f'- timing input {h}x{w}; latency: batch 1, median of '
        f'{settings.repeats} after {settings.warmup} warm-up; throughput: '
        f'batch {settings.throughput_batch}, median of '
        f'{settings.throughput_repeats}; train step (model.loss + '
        f'backward): batch {settings.train_batch}, median of '
        f'{settings.train_repeats}' +
        ('; BatchNorm folded for inference' if settings.fuse_bn else '') +
        (f'; torch.compile mode {settings.compile}, backend '
         f'{settings.compile_backend}' if settings.compile else '') +
        ('; channels-last' if settings.channels_last else ''),
        '- params: unique, auxiliary heads included; GFLOPs: fvcore '
        'convention (mmengine FlopAnalyzer), inference path, at the '
        "paper's input size; peak memory: live tensors during one call",
    ]
    if settings.versus_eager:
        lines.append(
            '- beside eager: the same model as built (float32, no autocast, '
            'not compiled, contiguous, BatchNorm not folded) timed '
            'alternating call by call with the measured one; speed-up = '
            'median over repeats of eager time / measured time (> 1: '
            'faster than eager); rel. diff = largest |measured - eager| '
            'logit over the largest eager logit (batch 1, random input)')
    if settings.backend == 'onnxruntime':
        import onnxruntime as ort

        from ..deploy.export import verification_shapes
        shapes = ', '.join(f'{s[1]}x{s[2]} (batch {s[0]})' for s in
                           verification_shapes(settings.shape, 32, True))
        lines.append(
            f'- onnxruntime {ort.__version__} '
            f'({"CUDA" if settings.device.startswith("cuda") else "CPU"} '
            f'execution provider, {torch.get_num_threads()} threads) beside '
            'PyTorch eager on the same input, PyTorch first, then ORT in '
            'a session opened for each timing (a live session\'s memory '
            'arena slows PyTorch in the same process, so they do not '
            f'alternate); throughput after {settings.warmup} warm-up calls '
            'each; both run the exported '
            'computation (backbone, decode head, resize of the logits to '
            'the input); ORT times include the tensor <-> numpy copies; '
            'ratios: median PyTorch time / median ORT time (> 1: ORT '
            f'faster); {settings.exporter} exporter, '
            'dynamic shapes, export time = exporter + save, without the '
            'verification; max diff: largest |ORT - PyTorch| relative to '
            f'the largest logit, at {shapes} (random inputs)')
    return lines


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
