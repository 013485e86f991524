"""mmengine's config reading: fix 3 (``pkg_resources``, a dependency bound
and a clear message), fix 7 ``config_index`` (the metafile index behind
``pkg::`` bases, read once) and fix 8 ``config_text`` (a config's text
formatted once) (:mod:`mmseg_plugins.compat`)."""
import os
import tempfile
import warnings
from typing import Callable

from .probes import code_refers_to


# --------------------------------------------------------------------------
# 3. pkg_resources (setuptools >= 82)
# --------------------------------------------------------------------------
def mmengine_needs_pkg_resources() -> bool:
    """Whether mmengine resolves ``pkg::`` config bases with
    ``pkg_resources`` (upstream mmengine 0.10.x: ``get_installed_path``
    imports it) rather than ``importlib.metadata`` (mmengine 0.11, OneDL's
    onedl-mmengine 0.10.12): whether ``get_installed_path`` imports it.
    Calling the function to find out would import ``pkg_resources`` (a
    tenth of a second and a deprecation warning) or would have to hide it
    from every thread of the process meanwhile, hence the compiled code is
    asked (:func:`~mmseg_plugins.compat.probes.code_refers_to`)."""
    from mmengine.utils import package_utils
    return code_refers_to(package_utils.get_installed_path, 'pkg_resources')


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


def reparses_metafiles(lookup: Callable[[str, str], dict]) -> bool:
    """Whether ``lookup(package_path, cfg_path)`` (mmengine's
    ``_get_cfg_metainfo``) reads a package's metafiles again on each call:
    asked twice about a package in a temporary folder whose metafile
    changes in between (its ``model-index.yml`` does not), it answers with
    the changed entry."""
    with tempfile.TemporaryDirectory() as package:
        mim = os.path.join(package, '.mim')
        os.makedirs(os.path.join(mim, 'configs'))
        with open(os.path.join(mim, 'model-index.yml'), 'w') as f:
            f.write('Import:\n- configs/metafile.yml\n')
        answers = []
        for name in ('first', 'second'):
            with open(os.path.join(mim, 'configs', 'metafile.yml'),
                      'w') as f:
                f.write(f'Models:\n- Name: {name}\n  Config: configs/a.py\n')
            try:
                answers.append(lookup(package, 'a.py').get('Name'))
            except Exception:  # not mmengine 0.10's lookup: not replaced
                return False
    return answers == ['first', 'second']


def mmengine_reparses_metafiles() -> bool:
    """Fix 7's condition: mmengine's ``_get_cfg_metainfo`` loads a
    package's metafiles on every call (:func:`reparses_metafiles`)."""
    from mmengine.config import utils
    lookup = getattr(utils, '_get_cfg_metainfo', None)
    return lookup is not None and reparses_metafiles(lookup)


def install_config_index() -> None:
    """Answer mmengine's metafile lookups from :func:`config_index`
    (``_get_external_cfg_path`` looks the function up at each call);
    mmengine's function stays reachable as ``__wrapped__``."""
    from mmengine.config import utils
    if utils._get_cfg_metainfo is not _cfg_metainfo_from_index:
        _cfg_metainfo_from_index.__wrapped__ = utils._get_cfg_metainfo
        utils._get_cfg_metainfo = _cfg_metainfo_from_index


# --------------------------------------------------------------------------
# 8. a config's text formatted once
# --------------------------------------------------------------------------
FORMAT_ONCE_FLAG = '__mmseg_plugins_format_once__'


def formatting_once(format_code: Callable) -> Callable:
    """yapf's ``FormatCode`` keeping its result for the last 8 (source,
    style, options) it formatted; calls it cannot key (a style file name,
    unhashable options) go straight to ``format_code``, which stays
    reachable as ``__wrapped__``."""
    import functools

    @functools.lru_cache(maxsize=8)
    def formatted(source: str, style: tuple, options: tuple):
        return format_code(source, style_config=dict(style), **dict(options))

    @functools.wraps(format_code)
    def format_code_once(unformatted_source, style_config=None, **options):
        try:
            key = (tuple(sorted(style_config.items())),
                   tuple(sorted(options.items())))
            hash(key)
        except (AttributeError, TypeError):
            return format_code(unformatted_source, style_config=style_config,
                               **options)
        return formatted(unformatted_source, *key)

    setattr(format_code_once, FORMAT_ONCE_FLAG, True)
    return format_code_once


def mmengine_reformats_config_text() -> bool:
    """Whether mmengine's ``Config.pretty_text`` calls yapf's
    ``FormatCode`` anew each time, through a ``FormatCode`` of mmengine's
    config module (upstream). OneDL's mmengine imports ``FormatCode``
    inside ``pretty_text``: caching there would mean replacing yapf's own
    function for the whole process, so the fix does not apply
    (:func:`config_text_uncachable` says so)."""
    from mmengine.config import config
    format_code = getattr(config, 'FormatCode', None)
    return format_code is not None and not getattr(
        format_code, FORMAT_ONCE_FLAG, False)


def config_text_uncachable() -> bool:
    """Whether ``Config.pretty_text`` formats with yapf through a
    ``FormatCode`` it imports itself (OneDL), which this fix leaves
    alone."""
    from mmengine.config import config
    if getattr(config, 'FormatCode', None) is not None:
        return False
    # seeing pretty_text call yapf would mean replacing yapf's FormatCode
    # for the whole process, or a profiler: the compiled code is asked
    return code_refers_to(config.Config.pretty_text.fget, 'FormatCode')


def install_config_text_once() -> None:
    """Have mmengine's config module format through
    :func:`formatting_once`."""
    from mmengine.config import config
    config.FormatCode = formatting_once(config.FormatCode)
