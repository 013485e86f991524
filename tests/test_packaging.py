"""The wheel as a user gets it: built from a copy of the repository,
installed (not editable) into a fresh virtual environment outside the
repository, then used from an empty directory: the start-up hook, mmseg's
APIs, ``mim search``, ``mim train`` and ``mim test`` with the configs and
tools the wheel carries under ``mmseg_plugins/.mim``; and the editable
wheel's start-up hook.

The fresh environment reuses this one's installed dependencies (torch,
mmseg, ...) through a folder of links behind its own site-packages, so
nothing heavy is downloaded; that folder leaves out this environment's
mmseg_plugins install, and the tests assert that everything imported comes
from the wheel. openmim and the few packages it imports come from the
package index (openmim itself with --no-deps, as the README says)."""
import os
import os.path as osp
import re
import shutil
import sysconfig
import zipfile

import pytest

from helpers import PYTHON, ROOT, demo_overrides, run

pytestmark = pytest.mark.slow

DEMO = 'segformer_mit-b0_shapes-128x128.py'
STARTUP_PTH = 'mmseg_plugins_mmcv_ops.pth'
STARTUP_LINE = ('import mmseg_plugins_mmcv_ops; '
                'mmseg_plugins_mmcv_ops.install()\n')
#: What openmim 0.3.9 imports besides pip, PyYAML and the standard library.
MIM_IMPORTS = ('click', 'model-index', 'pandas', 'requests', 'rich',
               'tabulate')


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _repository_files(folder: str) -> set:
    """Files under ROOT/folder, as paths relative to ROOT."""
    found = set()
    for root, dirs, files in os.walk(osp.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        found.update(osp.relpath(osp.join(root, f), ROOT) for f in files)
    return found


def _copy_repository(source) -> None:
    """Copy the repository to ``source`` (a build writes into its source
    folder)."""
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.git', '.venv', '.venv-*', 'build', 'dist', 'data', 'work_dirs',
        '__pycache__', '*.egg-info'))


def _startup_pth_and_record(wheel_path: str) -> tuple:
    """The text of the wheel's ``mmseg_plugins_mmcv_ops.pth`` and its line
    in the wheel's RECORD."""
    with zipfile.ZipFile(wheel_path) as z:
        (record, ) = [n for n in z.namelist()
                      if n.endswith('.dist-info/RECORD')]
        (line, ) = [ln for ln in z.read(record).decode().splitlines()
                    if ln.startswith(STARTUP_PTH + ',')]
        return z.read(STARTUP_PTH).decode(), line


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> str:
    """``pip wheel`` of a copy of the repository."""
    tmp = tmp_path_factory.mktemp('wheel')
    source = tmp / 'source'
    _copy_repository(source)
    _ok(run([PYTHON, '-m', 'pip', 'wheel', '--no-deps',
             '--no-build-isolation', '-w', str(tmp / 'dist'), str(source)],
            timeout=300))
    (path, ) = (tmp / 'dist').glob('mmseg_plugins-*.whl')
    return str(path)


@pytest.fixture(scope='module')
def user(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed, and an empty working folder;
    ``user.run(args)`` runs the venv's python there."""
    tmp = tmp_path_factory.mktemp('user')
    venv = tmp / 'venv'
    _ok(run([PYTHON, '-m', 'venv', '--without-pip', str(venv)]))
    python = str(venv / 'bin' / 'python')
    site = _ok(run([python, '-c', 'import sysconfig; '
                    "print(sysconfig.get_paths()['purelib'])"])).stdout.strip()
    ours = sysconfig.get_paths()['purelib']
    reused = tmp / 'reused-site-packages'
    reused.mkdir()
    for name in os.listdir(ours):
        if not (name.startswith(('mmseg_plugins', '__editable__',
                                 '__pycache__')) or name.endswith('.pth')):
            os.symlink(osp.join(ours, name), reused / name)
    with open(osp.join(site, 'zz_reused_site_packages.pth'), 'w') as f:
        f.write(f'{reused}\n')
    pip = [PYTHON, '-m', 'pip', '--python', python, 'install', '--quiet']
    _ok(run([*pip, '--no-deps', wheel]))
    _ok(run([*pip, '--no-deps', 'openmim==0.3.9'], timeout=300))
    _ok(run([*pip, *MIM_IMPORTS], timeout=300))
    work = tmp / 'work'
    work.mkdir()
    env = {'PYTHONPATH': '', 'PATH': f'{venv / "bin"}{os.pathsep}'
           f'{os.environ["PATH"]}'}

    class User:
        site_packages = site

        @staticmethod
        def run(args, timeout=300):
            return run([python, *args], cwd=str(work), env=env,
                       timeout=timeout)

    return User


def test_wheel_carries_configs_tools_model_index_license_and_hook(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (license_name, ) = [n for n in names if n.endswith('/LICENSE')]
        license_text = z.read(license_name).decode()
    mim = 'mmseg_plugins/.mim/'
    for folder in ('configs', 'tools'):
        assert {n[len(mim):] for n in names if n.startswith(mim + folder)} \
            == _repository_files(folder), folder
    assert mim + 'model-index.yml' in names
    assert {f'{mim}configs/{f}/metafile.yaml' for f in
            ('segformer', 'afformer', 'mpvit')} <= names
    pth, record_line = _startup_pth_and_record(wheel)
    assert pth == STARTUP_LINE
    assert re.fullmatch(rf'{re.escape(STARTUP_PTH)},sha256=[\w-]{{43}},'
                        f'{len(STARTUP_LINE)}', record_line)
    assert not any(n.startswith('build_backend') or n == 'startup_pth.py'
                   for n in names)
    assert {'mmseg_plugins_mmcv_ops/__init__.py',
            'mmseg_plugins_mmcv_ops/ops.py'} <= names
    assert re.fullmatch(r'mmseg_plugins-[\d.]+\.dist-info/licenses/LICENSE',
                        license_name)
    with open(osp.join(ROOT, 'LICENSE')) as f:
        assert license_text == f.read()
    assert not any('__pycache__' in n or n.startswith('tests/')
                   for n in names)


def test_editable_wheel_carries_the_hook(tmp_path):
    """The build backend's PEP 660 hook, as ``pip install -e .`` calls it:
    the editable wheel installs the start-up hook too (into site-packages,
    at its root), beside setuptools' own path hook."""
    source = tmp_path / 'source'
    _copy_repository(source)
    proc = _ok(run([PYTHON, '-c', (
        'import sys; sys.path.insert(0, "build_backend")\n'
        'import startup_pth\n'
        'print(startup_pth.build_editable(sys.argv[1]))'),
        str(tmp_path)], cwd=str(source)))
    name = proc.stdout.strip().splitlines()[-1]
    assert name.endswith('.editable-py3-none-any.whl'), name
    pth, record_line = _startup_pth_and_record(str(tmp_path / name))
    assert pth == STARTUP_LINE
    assert record_line.endswith(f',{len(STARTUP_LINE)}')
    with zipfile.ZipFile(tmp_path / name) as z:
        assert any(n.startswith('__editable__') and n.endswith('.pth')
                   for n in z.namelist())


def test_wheel_declares_each_stack_as_an_extra(wheel):
    """No OpenMMLab package is a plain dependency (either stack would pull
    its packages over the other's, same import names): a user installs
    ``mmseg_plugins[openmmlab]`` or ``mmseg_plugins[onedl]``."""
    with zipfile.ZipFile(wheel) as z:
        (name, ) = [n for n in z.namelist() if n.endswith('/METADATA')]
        metadata = z.read(name).decode()
    requires = re.findall(r'^Requires-Dist: (.+)$', metadata, re.M)
    stack = {}
    for line in requires:
        package = re.match(r'[\w.-]+', line).group()
        extra = re.search(r'extra == "(\w+)"', line)
        if package.startswith(('mm', 'onedl-mm', 'setuptools')) and \
                package != 'mmseg_plugins':
            stack[package] = extra and extra.group(1)
    assert stack == {
        'mmsegmentation': 'openmmlab', 'mmengine': 'openmmlab',
        'mmcv-lite': 'openmmlab', 'setuptools': 'openmmlab',
        'onedl-mmsegmentation': 'onedl', 'onedl-mmengine': 'onedl',
        'onedl-mmcv': 'onedl'}
    assert {'openmmlab', 'onedl'} <= set(
        re.findall(r'^Provides-Extra: (\w+)$', metadata, re.M))


def test_installed_wheel_is_what_gets_imported(user):
    """In one fresh interpreter of the wheel's environment: the start-up
    hook imports nothing (no torch, mmcv or mmseg; its module imports no
    other), ``mmseg.apis`` imports through it without mmseg_plugins, and
    what ``import mmseg_plugins`` then finds is the wheel's."""
    proc = _ok(user.run(['-X', 'importtime', '-c', (
        'import sys, importlib.metadata as md\n'
        "heavy = sorted(m for m in ('torch', 'mmcv', 'mmseg') "
        'if m in sys.modules)\n'
        'from mmseg.apis import MMSegInferencer\n'
        "print('mmseg_plugins' in sys.modules)\n"
        'import mmseg_plugins, mmseg_plugins_mmcv_ops, os\n'
        'print(mmseg_plugins.__file__)\n'
        'print(mmseg_plugins_mmcv_ops.__file__)\n'
        "print(md.distribution('mmseg_plugins').locate_file(''))\n"
        'print(heavy)\n'
        "print(os.path.isdir(os.path.join(os.path.dirname("
        "mmseg_plugins.__file__), '.mim', 'configs', 'demo')))\n")]))
    plugins_by_apis, package, hook, dist, heavy, configs = \
        proc.stdout.splitlines()[-6:]
    for path in (package, hook, dist):
        assert path.startswith(user.site_packages), path
    assert heavy == '[]'  # the start-up hook imported none of them
    assert plugins_by_apis == 'False'  # mmseg.apis needs no plugin import
    assert configs == 'True'  # the README's way to the configs
    (line, ) = [ln for ln in proc.stderr.splitlines()
                if ln.rstrip().endswith('|   mmseg_plugins_mmcv_ops')]
    self_us, cumulative_us = (int(v) for v in re.findall(r'\d+', line)[:2])
    assert self_us == cumulative_us  # imports nothing at start-up


def test_mim_search_lists_the_models(user):
    proc = _ok(user.run(['-m', 'mim', 'search', 'mmseg_plugins']))
    for name in ('segformer_mit-b0_8xb2-160k_ade20k-512x512',
                 'afformer_base_ade20k', 'mpvit_small_upernet_ade20k'):
        assert f'config id: {name}' in proc.stdout


def test_mim_train_and_test_with_the_wheels_configs_and_tools(
        user, demo_root, tmp_path):
    """mim finds the demo config by name in the wheel's .mim/configs and
    runs the wheel's .mim/tools/train.py and test.py."""
    work = str(tmp_path / 'work')
    options = ['--cfg-options', *demo_overrides(demo_root, 2)]
    proc = _ok(user.run(['-m', 'mim', 'train', 'mmseg_plugins', DEMO,
                         '--work-dir', work, *options]))
    mim = osp.join(user.site_packages, 'mmseg_plugins', '.mim')
    assert f'will use {osp.join(mim, "configs", "demo", DEMO)}' in proc.stdout
    assert osp.join(mim, 'tools', 'train.py') in proc.stdout
    checkpoint = osp.join(work, 'iter_2.pth')
    assert osp.isfile(checkpoint)
    proc = _ok(user.run(['-m', 'mim', 'test', 'mmseg_plugins', DEMO,
                         '--checkpoint', checkpoint, '--work-dir', work,
                         *options]))
    assert 'mIoU' in proc.stdout
    # the wheel's inference tool labels the demo's validation images
    out = str(tmp_path / 'labelled')
    images = osp.join(demo_root, 'images', 'validation')
    proc = _ok(user.run([osp.join(mim, 'tools', 'inference.py'),
                         osp.join(mim, 'configs', 'demo', DEMO), checkpoint,
                         images, '--out-dir', out]))
    assert 'labelled 16 images' in proc.stdout
    for kind in ('labels', 'color', 'overlay'):
        assert len(os.listdir(osp.join(out, kind))) == 16


def test_tools_run_from_the_wheel_only(user, tmp_path):
    """A tool of the wheel refuses bad input as in the repository."""
    tool = osp.join(user.site_packages, 'mmseg_plugins', '.mim', 'tools',
                    'train.py')
    proc = user.run([tool, str(tmp_path / 'missing.py')])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f'error: config file not found: {tmp_path / "missing.py"}']
