"""Side-by-side timing of a config's model and an optional reference.

Used by ``tools/benchmark.py``. Timings alternate between the models in one
process (same input, same threads), so drift affects both alike; the ratio
printed is ``reference median / ours median`` (> 1: ours is faster).
"""
import importlib
import inspect
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['Timing', 'load_builder', 'time_models', 'max_abs_diff']


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


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out:
        return _first_tensor(out[-1])
    raise TypeError(f'cannot compare outputs of type {type(out).__name__}')


def max_abs_diff(a, b) -> Optional[float]:
    """Max |a - b| of two outputs (last tensor of a list), None if their
    shapes differ."""
    ta, tb = _first_tensor(a), _first_tensor(b)
    if ta.shape != tb.shape:
        return None
    return (ta.float() - tb.float()).abs().max().item()


def time_models(models: Dict[str, Callable[[torch.Tensor], object]],
                inputs: torch.Tensor,
                repeats: int = 20,
                warmup: int = 3,
                progress: Optional[Callable[[int, int], None]] = None
                ) -> Sequence[Timing]:
    """Time each model on ``inputs`` under ``torch.no_grad()``, alternating
    between them every repeat.

    Args:
        models (dict): ``{name: callable(inputs)}``.
        inputs (Tensor): The input batch.
        repeats (int): Timed calls per model.
        warmup (int): Untimed calls per model first.
        progress (callable, optional): ``progress(done, total)``.

    Returns:
        list[Timing]: In the order of ``models``.
    """
    timings = [Timing(name) for name in models]
    fns = list(models.values())
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    with torch.no_grad():
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
