"""The one model builder: config (+ checkpoint) -> segmentor.

Inference (:class:`mmseg_plugins.inference.Segmenter`), the benchmark, the
ONNX exporter, the tools and the tests build their models here, and this is
the one place a whole-segmentor checkpoint is loaded outside mmengine's
runner: strictly, so a checkpoint that leaves any parameter or buffer of
the model unloaded, or brings keys the model does not have, is refused with
a :class:`~mmseg_plugins.errors.CheckpointError` that counts the missing,
unexpected and mis-shaped keys and names the first few.
"""
import copy
import os.path as osp
from typing import Optional, Tuple

import torch.nn as nn

from .errors import ConfigError
from .reporting import quiet_logger
from .state_dicts import KeyReport, compare_keys  # noqa: F401

__all__ = [
    'KeyReport', 'compare_keys', 'load_segmentor_checkpoint',
    'build_segmentor', 'build_model'
]


def load_segmentor_checkpoint(model: nn.Module, checkpoint: str,
                              target: str) -> dict:
    """Load a whole-segmentor checkpoint into ``model``, strictly: an
    mmengine ``.pth`` file, or any layout :mod:`mmseg_plugins.weights`
    converts in memory (official AFFormer/MPViT segmentation files,
    NVlabs/mmseg/Hugging Face/smp SegFormer), a local path, ``http(s)://``
    URL or ``hf://`` reference.

    Args:
        model (nn.Module): The segmentor.
        checkpoint (str): The file.
        target (str): What the model is, for messages (a config's name).

    Returns:
        dict: The checkpoint's ``meta`` (``{}`` if it has none).

    Raises:
        CheckpointError: missing, unreadable or unsafe file, or one that
            does not fit the model.
    """
    from .weights import load_model_weights
    return load_model_weights(model, checkpoint, target).meta


def build_segmentor(cfg, checkpoint: Optional[str] = None,
                    device: str = 'cpu') -> Tuple[nn.Module, dict]:
    """The segmentor of a loaded config, in eval mode on ``device``, SyncBN
    reverted to BN: weights from ``checkpoint`` (strict:
    :func:`load_segmentor_checkpoint`) or the model's own initialisation
    without its pretrained weights (no downloads). ``cfg`` is not changed.

    Returns:
        tuple: (the model, the checkpoint's ``meta`` dict or ``{}``).

    Raises:
        ConfigError: the config has no model, or it cannot be built.
        CheckpointError: see :func:`load_segmentor_checkpoint`.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    name = osp.basename(cfg.filename or 'the config')
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError(f'{cfg.filename} defines no model (not a model '
                          'config)')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    if model_cfg.get('backbone', {}).get('init_cfg'):
        model_cfg.backbone.init_cfg = None
    try:
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(f'cannot build the model of {name}: {err}'
                          ) from None
    meta = {}
    if checkpoint:
        meta = load_segmentor_checkpoint(model, checkpoint, name)
    else:
        with quiet_logger():  # no per-parameter init report
            model.init_weights()
    return model.to(device).eval(), meta


def build_model(path, checkpoint: Optional[str] = None, device: str = 'cpu',
                cfg_options: Optional[dict] = None) -> nn.Module:
    """The segmentor of a config file (or :class:`Config`), with
    ``cfg_options`` applied (see :func:`build_segmentor`)."""
    from .config import load_config
    return build_segmentor(load_config(path, cfg_options), checkpoint,
                           device)[0]
