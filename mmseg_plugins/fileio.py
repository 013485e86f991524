"""Atomic output: a file or folder appears under its final name only once it
is complete, so an interrupted or failed write never leaves a half-written
result (a truncated checkpoint that ``--resume`` picks up, half a PNG).

Everything the package writes goes through :func:`atomic_path` (or its
shorthands :func:`atomic_write` and :func:`atomic_directory`): the data goes
to a temporary name in the destination's own directory (so the final rename
is atomic on one file system), is flushed to disk, and is renamed over the
destination; on any error the temporary is removed and the destination is
left as it was.
"""
import contextlib
import os
import os.path as osp
import shutil
import tempfile
from typing import BinaryIO, Callable, Iterator, Union

__all__ = ['atomic_path', 'atomic_write', 'atomic_directory']

PathLike = Union[str, os.PathLike]


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dst: PathLike, directory: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``dst`` to write to; on success it is
    flushed and renamed to ``dst``, on error removed.

    Args:
        dst (str | PathLike): The final file (or folder) name.
        directory (bool): Yield an empty temporary folder instead of a file
            name; ``dst`` must not exist or be an empty folder, which is
            replaced.

    Yields:
        str: The temporary path. Its extension is ``dst``'s, so writers
        that choose a format by extension (OpenCV, matplotlib) still work.
    """
    dst = os.fspath(dst)
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    base = osp.basename(dst)
    if directory:
        tmp = tempfile.mkdtemp(prefix=f'.{base}.', suffix='.tmp', dir=parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f'.{base}.',
                                   suffix='.tmp' + osp.splitext(base)[1],
                                   dir=parent)
        os.close(fd)
    try:
        yield tmp
        if directory:
            for root, _, files in os.walk(tmp):
                for name in files:
                    _fsync_path(osp.join(root, name))
            if osp.isdir(dst):
                os.rmdir(dst)  # only an empty folder can be replaced
        else:
            _fsync_path(tmp)
        # mkstemp/mkdtemp create 0600/0700: give the result the
        # permissions a plain open() or mkdir() would (the umask's)
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        os.replace(tmp, dst)
    except BaseException:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif osp.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(dst: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically: ``write(f)`` fills the binary file ``f``.

    Example:
        >>> atomic_write('table.csv', lambda f: f.write(b'a,b\\n'))
    """
    with atomic_path(dst) as tmp:
        with open(tmp, 'wb') as f:
            write(f)


def atomic_directory(dst: PathLike) -> 'contextlib.AbstractContextManager':
    """``with atomic_directory(dst) as tmp:`` fill the empty folder ``tmp``;
    it becomes ``dst`` when the block ends without error. ``dst`` must not
    exist or be empty."""
    return atomic_path(dst, directory=True)
