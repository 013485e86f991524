"""Reading configs, and what a config says about its classes.

:func:`load_config` is how every tool and API of this package opens a
config; :func:`declared_classes` and :func:`dataset_meta` are the one
statement of where a model's class names and palette come from.
"""
import os.path as osp
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
from mmengine.config import Config

from .errors import ConfigError

__all__ = [
    'load_config', 'check_data_paths', 'check_pretrained_paths', 'plain',
    'declared_classes', 'dataset_meta', 'setup_work_dir'
]


#: What executing a config file (mmengine runs it as Python, merging its
#: bases) raises for a mistake in that file: reported as a
#: :class:`ConfigError`, not a bug of the tool that reads it.
CONFIG_FILE_ERRORS = (SyntaxError, NameError, ImportError, KeyError,
                      ValueError, TypeError, AttributeError, AssertionError)


def load_config(path, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (or copy a :class:`~mmengine.config.Config`),
    apply ``cfg_options`` (``--cfg-options``) and check that it has a model.

    Raises:
        ConfigError: the file is missing, cannot be read as a config (its
            Python fails, its ``mmseg::`` bases cannot be resolved), an
            option of ``cfg_options`` does not fit it, or it defines no
            model.
    """
    from .compat import check_pkg_resources
    if isinstance(path, Config):
        import copy
        cfg = copy.deepcopy(path)
        path = cfg.filename
    else:
        if not osp.isfile(path):
            raise ConfigError(f'config file not found: {path}')
        try:
            check_pkg_resources()  # "mmseg::" bases need it on mmengine 0.10
        except ImportError as err:
            raise ConfigError(str(err)) from None
        try:
            cfg = Config.fromfile(path)
        except CONFIG_FILE_ERRORS as err:  # the user's file, not our code
            raise ConfigError(f'cannot read config {path}: '
                              f'{type(err).__name__}: {err}') from err
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f'--cfg-options do not fit {path}: '
                              f'{type(err).__name__}: {err}') from err
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError(f'config {path} defines no "model"')
    return cfg


def _dataset_dirs(dataset: dict) -> List[str]:
    """Directories a (possibly wrapped) mmseg dataset config reads."""
    if not isinstance(dataset, dict):
        return []
    if 'dataset' in dataset:  # RepeatDataset, MultiImageMixDataset ...
        return _dataset_dirs(dataset['dataset'])
    if 'datasets' in dataset:  # ConcatDataset
        return [d for sub in dataset['datasets'] for d in _dataset_dirs(sub)]
    root = dataset.get('data_root', '') or ''
    prefix = dataset.get('data_prefix', {}) or {}
    dirs = [osp.join(root, p) for p in prefix.values() if p]
    return dirs or ([root] if root else [])


def check_data_paths(cfg: Config, loaders: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming the first missing dataset
    directory.

    Args:
        cfg (Config): The config.
        loaders (Iterable[str]): Dataloader keys to check, e.g.
            ``('train_dataloader', 'val_dataloader')``.
    """
    for key in loaders:
        loader = cfg.get(key)
        if not loader:
            continue
        for d in _dataset_dirs(loader.get('dataset', {})):
            if not osp.isdir(d):
                raise ConfigError(
                    f'dataset directory {d!r} ({key}) does not exist; put '
                    'the data there or set --cfg-options '
                    f'{key}.dataset.data_root=<path>')


def _pretrained_paths(node, where: str):
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and node.get('checkpoint'):
            yield f'{where}.checkpoint', node['checkpoint']
        if isinstance(node.get('pretrained'), str):
            yield f'{where}.pretrained', node['pretrained']
        for key, value in node.items():
            yield from _pretrained_paths(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_paths(value, f'{where}.{i}')


def check_pretrained_paths(cfg: Config) -> None:
    """Raise :class:`ConfigError` if a local checkpoint named in the model
    config (``pretrained=`` or ``init_cfg=dict(type='Pretrained',
    checkpoint=...)``) or as ``load_from`` does not exist. URLs are left to
    the loader."""
    paths = list(_pretrained_paths(cfg.get('model', {}), 'model'))
    if cfg.get('load_from') and not cfg.get('resume', False):
        paths.append(('load_from', cfg.load_from))
    for where, path in paths:
        if '://' in str(path):
            continue
        if not osp.exists(path):
            from .weights.sources import where_published
            raise ConfigError(f'pretrained checkpoint {path!r} ({where}) does '
                              f'not exist{where_published(path)}; '
                              f'--cfg-options {where}=None trains from '
                              'scratch')


def plain(value: Any) -> Any:
    """A config value as plain JSON types (ConfigDicts become dicts, tuples
    lists, numpy and torch values Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy and torch values
        return value.tolist()
    return value


def declared_classes(cfg, checkpoint_meta: Optional[Mapping] = None
                     ) -> Tuple[Optional[list], Optional[list]]:
    """Class names and palette of a model: from the checkpoint (mmengine
    stores the training set's ``dataset_meta``), else from the config's test
    dataset (its ``metainfo`` or its class's ``METAINFO``).

    Returns:
        tuple: (classes, palette) as lists, each None where unknown.
    """
    meta = dict((checkpoint_meta or {}).get('dataset_meta') or {})
    if not meta.get('classes'):
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        meta = dict(dataset.get('metainfo') or {})
        if not meta.get('classes') and dataset.get('type'):
            from mmseg.registry import DATASETS
            try:
                meta = dict(getattr(DATASETS.get(dataset['type']),
                                    'METAINFO', None) or {})
            except KeyError:
                meta = {}
    classes, palette = meta.get('classes'), meta.get('palette')
    return (plain(classes) if classes else None,
            plain(palette) if palette else None)


def dataset_meta(cfg, checkpoint_meta: Optional[Mapping] = None,
                 num_classes: Optional[int] = None) -> Dict:
    """:func:`declared_classes`, completed for display: numbered classes
    when none are declared or their count differs from ``num_classes``, and
    a fixed random palette for classes without a colour.

    Returns:
        dict: ``classes`` (tuple of str) and ``palette`` (list of RGB).
    """
    classes, palette = declared_classes(cfg, checkpoint_meta)
    classes = list(classes or [])
    if num_classes and len(classes) != num_classes:
        classes = [f'class {i}' for i in range(num_classes)]
    if not palette or len(palette) < len(classes):
        rng = np.random.default_rng(0)  # fixed colours for unnamed classes
        palette = rng.integers(0, 256, (len(classes), 3)).tolist()
    return dict(classes=tuple(classes),
                palette=[list(map(int, c)) for c in palette[:len(classes)]])


def setup_work_dir(cfg: Config, config_path: str,
                   work_dir: Optional[str]) -> None:
    """mmseg's rule: CLI > config > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
