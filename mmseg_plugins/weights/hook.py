"""Strict ``load_from`` inside mmengine's runner, and the check that
``tools/train.py`` runs before the runner starts.

mmengine's own ``load_from`` loads non-strictly (it logs missing keys and
trains on) and converts nothing. :func:`route_load_from` moves a config's
``load_from`` into :class:`StrictLoadHook`, which loads it through
:func:`~mmseg_plugins.weights.load_model_weights` (any known layout,
converted in memory, every key loaded) once the model is initialised and
before the first step.
"""
import copy
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner.priority import Priority

from ..registry import HOOKS
from .loading import load_model_weights

__all__ = ['StrictLoadHook', 'route_load_from', 'check_model_weights']


def _segmentor(model):
    """The segmentor inside DDP / TTA wrappers."""
    while not hasattr(model, 'backbone') and hasattr(model, 'module'):
        model = model.module
    return model


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Load a whole-segmentor checkpoint strictly before the first train,
    val or test step.

    Args:
        checkpoint (str): File, folder, ``http(s)://`` or ``hf://``.
        reinit_class_layers (bool): Fine-tuning to another class count:
            the class-count dependent classifiers (``conv_seg``) keep their
            initialisation when their shapes differ. Default: False.
        partial (bool): Allow missing keys (logged). Default: False.
    """

    priority = Priority.VERY_HIGH

    def __init__(self, checkpoint: str, reinit_class_layers: bool = False,
                 partial: bool = False) -> None:
        self.checkpoint = checkpoint
        self.reinit_class_layers = reinit_class_layers
        self.partial = partial
        self._done = False

    def _load(self, runner) -> None:
        if self._done:
            return
        name = getattr(runner, 'experiment_name', 'the model')
        load_model_weights(_segmentor(runner.model), self.checkpoint, name,
                           self.reinit_class_layers, self.partial)
        self._done = True

    def before_train(self, runner) -> None:
        self._load(runner)

    def before_val(self, runner) -> None:
        self._load(runner)

    def before_test(self, runner) -> None:
        self._load(runner)


def route_load_from(cfg, reinit_class_layers: bool = False) -> None:
    """Replace ``cfg.load_from`` (unless resuming) by a
    :class:`StrictLoadHook`; ``cfg.load_from_partial=True`` allows missing
    keys."""
    path: Optional[str] = cfg.get('load_from')
    partial = bool(cfg.pop('load_from_partial', False))
    if not path or cfg.get('resume', False):
        return
    hook = dict(type='mmseg_plugins.StrictLoadHook', checkpoint=path,
                reinit_class_layers=reinit_class_layers, partial=partial)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]
    cfg.load_from = None


def check_model_weights(cfg) -> None:
    """Build the model of ``cfg`` on the CPU and run what the runner will:
    ``init_weights()`` (the backbone's pretrained weights, strictly) and
    the strict ``load_from`` (with the class-count re-initialisation).

    Raises:
        CheckpointError: a checkpoint that does not fit.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope, init_default_scope
    from mmseg.registry import MODELS
    if DefaultScope.get_current_instance() is None:
        init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    model.init_weights()
    path = cfg.get('load_from')
    if path and not cfg.get('resume', False):
        load_model_weights(model, path, 'the config', True,
                           bool(cfg.get('load_from_partial', False)))
