"""How the compatibility fixes recognise what they fix
(:mod:`mmseg_plugins.compat`).

Each condition asks the installed code, never a package name or version.
Where it can, it tries the behaviour: it calls the installed function on a
tiny input in a temporary folder (a file to write, a metafile to read, an
image to draw on) and looks at what happened. Where trying would have an
effect on the process, it reads the installed code instead, and says why:

- whether mmengine needs ``pkg_resources`` and whether ``Config.pretty_text``
  imports yapf itself: the names the compiled code refers to
  (:func:`code_refers_to`; calling the first would import ``pkg_resources``
  or hide it from every thread meanwhile, seeing the second call yapf would
  mean replacing yapf's function process-wide);
- whether mmengine's checkpoint loader unpickles without an allow-list: its
  source text (:func:`source_matches`; a loader that falls back to full
  unpickling prints a warning when tried, and the answer is an argument's
  value, which the compiled names do not show);
- whether mmseg imports ``mmcv.ops`` unguarded, asked by the start-up hook
  while ``mmcv.ops`` is being imported: mmseg's files, parsed
  (:func:`mmseg_plugins_mmcv_ops.mmseg_imports_mmcv_ops_unguarded`).
"""
import inspect
import types
from typing import Callable, Optional, Set

__all__ = ['code_names', 'code_refers_to', 'source_matches']


def code_names(function: Callable) -> Optional[Set[str]]:
    """The global, attribute and imported names that the compiled code of
    ``function`` (its nested functions included) refers to; None where it
    has no Python code (a builtin, a C extension).

    Args:
        function (callable): A function, method or property getter.
    """
    code = getattr(getattr(function, '__func__', function), '__code__', None)
    if not isinstance(code, types.CodeType):
        return None
    names, stack = set(), [code]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts
                     if isinstance(c, types.CodeType))
    return names


def code_refers_to(function: Callable, name: str) -> bool:
    """Whether the compiled code of ``function`` refers to ``name`` (e.g.
    imports it). Unlike its source text this is there without ``.py``
    files and ignores comments and docstrings; where there is no Python
    code, the answer is True: the condition then assumes the behaviour of
    the releases its fix was written for.

    Args:
        function (callable): The installed function to look at.
        name (str): A module, attribute or global name.
    """
    names = code_names(function)
    return names is None or name in names


def source_matches(function: Callable, test: Callable[[str], bool]) -> bool:
    """Whether the source text of the installed ``function`` passes
    ``test``; True where the source cannot be read (a build shipped without
    ``.py`` files): the condition then assumes the behaviour of the
    releases its fix was written for.

    Args:
        function (callable): The installed function or method to look at.
        test (callable): Takes the source text, says whether the behaviour
            the fix is for is there.
    """
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return True
    return test(source)
