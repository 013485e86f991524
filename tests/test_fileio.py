"""Tests of mmseg_plugins/fileio.py: files and folders appear whole or not
at all."""
import os
import stat

import pytest

from mmseg_plugins.fileio import atomic_directory, atomic_path, atomic_write


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    dst = tmp_path / 'a' / 'b.csv'
    atomic_write(dst, lambda f: f.write(b'one'))
    atomic_write(dst, lambda f: f.write(b'two'))
    assert dst.read_bytes() == b'two'
    assert os.listdir(dst.parent) == ['b.csv']


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    dst = tmp_path / 'out.png'
    dst.write_bytes(b'old')

    def fail(f):
        f.write(b'half')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(dst, fail)
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.png']


def test_temporary_keeps_the_extension(tmp_path):
    """Writers that choose a format by extension (OpenCV) still work."""
    with atomic_path(tmp_path / 'overlay.png') as tmp:
        assert tmp.endswith('.png') and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, 'wb') as f:
            f.write(b'png')
    assert (tmp_path / 'overlay.png').read_bytes() == b'png'


def test_directory_appears_complete_or_not_at_all(tmp_path):
    dst = tmp_path / 'folder'
    with atomic_directory(dst) as tmp:
        (open(os.path.join(tmp, 'x.txt'), 'w')).close()
        assert not dst.exists()
    assert sorted(os.listdir(dst)) == ['x.txt']
    other = tmp_path / 'other'
    with pytest.raises(RuntimeError):
        with atomic_directory(other) as tmp:
            open(os.path.join(tmp, 'y'), 'w').close()
            raise RuntimeError('interrupted')
    assert sorted(os.listdir(tmp_path)) == ['folder']
    # an empty folder may be replaced, a non-empty one may not
    empty = tmp_path / 'empty'
    empty.mkdir()
    with atomic_directory(empty) as tmp:
        open(os.path.join(tmp, 'z'), 'w').close()
    assert os.listdir(empty) == ['z']
    with pytest.raises(OSError):
        with atomic_directory(dst) as tmp:
            pass
    assert os.listdir(dst) == ['x.txt']


def test_results_get_the_permissions_of_a_plain_open(tmp_path):
    """Temporary files are created 0600 (folders 0700); the result has
    what open()/mkdir() give under the umask."""
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / 'f.bin', lambda f: f.write(b'x'))
        with atomic_directory(tmp_path / 'd') as tmp:
            open(os.path.join(tmp, 'a'), 'w').close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'f.bin').st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / 'd').st_mode) == 0o750
