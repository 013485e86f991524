"""Fix ``config_package``: OneDL's mmengine (onedl-mmengine 0.10.12) maps
the ``mmseg::`` scope of config bases to the distribution
``mmsegmentation`` (``mmengine.config.utils.MODULE2PACKAGE``), but the fork
installs ``mmseg`` as ``onedl-mmsegmentation``: every ``mmseg::_base_/...``
then fails with ``ModuleNotFoundError: mmsegmentation is not installed``,
in this package's tools and in the fork's own ``tools/train.py``, which
reads the config before any ``custom_imports``. Hence the fix runs from the
start-up hook (:class:`mmseg_plugins_mmcv_ops.MMCVOpsFinder`), when
mmengine imports that module; :mod:`mmseg_plugins.compat` applies it again
where the hook did not run (``python -S``, or mmengine imported first).

The entry is changed only when the distribution it names is not installed
and one of :data:`MMSEG_DISTRIBUTIONS` is: upstream mmengine, and a fork
that fixes its map, are left as they are.
"""
import importlib.metadata as metadata
from typing import Any, Optional

__all__ = ['MMSEG_DISTRIBUTIONS', 'mmseg_distribution', 'misnamed_mmseg',
           'name_mmseg_distribution', 'RENAMED', 'FixingLoader']

#: The distributions that install the import package ``mmseg``.
MMSEG_DISTRIBUTIONS = ('mmsegmentation', 'onedl-mmsegmentation')


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return True


def mmseg_distribution() -> Optional[str]:
    """The installed distribution of :data:`MMSEG_DISTRIBUTIONS`, if any."""
    return next((d for d in MMSEG_DISTRIBUTIONS if _installed(d)), None)


def _packages(utils: Any) -> Optional[dict]:
    packages = getattr(utils, 'MODULE2PACKAGE', None)
    if packages is None:
        packages = getattr(utils, 'PKG2PROJECT', None)
    return packages if isinstance(packages, dict) else None


def misnamed_mmseg(utils: Any) -> bool:
    """Whether ``utils`` (``mmengine.config.utils``) maps ``mmseg`` to a
    distribution that is not installed while another one provides
    ``mmseg``."""
    packages = _packages(utils)
    if packages is None or 'mmseg' not in packages:
        return False
    if _installed(packages['mmseg']):
        return False
    return mmseg_distribution() not in (None, packages['mmseg'])


#: The modules whose entry :func:`name_mmseg_distribution` changed.
RENAMED = []


def name_mmseg_distribution(utils: Any) -> bool:
    """Point ``utils``' ``mmseg`` entry at the installed distribution if
    :func:`misnamed_mmseg`. Returns whether it changed."""
    if not misnamed_mmseg(utils):
        return False
    _packages(utils)['mmseg'] = mmseg_distribution()
    RENAMED.append(utils.__name__)
    return True


class FixingLoader:
    """Wraps the loader of ``mmengine.config.utils``: runs the module as
    that loader does, then :func:`name_mmseg_distribution`. Everything
    else (``get_source`` for tracebacks and ``inspect``, ...) is the
    wrapped loader's."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__['loader'], name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        name_mmseg_distribution(module)
