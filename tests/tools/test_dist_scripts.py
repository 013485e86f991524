"""mmseg's launch scripts: tools/dist_test.sh (torchrun; without CUDA on
CPU processes over gloo), tools/slurm_train.sh and tools/slurm_test.sh
(srun, checked with a stand-in srun that records its arguments), and their
refusal of missing arguments. dist_train.sh runs in test_hooks.py."""
import os
import os.path as osp

import pytest

from helpers import call, logged_miou
from helpers import (DEMO_CONFIG, PYTHON, ROOT, assert_refused,
                     demo_overrides, run)

TOOLS = osp.join(ROOT, 'tools')


def _miou(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return logged_miou(proc.stdout)


def test_dist_test_on_two_cpu_processes_equals_one_process(
        demo_root, demo_checkpoint, tmp_path):
    """Two ranks split the 16 validation images and gather the results:
    the metric equals the single-process one."""
    opts = ['--cfg-options', *demo_overrides(demo_root, 2)]
    two = run(['bash', osp.join(TOOLS, 'dist_test.sh'), DEMO_CONFIG,
               demo_checkpoint, '2', '--work-dir', str(tmp_path / 'two'),
               *opts], env={'PYTHON': PYTHON, 'PORT': '29519'})
    assert "'backend': 'gloo'" in two.stdout
    assert 'Iter(test) [8/8]' in two.stdout  # half of the images per rank
    one = call(osp.join(TOOLS, 'test.py'), DEMO_CONFIG, demo_checkpoint,
               '--work-dir', str(tmp_path / 'one'), *opts)  # in-process
    assert 'Iter(test) [16/16]' in one.stdout
    assert _miou(two) == _miou(one)


@pytest.mark.parametrize('script,usage', [
    ('dist_train.sh', 'CONFIG NPROC'),
    ('dist_test.sh', 'CONFIG CHECKPOINT NPROC'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT'),
])
def test_missing_arguments_are_refused(script, usage):
    proc = run(['bash', osp.join(TOOLS, script), 'only-one'])
    assert_refused(proc, rf'missing arguments; usage: bash tools/{script} '
                   rf'{usage} ')


@pytest.mark.parametrize('script,positional,tool', [
    ('slurm_train.sh', ['cfg.py'], 'train.py'),
    ('slurm_test.sh', ['cfg.py', 'ckpt.pth'], 'test.py'),
])
def test_slurm_scripts_pass_mmsegs_srun_arguments(tmp_path, script,
                                                  positional, tool):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'srun.args'
    srun = bin_dir / 'srun'
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {log}\n')
    srun.chmod(0o755)
    env = {'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
           'GPUS': '16', 'GPUS_PER_NODE': '8', 'CPUS_PER_TASK': '3',
           'SRUN_ARGS': '--quotatype=auto --mem=0', 'PYTHON': 'py3'}
    proc = run(['bash', osp.join(TOOLS, script), 'gpu-part', 'job 1',
                *positional, '--work-dir', 'w d', '--amp'], env=env)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == [
        '-p', 'gpu-part', '--job-name=job 1', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=3', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--mem=0', 'py3', '-u',
        osp.join(TOOLS, tool), *positional, '--launcher', 'slurm',
        '--work-dir', 'w d', '--amp'
    ]
