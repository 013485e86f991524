"""Which OpenMMLab stack is installed: upstream OpenMMLab (mmsegmentation,
mmengine, mmcv / mmcv-lite) or VBTI's maintained fork OneDL
(onedl-mmsegmentation, onedl-mmengine, onedl-mmcv), which keeps the import
names ``mmseg``, ``mmengine`` and ``mmcv``. The package depends on neither
(pip cannot express "one of two"): the extras ``[openmmlab]`` and
``[onedl]`` install one. :func:`check_stack` runs before anything imports
mmseg, mmengine or mmcv and refuses a missing or mixed stack with one
message.

The stack is read from the installed distributions' metadata
(:mod:`importlib.metadata`), which imports nothing. This only names the
stack; which compatibility fix applies is decided by what the installed
code does (:mod:`mmseg_plugins.compat`), never by a name or version.
"""
import importlib.metadata as metadata
from importlib.util import find_spec as _find_spec
from typing import Dict, List, Optional, Tuple

__all__ = ['UPSTREAM', 'ONEDL', 'EXTRAS', 'DISTRIBUTIONS', 'StackError',
           'installed_stack', 'check_stack', 'describe_stack',
           'missing_modules', 'stack_absent']

UPSTREAM = 'OpenMMLab'
ONEDL = 'OneDL'
#: The package's extra that installs each stack.
EXTRAS = {UPSTREAM: 'openmmlab', ONEDL: 'onedl'}
#: import name -> {stack: distribution names that provide it}
DISTRIBUTIONS = {
    'mmseg': {UPSTREAM: ('mmsegmentation', ),
              ONEDL: ('onedl-mmsegmentation', )},
    'mmengine': {UPSTREAM: ('mmengine', 'mmengine-lite'),
                 ONEDL: ('onedl-mmengine', )},
    'mmcv': {UPSTREAM: ('mmcv', 'mmcv-lite'), ONEDL: ('onedl-mmcv', )},
}

#: import name -> [(stack, distribution, version)]
Installed = Dict[str, List[Tuple[str, str, str]]]


class StackError(ImportError):
    """No OpenMMLab stack, or a mix of the two, is installed."""


def _version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_stack() -> Installed:
    """The distributions installed for each import name, with their stack
    and version (an empty list: none installed)."""
    found = {}
    for module, stacks in DISTRIBUTIONS.items():
        found[module] = [(stack, name, version)
                         for stack, names in stacks.items() for name in names
                         for version in [_version(name)] if version]
    return found


def _install_hint() -> str:
    return (f"pip install 'mmseg_plugins[{EXTRAS[UPSTREAM]}]' (upstream "
            f"{UPSTREAM}) or 'mmseg_plugins[{EXTRAS[ONEDL]}]' (the "
            f'maintained fork {ONEDL}), in a fresh environment for a switch')


def check_stack(installed: Optional[Installed] = None) -> Optional[str]:
    """Refuse a missing or mixed OpenMMLab stack.

    A module importable without distribution metadata (a source checkout
    on ``PYTHONPATH``) is accepted as it is.

    Args:
        installed (dict, optional): What :func:`installed_stack` returns
            (read from the environment by default).

    Returns:
        str or None: The stack (:data:`UPSTREAM` or :data:`ONEDL`); None if
        it cannot be told from metadata.

    Raises:
        StackError: A module has no distribution and cannot be imported, or
            the distributions come from both stacks (e.g. upstream mmengine
            beside ``onedl-mmsegmentation``; both install the same import
            names, the later overwriting the files of the earlier).
    """
    if installed is None:
        installed = installed_stack()
    missing = missing_modules(installed)
    if missing:
        raise StackError(
            f'mmseg_plugins needs an OpenMMLab stack, and '
            f'{", ".join(missing)} cannot be imported: {_install_hint()}')
    stacks = {stack for found in installed.values() for stack, _, _ in found}
    if len(stacks) > 1:
        raise StackError(
            f'mixed OpenMMLab stacks installed: {describe_stack(installed)}; '
            f'they share the import names mmseg, mmengine and mmcv: '
            f'{_install_hint()}')
    return stacks.pop() if stacks else None


def _importable(module: str) -> bool:
    """Whether ``module`` can be found (an import hook that refuses it
    counts as absent)."""
    try:
        return _find_spec(module) is not None
    except ImportError:
        return False


def missing_modules(installed: Installed) -> List[str]:
    """The modules of ``installed`` with no distribution that cannot be
    imported either (a source checkout on ``PYTHONPATH`` counts as
    there)."""
    return [module for module, found in installed.items()
            if not found and not _importable(module)]


def stack_absent(installed: Optional[Installed] = None) -> bool:
    """Whether none of mmseg, mmengine and mmcv is installed or importable:
    a torch-only environment (timm users), where ``import mmseg_plugins``
    provides the networks without the mmseg integration."""
    if installed is None:
        installed = installed_stack()
    return len(missing_modules(installed)) == len(installed)


def describe_stack(installed: Optional[Installed] = None) -> str:
    """``mmseg: onedl-mmsegmentation 1.4.2 (OneDL), mmengine: ...``."""
    if installed is None:
        installed = installed_stack()
    return ', '.join(
        f'{module}: ' + (' + '.join(f'{name} {version} ({stack})'
                                    for stack, name, version in found)
                         or 'no distribution')
        for module, found in installed.items())
