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

The finder steps aside as well where mmseg guards those imports itself
(``try: from mmcv.ops import ... except ModuleNotFoundError``, as OneDL's
onedl-mmsegmentation does): :func:`mmseg_imports_mmcv_ops_unguarded` reads
mmseg's source for that (it says why it cannot try), once, when
``mmcv.ops`` is first imported.

The same start-up hook carries a second fix, ``config_package``, for OneDL's
mmengine, which maps ``mmseg::`` config bases to a distribution named
``mmsegmentation`` that the fork does not install
(:mod:`mmseg_plugins_mmcv_ops.config_packages`): when ``mmengine.config.utils``
is imported, the finder lets the module load as usual, then points its
``mmseg`` entry at the distribution that provides ``mmseg``, so that the
fork's own ``tools/train.py`` reads plugin configs too.

``MMSEG_PLUGINS_NO_COMPAT=mmcv_ops`` (or ``config_package``, or ``all``)
switches each part of the finder off, as it does the rest of
:mod:`mmseg_plugins.compat`.
"""
import os
import sys

__all__ = [
    'FIX_NAME', 'CONFIG_PACKAGE_FIX', 'OPT_OUT_ENV', 'MMCVOpsFinder',
    'has_mmcv_ext', 'mmseg_imports_mmcv_ops_unguarded', 'opted_out_fixes',
    'quiet_missing_deform_attn', 'install'
]

#: The name of this fix in :data:`OPT_OUT_ENV`.
FIX_NAME = 'mmcv_ops'
#: The name of the ``mmseg::`` fix for OneDL's mmengine.
CONFIG_PACKAGE_FIX = 'config_package'
#: mmengine's module holding the module -> distribution map of ``pkg::``.
CONFIG_UTILS = 'mmengine.config.utils'
#: mmseg's modules that upstream mmseg 1.2.2 imports at package import and
#: that import ``mmcv.ops`` at module level
MMSEG_MMCV_OPS_IMPORTERS = ('models/utils/point_sample.py',
                            'models/losses/focal_loss.py',
                            'utils/mask_classification.py')
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


_UNGUARDED = []  # the answer of mmseg_imports_mmcv_ops_unguarded, once


def mmseg_imports_mmcv_ops_unguarded() -> bool:
    """Whether the installed mmseg imports ``mmcv.ops`` outside a ``try``
    at module level in one of :data:`MMSEG_MMCV_OPS_IMPORTERS` (read, not
    imported; True where they cannot be read: the releases the fallback was
    written for).

    The one condition of the compatibility fixes that reads source files
    rather than trying the behaviour: the question comes up inside the
    import of ``mmcv.ops``, usually while mmseg itself is being imported.
    Trying would mean importing those mmseg modules without ``mmcv.ops``:
    in this process that leaves them half-imported in ``sys.modules`` (and
    imports torch from the start-up hook), in a fresh interpreter it costs
    seconds on every first import of ``mmcv.ops``.
    """
    if not _UNGUARDED:
        _UNGUARDED.append(_read_mmseg_imports())
    return _UNGUARDED[0]


def _read_mmseg_imports(root: str = None) -> bool:
    """:func:`mmseg_imports_mmcv_ops_unguarded` for the mmseg package folder
    ``root`` (the installed one by default)."""
    import ast
    if root is None:
        import importlib.util
        try:
            spec = importlib.util.find_spec('mmseg')
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return True
        root = list(spec.submodule_search_locations)[0]
    for name in MMSEG_MMCV_OPS_IMPORTERS:
        try:
            with open(os.path.join(root, name), encoding='utf-8') as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            return True
        for node in tree.body:  # module level, outside any try
            if isinstance(node, ast.ImportFrom) and node.module == \
                    'mmcv.ops' or isinstance(node, ast.Import) and any(
                        a.name.startswith('mmcv.ops') for a in node.names):
                return True
    return False


def quiet_missing_deform_attn() -> None:
    """mmcv's transformer bricks warn that ``MultiScaleDeformableAttention``
    cannot be imported wherever ``mmcv._ext`` is missing (mmcv-lite, and
    onedl-mmcv as pip builds it); there that is expected."""
    import warnings
    warnings.filterwarnings(
        'ignore', message=r'Fail to import ``MultiScaleDeformableAttention',
        category=UserWarning)


class MMCVOpsFinder:
    """Meta path finder that provides ``mmcv.ops`` when ``mmcv._ext`` is
    missing, and leaves every other import (and ``mmcv.ops`` with full
    mmcv) to the finders behind it."""

    @classmethod
    def find_spec(cls, fullname: str, path=None, target=None):
        if fullname == CONFIG_UTILS:
            return cls._config_utils_spec(fullname, path, target)
        if fullname != 'mmcv.ops' or opted_out_fixes() & {FIX_NAME, 'all'}:
            return None
        if has_mmcv_ext():
            return None
        quiet_missing_deform_attn()
        if not mmseg_imports_mmcv_ops_unguarded():
            return None  # OneDL's mmseg: mmcv's own mmcv.ops
        from importlib.machinery import ModuleSpec
        return ModuleSpec(fullname, cls, is_package=True)

    @staticmethod
    def create_module(spec):
        from .ops import make_fallback_module
        return make_fallback_module()

    @staticmethod
    def exec_module(module) -> None:
        """Everything happens in :meth:`create_module`."""

    @classmethod
    def _config_utils_spec(cls, fullname: str, path, target):
        """mmengine's own spec of ``mmengine.config.utils``, whose loader
        fixes the module's ``mmseg`` entry after running it."""
        if opted_out_fixes() & {CONFIG_PACKAGE_FIX, 'all'}:
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and \
                        hasattr(spec.loader, 'exec_module'):
                    from .config_packages import FixingLoader
                    spec.loader = FixingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Put :class:`MMCVOpsFinder` first in ``sys.meta_path`` (idempotent);
    it must precede the path finder, which would find mmcv-lite's
    ``mmcv/ops/`` folder."""
    if MMCVOpsFinder not in sys.meta_path:
        sys.meta_path.insert(0, MMCVOpsFinder)
