"""The text of a benchmark report beside its table: the header
(:func:`environment_lines`: device, versions, settings, conventions) and,
against a reference, the comparison lines (:func:`comparison_lines`)."""
import os
import platform
from typing import Dict, List, Optional, Tuple

import torch

from ..forward import DEFAULT_MIN_INPUT_SIZE
from .measures import Timing, paired_ratio
from .settings import BenchmarkSettings

__all__ = ['comparison_lines', 'environment_lines', 'cpu_description']

#: The vector extensions that set a CPU's matrix-multiply rate, widest
#: first: the first present is named (``torch.backends.cpu`` names the
#: level PyTorch dispatches to).
_VECTOR_FLAGS = ('amx_tile', 'avx512f', 'avx2')


def cpu_description(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU's model name and its widest vector extension from
    ``cpuinfo`` (Linux), e.g. ``'AMD EPYC, avx2'``; where that file cannot
    be read, ``platform.processor()`` or the machine type. Machines of one
    kind differ (AVX2-only EPYCs, AVX-512/AMX Xeons) by up to several times
    in matrix-multiply rate, so a table says which one measured it."""
    name, flags = '', set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not name:
                    name = value.strip()
                elif key == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    vector = next((v for v in _VECTOR_FLAGS if v in flags), None)
    return f'{name}, {vector}' if vector else name


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
        where = (f'CPU ({cpu_description()}, {os.cpu_count()} cores, '
                 f'{torch.get_num_threads()} threads)')
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
        ('; fused for inference' if settings.fuse else '') +
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
            'not compiled, contiguous, not fused) timed '
            'alternating call by call with the measured one; speed-up = '
            'median over repeats of eager time / measured time (> 1: '
            'faster than eager); rel. diff = largest |measured - eager| '
            'logit over the largest eager logit (batch 1, random input)')
    if settings.backend == 'onnxruntime':
        import onnxruntime as ort

        from ..deploy.export import verification_shapes
        shapes = ', '.join(f'{s[1]}x{s[2]} (batch {s[0]})' for s in
                           verification_shapes(settings.shape,
                                               DEFAULT_MIN_INPUT_SIZE, True))
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
