"""What a benchmark run is told: :class:`BenchmarkSettings` (the tool's
options, validated before any measurement) and the configs it measures
(:func:`collect_configs`)."""
import fnmatch
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..accelerate import autocast, check_compile, check_precision
from ..errors import ConfigError, InvalidInputError
from ..forward import DEFAULT_MIN_INPUT_SIZE
from .references import load_builder

__all__ = ['MEASURES', 'BenchmarkSettings', 'collect_configs']

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
    fuse: bool = True
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
        least = DEFAULT_MIN_INPUT_SIZE
        if min(sizes) < least:
            raise InvalidInputError(
                f'input sizes must be at least {least}x{least}, got --shape '
                f'{h}x{w}' +
                (f', --flops-shape {self.flops_shape[0]}x'
                 f'{self.flops_shape[1]}' if self.flops_shape else ''))
        counts = (self.repeats, self.throughput_batch,
                  self.throughput_repeats, self.train_batch,
                  self.train_repeats)
        if min(counts) < 1 or self.warmup < 0:
            raise InvalidInputError(
                'batch sizes and repeats must be positive and '
                '--warmup not negative')
        check_precision(self.precision, self.device)
        if self.compile:
            check_compile(self.compile, self.compile_backend, self.device)
        if self.compare:
            load_builder(self.compare)  # fail before any measurement
        if self.versus_eager and (self.compare or
                                  self.backend == 'onnxruntime'):
            raise InvalidInputError(
                '--versus-eager times our model beside its own '
                'eager fp32 copy: no --compare, no --backend '
                'onnxruntime')
        if self.backend == 'onnxruntime':
            self._validate_onnxruntime()

    def _validate_onnxruntime(self) -> None:
        if self.compare or self.backbone_only:
            raise InvalidInputError(
                '--backend onnxruntime measures the exported '
                'segmentor: no --compare, no --backbone-only')
        if self.precision != 'fp32' or self.compile or self.channels_last:
            raise InvalidInputError(
                '--backend onnxruntime times the fp32 export '
                'beside PyTorch eager: no --precision '
                'fp16/bf16, --compile or --channels-last')
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidInputError(
                "--backend onnxruntime needs the deploy extra: "
                "pip install 'mmseg_plugins[deploy]'") from None
        if self.device.startswith('cuda') and \
                'CUDAExecutionProvider' not in ort.get_available_providers():
            raise InvalidInputError(
                '--device cuda: this onnxruntime has no CUDA '
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
