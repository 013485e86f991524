"""The measurements of a benchmark, one object each: FLOPs
(:class:`FlopCount`), inference time (:class:`InferenceTiming`, for latency
and throughput), training-step time (:class:`TrainStepTiming`) and peak
memory (:class:`PeakMemory`), all taken on a :class:`Subject`: our model,
optionally beside a reference, as callables on an input batch.

Conventions (stated in every table the tool writes):

* **Parameters** are unique tensors (``model.parameters()`` de-duplicates
  shared modules) of the model the config builds, auxiliary heads included
  (the papers' counts: SegFormer has none, MPViT's 52M/105M include the FCN
  auxiliary head).
* **GFLOPs** are counted by ``mmengine.analysis.FlopAnalyzer`` (the fvcore
  counter: one multiply-add = one FLOP; convolutions, linear layers, matmul,
  bmm, einsum, interpolation and norms counted; elementwise operations
  ignored), plus a rule for ``scaled_dot_product_attention`` (its two
  matrix products), over the inference computation: backbone, decode head
  and the final resize to the input size, no auxiliary head, no grad.
* **Latency** is the median wall time of a batch-1 inference call (for a
  segmentor its inference computation,
  :class:`~mmseg_plugins.forward.SegmentorForward`: backbone, decode head
  and the resize of the logits to the input, the computation that FLOPs
  count and ONNX Runtime runs), **throughput** images per second of a
  larger batch, the **training step**
  ``model.loss`` (all heads, cross entropy) plus backward, no optimiser
  step; each after warm-up calls. With a reference the models alternate
  call by call, so slow drift of the machine affects both alike.
* **Peak memory** is the peak of live tensor memory during one call: on
  CUDA ``torch.cuda.max_memory_allocated``; on CPU the running sum of
  allocations and frees recorded by the PyTorch profiler (independent of
  the C allocator's caching, so repeatable).
"""
import contextlib
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..forward import SegmentorForward

#: The inference computation under the name the benchmark has always used.
InferenceForward = SegmentorForward

__all__ = [
    'count_params', 'InferenceForward', 'count_flops', 'peak_memory_mb',
    'make_seg_samples', 'Timing', 'time_models', 'paired_ratio',
    'output_tensors', 'max_abs_diff', 'generic_train_step', 'Subject',
    'FlopCount', 'InferenceTiming', 'TrainStepTiming', 'PeakMemory'
]

Call = Callable[[torch.Tensor], Any]


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    """Unique parameters (shared modules counted once)."""
    return sum(p.numel() for p in model.parameters())


def _sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``scaled_dot_product_attention``: q k^T and attn v."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    n_q, d_k, n_k, d_v = q[-2], q[-1], k[-2], v[-1]
    return batch * n_q * n_k * (d_k + d_v)


def count_flops(model: nn.Module,
                shape: Tuple[int, int],
                device: str = 'cpu',
                channels: int = 3) -> Tuple[float, Counter]:
    """FLOPs of one image at ``shape`` (H, W), in the fvcore convention.

    Args:
        model (nn.Module): A module taking a (1, C, H, W) batch (e.g.
            :class:`InferenceForward`).
        shape (tuple): (H, W).
        device (str): Where to trace.
        channels (int): C, the model's input channels (its
            :class:`~mmseg_plugins.model_input.ModelInput`). Default: 3.

    Returns:
        tuple: (GFLOPs, Counter of operators that were not counted).
    """
    from mmengine.analysis import FlopAnalyzer
    x = torch.randn(1, channels, *shape, device=device)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, x)
        analyzer.set_op_handle(
            'aten::scaled_dot_product_attention', _sdpa_flop_jit)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        total = analyzer.total()
        skipped = analyzer.unsupported_ops()
    return total / 1e9, skipped


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler library logs its start and
    stop there, bypassing Python)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_mb(fn: Callable[[], Any], device: str) -> Optional[float]:
    """Peak live tensor memory (MiB) while ``fn()`` runs (see the module
    docstring), above what was allocated before."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU],
                                  profile_memory=True) as p:
        fn()
    events = sorted(
        (e.time_range.start, e.cpu_memory_usage
         if e.name == '[memory]' else e.self_cpu_memory_usage)
        for e in p.events())
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak / 2**20


def make_seg_samples(batch: int, shape: Tuple[int, int], num_classes: int,
                     device: str = 'cpu') -> list:
    """Random ground truth for ``segmentor.loss``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, *shape), generator=g).to(device))
        s.set_metainfo(dict(img_shape=shape, pad_shape=shape,
                            ori_shape=shape))
        samples.append(s)
    return samples


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
@dataclass
class Timing:
    """Per-call wall times (seconds) of one model."""
    name: str
    times: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def time_models(models: Dict[str, Call],
                inputs: torch.Tensor,
                repeats: int = 20,
                warmup: int = 3,
                progress: Optional[Callable[[int, int], None]] = None,
                grad: bool = False) -> List[Timing]:
    """Time each model on ``inputs``, alternating between them every repeat.

    Args:
        models (dict): ``{name: callable(inputs)}``.
        inputs (Tensor): The input batch.
        repeats (int): Timed calls per model.
        warmup (int): Untimed calls per model first.
        progress (callable, optional): ``progress(done, total)``.
        grad (bool): Run with autograd (training steps); else no_grad.

    Returns:
        list[Timing]: In the order of ``models``.
    """
    timings = [Timing(name) for name in models]
    fns = list(models.values())
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    with torch.set_grad_enabled(grad):
        for fn in fns:
            for _ in range(warmup):
                fn(inputs)
        for r in range(repeats):
            for fn, timing in zip(fns, timings):
                sync()
                start = time.perf_counter()
                fn(inputs)
                sync()
                timing.times.append(time.perf_counter() - start)
            if progress is not None:
                progress(r + 1, repeats)
    return timings


def paired_ratio(reference: Timing, ours: Timing) -> float:
    """Median of the per-repeat ratios reference / ours."""
    return statistics.median(
        r / o for r, o in zip(reference.times, ours.times))


def output_tensors(out) -> List[torch.Tensor]:
    """Every tensor in a (nested) model output."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in output_tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in output_tensors(o)]
    raise TypeError(f'cannot compare outputs of type {type(out).__name__}')


def max_abs_diff(a, b) -> Optional[float]:
    """Max |a - b| over all output tensors (lists compared element-wise),
    None if their shapes differ."""
    ta, tb = output_tensors(a), output_tensors(b)
    if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
        return None
    return max((x.float() - y.float()).abs().max().item()
               for x, y in zip(ta, tb))


def generic_train_step(fn: Call, params: Sequence[nn.Parameter]) -> Call:
    """Forward, mean of every output, backward, clear the gradients: the
    same step for any two models that return tensors."""

    def step(x: torch.Tensor) -> None:
        loss = sum(t.float().mean() for t in output_tensors(fn(x)))
        loss.backward()
        for p in params:
            p.grad = None

    return step


# ---------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------
@dataclass
class Subject:
    """What a benchmark measures: named inference calls and training steps
    (``'ours'`` first, then optionally ``'reference'``) on a batch, and the
    modules to switch to training mode for the training measurements.

    Args:
        infer (dict): ``{name: callable(batch)}`` for inference.
        train (dict): ``{name: callable(batch)}``, forward and backward.
        modules (list): Modules set to ``train()`` around training steps
            and back to ``eval()`` afterwards.
        input_shape (tuple): (H, W) of the inputs.
        device (str): Where the inputs are made.
        channels_last (bool): Make channels-last inputs.
        channels (int): The inputs' channels (the model's
            :class:`~mmseg_plugins.model_input.ModelInput`).
    """
    infer: Dict[str, Call]
    train: Dict[str, Call]
    modules: List[nn.Module]
    input_shape: Tuple[int, int]
    device: str = 'cpu'
    channels_last: bool = False
    channels: int = 3

    def batch(self, size: int) -> torch.Tensor:
        x = torch.randn(size, self.channels, *self.input_shape,
                        device=self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def training(self):
        for m in self.modules:
            m.train()
        try:
            yield
        finally:
            for m in self.modules:
                m.eval()


@dataclass
class FlopCount:
    """GFLOPs of one image at ``shape`` (see :func:`count_flops`)."""
    shape: Tuple[int, int]
    channels: int = 3

    def measure(self, module: nn.Module, device: str = 'cpu') -> float:
        return count_flops(module.eval(), self.shape, device,
                           self.channels)[0]


@dataclass
class InferenceTiming:
    """Wall time of inference calls on a batch of ``batch`` images
    (``repeats`` timed calls after ``warmup``): every model of the subject
    alternating call by call, or with ``alternate=False`` one model after
    the other, each model's ``close()`` (where it has one) called after its
    phase."""
    batch: int
    repeats: int
    warmup: int
    alternate: bool = True

    def measure(self, subject: Subject) -> List[Timing]:
        x = subject.batch(self.batch)
        if self.alternate:
            return time_models(subject.infer, x, self.repeats, self.warmup)
        timings = []
        for name, call in subject.infer.items():
            timings += time_models({name: call}, x, self.repeats,
                                   self.warmup)
            getattr(call, 'close', lambda: None)()
        return timings


@dataclass
class TrainStepTiming:
    """Wall time of training steps (forward and backward, training mode)
    on a batch of ``batch`` images."""
    batch: int
    repeats: int
    warmup: int = 1

    def measure(self, subject: Subject) -> List[Timing]:
        with subject.training():
            return time_models(subject.train, subject.batch(self.batch),
                               self.repeats, self.warmup, grad=True)


@dataclass
class PeakMemory:
    """Peak live tensor memory (MiB) of one inference call on
    ``infer_batch`` images and one training step on ``train_batch``, for
    every model of the subject: ``{(name, 'infer' | 'train'): MiB}``."""
    infer_batch: int
    train_batch: int

    def measure(self, subject: Subject) -> Dict[Tuple[str, str], float]:
        peaks = {}
        xb = subject.batch(self.infer_batch)
        xt = subject.batch(self.train_batch)
        for name in subject.infer:
            with torch.no_grad():
                peaks[(name, 'infer')] = peak_memory_mb(
                    lambda: subject.infer[name](xb), subject.device)
            with subject.training(), torch.enable_grad():
                peaks[(name, 'train')] = peak_memory_mb(
                    lambda: subject.train[name](xt), subject.device)
        return peaks
