"""Tests of mmseg_plugins/compat.py."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from mmseg_plugins import compat


@pytest.mark.skipif(compat.has_mmcv_ext(), reason='full mmcv installed')
def test_fallback_is_installed_with_mmcv_lite():
    ops = sys.modules['mmcv.ops']
    assert getattr(ops, compat.FALLBACK_FLAG)
    import mmseg.models  # noqa: F401  (fails without the fallback)
    import mmseg.utils  # noqa: F401
    from mmcv.ops import point_sample, sigmoid_focal_loss
    assert point_sample is compat.point_sample
    assert sigmoid_focal_loss is compat.sigmoid_focal_loss


@pytest.mark.skipif(compat.has_mmcv_ext(), reason='full mmcv installed')
def test_compiled_only_op_names_full_mmcv():
    with pytest.raises(ModuleNotFoundError, match=r'full mmcv'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    # mmseg's guarded imports degrade to None instead of failing
    from mmseg.models.decode_heads import cc_head
    assert cc_head.CrissCrossAttention is None


def test_point_sample_reads_pixel_centres():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    # centre of pixel (row 2, col 3) in [0, 1] coordinates (x, y)
    pts = torch.tensor([[[3.5 / 5, 2.5 / 4]]]).repeat(2, 1, 1)  # (N, P, 2)
    out = compat.point_sample(x, pts)  # (N, C, P)
    assert out.shape == (2, 3, 1)
    torch.testing.assert_close(out[..., 0], x[:, :, 2, 3])
    grid = pts[:, :, None, :].repeat(1, 1, 1, 1)  # (N, 1, 1, 2)
    assert compat.point_sample(x, grid).shape == (2, 3, 1, 1)


def test_point_sample_matches_grid_sample_align_corners():
    x = torch.randn(1, 2, 6, 7)
    pts = torch.rand(1, 9, 2)
    ref = F.grid_sample(x, (pts * 2 - 1)[:, :, None], align_corners=True)
    torch.testing.assert_close(
        compat.point_sample(x, pts, align_corners=True), ref[..., 0])


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5)])
def test_sigmoid_focal_loss_matches_mmseg_python_version(gamma, alpha):
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    logits = torch.randn(11, 5)
    target = torch.randint(0, 6, (11, ))  # 5 == background
    one_hot = F.one_hot(target, 6)[:, :5]
    ref = py_sigmoid_focal_loss(
        logits, one_hot, gamma=gamma, alpha=alpha, reduction='none')
    ours = compat.sigmoid_focal_loss(logits, target, gamma, alpha, None,
                                     'none')
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(
        compat.sigmoid_focal_loss(logits, target, gamma, alpha, None, 'sum'),
        ref.sum())


def test_fallback_is_a_noop_with_full_mmcv(monkeypatch):
    sentinel = object()
    monkeypatch.setitem(sys.modules, 'mmcv.ops', sentinel)
    monkeypatch.setattr(compat, 'has_mmcv_ext', lambda: True)
    assert compat.install_mmcv_ops_fallback() is False
    assert sys.modules['mmcv.ops'] is sentinel


def test_fallback_install_is_idempotent(monkeypatch):
    monkeypatch.setattr(compat, 'has_mmcv_ext', lambda: False)
    monkeypatch.delitem(sys.modules, 'mmcv.ops', raising=False)
    assert compat.install_mmcv_ops_fallback() is True
    first = sys.modules['mmcv.ops']
    assert compat.install_mmcv_ops_fallback() is True
    assert sys.modules['mmcv.ops'] is first


def test_mmengine_uses_the_safe_loader():
    from mmengine.runner.checkpoint import CheckpointLoader
    assert CheckpointLoader._get_checkpoint_loader('/x.pth') is \
        compat.load_from_local
    assert CheckpointLoader._get_checkpoint_loader('https://a/b.pth') is \
        compat.load_from_http


def test_pkg_resources_bound_lets_mmseg_bases_resolve(tmp_path):
    compat.check_pkg_resources()  # raises if the bound is not honoured
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("_base_ = ['mmseg::_base_/datasets/ade20k.py']\n")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'


def test_pkg_resources_missing_gives_clear_error(monkeypatch):
    import mmengine
    monkeypatch.setattr(mmengine, '__version__', '0.10.7')
    monkeypatch.setitem(sys.modules, 'pkg_resources', None)
    with pytest.raises(ImportError, match=r'setuptools<82'):
        compat.check_pkg_resources()


def test_cpu_distributed_config_switches_backend_and_wrapper(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(compat, 'init_cpu_distributed', lambda t=1800: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')),
                      find_unused_parameters=True))
    assert compat.configure_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == \
        'mmseg_plugins.CPUDistributedDataParallel'
    assert cfg.model_wrapper_cfg.find_unused_parameters is True


def test_cpu_distributed_is_a_noop_on_gpu_machines(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert compat.configure_cpu_distributed(cfg) is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


def test_cpu_wrapper_is_found_by_mmengine_runner_lookup():
    from mmengine.registry import MODEL_WRAPPERS
    from mmseg_plugins.models.wrappers import CPUDistributedDataParallel
    assert MODEL_WRAPPERS.get('mmseg_plugins.CPUDistributedDataParallel') \
        is CPUDistributedDataParallel


def test_mmengine_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner.checkpoint import save_checkpoint

    from mmseg_plugins import fileio
    assert LocalBackend.put is compat._atomic_put
    dst = tmp_path / 'iter_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(dst))
    assert torch.load(dst, weights_only=True)['state_dict']['w'].sum() == 3

    # a save interrupted after writing some bytes leaves nothing behind
    real_atomic_write = fileio.atomic_write

    def interrupted(path, write):

        def write_some(f):
            f.write(b'0123456789')
            raise KeyboardInterrupt

        return real_atomic_write(path, write_some)

    monkeypatch.setattr(fileio, 'atomic_write', interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.ones(3)}},
                        str(tmp_path / 'iter_2.pth'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_1.pth']


def test_each_fix_is_gated_on_its_condition(monkeypatch):
    """The loader fix is needed while mmengine's loader unpickles without
    an allow-list, the put fix while mmengine writes in place."""
    import mmengine.runner.checkpoint as mmengine_checkpoint
    from mmengine.fileio.backends import LocalBackend
    assert compat.mmengine_loader_is_unrestricted()  # mmengine 0.10.7

    def safe_loader(filename, map_location):
        return torch.load(filename, map_location, weights_only=True)

    monkeypatch.setattr(mmengine_checkpoint, 'load_from_local', safe_loader)
    assert not compat.mmengine_loader_is_unrestricted()

    assert not compat.mmengine_put_writes_in_place()  # ours is installed

    def in_place(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj)

    def renaming(self, obj, filepath):
        with open(filepath + '.tmp', 'wb') as f:
            f.write(obj)
        os.replace(filepath + '.tmp', filepath)

    monkeypatch.setattr(LocalBackend, 'put', in_place)
    assert compat.mmengine_put_writes_in_place()
    monkeypatch.setattr(LocalBackend, 'put', renaming)
    assert not compat.mmengine_put_writes_in_place()


def test_opt_out_leaves_mmengine_as_installed():
    from helpers import PYTHON, run
    code = ('import mmseg_plugins\n'
            'from mmseg_plugins import compat\n'
            'from mmengine.fileio.backends import LocalBackend\n'
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            'print(compat.applied())\n'
            "print(CheckpointLoader._get_checkpoint_loader('/x.pth')"
            '.__module__)\n'
            'print(LocalBackend.put.__module__)\n')
    proc = run([PYTHON, '-c', code],
               env={compat.OPT_OUT_ENV: 'safe_loader, atomic_put'})
    assert proc.returncode == 0, proc.stderr
    applied, loader, put = proc.stdout.split('\n')[:3]
    assert loader == 'mmengine.runner.checkpoint'
    assert put == 'mmengine.fileio.backends.local_backend'
    assert 'safe_loader' not in applied and 'atomic_put' not in applied
    assert ('mmcv_ops' in applied) == (not compat.has_mmcv_ext())


@pytest.mark.skipif(compat.has_mmcv_ext(), reason='full mmcv installed')
def test_opting_out_of_everything_shows_the_mmcv_lite_break():
    from helpers import PYTHON, run
    proc = run([PYTHON, '-c', 'import mmseg_plugins'],
               env={compat.OPT_OUT_ENV: 'all'})
    assert proc.returncode != 0
    assert "No module named 'mmcv._ext'" in proc.stderr
