"""Tests of tools/benchmark.py and mmseg_plugins/benchmark.py (no timing
asserts: only that the tool measures, counts, compares, writes its tables
and refuses bad input)."""
import csv
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F

from helpers import (ROOT, assert_refused, call,
                     one_block_per_stage_demo_config)
from mmseg_plugins.benchmark import (build_reference, count_flops,
                                     count_params, format_table, load_builder,
                                     max_abs_diff, peak_memory_mb,
                                     plot_miou_vs_flops, time_models)

TOOL = osp.join(ROOT, 'tools', 'benchmark.py')
DEMO = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')
FAST = ['--shape', '64', '96', '--repeats', '2', '--warmup', '1',
        '--throughput-batch', '2', '--throughput-repeats', '1',
        '--train-repeats', '1']


def _rows(out_dir):
    with open(osp.join(out_dir, 'benchmark.csv')) as f:
        return list(csv.DictReader(f))


def test_table_of_one_config(tmp_path):
    out = tmp_path / 'bench'
    proc = call(TOOL, DEMO, *FAST, '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '| config | model | params (M) |' in proc.stdout
    assert 'device: CPU' in proc.stdout and 'torch ' in proc.stdout
    (row, ) = _rows(out)
    # params equal the model's own count
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(DEMO).model)
    assert float(row['params_m']) == pytest.approx(
        count_params(model) / 1e6)
    for key in ('gflops', 'latency_ms', 'throughput', 'train_ms',
                'peak_infer_mb', 'peak_train_mb'):
        assert float(row[key]) > 0, key
    assert row['flops_shape'] == '64x96'  # no paper figures: --shape
    assert row['paper_miou'] == ''
    md = (out / 'benchmark.md').read_text()
    assert 'afformer_tiny_shapes-128x128' in md and 'precision fp32' in md
    # the inference batch needs more memory than nothing, the train step more
    assert float(row['peak_train_mb']) > float(row['peak_infer_mb']) / 2


def test_folder_counts_paper_flops_and_plots(tmp_path):
    """A folder of configs, FLOPs only: AFFormer-base's count reproduces the
    official code's fvcore count (4.57 GFLOPs at 512x512, the paper's 4.6),
    and the plot of the published mIoU is written."""
    out = tmp_path / 'bench'
    proc = call(TOOL, osp.join(ROOT, 'configs', 'afformer'),
                '--pattern', '*_ade20k.py', '--skip', 'latency', 'throughput',
                'train', 'memory', '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r['config']: r for r in _rows(out)}
    assert sorted(rows) == ['afformer_base_ade20k', 'afformer_small_ade20k',
                            'afformer_tiny_ade20k']
    base = rows['afformer_base_ade20k']
    assert round(float(base['gflops']), 2) == 4.57
    assert (base['paper_gflops'], base['paper_miou']) == ('4.6', '41.8')
    assert round(float(rows['afformer_tiny_ade20k']['gflops']), 2) == 3.29
    assert base['latency_ms'] == ''  # skipped
    png = out / 'miou_vs_gflops.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_compare_against_reference_builder(tmp_path):
    env = {'PYTHONPATH': osp.join(ROOT, 'tests')}
    proc = call(TOOL, DEMO, *FAST, '--compare',
                'helpers:same_weights_copy', '--skip', 'flops',
                '--out-dir', str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for label in ('latency (batch 1)', 'throughput (batch 2)',
                  'train step (batch 2)'):
        line = next(ln for ln in out.splitlines() if label + ':' in ln)
        ours = float(re.search(r'ours median ([\d.]+) ms', line).group(1))
        ref = float(re.search(r'reference median ([\d.]+) ms',
                              line).group(1))
        assert ours > 0 and ref > 0
        assert re.search(r'throughput ratio \(reference / ours\): [\d.]+x',
                         line)
    assert re.search(r'peak memory inference \(batch 2\): ours \d+ MiB, '
                     r'reference \d+ MiB; ours / reference [\d.]+x', out)
    # the fused model still matches the unfused copy
    diff = float(re.search(r'max abs output difference: ([\d.e+-]+)',
                           out).group(1))
    assert diff < 1e-4


@pytest.mark.parametrize('args,pattern', [
    (['--shape', '16', '16'], 'at least 32x32'),
    (['--flops-shape', '512', '8'], 'at least 32x32'),
    (['--precision', 'fp16', '--device', 'cpu'],
     r'fp16 \(autocast\) needs a CUDA device'),
    (['--compare', 'no_such_module_xyz:build'], "cannot import 'no_such"),
    (['--compare', 'os.path:nope'], "has no callable 'nope'"),
    (['--compare', 'os.path:join', '--versus-eager'],
     '--versus-eager times our model beside its own eager fp32 copy'),
])
def test_bad_input_is_refused(args, pattern, tmp_path):
    proc = call(TOOL, DEMO, '--repeats', '1', '--out-dir',
                str(tmp_path), *args)
    assert_refused(proc, pattern)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_configs_are_refused(tmp_path):
    proc = call(TOOL, str(tmp_path / 'none.py'))
    assert_refused(proc, 'config file not found')
    no_model = tmp_path / 'no_model.py'
    no_model.write_text('x = 1\n')
    proc = call(TOOL, str(no_model), '--out-dir', str(tmp_path))
    assert_refused(proc, 'defines no "model"')
    proc = call(TOOL, DEMO, DEMO, '--compare', 'os.path:join')
    assert_refused(proc, '--compare needs exactly one config, got 2')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['no_model.py']


def test_flop_count_includes_attention_products():
    class Attention(torch.nn.Module):

        def forward(self, x):  # (B, h, N, d)
            return F.scaled_dot_product_attention(x, x, x)

    class Wrap(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.attn = Attention()
            self.conv = torch.nn.Conv2d(3, 4, 1, bias=False)

        def forward(self, x):  # (1, 3, H, W)
            y = self.conv(x)  # 3 * 4 multiply-adds per pixel
            t = y.flatten(2).unsqueeze(1)  # (1, 1, 4, H*W)
            return self.attn(t)

    gflops, _ = count_flops(Wrap(), (32, 32))
    n, d = 4, 32 * 32
    assert gflops * 1e9 == 12 * 32 * 32 + 2 * n * n * d


def test_peak_memory_sees_a_temporary_tensor():
    def fn():
        t = torch.ones(1024, 1024)  # 4 MiB, freed on return
        return t.sum()

    peak = peak_memory_mb(fn, 'cpu')
    assert 4 <= peak < 6


def test_table_formatting_and_plot(tmp_path):
    rows = [dict(config='a', model='SegFormer-B0', gflops=8.3,
                 paper_miou=37.4),
            dict(config='b', model='SegFormer-B1', gflops=15.9,
                 paper_miou=42.2),
            dict(config='c', model='AFFormer-base', gflops=4.57,
                 paper_miou=41.8, latency_ms=123.456)]
    table = format_table(rows).splitlines()
    assert len(table) == 5 and table[2].count('—') > 5
    assert '| 123 |' in table[4] and '| 4.57 |' in table[4]
    path = plot_miou_vs_flops(rows, str(tmp_path / 'p.png'))
    assert path and (tmp_path / 'p.png').stat().st_size > 1000
    assert plot_miou_vs_flops([dict(model='x', gflops=1.0)],
                              str(tmp_path / 'q.png')) is None


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
    assert max_abs_diff([torch.ones(2), torch.ones(3)],
                        [torch.ones(2), torch.zeros(3)]) == 1.0
    assert max_abs_diff(torch.ones(2), torch.ones(3)) is None


def test_compile_channels_last_and_bf16_options(tmp_path):
    """The table states the options it was measured with; a compiled
    (aot_eager: no compiler needed), channels-last run measures every
    column, and ``--versus-eager`` times its eager copy beside it (speed-ups
    and the logits' difference in the table). One run checks both: the
    compiled measurement is the same with or without the eager copy.
    Throughput at the latency's batch size: one compiled graph per mode (a
    second batch size recompiles with dynamic shapes, as long again)."""
    from mmseg_plugins import accelerate
    # what is checked is the tool's options, on the smallest graph there is:
    # SegFormer-B0's modules, one block per stage (the test took twice as
    # long with AFFormer-tiny's; every family's graph is compiled in
    # tests/models/test_compile.py)
    config = one_block_per_stage_demo_config(tmp_path)
    args = [config, *FAST, '--throughput-batch', '1',
            '--skip', 'flops', 'memory',
            '--compile', '--compile-backend', 'aot_eager', '--channels-last',
            '--versus-eager', '--out-dir', str(tmp_path)]
    bf16 = accelerate._cpu_supports_bf16()
    if bf16:
        args += ['--precision', 'bf16']
    proc = call(TOOL, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ('torch.compile mode default, backend aot_eager; '
            'channels-last') in proc.stdout
    assert f'precision {"bf16" if bf16 else "fp32"}' in proc.stdout
    assert 'beside eager: the same model as built' in proc.stdout
    assert 'speed-up latency' in proc.stdout
    (row, ) = _rows(tmp_path)
    for key in ('latency_ms', 'throughput', 'train_ms', 'eager_latency_ms',
                'latency_speedup', 'eager_throughput', 'throughput_speedup',
                'eager_train_ms', 'train_speedup'):
        assert float(row[key]) > 0, key
    if bf16:  # bf16 rounding against the float32 copy
        assert 1e-4 < float(row['eager_rel_diff']) < 5e-2
    else:  # same arithmetic in another layout and graph: rounding only
        assert float(row['eager_rel_diff']) < 1e-5


def test_versus_eager_runs_the_copy_without_autocast(monkeypatch):
    """Under bf16 autocast the measured logits differ from the eager
    float32 copy's by bf16 rounding (not 0: the copy runs without autocast;
    not more: the same weights). bf16 is allowed on this CPU for the test
    (PyTorch emulates it where the CPU lacks it)."""
    from mmseg_plugins import accelerate
    from mmseg_plugins.benchmark import BenchmarkSettings, run_benchmark
    monkeypatch.setattr(accelerate, '_cpu_supports_bf16', lambda: True)
    settings = BenchmarkSettings(
        shape=(64, 96), repeats=1, warmup=0, throughput_batch=1,
        throughput_repeats=1, skip=('flops', 'throughput', 'train',
                                    'memory'),
        precision='bf16', versus_eager=True)
    (row, ), header, _ = run_benchmark([DEMO], settings)
    assert 1e-4 < row['eager_rel_diff'] < 5e-2, row['eager_rel_diff']
    assert row['latency_speedup'] > 0
    assert any('precision bf16' in line for line in header)


@pytest.mark.parametrize('args,pattern', [
    (['--compile', 'reduce-overhead', '--compile-backend', 'aot_eager',
      '--device', 'cpu'], 'CUDA graphs and needs a CUDA device'),
    (['--compile', '--compile-backend', 'nope'],
     "unknown torch.compile backend 'nope'"),
])
def test_compile_options_are_checked_first(args, pattern, tmp_path):
    proc = call(TOOL, DEMO, '--repeats', '1', '--out-dir',
                str(tmp_path), *args)
    assert_refused(proc, pattern)
    assert not list(tmp_path.iterdir())


def test_onnxruntime_backend_beside_pytorch(tmp_path):
    """``--backend onnxruntime``: the verified export's size, time and
    differences at three sizes, and ORT timed beside PyTorch."""
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'bench'
    proc = call(TOOL, DEMO, *FAST, '--backend', 'onnxruntime',
                '--exporter', 'torchscript', '--skip', 'flops', '--out-dir',
                str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'ORT latency b1 (ms)' in proc.stdout
    assert 'onnxruntime ' in proc.stdout and 'CPU execution provider' in \
        proc.stdout
    assert 'PyTorch first, then ORT' in proc.stdout
    (row, ) = _rows(out)
    diffs = [float(d) for d in row['onnx_max_diff'].split(' / ')]
    assert len(diffs) == 3 and max(diffs) < 1e-4
    for key in ('export_s', 'onnx_mib', 'latency_ms', 'ort_latency_ms',
                'ort_latency_ratio', 'throughput', 'ort_throughput',
                'ort_throughput_ratio'):
        assert float(row[key]) > 0, key
    assert 'train_ms' not in row  # ORT runs inference only
    assert sorted(p.name for p in out.iterdir()) == ['benchmark.csv',
                                                     'benchmark.md']


@pytest.mark.parametrize('args,pattern', [
    (['--compare', 'os.path:join'], 'no --compare, no --backbone-only'),
    (['--channels-last'], 'no --precision fp16/bf16, --compile or '
     '--channels-last'),
])
def test_onnxruntime_backend_refuses_pytorch_options(args, pattern, tmp_path):
    pytest.importorskip('onnxruntime')
    proc = call(TOOL, DEMO, '--backend', 'onnxruntime', '--out-dir',
                str(tmp_path), *args)
    assert_refused(proc, pattern)
    assert not list(tmp_path.iterdir())
