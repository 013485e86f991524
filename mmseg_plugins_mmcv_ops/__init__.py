"""Pure-PyTorch ``mmcv.ops`` for mmcv-lite, available from interpreter start.

``mmseg.models``, ``mmseg.utils`` and ``mmseg.apis`` import ``mmcv.ops`` at
module level, and mmcv-lite's ``mmcv.ops`` needs the compiled extension
``mmcv._ext`` that only full mmcv has. So without help, ``from mmseg.apis
import MMSegInferencer`` and mmseg's own tools fail at import unless
:mod:`mmseg_plugins` was imported first.

The package installs ``mmseg_plugins_mmcv_ops.pth`` into site-packages,
which runs :func:`install` at every interpreter start. That only puts
:class:`MMCVOpsFinder` at the front of ``sys.meta_path``: nothing else is
imported (no torch, mmcv or mmseg; this module imports only ``os`` and
``sys``, which the interpreter has loaded already). The finder acts when
``mmcv.ops`` is imported, and only if ``mmcv._ext`` is missing (mmcv-lite):
then ``mmcv.ops`` is the module of :mod:`mmseg_plugins_mmcv_ops.ops`,
holding the two ops mmseg imports unguarded. With full mmcv it steps aside
and mmcv's own ``mmcv.ops`` is imported.

This is a top-level package, not part of :mod:`mmseg_plugins`, because
importing anything under ``mmseg_plugins.`` runs ``mmseg_plugins/__init__``,
which imports torch and mmseg.

``MMSEG_PLUGINS_NO_COMPAT=mmcv_ops`` (or ``all``) switches the finder off,
as it does the rest of :mod:`mmseg_plugins.compat`.
"""
import os
import sys

__all__ = [
    'FIX_NAME', 'OPT_OUT_ENV', 'MMCVOpsFinder', 'has_mmcv_ext',
    'opted_out_fixes', 'install'
]

#: The name of this fix in :data:`OPT_OUT_ENV`.
FIX_NAME = 'mmcv_ops'
#: Environment variable listing compatibility fixes to leave out
#: (comma-separated names, or ``all``).
OPT_OUT_ENV = 'MMSEG_PLUGINS_NO_COMPAT'


def opted_out_fixes() -> set:
    """The fix names listed in :data:`OPT_OUT_ENV` (may include ``all``)."""
    value = os.environ.get(OPT_OUT_ENV, '')
    return {name.strip() for name in value.split(',') if name.strip()}


def has_mmcv_ext() -> bool:
    """Whether mmcv's compiled extension ``mmcv._ext`` is importable (this
    imports ``mmcv`` itself, not the extension)."""
    import importlib.util
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


class MMCVOpsFinder:
    """Meta path finder that provides ``mmcv.ops`` when ``mmcv._ext`` is
    missing, and leaves every other import (and ``mmcv.ops`` with full
    mmcv) to the finders behind it."""

    @classmethod
    def find_spec(cls, fullname: str, path=None, target=None):
        if fullname != 'mmcv.ops' or opted_out_fixes() & {FIX_NAME, 'all'}:
            return None
        if has_mmcv_ext():
            return None
        from importlib.machinery import ModuleSpec
        return ModuleSpec(fullname, cls, is_package=True)

    @staticmethod
    def create_module(spec):
        from .ops import make_fallback_module
        return make_fallback_module()

    @staticmethod
    def exec_module(module) -> None:
        """Everything happens in :meth:`create_module`."""


def install() -> None:
    """Put :class:`MMCVOpsFinder` first in ``sys.meta_path`` (idempotent);
    it must precede the path finder, which would find mmcv-lite's
    ``mmcv/ops/`` folder."""
    if MMCVOpsFinder not in sys.meta_path:
        sys.meta_path.insert(0, MMCVOpsFinder)
