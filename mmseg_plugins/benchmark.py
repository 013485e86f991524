"""Model benchmarks: parameters, FLOPs, latency, throughput, training-step
time and peak memory, beside the papers' figures. Used by
``tools/benchmark.py``.

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
* **Latency** is the median wall time of a batch-1 inference call,
  **throughput** images per second of a larger batch, the **training step**
  ``model.loss`` (all heads, cross entropy) plus backward, no optimiser
  step; each after warm-up calls. With ``--compare`` the models alternate
  call by call, so slow drift of the machine affects both alike.
* **Peak memory** is the peak of live tensor memory during one call: on
  CUDA ``torch.cuda.max_memory_allocated``; on CPU the running sum of
  allocations and frees recorded by the PyTorch profiler (independent of
  the C allocator's caching, so repeatable).
"""
import contextlib
import csv
import importlib
import inspect
import io
import os
import os.path as osp
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'Timing', 'PaperFigures', 'PAPER_FIGURES', 'paper_figures',
    'load_builder', 'build_reference', 'mmseg_mix_vision_transformer',
    'time_models', 'paired_ratio', 'generic_train_step', 'max_abs_diff',
    'output_tensors', 'count_params', 'count_flops', 'peak_memory_mb',
    'InferenceForward', 'make_seg_samples', 'format_table', 'write_tables',
    'plot_miou_vs_flops'
]


# ---------------------------------------------------------------------------
# The papers' figures
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperFigures:
    """What a paper publishes for one config.

    Args:
        model (str): Display name.
        flops_shape (tuple): (H, W) at which the paper counts FLOPs.
        params_m (float, optional): Published parameters (M).
        gflops (float, optional): Published GFLOPs.
        miou (float, optional): Published single-scale mIoU.
        source (str): Where the numbers are printed.
    """
    model: str
    flops_shape: Tuple[int, int] = (512, 512)
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    miou: Optional[float] = None
    source: str = ''


_SEGFORMER = 'SegFormer paper Table 1(a) (ADE20K, single-scale)'
_AFFORMER = 'AFFormer paper abstract / README (ADE20K)'
_MPVIT = 'MPViT README, semantic_segmentation (ADE20K, UperNet)'
#: Keyed by config file name (without ``.py``). SegFormer-B5's published
#: ADE20K figures are at 640x640 (our B5 config, like mmseg's, trains at
#: 512x512); MPViT counts FLOPs at 2048x512 with mmcv's hook counter.
#: AFFormer-tiny/small and MPViT-tiny/xsmall segmentation figures are not
#: published (or not in our reference notes): left empty.
PAPER_FIGURES: Dict[str, PaperFigures] = {
    'segformer_mit-b0_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B0', (512, 512), 3.8, 8.4, 37.4, _SEGFORMER),
    'segformer_mit-b1_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B1', (512, 512), 13.7, 15.9, 42.2, _SEGFORMER),
    'segformer_mit-b2_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B2', (512, 512), 27.5, 62.4, 46.5, _SEGFORMER),
    'segformer_mit-b3_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B3', (512, 512), 47.3, 79.0, 49.4, _SEGFORMER),
    'segformer_mit-b4_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B4', (512, 512), 64.1, 95.7, 50.3, _SEGFORMER),
    'segformer_mit-b5_8xb2-160k_ade20k-512x512':
    PaperFigures('SegFormer-B5', (640, 640), 84.7, 183.3, 51.0, _SEGFORMER),
    'afformer_tiny_ade20k': PaperFigures('AFFormer-tiny', (512, 512)),
    'afformer_small_ade20k': PaperFigures('AFFormer-small', (512, 512)),
    'afformer_base_ade20k':
    PaperFigures('AFFormer-base', (512, 512), 3.0, 4.6, 41.8, _AFFORMER),
    'mpvit_tiny_upernet_ade20k': PaperFigures('MPViT-T UperNet', (512, 2048)),
    'mpvit_xsmall_upernet_ade20k':
    PaperFigures('MPViT-XS UperNet', (512, 2048)),
    'mpvit_small_upernet_ade20k':
    PaperFigures('MPViT-S UperNet', (512, 2048), 52.0, 943.0, 48.3, _MPVIT),
    'mpvit_base_upernet_ade20k':
    PaperFigures('MPViT-B UperNet', (512, 2048), 105.0, 1185.0, 50.3,
                 _MPVIT),
}


def paper_figures(config_path: str) -> Optional[PaperFigures]:
    """The published figures for a config file, if known."""
    return PAPER_FIGURES.get(osp.splitext(osp.basename(config_path))[0])


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    """Unique parameters (shared modules counted once)."""
    return sum(p.numel() for p in model.parameters())


class InferenceForward(nn.Module):
    """What a segmentor computes at test time for a batch: backbone, decode
    head, resize of the logits to the input size (no auxiliary head)."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seg = self.segmentor
        logits = seg.decode_head(seg.extract_feat(x))
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=seg.align_corners)


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
                device: str = 'cpu') -> Tuple[float, Counter]:
    """FLOPs of one image at ``shape`` (H, W), in the fvcore convention.

    Args:
        model (nn.Module): A module taking a (1, 3, H, W) batch (e.g.
            :class:`InferenceForward`).
        shape (tuple): (H, W).
        device (str): Where to trace.

    Returns:
        tuple: (GFLOPs, Counter of operators that were not counted).
    """
    from mmengine.analysis import FlopAnalyzer
    x = torch.randn(1, 3, *shape, device=device)
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

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        if len(self.times) < 4:
            return 0.0
        q = statistics.quantiles(self.times, n=4)
        return (q[2] - q[0]) / self.median


def load_builder(path: str) -> Callable:
    """Resolve ``package.module:function`` (or ``package.module.function``)
    to a callable."""
    if ':' in path:
        module_name, attr = path.split(':', 1)
    else:
        module_name, _, attr = path.rpartition('.')
    if not module_name or not attr:
        raise ValueError(f'--compare needs module.path:builder, got {path!r}')
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f'cannot import {module_name!r} for --compare: '
                         f'{err}') from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ValueError(f'{module_name!r} has no callable {attr!r}')
    return builder


def build_reference(builder: Callable, ours: nn.Module) -> nn.Module:
    """Call the builder; one that takes an argument receives our model (so
    it can share weights with it)."""
    params = [
        p for p in inspect.signature(builder).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                               p.POSITIONAL_OR_KEYWORD)
    ]
    ref = builder(ours) if params else builder()
    if not callable(ref):
        raise ValueError('the --compare builder must return a module or a '
                         'callable')
    if isinstance(ref, nn.Module):
        ref.eval()
    return ref


def mmseg_mix_vision_transformer(ours: nn.Module) -> nn.Module:
    """A ``--compare`` builder: mmseg's own ``MixVisionTransformer`` of the
    variant of ``ours`` (our ``MiT`` backbone; use ``--backbone-only``),
    whose weights are loaded into ``ours`` through the converter rules. Our
    LayerNorm epsilons are set to mmseg's (1e-6 everywhere), so the two
    compute the same function."""
    from mmseg.models.backbones import MixVisionTransformer

    from .converters.rules import convert_state_dict
    from .converters.segformer import MMSEG_MIT_TO_MIT
    s = ours.arch_settings
    ref = MixVisionTransformer(
        embed_dims=s['embed_dims'][0], num_layers=list(s['depths']),
        num_heads=list(s['num_heads']), out_indices=ours.out_indices)
    ref.init_weights()
    mapped, _ = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    ours.load_state_dict(mapped, strict=True)
    for m in ours.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-6
    return ref.eval()


def output_tensors(out) -> List[torch.Tensor]:
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


def generic_train_step(fn: Callable, params: Sequence[nn.Parameter]
                       ) -> Callable[[torch.Tensor], None]:
    """Forward, mean of every output, backward, clear the gradients: the
    same step for any two models that return tensors."""

    def step(x: torch.Tensor) -> None:
        loss = sum(t.float().mean() for t in output_tensors(fn(x)))
        loss.backward()
        for p in params:
            p.grad = None

    return step


def time_models(models: Dict[str, Callable[[torch.Tensor], object]],
                inputs: torch.Tensor,
                repeats: int = 20,
                warmup: int = 3,
                progress: Optional[Callable[[int, int], None]] = None,
                grad: bool = False) -> Sequence[Timing]:
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


# ---------------------------------------------------------------------------
# Tables and plot
# ---------------------------------------------------------------------------
#: (key, header) of the table columns, in order.
COLUMNS = (
    ('config', 'config'),
    ('model', 'model'),
    ('params_m', 'params (M)'),
    ('paper_params_m', 'paper params (M)'),
    ('flops_shape', 'FLOPs input'),
    ('gflops', 'GFLOPs'),
    ('paper_gflops', 'paper GFLOPs'),
    ('latency_ms', 'latency b1 (ms)'),
    ('throughput', 'throughput (img/s)'),
    ('train_ms', 'train step (ms)'),
    ('peak_infer_mb', 'peak mem infer (MiB)'),
    ('peak_train_mb', 'peak mem train (MiB)'),
    ('paper_miou', 'paper mIoU'),
)


def _fmt(value) -> str:
    if value is None:
        return '—'
    if isinstance(value, float):
        if value >= 100:
            return f'{value:.0f}'
        return f'{value:.2f}' if value < 10 else f'{value:.1f}'
    return str(value)


def format_table(rows: Sequence[Dict]) -> str:
    """Markdown table of the rows (missing values as an em dash)."""
    head = '| ' + ' | '.join(h for _, h in COLUMNS) + ' |'
    rule = '|' + '|'.join('---' for _ in COLUMNS) + '|'
    lines = [head, rule]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(row.get(k)) for k, _ in COLUMNS) +
                     ' |')
    return '\n'.join(lines)


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_tables(rows: Sequence[Dict], header_lines: Sequence[str],
                 out_dir: str, stem: str = 'benchmark') -> Tuple[str, str]:
    """Write ``<stem>.md`` (header lines + table) and ``<stem>.csv``
    atomically; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    md = osp.join(out_dir, f'{stem}.md')
    text = '\n'.join(list(header_lines) + ['', format_table(rows), ''])
    _atomic_write(md, text.encode())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([k for k, _ in COLUMNS])
    for row in rows:
        writer.writerow(['' if row.get(k) is None else row.get(k)
                         for k, _ in COLUMNS])
    path = osp.join(out_dir, f'{stem}.csv')
    _atomic_write(path, buf.getvalue().encode())
    return md, path


def plot_miou_vs_flops(rows: Sequence[Dict], path: str,
                       title: str = '') -> Optional[str]:
    """Scatter of the papers' mIoU against our counted GFLOPs (log x), one
    colour per family; rows without a published mIoU are left out. Returns
    ``path``, or None when no row has a published mIoU."""
    points = [r for r in rows
              if r.get('paper_miou') is not None and r.get('gflops')]
    if not points:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    families: Dict[str, List[Dict]] = {}
    for r in points:
        families.setdefault(r['model'].split('-')[0], []).append(r)
    for family, rs in families.items():
        rs = sorted(rs, key=lambda r: r['gflops'])
        ax.plot([r['gflops'] for r in rs], [r['paper_miou'] for r in rs],
                marker='o', label=family)
        for r in rs:
            ax.annotate(r['model'].split('-', 1)[-1],
                        (r['gflops'], r['paper_miou']),
                        textcoords='offset points', xytext=(4, -10),
                        fontsize=8)
    ax.set_xscale('log')
    ax.set_xlabel('GFLOPs (counted by tools/benchmark.py, paper input size)')
    ax.set_ylabel('ADE20K mIoU (published, single scale)')
    ax.grid(True, which='both', alpha=.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    _atomic_write(path, buf.getvalue())
    return path
