"""The mixed-precision training check (mmseg_plugins/benchmark/amp.py and
tools/analysis_tools/check_amp.py). Its fp16 and bf16 runs are meant for a
GPU; here the bf16 path runs on the CPU by letting mmengine's
AmpOptimWrapper start without CUDA (its GradScaler then disables itself and
autocast to bfloat16 runs on the CPU)."""
import math
import os.path as osp

import pytest

from helpers import ROOT, assert_refused, call
from mmseg_plugins.benchmark import amp
from mmseg_plugins.demo_data import data_root_options

DEMO = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'check_amp.py')


def test_bf16_training_beside_fp32(monkeypatch, demo_root):
    import mmengine.optim.optimizer.amp_optimizer_wrapper as wrapper
    monkeypatch.setattr(wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp, 'check_amp_training', lambda *args: None)
    runs = amp.run_amp_check([DEMO], ['bf16'], 3, 'cpu',
                             cfg_options=data_root_options(demo_root))
    fp32, bf16 = runs
    assert [r.precision for r in runs] == ['fp32', 'bf16']
    assert fp32.losses_finite and bf16.losses_finite
    assert len(bf16.losses) == 3
    # same seed and weights at the start: the first losses differ by
    # bf16 rounding only, so autocast was on during training
    assert fp32.losses[0] != bf16.losses[0]
    assert bf16.losses[0] == pytest.approx(fp32.losses[0], rel=2e-2)
    assert fp32.logits_rel_error is None
    assert 1e-4 < bf16.logits_rel_error < 5e-2
    assert 0 <= bf16.miou <= 100
    assert bf16.miou_vs_fp32 == pytest.approx(bf16.miou - fp32.miou)
    assert bf16.row()['losses_finite'] == 'yes'


def test_a_non_finite_loss_fails_the_run():
    run_ = amp.AmpRun('c', 'fp16', 3, [1.0, math.inf, 0.5], 1024., 10.,
                      1e-3, 1.0)
    assert not run_.losses_finite
    assert run_.row()['losses_finite'] == 'NO'
    # an iteration that recorded nothing is a failure too
    assert not amp.AmpRun('c', 'fp16', 3, [1.0, 0.5], None, None, None,
                          1.0).losses_finite


def test_tool_writes_the_table_and_refuses_amp_without_cuda(tmp_path):
    data = str(tmp_path / 'data')
    proc = call(TOOL, DEMO, '--precisions', 'fp32', '--iters', '3',
                '--demo-data', data, '--out-dir', str(tmp_path / 'out'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '| afformer_tiny_shapes-128x128 | fp32 | 3 | yes |' in proc.stdout
    assert (tmp_path / 'out' / 'amp_check.csv').is_file()
    import torch
    if not torch.cuda.is_available():
        assert_refused(call(TOOL, DEMO, '--precisions', 'fp16',
                            '--demo-data', data, '--out-dir',
                            str(tmp_path / 'refused')),
                       "--amp trains with mmengine's AmpOptimWrapper, which "
                       'needs a CUDA device')
        assert not osp.exists(tmp_path / 'refused')
    assert_refused(call(TOOL, DEMO, '--iters', '0'),
                   '--iters must be positive')
