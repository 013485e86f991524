"""Tests of tools/benchmark.py and mmseg_plugins/benchmark.py (no timing
asserts: only that the tool measures, compares and refuses bad input)."""
import os.path as osp
import re

import pytest
import torch

from helpers import PYTHON, ROOT, run
from mmseg_plugins.benchmark import (build_reference, load_builder,
                                     max_abs_diff, time_models)

TOOL = osp.join(ROOT, 'tools', 'benchmark.py')
DEMO = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')


def test_compare_against_reference_builder():
    env = {'PYTHONPATH': osp.join(ROOT, 'tests')}
    proc = run([PYTHON, TOOL, DEMO, '--shape', '64', '96', '--repeats', '3',
                '--warmup', '1', '--compare', 'helpers:same_weights_copy',
                '--fuse-bn'], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert 'input 1x3x64x96' in out
    ours = float(re.search(r'ours\s+median\s+([\d.]+) ms', out).group(1))
    ref = float(re.search(r'reference\s+median\s+([\d.]+) ms', out).group(1))
    assert ours > 0 and ref > 0
    assert re.search(r'throughput ratio \(reference / ours\): [\d.]+x', out)
    # the fused model still matches the unfused copy
    diff = float(re.search(r'max abs output difference: ([\d.e+-]+)',
                           out).group(1))
    assert diff < 1e-4


@pytest.mark.parametrize('args,pattern', [
    (['--shape', '16', '16'], 'at least 32x32'),
    (['--compare', 'no_such_module_xyz:build'], "cannot import 'no_such"),
    (['--compare', 'os.path:nope'], "has no callable 'nope'"),
])
def test_bad_input_is_refused(args, pattern):
    proc = run([PYTHON, TOOL, DEMO, '--repeats', '1', *args])
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines()
             if ln.strip() and '#' not in ln]
    assert lines[-1].startswith('error: ') and re.search(pattern, lines[-1])


def test_missing_config_is_refused(tmp_path):
    proc = run([PYTHON, TOOL, str(tmp_path / 'none.py')])
    assert proc.returncode == 2 and 'config file not found' in proc.stderr


def test_time_models_alternates_and_counts():
    calls = []
    models = {'a': lambda x: calls.append('a'), 'b': lambda x: calls.append(
        'b')}
    timings = time_models(models, torch.zeros(1), repeats=3, warmup=1)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # warm-up, then alternating
    assert [len(t.times) for t in timings] == [3, 3]
    assert all(t.median >= 0 for t in timings)


def test_builder_loading_and_diff():
    assert load_builder('os.path:join') is osp.join
    assert load_builder('os.path.join') is osp.join
    with pytest.raises(ValueError):
        load_builder('nodots')
    ref = build_reference(lambda: torch.nn.Identity(), None)
    assert isinstance(ref, torch.nn.Identity)
    assert max_abs_diff(torch.ones(2), [torch.zeros(2)]) == 1.0
    assert max_abs_diff(torch.ones(2), torch.ones(3)) is None
