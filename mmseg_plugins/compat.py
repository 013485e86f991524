"""Compatibility layer between mmseg 1.2.2 / mmengine 0.10.7 / mmcv and
current PyTorch.

Importing :mod:`mmseg_plugins` calls :func:`apply`, which installs each fix
below only when its condition holds in this environment (:data:`FIXES`
pairs every fix with that condition; :func:`applied` lists what was
installed):

1. ``mmcv_ops`` -- **mmcv-lite** (:func:`install_mmcv_ops_fallback`), when
   ``mmcv._ext`` is missing. ``mmseg.models`` and ``mmseg.utils`` import
   ``mmcv.ops`` at module level, which needs the compiled ``mmcv._ext``.
   The top-level package :mod:`mmseg_plugins_mmcv_ops` provides a small
   pure-PyTorch ``mmcv.ops`` holding exactly the ops mmseg imports
   unguarded (``point_sample`` and ``sigmoid_focal_loss``); every other op
   raises a ``ModuleNotFoundError`` that names full mmcv. Its meta path
   finder is installed at interpreter start by the package's ``.pth``
   file, so mmseg's own tools and ``mmseg.apis`` import without
   ``mmseg_plugins``; this fix installs it again for interpreters that
   skipped the ``.pth`` (``python -S``). mmcv-lite's own warning about the
   missing ``MultiScaleDeformableAttention`` (expected there) is silenced
   with it.
2. ``safe_loader`` -- **checkpoint loading**
   (:func:`install_safe_checkpoint_loader`), when mmengine's loader does
   not restrict unpickling to an allow-list (every mmengine release so far:
   0.10.7 calls ``torch.load`` without ``weights_only``, which fails on
   mmengine's own checkpoints since torch 2.6 made ``weights_only=True``
   the default and unpickles anything before; 0.11 passes
   ``weights_only=False``). mmengine's local and HTTP loaders are
   routed through :func:`mmseg_plugins.checkpoint.safe_load`:
   ``weights_only=True`` plus an explicit allow-list; other globals are
   refused.
3. **setuptools >= 82 without ``pkg_resources``**: mmengine 0.10.7 resolves
   ``mmseg::`` config bases through ``pkg_resources``. This must work before
   any plugin code runs (mmseg's own ``tools/train.py`` parses ``_base_``
   before ``custom_imports``), so the fix is a dependency bound,
   ``setuptools<82``, in ``pyproject.toml``, not a patch.
   :func:`check_pkg_resources` (called by the project's tools before reading
   a config) turns a violated bound into a clear message, and
   ``pkg_resources``' own deprecation warning, which this bound makes
   expected, is silenced while mmengine needs it.
4. ``atomic_put`` -- **half-written checkpoints**
   (:func:`install_atomic_local_put`), when mmengine's
   ``LocalBackend.put`` writes straight into the final
   path: an interrupted save leaves a truncated ``iter_N.pth`` that
   ``--resume`` then picks up. The replacement writes to a temporary file
   and renames it into place.
5. **CPU distributed training**: not a patch of the environment but a
   config change the project's tools make for multi-process runs without
   CUDA (:mod:`mmseg_plugins.distributed`).
6. ``contiguous_draw`` -- **mmseg's visualiser on strided images**
   (:func:`install_contiguous_sem_seg_draw`), when
   ``SegLocalVisualizer._draw_sem_seg`` allocates its drawing buffer with
   ``np.zeros_like(image)``. That buffer copies the memory layout of
   ``image``; mmseg's ``browse_dataset.py`` tools pass
   ``inputs.permute(1, 2, 0).numpy()[..., [2, 1, 0]]``, whose channels are
   planes, and OpenCV (every version from 4.5.5 to 5.0 tried) refuses to
   draw the class labels into such an array ("Layout of the output array
   img is incompatible with cv::Mat"). The image is made C-contiguous
   before it is drawn on.
7. ``config_index`` -- **config loading re-reads every metafile**
   (:func:`install_config_index`), when mmengine's ``_get_cfg_metainfo``
   parses a package's ``model-index.yml`` and every metafile it lists on
   each call. mmengine calls it for every ``pkg::`` base of a config, to
   learn whether the path names a model config before it falls back to
   the package's ``.mim/configs`` folder: three ``mmseg::`` bases cost
   about 0.5 s per config load (159 YAML files for mmseg 1.2.2). The
   replacement builds the same name -> entry index once per package and
   ``model-index.yml`` version (its modification time and size), and
   answers as mmengine does: a copy of the entry, or the same
   ``ValueError``.

**Opt-out.** ``MMSEG_PLUGINS_NO_COMPAT=all`` (or a comma-separated list of
fix names: ``mmcv_ops``, ``safe_loader``, ``atomic_put``,
``contiguous_draw``, ``config_index``) leaves those parts of the
environment exactly as installed, e.g. to reproduce an upstream bug.
Without ``mmcv_ops`` and mmcv-lite, ``mmseg.models`` cannot be imported.
"""
import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

import mmseg_plugins_mmcv_ops
from mmseg_plugins_mmcv_ops import OPT_OUT_ENV, has_mmcv_ext, opted_out_fixes
from mmseg_plugins_mmcv_ops.ops import FALLBACK_FLAG

__all__ = [
    'apply', 'applied', 'FIXES', 'OPT_OUT_ENV', 'has_mmcv_ext',
    'install_mmcv_ops_fallback', 'install_safe_checkpoint_loader',
    'install_atomic_local_put', 'install_contiguous_sem_seg_draw',
    'install_config_index', 'config_index', 'check_pkg_resources'
]


# --------------------------------------------------------------------------
# 1. mmcv.ops fallbacks
# --------------------------------------------------------------------------
def install_mmcv_ops_fallback() -> bool:
    """Provide the pure-PyTorch ``mmcv.ops`` when ``mmcv._ext`` is missing:
    put :class:`mmseg_plugins_mmcv_ops.MMCVOpsFinder` in ``sys.meta_path``
    (idempotent) and import ``mmcv.ops`` through it.

    Returns:
        bool: True if ``mmcv.ops`` is (now) the fallback, False if full mmcv
        is present and nothing was done.
    """
    if has_mmcv_ext():
        return False
    mmseg_plugins_mmcv_ops.install()
    import mmcv.ops
    return getattr(mmcv.ops, FALLBACK_FLAG, False)


# --------------------------------------------------------------------------
# 2. weights_only checkpoint loading for mmengine
# --------------------------------------------------------------------------
# mmengine names a loader in its log as ``function.__name__[10:]``, hence
# the ``load_from_`` prefix.
def load_from_local(filename: str, map_location=None):
    """mmengine's local checkpoint loader, through :func:`safe_load`."""
    from .checkpoint import safe_load
    filename = os.path.expanduser(filename)
    return safe_load(filename, map_location=map_location)


def load_from_http(filename: str, map_location=None, model_dir=None,
                   progress: bool = False):
    """mmengine's http(s) loader: download once into the torch hub cache,
    then load through :func:`safe_load`."""
    from urllib.parse import urlparse

    from .checkpoint import safe_load
    if model_dir is None:
        model_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir,
                          os.path.basename(urlparse(filename).path))
    if not os.path.exists(cached):
        torch.hub.download_url_to_file(filename, cached, progress=progress)
    return safe_load(cached, map_location=map_location)


def mmengine_loader_is_unrestricted() -> bool:
    """Whether mmengine's own local loader unpickles without an allow-list
    (it calls ``torch.load`` without ``weights_only=True``)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    try:
        source = inspect.getsource(mmengine_checkpoint.load_from_local)
    except (OSError, TypeError):  # no source: assume the known behaviour
        return True
    return 'weights_only=True' not in source


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's local and http(s) checkpoint loading through
    :func:`mmseg_plugins.checkpoint.safe_load` (``weights_only=True`` and an
    allow-list). Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), force=True)(load_from_http)


# --------------------------------------------------------------------------
# 3. pkg_resources (setuptools >= 82)
# --------------------------------------------------------------------------
def mmengine_needs_pkg_resources() -> bool:
    """mmengine < 0.11 resolves ``pkg::`` config bases with
    ``pkg_resources``; later versions use ``importlib.metadata``."""
    import mmengine
    from mmengine.utils import digit_version
    return digit_version(mmengine.__version__) < digit_version('0.11.0rc0')


def check_pkg_resources() -> None:
    """Raise a clear error if mmengine needs ``pkg_resources`` and it is
    gone (setuptools >= 82)."""
    if not mmengine_needs_pkg_resources():
        return
    import mmengine
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        raise ImportError(
            f'mmengine {mmengine.__version__} needs pkg_resources to resolve '
            '"mmseg::" config bases, but setuptools >= 82 removed it; run '
            'pip install "setuptools<82"') from None


def _quiet_pkg_resources_deprecation() -> None:
    """setuptools 81 warns on every ``import pkg_resources``; the
    ``setuptools<82`` bound makes that import expected while mmengine
    needs it."""
    if mmengine_needs_pkg_resources():
        warnings.filterwarnings('ignore',
                                message=r'pkg_resources is deprecated',
                                category=UserWarning)


# --------------------------------------------------------------------------
# 4. atomic checkpoint writes
# --------------------------------------------------------------------------
def _atomic_put(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put`` that never leaves a partial file."""
    from .fileio import atomic_write
    atomic_write(filepath, lambda f: f.write(obj))


def mmengine_put_writes_in_place() -> bool:
    """Whether mmengine's ``LocalBackend.put`` opens the final path for
    writing (no temporary file and rename)."""
    from mmengine.fileio.backends import LocalBackend
    if LocalBackend.put is _atomic_put:
        return False  # ours is installed
    try:
        source = inspect.getsource(LocalBackend.put)
    except (OSError, TypeError):
        return True
    return not any(op in source for op in ('os.replace', 'os.rename'))


def install_atomic_local_put() -> None:
    """Make mmengine's local file writes (checkpoints) atomic."""
    from mmengine.fileio.backends import LocalBackend
    LocalBackend.put = _atomic_put


# --------------------------------------------------------------------------
# 6. drawing on images that are not C-contiguous
# --------------------------------------------------------------------------
CONTIGUOUS_FLAG = '__mmseg_plugins_contiguous__'


def mmseg_draw_copies_image_layout() -> bool:
    """Whether mmseg's ``SegLocalVisualizer._draw_sem_seg`` draws into
    ``np.zeros_like(image)``, a buffer with the memory layout of the image
    it was given."""
    from mmseg.visualization import SegLocalVisualizer
    draw = SegLocalVisualizer._draw_sem_seg
    if getattr(draw, CONTIGUOUS_FLAG, False):
        return False  # ours is installed
    try:
        source = inspect.getsource(draw)
    except (OSError, TypeError):
        return True
    return 'zeros_like(image' in source


def install_contiguous_sem_seg_draw() -> None:
    """Make ``SegLocalVisualizer._draw_sem_seg`` work on a C-contiguous
    copy of images that are not C-contiguous."""
    import functools

    import numpy as np
    from mmseg.visualization import SegLocalVisualizer
    draw = SegLocalVisualizer._draw_sem_seg

    @functools.wraps(draw)  # also keeps mmseg's method as __wrapped__
    def draw_sem_seg(self, image, *args, **kwargs):
        return draw(self, np.ascontiguousarray(image), *args, **kwargs)

    setattr(draw_sem_seg, CONTIGUOUS_FLAG, True)
    SegLocalVisualizer._draw_sem_seg = draw_sem_seg


# --------------------------------------------------------------------------
# 7. the metafile index behind ``pkg::`` config bases, read once
# --------------------------------------------------------------------------
#: package path -> ((mtime_ns, size) of its model-index.yml, index)
_CONFIG_INDEXES: dict = {}


def config_index(package_path: str) -> dict:
    """``{config name: metafile entry}`` of an installed OpenMMLab package,
    built as mmengine's ``_get_cfg_metainfo`` builds it (the first entry of
    each config, names without the leading ``configs/``), read again only
    when ``.mim/model-index.yml`` changes.

    Args:
        package_path (str): Installed path of the package (``.../mmseg``).

    Returns:
        dict: The cached index; callers must not modify it.
    """
    from mmengine.fileio import load
    mim = os.path.join(package_path, '.mim')
    index_path = os.path.join(mim, 'model-index.yml')
    stat = os.stat(index_path)  # FileNotFoundError, as mmengine's load
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _CONFIG_INDEXES.get(package_path)
    if cached is None or cached[0] != version:
        index = {}
        for meta_path in load(index_path)['Import']:
            for entry in load(os.path.join(mim, meta_path))['Models']:
                if 'Config' not in entry:
                    warnings.warn(f'There is not `Config` define in {entry}')
                    continue
                index.setdefault(entry['Config'].partition('/')[-1], entry)
        cached = _CONFIG_INDEXES[package_path] = (version, index)
    return cached[1]


def _cfg_metainfo_from_index(package_path: str, cfg_path: str) -> dict:
    """mmengine's ``_get_cfg_metainfo`` answered from :func:`config_index`:
    a copy of the entry of ``cfg_path``, or mmengine's ``ValueError``."""
    import copy
    index = config_index(package_path)
    if cfg_path not in index:
        raise ValueError(f'Expected configs: {index.keys()}, but got '
                         f'{cfg_path}')
    return copy.deepcopy(index[cfg_path])


def mmengine_reparses_metafiles() -> bool:
    """Whether mmengine's ``_get_cfg_metainfo`` loads a package's
    metafiles on every call."""
    from mmengine.config import utils
    lookup = getattr(utils, '_get_cfg_metainfo', None)
    if lookup is None or lookup is _cfg_metainfo_from_index:
        return False  # another mmengine, or ours is installed
    try:
        source = inspect.getsource(lookup)
    except (OSError, TypeError):
        return True
    return "meta_index['Import']" in source


def install_config_index() -> None:
    """Answer mmengine's metafile lookups from :func:`config_index`
    (``_get_external_cfg_path`` looks the function up at each call);
    mmengine's function stays reachable as ``__wrapped__``."""
    from mmengine.config import utils
    if utils._get_cfg_metainfo is not _cfg_metainfo_from_index:
        _cfg_metainfo_from_index.__wrapped__ = utils._get_cfg_metainfo
        utils._get_cfg_metainfo = _cfg_metainfo_from_index


# --------------------------------------------------------------------------
# Applying the fixes
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Fix:
    """A fix, the condition under which it is needed, and its installer."""
    name: str
    needed: Callable[[], bool]
    install: Callable[[], object]


#: The fixes :func:`apply` installs, in order (numbers as in the module
#: docstring; 3 and 5 are not patches).
FIXES = (
    Fix('mmcv_ops', lambda: not has_mmcv_ext(), install_mmcv_ops_fallback),
    Fix('safe_loader', mmengine_loader_is_unrestricted,
        install_safe_checkpoint_loader),
    Fix('atomic_put', mmengine_put_writes_in_place, install_atomic_local_put),
    Fix('contiguous_draw', mmseg_draw_copies_image_layout,
        install_contiguous_sem_seg_draw),
    Fix('config_index', mmengine_reparses_metafiles, install_config_index),
)

_APPLIED: Optional[List[str]] = None


def disabled_fixes() -> List[str]:
    """Fix names switched off by ``MMSEG_PLUGINS_NO_COMPAT``."""
    names = opted_out_fixes()
    if 'all' in names:
        return [fix.name for fix in FIXES]
    unknown = sorted(names - {fix.name for fix in FIXES})
    if unknown:
        warnings.warn(f'{OPT_OUT_ENV}: unknown fix names {unknown}; known: '
                      f'{", ".join(f.name for f in FIXES)}, all')
    return sorted(names)


def apply() -> List[str]:
    """Install every fix this environment needs and the user did not switch
    off (idempotent). Returns the names installed."""
    global _APPLIED
    if _APPLIED is None:
        off = disabled_fixes()
        _APPLIED = []
        for fix in FIXES:
            if fix.name not in off and fix.needed():
                fix.install()
                _APPLIED.append(fix.name)
        _quiet_pkg_resources_deprecation()
    return list(_APPLIED)


def applied() -> List[str]:
    """Names of the fixes installed by :func:`apply` in this process."""
    return list(_APPLIED or [])
