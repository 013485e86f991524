"""How a state dict fits a module: the module's keys it lacks, the keys the
module does not have and the keys of another shape (:class:`KeyReport`).
Every strict load of this package (:mod:`mmseg_plugins.weights.loading`,
the one path every checkpoint takes) states its refusals this way."""
from typing import List, Mapping, Tuple

import torch
import torch.nn as nn

__all__ = ['NAMES_SHOWN', 'KeyReport', 'compare_keys']

#: How many key names an error message lists per kind.
NAMES_SHOWN = 3


class KeyReport:
    """How a state dict fits a module: the module's keys it lacks, the keys
    the module does not have, and the keys whose shapes differ."""

    def __init__(self, missing: List[str], unexpected: List[str],
                 mismatched: List[Tuple[str, tuple, tuple]]) -> None:
        self.missing, self.unexpected = missing, unexpected
        self.mismatched = mismatched

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One line: the counts and the first names of each kind."""
        def names(keys):
            shown = ', '.join(keys[:NAMES_SHOWN])
            return shown + (', ...' if len(keys) > NAMES_SHOWN else '')
        parts = []
        if self.missing:
            parts.append(
                f'{len(self.missing)} missing ({names(self.missing)})')
        if self.unexpected:
            parts.append(f'{len(self.unexpected)} unexpected '
                         f'({names(self.unexpected)})')
        if self.mismatched:
            shown = [f'size mismatch for {k}: {tuple(a)} in the file, '
                     f'{tuple(b)} in the model'
                     for k, a, b in self.mismatched[:NAMES_SHOWN]]
            parts.append(f'{len(self.mismatched)} mis-shaped ('
                         + '; '.join(shown) +
                         (', ...' if len(self.mismatched) > NAMES_SHOWN
                          else '') + ')')
        return ', '.join(parts) + ' keys' if parts else 'all keys fit'


def compare_keys(module: nn.Module, state_dict: Mapping[str, torch.Tensor]
                 ) -> KeyReport:
    """Compare ``state_dict`` with ``module.state_dict()`` (parameters and
    persistent buffers)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape))
                  for k, v in state_dict.items()
                  if k in own and hasattr(v, 'shape')
                  and tuple(v.shape) != tuple(own[k].shape)]
    return KeyReport(missing, unexpected, mismatched)
