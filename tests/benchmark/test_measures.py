"""Tests of mmseg_plugins/benchmark/measures.py and run.py without a
subprocess: each measurement object on a small model (no timing asserts:
what is measured, in which mode, for which models)."""
import pytest
import torch
import torch.nn as nn

from helpers import DEMO_CONFIG
from mmseg_plugins.benchmark import (BenchmarkSettings, FlopCount,
                                     InferenceTiming, PeakMemory, Subject,
                                     TrainStepTiming, benchmark_config)


class _Recorder(nn.Module):
    """A 1x1 convolution that records each call's batch size, grad mode
    and training flag."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.calls = []

    def forward(self, x):
        self.calls.append((x.shape[0], torch.is_grad_enabled(),
                           self.training))
        return self.conv(x)


def _subject(model):
    def step(x):
        model(x).mean().backward()

    return Subject(dict(ours=model), dict(ours=step), [model], (8, 8))


def test_inference_timing_runs_warmup_and_repeats_without_grad():
    model = _Recorder().eval()
    (timing, ) = InferenceTiming(batch=3, repeats=4, warmup=2).measure(
        _subject(model))
    assert len(timing.times) == 4 and timing.median >= 0
    assert model.calls == [(3, False, False)] * 6


@pytest.mark.parametrize('alternate', [True, False])
def test_inference_timing_alternates_or_runs_one_phase_per_model(alternate):
    log = []

    class Call:
        def __init__(self, name):
            self.name = name

        def __call__(self, x):
            log.append(self.name)

        def close(self):
            log.append(f'close {self.name}')

    subject = Subject(dict(ours=Call('ours'), other=Call('other')), {}, [],
                      (8, 8))
    timings = InferenceTiming(batch=1, repeats=2, warmup=1,
                              alternate=alternate).measure(subject)
    assert [t.name for t in timings] == ['ours', 'other']
    assert all(len(t.times) == 2 for t in timings)
    if alternate:  # warm-up of each, then call by call; nothing closed
        assert log == ['ours', 'other'] + ['ours', 'other'] * 2
    else:  # each model's phase ends with its close()
        assert log == ['ours'] * 3 + ['close ours'] + \
            ['other'] * 3 + ['close other']


def test_train_step_timing_trains_then_restores_eval_mode():
    model = _Recorder().eval()
    TrainStepTiming(batch=2, repeats=2).measure(_subject(model))
    assert model.calls == [(2, True, True)] * 3  # one warm-up
    assert not model.training
    assert model.conv.weight.grad is not None


def test_peak_memory_measures_both_modes():
    model = _Recorder().eval()
    peaks = PeakMemory(infer_batch=4, train_batch=2).measure(
        _subject(model))
    assert set(peaks) == {('ours', 'infer'), ('ours', 'train')}
    assert all(v > 0 for v in peaks.values())
    assert model.calls == [(4, False, False), (2, True, True)]


def test_flop_count_of_a_convolution():
    conv = nn.Conv2d(3, 4, 1, bias=False)
    assert FlopCount((8, 16)).measure(conv) * 1e9 == pytest.approx(
        3 * 4 * 8 * 16)


def test_benchmark_config_row_in_process():
    settings = BenchmarkSettings(shape=(64, 64), repeats=1, warmup=0,
                                 throughput_batch=2, throughput_repeats=1,
                                 train_repeats=1, skip=('memory', ))
    row, comparison = benchmark_config(DEMO_CONFIG, settings)
    assert comparison is None
    assert row['config'] == 'segformer_mit-b0_shapes-128x128'
    assert row['flops_shape'] == '64x64' and row['gflops'] > 0
    for key in ('latency_ms', 'throughput', 'train_ms'):
        assert row[key] > 0, key
    assert 'peak_infer_mb' not in row


def test_compared_training_steps_differentiate_the_same_function():
    """Beside a reference that returns the logits resized to the input (as
    Hugging Face's SegFormer does in ``references.hf_segformer``), our
    generic training step goes through the same computation, the resize
    included: the same gradients. (At a size whose logits are resized by
    a factor other than a whole number, as here, a step through the
    logits at 1/4 gives others.)"""
    from helpers import same_weights_copy
    from mmseg_plugins.benchmark.run import _subject
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.cli import load_config
    model, _ = build_segmentor(load_config(DEMO_CONFIG), None, 'cpu')
    model.eval()  # no dropout: both steps deterministic
    ref = same_weights_copy(model)
    subject = _subject(model, model, ref, BenchmarkSettings(shape=(64, 64)))
    grads = {}
    for name, net in (('ours', model), ('reference', ref.segmentor)):
        weight = net.decode_head.conv_seg.weight
        weight.register_hook(lambda g, name=name: grads.setdefault(name, g))
    x = torch.randn(1, 3, 70, 54)
    for name in ('ours', 'reference'):
        subject.train[name](x)
    torch.testing.assert_close(grads['ours'], grads['reference'])
