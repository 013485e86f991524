"""Checks of model arguments and inputs, each with a message that says
what is wrong and what would be right."""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

__all__ = [
    'resolve_arch', 'check_out_indices', 'check_min_input_size',
    'check_in_channels'
]


def resolve_arch(family: str,
                 arch,
                 table: Mapping[str, Dict],
                 required: Sequence[str],
                 num_stages: Optional[int] = None) -> Dict:
    """Look up a variant by name in ``table`` or validate a custom dict.

    Every setting is a per-stage sequence; all must have as many entries as
    ``depths`` (and ``num_stages`` entries when it is given).

    Args:
        family (str): Model family, used in error messages.
        arch (str | dict): Variant name or a dict with every ``required``
            key.
        table (Mapping): ``{name: settings}``.
        required (Sequence[str]): Keys a custom dict must provide.
        num_stages (int, optional): Fixed number of stages of the family.

    Returns:
        dict: A copy of the settings.

    Raises:
        ValueError: unknown name, incomplete dict or inconsistent lengths
            (the message lists the valid choices / missing keys / the bad
            entry).
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in table:
            raise ValueError(f'Unknown {family} arch {arch!r}; valid '
                             f'choices: {", ".join(table)}')
        settings = dict(table[key])
    elif isinstance(arch, Mapping):
        missing = [k for k in required if k not in arch]
        if missing:
            raise ValueError(f'Custom {family} arch is missing keys '
                             f'{missing}; it needs {list(required)}')
        settings = dict(arch)
    else:
        raise TypeError(f'{family} arch must be a name ({", ".join(table)}) '
                        f'or a dict, got {type(arch).__name__}')
    n = len(settings['depths']) if num_stages is None else num_stages
    for key, value in settings.items():
        if len(value) != n:
            raise ValueError(f'{family} arch: {key}={list(value)} has '
                             f'{len(value)} entries but depths has {n}'
                             if num_stages is None else
                             f'{family} arch: {key}={list(value)} must have '
                             f'{n} entries (one per stage)')
    return settings


def check_out_indices(family: str, out_indices: Sequence[int],
                      num_stages: int) -> Tuple[int, ...]:
    """Validate ``out_indices`` against the number of stages."""
    out_indices = tuple(out_indices)
    if not out_indices or any(i < 0 or i >= num_stages for i in out_indices):
        raise ValueError(f'{family} out_indices {list(out_indices)} must '
                         f'lie in [0, {num_stages - 1}]')
    return out_indices


def check_min_input_size(x: torch.Tensor, min_size: int, family: str) -> None:
    """Raise a clear error for inputs smaller than ``min_size`` on a side.

    Skipped while the TorchScript tracer runs: a traced graph cannot raise
    (the check would only be a warning about a recorded constant); ONNX
    files of this package store the minimum and their runner checks it.
    Under dynamo export the check bounds the exported dimensions.
    """
    if torch.jit.is_tracing():
        return
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(f'{family} needs inputs of at least {min_size}x'
                         f'{min_size} pixels, got {h}x{w}')


def check_in_channels(head: str, expected: Sequence[int],
                      inputs: Sequence[torch.Tensor]) -> None:
    """Raise a clear error when a head's ``in_channels`` does not match the
    feature maps it receives."""
    found = [int(x.shape[1]) for x in inputs]
    if found != list(expected):
        raise ValueError(f'{head} in_channels={list(expected)} but the '
                         f'backbone gives {found}; set in_channels to {found}')
