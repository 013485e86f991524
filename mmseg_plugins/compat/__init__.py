"""Compatibility layer between the OpenMMLab stack -- upstream mmseg 1.2.2 /
mmengine 0.10.7 / mmcv, or VBTI's maintained fork OneDL
(onedl-mmsegmentation 1.4, onedl-mmengine 0.10.12, onedl-mmcv 2.3), see
:mod:`~mmseg_plugins.compat.stack` -- and current PyTorch.

Importing :mod:`mmseg_plugins` calls :func:`apply`, which installs each fix
below only when its condition holds in this environment (:data:`FIXES`
pairs every fix with that condition; :func:`applied` lists what was
installed, and one debug line of the logger ``mmseg_plugins.compat`` names
the stack and what was applied, not needed or switched off). Each condition
tries what the installed code does, on a tiny input in a temporary folder,
or asks for a feature (an attribute; the names the compiled code imports,
where trying would have an effect on the process), never a package name or
version, so a fork or a release that fixes a problem gets no patch for it
(:mod:`~mmseg_plugins.compat.probes`).

1. ``mmcv_ops`` -- **mmcv-lite** (:func:`install_mmcv_ops_fallback`), when
   ``mmcv._ext`` is missing and mmseg imports ``mmcv.ops`` unguarded
   (upstream; OneDL's mmseg wraps those imports in ``try``, and needs no
   fallback). ``mmseg.models`` and ``mmseg.utils`` import
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
3. **setuptools >= 82 without ``pkg_resources``**: upstream mmengine 0.10.7
   resolves ``mmseg::`` config bases through ``pkg_resources`` (OneDL's
   does not; :func:`mmengine_needs_pkg_resources` asks whether mmengine's
   ``get_installed_path`` imports it). This must work before
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
   ``SegLocalVisualizer._draw_sem_seg`` fails on a small image with planar
   channels, as mmseg 1.2.2's does: it allocates its drawing buffer with
   ``np.zeros_like(image)`` (OneDL's draws into a contiguous copy of it,
   and needs no fix). That buffer copies the memory layout of
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
8. ``config_text`` -- **one config formatted again and again**
   (:func:`install_config_text_once`), when mmengine's
   ``Config.pretty_text`` runs yapf on every call: a training run formats
   the same config for its log, its dump, the visualiser's copy, the
   message hub and each checkpoint's meta (6 times, 0.07 s each, in a
   6-iteration demo run). yapf's ``FormatCode`` is kept with its results
   for the last few texts it formatted; the same source and style give the
   same text. OneDL's mmengine imports ``FormatCode`` inside
   ``pretty_text``; the fix does not apply there (it would have to replace
   yapf's own function for every user in the process), which the debug line
   reports.
9. ``config_package`` -- **OneDL's ``mmseg::`` bases**
   (:mod:`mmseg_plugins_mmcv_ops.config_packages`), when mmengine maps
   ``mmseg`` to a distribution that is not installed (onedl-mmengine names
   ``mmsegmentation``; the fork installs ``onedl-mmsegmentation``): the
   map's entry is pointed at the installed one. The start-up hook applies
   it when mmengine imports its config utilities, so that the fork's own
   ``tools/train.py`` reads plugin configs too; :func:`apply` again where
   the hook did not run.

**Opt-out.** ``MMSEG_PLUGINS_NO_COMPAT=all`` (or a comma-separated list of
fix names: ``mmcv_ops``, ``safe_loader``, ``atomic_put``,
``contiguous_draw``, ``config_index``, ``config_text``,
``config_package``) leaves those parts
of the environment exactly as installed, e.g. to reproduce an upstream bug.
Without ``mmcv_ops`` and mmcv-lite, ``mmseg.models`` cannot be imported.
"""
import logging
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

from mmseg_plugins_mmcv_ops import (OPT_OUT_ENV, has_mmcv_ext,
                                    mmseg_imports_mmcv_ops_unguarded,
                                    opted_out_fixes)
from mmseg_plugins_mmcv_ops import config_packages
from mmseg_plugins_mmcv_ops.ops import FALLBACK_FLAG  # noqa: F401

from .checkpoints import (install_atomic_local_put,
                          install_safe_checkpoint_loader, load_from_http,
                          load_from_local, mmengine_loader_is_unrestricted,
                          mmengine_put_writes_in_place)
from .configs import (_quiet_pkg_resources_deprecation, check_pkg_resources,
                      config_index, config_text_uncachable, formatting_once,
                      install_config_index, install_config_text_once,
                      mmengine_needs_pkg_resources,
                      mmengine_reformats_config_text,
                      mmengine_reparses_metafiles)
from .drawing import (install_contiguous_sem_seg_draw,
                      mmseg_draw_copies_image_layout)
from .mmcv_ops import install_mmcv_ops_fallback

__all__ = [
    'apply', 'applied', 'FIXES', 'OPT_OUT_ENV', 'has_mmcv_ext',
    'install_mmcv_ops_fallback', 'install_safe_checkpoint_loader',
    'load_from_local', 'load_from_http', 'mmengine_loader_is_unrestricted',
    'install_atomic_local_put', 'mmengine_put_writes_in_place',
    'install_contiguous_sem_seg_draw', 'mmseg_draw_copies_image_layout',
    'check_pkg_resources', 'mmengine_needs_pkg_resources',
    'install_config_index', 'config_index', 'mmengine_reparses_metafiles',
    'install_config_text_once', 'formatting_once',
    'mmengine_reformats_config_text', 'config_text_uncachable',
    'mmcv_ops_fallback_needed', 'mmengine_misnames_mmseg',
    'name_mmseg_distribution'
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Applying the fixes
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Fix:
    """A fix, the condition under which it is needed, and its installer."""
    name: str
    needed: Callable[[], bool]
    install: Callable[[], object]


def mmcv_ops_fallback_needed() -> bool:
    """Fix 1's condition: no ``mmcv._ext``, and mmseg imports ``mmcv.ops``
    without a ``try``."""
    return not has_mmcv_ext() and mmseg_imports_mmcv_ops_unguarded()


def mmengine_misnames_mmseg() -> bool:
    """Fix 9's condition: mmengine maps ``mmseg::`` to a distribution that
    is not installed (OneDL)."""
    from mmengine.config import utils
    return config_packages.misnamed_mmseg(utils)


def name_mmseg_distribution() -> bool:
    """Fix 9: point mmengine's ``mmseg`` entry at the installed
    distribution."""
    from mmengine.config import utils
    return config_packages.name_mmseg_distribution(utils)


#: The fixes :func:`apply` installs, in order (numbers as in the module
#: docstring; 3 and 5 are not patches).
FIXES = (
    Fix('mmcv_ops', mmcv_ops_fallback_needed, install_mmcv_ops_fallback),
    Fix('safe_loader', mmengine_loader_is_unrestricted,
        install_safe_checkpoint_loader),
    Fix('atomic_put', mmengine_put_writes_in_place, install_atomic_local_put),
    Fix('contiguous_draw', mmseg_draw_copies_image_layout,
        install_contiguous_sem_seg_draw),
    Fix('config_index', mmengine_reparses_metafiles, install_config_index),
    Fix('config_text', mmengine_reformats_config_text,
        install_config_text_once),
    Fix('config_package', mmengine_misnames_mmseg, name_mmseg_distribution),
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
        _APPLIED, not_needed = [], []
        for fix in FIXES:
            if fix.name in off:
                continue
            if fix.needed():
                fix.install()
                _APPLIED.append(fix.name)
            elif fix.name == 'config_package' and config_packages.RENAMED:
                _APPLIED.append(fix.name)  # by the start-up hook
            else:
                not_needed.append(fix.name)
        _quiet_pkg_resources_deprecation()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(_summary(_APPLIED, not_needed, off))
    return list(_APPLIED)


def _summary(applied_names: List[str], not_needed: List[str],
             off: List[str]) -> str:
    """The debug line of :func:`apply`."""
    from .stack import describe_stack
    notes = []
    if 'config_text' in not_needed and config_text_uncachable():
        notes.append('config_text does not apply: mmengine imports yapf\'s '
                     'FormatCode inside Config.pretty_text')
    notes.append('pkg_resources ' + (
        'needed (setuptools<82)' if mmengine_needs_pkg_resources() else
        'not used by mmengine'))
    return (f'mmseg_plugins.compat: {describe_stack()}; applied: '
            f'{", ".join(applied_names) or "none"}; not needed: '
            f'{", ".join(not_needed) or "none"}; switched off: '
            f'{", ".join(off) or "none"}; {"; ".join(notes)}')


def applied() -> List[str]:
    """Names of the fixes installed by :func:`apply` in this process."""
    return list(_APPLIED or [])
