"""End-to-end tests of the tools: mmseg's own unmodified train/test scripts
on a plugin config, the project's tools/ (train, test, demo) and their
refusal of bad input (dist_train.sh on 2 CPU processes: test_hooks.py).
Runs are a few iterations on the demo data, single-worker, so they fit a
2-core CPU."""
import os
import os.path as osp

import pytest
import torch

from helpers import call, call_mmseg, run_log
from helpers import (DEMO_CONFIG, ROOT, Exploit, assert_refused,
                     demo_overrides, one_block_per_stage_demo_config)
from mmseg_plugins.checkpoint import safe_load

TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def official_run(demo_root, tmp_path_factory):
    """mmseg's own tools/train.py (in this process): 4 iterations, then
    --resume to 6."""
    work = str(tmp_path_factory.mktemp('official'))
    call_mmseg('train.py', DEMO_CONFIG, '--work-dir', work,
               '--cfg-options', *demo_overrides(demo_root, 4))
    call_mmseg('train.py', DEMO_CONFIG, '--work-dir', work, '--resume',
               '--cfg-options', *demo_overrides(demo_root, 6))
    return work, run_log(work)


def test_mmseg_official_train_and_resume(official_run):
    work, log = official_run
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    assert 'resumed epoch: 0, iter: 4' in log
    ckpt = safe_load(osp.join(work, 'iter_6.pth'))
    assert ckpt['meta']['iter'] == 6
    assert any(k.startswith('backbone.stages.3.') for k in ckpt['state_dict'])


def test_mmseg_official_test(official_run, demo_root):
    """mmseg's own tools/test.py: the checkpoint is loaded by the runtime
    config's StrictLoadHook, not by mmengine's non-strict load."""
    work, _ = official_run
    checkpoint = osp.join(work, 'iter_6.pth')
    call_mmseg('test.py', DEMO_CONFIG, checkpoint, '--work-dir',
               osp.join(work, 'test'), '--cfg-options',
               *demo_overrides(demo_root, 6))
    log = run_log(osp.join(work, 'test'))
    assert f'StrictLoadHook: {checkpoint} will load strictly' in log
    assert 'mIoU' in log


def test_mmseg_official_train_refuses_a_truncated_load_from(
        official_run, demo_root, tmp_path):
    """mmseg's own train.py with ``load_from`` a file that lacks half the
    demo model's keys: the runtime config's StrictLoadHook stops it before
    the first iteration (mmengine alone would log the missing keys and
    train on)."""
    from mmseg_plugins.errors import CheckpointError
    work, _ = official_run
    state = safe_load(osp.join(work, 'iter_6.pth'))['state_dict']
    kept = sorted(state)[::2]
    truncated = str(tmp_path / 'truncated.pth')
    torch.save({'state_dict': {k: state[k] for k in kept}}, truncated)
    run_dir = tmp_path / 'run'
    with pytest.raises(CheckpointError,
                       match=f'{len(state) - len(kept)} missing'):
        call_mmseg('train.py', DEMO_CONFIG, '--work-dir', run_dir,
                   '--cfg-options', *demo_overrides(demo_root, 2),
                   f'load_from={truncated}')
    assert not list(run_dir.rglob('*.pth'))


def test_project_tools_train_and_test(demo_root, tmp_path):
    work = str(tmp_path)
    _ok(call(TRAIN, DEMO_CONFIG, '--work-dir', work, '--cfg-options',
             *demo_overrides(demo_root, 3)))
    proc = _ok(call(TEST, DEMO_CONFIG, osp.join(work, 'iter_3.pth'),
                    '--work-dir', work, '--cfg-options',
                    *demo_overrides(demo_root, 3)))
    assert 'mIoU' in proc.stdout


def test_in_process_runs_named_alike_keep_their_own_logs(
        demo_root, demo_checkpoint, tmp_path, monkeypatch):
    """Two in-process runs that start in the same second get the same
    timestamped name; each still logs into its own work directory (the
    helpers release a run's mmengine instances when it ends, as a process
    exit does)."""
    import time
    from types import SimpleNamespace

    import mmengine.runner.runner as runner_module
    second = time.time()
    monkeypatch.setattr(runner_module, 'time', SimpleNamespace(
        time=lambda: second, strftime=time.strftime,
        localtime=time.localtime))
    logs = []
    for name in ('first', 'second'):
        proc = _ok(call(TEST, DEMO_CONFIG, demo_checkpoint, '--work-dir',
                        tmp_path / name, '--cfg-options',
                        *demo_overrides(demo_root, 2),
                        'test_dataloader.dataset.indices=2'))
        assert 'mIoU' in proc.stdout
        logs.append(run_log(tmp_path / name))
    # the same run folder name: the runs were named alike
    assert sorted(os.listdir(tmp_path / 'first')) == \
        sorted(os.listdir(tmp_path / 'second'))
    for log in logs:
        assert log.count('Iter(test) [2/2]') == 1


def test_demo_tool(tmp_path):
    work, data = str(tmp_path / 'work'), str(tmp_path / 'data')
    proc = _ok(call(osp.join(ROOT, 'tools', 'demo.py'), '--work-dir',
                    work, '--data-root', data, '--iters', '6',
                    '--cfg-options', 'model.backbone.arch=base',
                    'model.decode_head.in_channels=[96,216]'))
    assert 'demo: mIoU' in proc.stdout
    # the options reached the model: AFFormer-base's first stage is 96 wide
    from mmseg_plugins.checkpoint import safe_load
    state = safe_load(osp.join(work, 'iter_6.pth'))['state_dict']
    assert state['decode_head.squeeze.conv.weight'].shape[1] == 96 + 216
    import cv2
    overlay = cv2.imread(osp.join(work, 'demo_overlay.png'))
    assert overlay.shape == (128, 256, 3)  # ground truth | prediction


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_unknown_variant_is_refused(demo_root, tmp_path):
    proc = call(TRAIN, DEMO_CONFIG, '--work-dir', str(tmp_path),
                '--cfg-options', *demo_overrides(demo_root, 2),
                'model.backbone.arch=b9')
    assert_refused(proc,
                   r"Unknown MiT arch 'b9'; valid choices: b0, b1, b2, b3")


def test_wrong_channel_list_is_refused(demo_root, tmp_path):
    proc = call(TRAIN, DEMO_CONFIG, '--work-dir', str(tmp_path),
                '--cfg-options', *demo_overrides(demo_root, 2),
                'model.decode_head.in_channels=[32,64,160,512]')
    assert_refused(proc, r'in_channels=\[32, 64, 160, 512\] but the backbone '
                   r'gives \[32, 64, 160, 256\]')


def test_missing_data_is_refused(tmp_path):
    missing = str(tmp_path / 'nowhere')
    proc = call(TRAIN, DEMO_CONFIG, '--work-dir', str(tmp_path),
                '--cfg-options', *demo_overrides(missing, 2))
    assert_refused(proc, r'dataset directory .*nowhere/images/training.* '
                   'does not exist')


def test_missing_config_is_refused(tmp_path):
    assert_refused(call(TRAIN, str(tmp_path / 'nope.py')),
                   'config file not found')


@pytest.mark.parametrize('kind', ['malicious', 'truncated', 'garbage'])
def test_test_tool_refuses_bad_checkpoints(demo_root, tmp_path, kind):
    path = tmp_path / f'{kind}.pth'
    marker = tmp_path / 'pwned'
    if kind == 'malicious':
        torch.save({'state_dict': {}, 'meta': Exploit(marker)}, path)
        pattern = 'refusing to load .*GLOBAL posix.system'
    elif kind == 'truncated':
        torch.save({'state_dict': {'w': torch.randn(128, 128)}}, path)
        path.write_bytes(path.read_bytes()[:20000])
        pattern = 'not a readable PyTorch checkpoint'
    else:
        path.write_bytes(b'\x00garbage' * 100)
        pattern = 'not a readable PyTorch checkpoint'
    proc = call(TEST, DEMO_CONFIG, str(path), '--work-dir',
                str(tmp_path / 'w'), '--cfg-options',
                *demo_overrides(demo_root, 2))
    assert_refused(proc, pattern)
    assert not marker.exists()


@pytest.mark.parametrize('config', [
    'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    'afformer/afformer_tiny_ade20k.py',
    'mpvit/mpvit_tiny_upernet_ade20k.py'
])
def test_ade20k_config_trains_when_data_is_in_place(tmp_path, config):
    """The real ADE20K configs start training (one small step: 128x128
    crops instead of 512x512, no validation) once data sits at the path
    mmseg's base config expects, relative to the working directory; without
    it the tool names that path."""
    import cv2
    import numpy as np
    cfg = osp.join(ROOT, 'configs', config)
    opts = ['train_dataloader.num_workers=0', 'train_dataloader.batch_size=2',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1',
            # one training step; no validation pass after it
            'train_cfg.val_begin=2',
            # a small step: the crop (pipeline step 3, RandomCrop) and the
            # batch the data preprocessor pads to
            'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
            'model.data_preprocessor.size=(128,128)',
            # the paper configs start from the authors' ImageNet weights;
            # the documented switch trains from scratch
            'model.pretrained=None']
    proc = call(TRAIN, cfg, '--work-dir', 'w', '--cfg-options',
                *opts, cwd=str(tmp_path))
    assert_refused(proc, "dataset directory "
                   "'data/ade/ADEChallengeData2016/images/training'")
    rng = np.random.default_rng(0)
    root = tmp_path / 'data' / 'ade' / 'ADEChallengeData2016'
    for split in ('training', 'validation'):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(2):
            name = f'ADE_{split}_{i:08d}'
            cv2.imwrite(str(root / 'images' / split / f'{name}.jpg'),
                        rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
            cv2.imwrite(str(root / 'annotations' / split / f'{name}.png'),
                        rng.integers(0, 151, (96, 128), dtype=np.uint8))
    _ok(call(TRAIN, cfg, '--work-dir', 'w', '--cfg-options', *opts,
             cwd=str(tmp_path)))
    assert (tmp_path / 'w' / 'iter_1.pth').is_file()


def test_load_config_explains_missing_pkg_resources(monkeypatch):
    import sys

    from mmseg_plugins.compat import configs
    from mmseg_plugins.config import load_config
    from mmseg_plugins.errors import MMSegPluginsError as Refused
    monkeypatch.setattr(configs, 'mmengine_needs_pkg_resources',
                        lambda: True)
    monkeypatch.setitem(sys.modules, 'pkg_resources', None)
    with pytest.raises(Refused, match=r'pip install "setuptools<82"'):
        load_config(DEMO_CONFIG)


def test_training_with_compiled_networks(demo_root, tmp_path):
    """A config's ``compile`` option trains with the networks compiled (here
    the aot_eager backend, which needs no compiler), through the project's
    tool and, with the hook in the config, mmseg's own. The demo's MiT-B0
    with one block per stage, and no validation (the inference graph is
    tested in tests/models/test_compile.py): compiling is most of the time
    here."""
    shallow = one_block_per_stage_demo_config(tmp_path)
    no_validation = ['val_cfg=None', 'val_dataloader=None',
                     'val_evaluator=None']
    proc = _ok(call(TRAIN, shallow, '--work-dir',
                    str(tmp_path / 'a'), '--cfg-options',
                    *demo_overrides(demo_root, 2), *no_validation,
                    'compile.backend=aot_eager'))
    assert 'torch.compile (mode default, backend aot_eager): backbone, ' \
        'decode_head' in proc.stdout
    assert (tmp_path / 'a' / 'iter_2.pth').is_file()
    config = tmp_path / 'compiled.py'
    config.write_text(
        f'_base_ = [{shallow!r}]\n'
        "custom_hooks = [dict(type='mmseg_plugins.RNGStateHook'),\n"
        "                dict(type='mmseg_plugins.StrictLoadHook'),\n"
        "                dict(type='mmseg_plugins.CompileHook', "
        "backend='aot_eager')]\n")
    call_mmseg('train.py', config, '--work-dir', tmp_path / 'b',
               '--cfg-options', *demo_overrides(demo_root, 2),
               *no_validation)
    assert 'torch.compile (mode default, backend aot_eager)' in \
        run_log(tmp_path / 'b')
    assert (tmp_path / 'b' / 'iter_2.pth').is_file()


def test_amp_and_compile_options_are_checked(demo_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('a GPU runs AMP')
    assert_refused(call(TRAIN, DEMO_CONFIG, '--work-dir',
                        str(tmp_path), '--amp', 'bf16', '--cfg-options',
                        *demo_overrides(demo_root, 2)),
                   "AmpOptimWrapper, which needs a CUDA device")
    assert_refused(call(TRAIN, DEMO_CONFIG, '--work-dir',
                        str(tmp_path), '--cfg-options',
                        *demo_overrides(demo_root, 2),
                        'compile.backend=no_such_backend'),
                   "unknown torch.compile backend 'no_such_backend'")
    assert not list(tmp_path.iterdir())
