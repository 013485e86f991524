"""Every ``init_cfg`` form mmengine accepts, with checkpoints strictly.

mmengine's ``BaseModule.init_weights`` takes ``init_cfg`` as a dict or a
list of dicts; ``Pretrained`` entries (``type='Pretrained'`` or the
``PretrainedInit`` class) run last, after the other initialisers and the
children's ``init_weights``, through its non-strict ``PretrainedInit``
(missing and unexpected keys only logged, nothing converted). The
backbones and heads of this package run :func:`init_weights_strictly`
instead: the same order, but every ``Pretrained`` entry (a scoped
``'mmengine.Pretrained'`` too, which mmengine would run among the other
initialisers) goes through the package's strict loader (official layouts
converted in memory, every parameter and buffer loaded unless
``partial=True``), and a checkpoint named anywhere else (an ``override``
of another initialiser, which mmengine would load non-strictly into a
submodule) is refused.

mmengine is imported only where an ``init_cfg`` needs it (its initialisers,
its ``PretrainedInit`` class named as a type): the backbones build and load
checkpoints with torch alone.
"""
from typing import Callable, List, Optional, Tuple

import torch.nn as nn

from ..errors import InitConfigError

__all__ = [
    'PRETRAINED_KEYS', 'split_init_cfg', 'init_weights_strictly',
    'StrictPretrainedInit'
]

#: The keys of a ``Pretrained`` entry: mmengine's (``checkpoint``,
#: ``prefix``, ``map_location``) and ``partial``.
PRETRAINED_KEYS = frozenset(
    {'type', 'checkpoint', 'prefix', 'partial', 'map_location'})


def _is_pretrained(cfg: dict) -> bool:
    """``type`` names mmengine's ``PretrainedInit``: ``'Pretrained'``,
    with a registry scope (``'mmengine.Pretrained'``) or the class (or a
    subclass)."""
    kind = cfg.get('type')
    if isinstance(kind, str):
        return kind.rsplit('.', 1)[-1] == 'Pretrained'
    if not isinstance(kind, type):
        return False
    from mmengine.model.weight_init import PretrainedInit
    return issubclass(kind, PretrainedInit)


def _names_checkpoint(cfg) -> bool:
    """Whether an initialiser's ``override`` (a dict or list of dicts,
    nested) names a ``Pretrained`` initialiser or a checkpoint."""
    if isinstance(cfg, (list, tuple)):
        return any(_names_checkpoint(c) for c in cfg)
    if not isinstance(cfg, dict):
        return False
    return (_is_pretrained(cfg) or 'checkpoint' in cfg
            or _names_checkpoint(cfg.get('override')))


def split_init_cfg(name: str, init_cfg) -> Tuple[List[dict], List[dict]]:
    """``init_cfg`` (None, a dict or a list of dicts) as (the other
    initialisers, the ``Pretrained`` entries), in their order.

    Raises:
        InitConfigError: another form (a ``TypeError`` as mmengine's), a
            ``Pretrained`` entry without ``checkpoint`` or with unknown
            keys, or a checkpoint in an ``override``.
    """
    if init_cfg is None:
        return [], []
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else init_cfg
    if not isinstance(cfgs, (list, tuple)) or not all(
            isinstance(c, dict) for c in cfgs):
        raise InitConfigError(f'{name} init_cfg must be a dict or a list of '
                              f'dicts, got {init_cfg!r}')
    others, pretrained = [], []
    for cfg in cfgs:
        if _is_pretrained(cfg):
            unknown = set(cfg) - PRETRAINED_KEYS
            if unknown:
                known = ', '.join(sorted(PRETRAINED_KEYS))
                raise InitConfigError(
                    f'{name} init_cfg: unknown keys {sorted(unknown)} in '
                    f'Pretrained (known: {known})')
            if not isinstance(cfg.get('checkpoint'), str):
                raise InitConfigError(f'{name} init_cfg: Pretrained needs a '
                                      'checkpoint path (a str)')
            pretrained.append(cfg)
        elif _names_checkpoint(cfg.get('override')):
            raise InitConfigError(
                f'{name} init_cfg: a checkpoint in the override of '
                f'{cfg.get("type")!r} would load without checks; give it '
                'as its own dict(type=\'Pretrained\', checkpoint=..., '
                'prefix=...) entry')
        else:
            others.append(cfg)
    return others, pretrained


def init_weights_strictly(
        module: nn.Module,
        default_init: Optional[Callable[[nn.Module], None]] = None) -> None:
    """``module.init_weights()`` for every ``init_cfg`` form.

    Without other initialisers, ``default_init(module)`` runs (when given;
    else mmengine's ``BaseModule.init_weights`` without ``init_cfg``: the
    children's own ``init_weights``); with them, mmengine's initialisers
    run (``BaseModule.init_weights`` for a module without
    ``default_init``, ``mmengine.model.initialize`` otherwise). Then each
    ``Pretrained`` entry loads in turn through the strict loader
    (:func:`mmseg_plugins.weights.load_pretrained`): ``prefix`` selects and
    strips the file's keys under it (a ``.`` is appended, as mmengine
    does), ``partial=True`` allows keys of the module missing from the file
    (logged), ``map_location`` is accepted (tensors are read on the CPU and
    copied into the module's).

    Raises:
        InitConfigError: see :func:`split_init_cfg`.
        CheckpointError: a checkpoint that does not fit (see
            :mod:`mmseg_plugins.weights.loading`).
    """
    name = type(module).__name__
    others, pretrained = split_init_cfg(name, module.init_cfg)
    if default_init is None:
        from mmengine.model import BaseModule
        saved = module.init_cfg
        module.init_cfg = others or None
        try:
            BaseModule.init_weights(module)
        finally:
            module.init_cfg = saved
    elif others:
        from mmengine.model import initialize
        initialize(module, others)
    else:
        default_init(module)
    if pretrained:
        # the weights layer converts official files with the converters,
        # which build these models: imported here, where it is used
        from ..weights.loading import load_pretrained
        for cfg in pretrained:
            load_pretrained(module, cfg['checkpoint'], cfg.get('prefix'),
                            bool(cfg.get('partial', False)))
    module._is_init = True


class StrictPretrainedInit:
    """Mixin (before the mmengine ``BaseModule`` base) whose
    ``init_weights`` is :func:`init_weights_strictly`: mmengine's own
    initialisation, but ``Pretrained`` entries through the strict
    loader. The decode heads of this package use it."""

    def init_weights(self) -> None:
        init_weights_strictly(self)
