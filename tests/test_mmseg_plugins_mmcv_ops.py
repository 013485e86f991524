"""Tests of mmseg_plugins_mmcv_ops/__init__.py: the meta path finder and the
.pth file that installs it at interpreter start."""
import os.path as osp
import re
import sys
import sysconfig

import pytest

import mmseg_plugins_mmcv_ops
from helpers import PYTHON, run
from mmseg_plugins_mmcv_ops import MMCVOpsFinder, OPT_OUT_ENV

#: What the finder must not import at interpreter start.
HEAVY = ('torch', 'numpy', 'mmcv', 'mmengine', 'mmseg', 'mmseg_plugins')


def test_pth_file_is_installed_next_to_the_packages():
    """The install (editable here, a wheel in tests/test_packaging.py) puts
    the .pth file into site-packages, where ``site`` runs it."""
    pth = osp.join(sysconfig.get_paths()['purelib'],
                   'mmseg_plugins_mmcv_ops.pth')
    with open(pth) as f:
        assert f.read().strip() == ('import mmseg_plugins_mmcv_ops; '
                                    'mmseg_plugins_mmcv_ops.install()')


def test_interpreter_start_installs_only_the_finder():
    code = ('import sys, mmseg_plugins_mmcv_ops as m\n'
            'print(sys.meta_path[0] is m.MMCVOpsFinder)\n'
            f'print(sorted(n for n in sys.modules if n.split(".")[0] in '
            f'{HEAVY!r}))\n')
    proc = run([PYTHON, '-c', code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split('\n')[:2] == ['True', '[]']


def test_startup_import_is_one_small_module():
    """``python -X importtime`` at start: the .pth imports our module and
    nothing under it (its cost is its own, reported in the message)."""
    proc = run([PYTHON, '-X', 'importtime', '-c', 'pass'])
    lines = proc.stderr.splitlines()
    ours = [i for i, ln in enumerate(lines)
            if ln.rstrip().endswith('|   mmseg_plugins_mmcv_ops')]
    assert len(ours) == 1, proc.stderr[-2000:]
    self_us, cumulative_us = (
        int(v) for v in re.findall(r'\d+', lines[ours[0]])[:2])
    # importtime lists a module's own imports on the lines before it
    assert self_us == cumulative_us, (
        f'the start-up module imports others: '
        f'{lines[ours[0] - 3:ours[0] + 1]}')


@pytest.fixture
def unguarded(monkeypatch):
    """mmseg imports mmcv.ops outside a try (upstream mmseg 1.2.2)."""
    monkeypatch.setattr(mmseg_plugins_mmcv_ops,
                        'mmseg_imports_mmcv_ops_unguarded', lambda: True)


def test_finder_steps_aside_with_full_mmcv_and_for_other_modules(
        monkeypatch, unguarded):
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    monkeypatch.setattr(mmseg_plugins_mmcv_ops, 'has_mmcv_ext', lambda: False)
    spec = MMCVOpsFinder.find_spec('mmcv.ops')
    assert spec.name == 'mmcv.ops' and spec.loader is MMCVOpsFinder
    assert spec.submodule_search_locations == []
    assert MMCVOpsFinder.find_spec('mmcv.cnn') is None
    assert MMCVOpsFinder.find_spec('ops') is None
    monkeypatch.setattr(mmseg_plugins_mmcv_ops, 'has_mmcv_ext', lambda: True)
    assert MMCVOpsFinder.find_spec('mmcv.ops') is None  # full mmcv


def test_finder_steps_aside_where_mmseg_guards_its_imports(monkeypatch):
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    monkeypatch.setattr(mmseg_plugins_mmcv_ops, 'has_mmcv_ext', lambda: False)
    monkeypatch.setattr(mmseg_plugins_mmcv_ops,
                        'mmseg_imports_mmcv_ops_unguarded', lambda: False)
    assert MMCVOpsFinder.find_spec('mmcv.ops') is None  # OneDL's mmseg


def test_guarded_imports_are_read_from_mmseg_source(tmp_path):
    """Upstream mmseg 1.2.2 imports ``point_sample`` at module level; OneDL's
    onedl-mmsegmentation 1.4 in ``try: ... except ModuleNotFoundError``."""
    read = mmseg_plugins_mmcv_ops._read_mmseg_imports
    for name in mmseg_plugins_mmcv_ops.MMSEG_MMCV_OPS_IMPORTERS:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('try:\n    from mmcv.ops import point_sample\n'
                        'except ModuleNotFoundError:\n'
                        '    point_sample = None\n')
    assert read(str(tmp_path)) is False
    path.write_text('import torch\nfrom mmcv.ops import point_sample\n')
    assert read(str(tmp_path)) is True
    path.unlink()
    assert read(str(tmp_path)) is True  # unreadable: upstream's behaviour


@pytest.mark.parametrize('value,off', [('mmcv_ops', True), ('all', True),
                                       ('safe_loader, mmcv_ops', True),
                                       ('safe_loader', False), ('', False)])
def test_finder_honours_the_opt_out(monkeypatch, unguarded, value, off):
    monkeypatch.setenv(OPT_OUT_ENV, value)
    monkeypatch.setattr(mmseg_plugins_mmcv_ops, 'has_mmcv_ext', lambda: False)
    assert (MMCVOpsFinder.find_spec('mmcv.ops') is None) == off


def test_install_puts_the_finder_first_once(monkeypatch):
    monkeypatch.setattr(sys, 'meta_path', [
        f for f in sys.meta_path if f is not MMCVOpsFinder])
    mmseg_plugins_mmcv_ops.install()
    mmseg_plugins_mmcv_ops.install()
    assert sys.meta_path[0] is MMCVOpsFinder
    assert sys.meta_path.count(MMCVOpsFinder) == 1
