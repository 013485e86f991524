"""How the compatibility fixes recognise the behaviour they fix: by the
source text of the installed function (:mod:`mmseg_plugins.compat`)."""
import inspect
from typing import Callable


def source_matches(function: Callable, test: Callable[[str], bool]) -> bool:
    """Whether the source of the installed ``function`` passes ``test``.

    Where the source cannot be read (a build shipped without ``.py``
    files), the answer is ``True``: the fix's condition then assumes the
    behaviour of the releases it was written for.

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
