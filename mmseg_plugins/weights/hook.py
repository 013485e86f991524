"""Strict ``load_from`` inside mmengine's runner, and the check that
``tools/train.py`` runs before the runner starts.

mmengine's own ``load_from`` loads non-strictly (it logs missing keys and
trains on) and converts nothing. :class:`StrictLoadHook` loads it instead,
through :func:`~mmseg_plugins.weights.load_model_weights` (any known
layout, converted in memory, every key loaded), once the model is
initialised and before the first step. The project's runtime config
(``configs/_base_/default_runtime.py``, inherited by every config here)
lists the hook without a checkpoint: it then takes the runner's
``load_from`` over in ``before_run`` (which mmengine calls before its own
``load_or_resume``), so that mmseg's unmodified ``tools/train.py`` and
``tools/test.py`` load strictly too. :func:`route_load_from` does the same
in the config, for the project's tools.
"""
import copy
import os.path as osp
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
        checkpoint (str, optional): File, folder, ``http(s)://`` or
            ``hf://``. None: the runner's ``load_from`` (unless resuming),
            taken over before mmengine loads it; then the class layers are
            re-initialised when training starts (as ``tools/train.py``
            does) and not for ``val``/``test``, and the config's
            ``load_from_partial`` sets ``partial``. Default: None.
        reinit_class_layers (bool): Fine-tuning to another class count:
            the class-count dependent classifiers (``conv_seg``) keep their
            initialisation when their shapes differ. Default: False.
        partial (bool): Allow missing keys (logged). Default: False.
    """

    priority = Priority.VERY_HIGH

    def __init__(self, checkpoint: Optional[str] = None,
                 reinit_class_layers: bool = False,
                 partial: bool = False) -> None:
        self.checkpoint = checkpoint
        self.reinit_class_layers = reinit_class_layers
        self.partial = partial
        self._from_runner = False
        self._done = False

    def before_run(self, runner) -> None:
        """Take the runner's ``load_from`` over (mmengine loads it after
        ``before_run``, non-strictly)."""
        path = getattr(runner, '_load_from', None)
        if (self.checkpoint is None and path
                and not getattr(runner, '_resume', False)):
            self.checkpoint, self._from_runner = path, True
            self.partial = bool(runner.cfg.get('load_from_partial', False))
            runner._load_from = None
            runner.logger.info(f'StrictLoadHook: {path} will load strictly '
                               'before the first step (instead of '
                               "mmengine's non-strict load_from)")

    def _load(self, runner, training: bool) -> None:
        if self._done or self.checkpoint is None:
            return
        filename = getattr(getattr(runner, 'cfg', None), 'filename', None)
        name = osp.basename(filename) if filename else 'the config'
        reinit = self.reinit_class_layers or (self._from_runner and training)
        load_model_weights(_segmentor(runner.model), self.checkpoint, name,
                           reinit, self.partial)
        self._done = True

    def before_train(self, runner) -> None:
        self._load(runner, True)

    def before_val(self, runner) -> None:
        self._load(runner, False)

    def before_test(self, runner) -> None:
        self._load(runner, False)


def route_load_from(cfg, reinit_class_layers: bool = False) -> None:
    """Replace ``cfg.load_from`` (unless resuming) by a
    :class:`StrictLoadHook` (the config's own entry without a checkpoint,
    or a new one); ``cfg.load_from_partial=True`` allows missing keys."""
    path: Optional[str] = cfg.get('load_from')
    partial = bool(cfg.pop('load_from_partial', False))
    if not path or cfg.get('resume', False):
        return
    hook = dict(type='mmseg_plugins.StrictLoadHook', checkpoint=path,
                reinit_class_layers=reinit_class_layers, partial=partial)
    hooks = [dict(h) for h in cfg.get('custom_hooks') or []]
    waiting = [i for i, h in enumerate(hooks)
               if h.get('type') in ('mmseg_plugins.StrictLoadHook',
                                    'StrictLoadHook')
               and h.get('checkpoint') is None]
    if waiting:
        hooks[waiting[0]] = hook
    else:
        hooks.append(hook)
    cfg.custom_hooks = hooks
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
        filename = getattr(cfg, 'filename', None)
        name = osp.basename(filename) if filename else 'the config'
        load_model_weights(model, path, name, True,
                           bool(cfg.get('load_from_partial', False)))
