"""Tests of build_backend/startup_pth.py, the in-tree build backend that adds
the start-up hook ``mmseg_plugins_mmcv_ops.pth`` to every wheel: the wheel
rewrite on small wheels made here (the real regular and editable wheels are
built in tests/test_packaging.py)."""
import base64
import hashlib
import importlib.util
import os.path as osp
import zipfile

import pytest

from helpers import ROOT

SPEC = importlib.util.spec_from_file_location(
    'startup_pth', osp.join(ROOT, 'build_backend', 'startup_pth.py'))
backend = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(backend)

DIST_INFO = 'demo-1.0.dist-info'
MODULE = b'VALUE = 1\n'


def _sha256(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return digest.rstrip(b'=').decode()


def _make_wheel(path, files: dict) -> str:
    with zipfile.ZipFile(path, 'w') as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return str(path)


def _demo_wheel(path, **extra) -> str:
    record = (f'demo/__init__.py,sha256={_sha256(MODULE)},{len(MODULE)}\n'
              f'{DIST_INFO}/METADATA,,\n{DIST_INFO}/RECORD,,\n')
    return _make_wheel(path, {'demo/__init__.py': MODULE, **extra,
                              f'{DIST_INFO}/METADATA': b'Name: demo\n',
                              f'{DIST_INFO}/RECORD': record.encode()})


def test_startup_pth_is_added_at_the_root_with_its_record_line(tmp_path):
    wheel_path = _demo_wheel(tmp_path / 'demo-1.0-py3-none-any.whl')
    backend.add_startup_pth(wheel_path)
    with zipfile.ZipFile(wheel_path) as wheel:
        assert wheel.testzip() is None
        names = wheel.namelist()
        pth = wheel.read(backend.STARTUP_PTH)
        record = wheel.read(f'{DIST_INFO}/RECORD').decode().splitlines()
        assert wheel.read('demo/__init__.py') == MODULE
    assert pth == (b'import mmseg_plugins_mmcv_ops; '
                   b'mmseg_plugins_mmcv_ops.install()\n')
    # the .dist-info files stay last, in their order
    assert names == ['demo/__init__.py', backend.STARTUP_PTH,
                     f'{DIST_INFO}/METADATA', f'{DIST_INFO}/RECORD']
    assert f'{backend.STARTUP_PTH},sha256={_sha256(pth)},{len(pth)}' \
        in record
    assert len(record) == 4  # the three lines before, and this one


@pytest.mark.parametrize('broken', ['no RECORD', 'a .pth already'])
def test_a_wheel_it_cannot_complete_is_refused(tmp_path, broken):
    path = tmp_path / 'demo-1.0-py3-none-any.whl'
    if broken == 'no RECORD':
        wheel_path = _make_wheel(path, {'demo/__init__.py': MODULE})
    else:
        wheel_path = _demo_wheel(path, **{backend.STARTUP_PTH: b'import x\n'})
    with open(wheel_path, 'rb') as f:
        before = f.read()
    with pytest.raises(RuntimeError, match='cannot add '
                       'mmseg_plugins_mmcv_ops.pth'):
        backend.add_startup_pth(wheel_path)
    with open(wheel_path, 'rb') as f:
        assert f.read() == before  # left as it was


def test_backend_is_setuptools_with_both_wheel_hooks_wrapped():
    from setuptools import build_meta
    for hook in ('build_sdist', 'get_requires_for_build_wheel',
                 'prepare_metadata_for_build_wheel',
                 'get_requires_for_build_editable',
                 'prepare_metadata_for_build_editable'):
        assert getattr(backend, hook) is getattr(build_meta, hook), hook
    for hook in ('build_wheel', 'build_editable'):
        assert getattr(backend, hook) is not getattr(build_meta, hook), hook
