"""Tests of mmseg_plugins/hooks.py: RNG states are captured and restored
exactly and stored in checkpoints that load through ``safe_load``; a demo
training killed with SIGKILL after the checkpoint of iteration 3 and resumed
ends with the weights of an uninterrupted run (1 process with 0 or 2 data
workers, and the 2-process CPU torchrun, whose checkpoints load like
1-process ones)."""
import logging
import os
import os.path as osp
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Optional

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from helpers import DEMO_CONFIG, PYTHON, ROOT, call, demo_overrides, run
from mmseg_plugins.checkpoint import safe_load
from mmseg_plugins.hooks import (RNG_STATES_KEY, capture_rng_states,
                                 restore_rng_states)

TRAIN = osp.join(ROOT, 'tools', 'train.py')
TESTS = osp.dirname(osp.abspath(__file__))
ITERS, INTERVAL, KILL_AFTER = 6, 3, 3
NOT_EXACT = 'will not repeat an uninterrupted run exactly'


def _draws() -> list:
    """Numbers from every generator the hook covers, gaussians included
    (their cached second values are part of the states)."""
    return [random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
            np.random.randn(), torch.rand(3).tolist(), torch.randn(2).tolist()]


@contextmanager
def _logged_warnings():
    """Messages of the warnings logged through mmengine's current logger."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


# ----------------------------------------------------------------------------
# capture / restore
# ----------------------------------------------------------------------------
def test_restore_repeats_python_numpy_and_torch_draws():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    random.gauss(0, 1)  # leaves a cached second gaussian in the state
    np.random.randn()  # idem
    states = capture_rng_states()
    first = _draws()
    assert _draws() != first
    restore_rng_states(states)
    assert _draws() == first


def test_states_load_through_safe_load(tmp_path):
    """Tensors and plain values only: the weights-only loader with the
    project's unchanged allow-list reads them back."""
    np.random.seed(2)
    states = capture_rng_states()
    first = _draws()
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': {'iter': 3}, RNG_STATES_KEY: [states]}, path)
    loaded = safe_load(str(path))[RNG_STATES_KEY]
    assert len(loaded) == 1
    assert isinstance(loaded[0]['numpy']['key'], torch.Tensor)
    assert loaded[0]['torch'].dtype == torch.uint8
    restore_rng_states(loaded[0])
    assert _draws() == first


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_restore_repeats_cuda_draws():
    torch.cuda.manual_seed_all(3)
    states = capture_rng_states()
    assert len(states['cuda']) == torch.cuda.device_count()
    first = torch.rand(4, device='cuda').tolist()
    restore_rng_states(states)
    assert torch.rand(4, device='cuda').tolist() == first


def test_other_cuda_device_count_warns_and_restores_the_rest():
    states = capture_rng_states()
    first = _draws()
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    states['cuda'] = [torch.cuda.get_rng_state(0) if visible else
                      torch.zeros(16, dtype=torch.uint8)] * (visible + 1)
    with _logged_warnings() as warnings:
        restore_rng_states(states)
    assert _draws() == first
    assert len(warnings) == 1 and f'{visible + 1} CUDA device(s)' in \
        warnings[0] and NOT_EXACT in warnings[0]


# ----------------------------------------------------------------------------
# the hook in an in-process mmengine Runner (a toy model, milliseconds)
# ----------------------------------------------------------------------------
class _ToyDataset(torch.utils.data.Dataset):

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        # a random transform drawing from NumPy, like RandomFlip
        return dict(inputs=torch.full((4, ), float(index)) * np.random.rand())


def _toy_runner(work_dir, max_iters: int, resume: bool = False,
                hook_cfg: Optional[dict] = None, **train_cfg):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)
            self.dropout = torch.nn.Dropout(0.5)  # draws from torch

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(self.dropout(torch.stack(inputs)))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{osp.basename(str(work_dir))}_{max_iters}',
        train_dataloader=dict(
            dataset=_ToyDataset(),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, **train_cfg),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', by_epoch=False, interval=INTERVAL)),
        custom_hooks=[hook_cfg or dict(type='mmseg_plugins.RNGStateHook')],
        randomness=dict(seed=0),
        default_scope='mmseg',
        resume=resume,
        log_level='WARNING')


def _toy_weights(work_dir) -> dict:
    return safe_load(str(work_dir / 'iter_6.pth'))['state_dict']


def test_toy_resume_is_exact(tmp_path):
    """In process, on either stack (upstream replays the skipped batches,
    OneDL's loop calls ``skip_iter``): 3 iterations, then a resume to 6,
    ends with the weights of 6 uninterrupted iterations."""
    _toy_runner(tmp_path / 'whole', 6).train()
    _toy_runner(tmp_path / 'resumed', 3).train()
    with _logged_warnings() as warnings:
        _toy_runner(tmp_path / 'resumed', 6, resume=True).train()
    assert not any(NOT_EXACT in w for w in warnings), warnings
    _assert_same_weights(_toy_weights(tmp_path / 'resumed'),
                         _toy_weights(tmp_path / 'whole'))


def test_fast_forward_on_resume_is_honoured_with_a_warning(tmp_path):
    """OneDL's ``fast_forward_on_resume=True``: the loop does not skip the
    trained batches; the hook then restores the states before the first
    batch (not after 3 more) and says the run is not exact."""
    from mmengine.runner import IterBasedTrainLoop
    if 'fast_forward_on_resume' not in \
            IterBasedTrainLoop.__init__.__code__.co_varnames:
        pytest.skip('this mmengine has no fast_forward_on_resume (OneDL)')
    _toy_runner(tmp_path, 3).train()
    states = safe_load(str(tmp_path / 'iter_3.pth'))[RNG_STATES_KEY][0]
    runner = _toy_runner(tmp_path, 4, resume=True,
                         fast_forward_on_resume=True)
    seen = []
    runner.register_hook(_StatesBeforeFirstIteration(seen), 'HIGHEST')
    with _logged_warnings() as warnings:
        runner.train()
    assert any('fast_forward_on_resume=True' in w and NOT_EXACT in w
               for w in warnings), warnings
    restore_rng_states(states)
    expected = capture_rng_states()['torch']
    # the first batch was fetched right after the restore; the toy
    # pipeline draws from NumPy only, so torch's state is the restored one
    assert torch.equal(seen[0], expected)


class _StatesBeforeFirstIteration(Hook):
    """Records torch's RNG state before each training iteration."""

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(torch.get_rng_state())


def test_checkpoint_of_other_world_size_warns_and_resumes(tmp_path):
    _toy_runner(tmp_path, 3).train()
    path = tmp_path / 'iter_3.pth'
    checkpoint = safe_load(str(path))
    assert len(checkpoint[RNG_STATES_KEY]) == 1
    checkpoint[RNG_STATES_KEY] *= 2  # as if saved by 2 processes
    torch.save(checkpoint, path)
    runner = _toy_runner(tmp_path, 6, resume=True)
    with _logged_warnings() as warnings:
        runner.train()
    assert any('holds the RNG states of 2 process(es), but this run has 1'
               in w and NOT_EXACT in w for w in warnings), warnings
    assert osp.isfile(tmp_path / 'iter_6.pth')


def test_hook_ordered_after_checkpoint_hook_warns(tmp_path):
    runner = _toy_runner(
        tmp_path, 3,
        hook_cfg=dict(type='mmseg_plugins.RNGStateHook', priority='LOWEST'))
    with _logged_warnings() as warnings:
        runner.train()
    assert any('RNGStateHook runs after CheckpointHook' in w
               for w in warnings), warnings
    assert RNG_STATES_KEY not in safe_load(str(tmp_path / 'iter_3.pth'))


# ----------------------------------------------------------------------------
# end to end: SIGKILL after the checkpoint of iteration 3, then --resume
# ----------------------------------------------------------------------------
def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _options(data_root: str, num_workers: int) -> list:
    """6 iterations, a checkpoint every 3 and validation at 3 and 6 (the
    validation after the checkpoint of iteration 3 runs in the uninterrupted
    run only). Later options override demo_overrides'."""
    opts = demo_overrides(data_root, ITERS) + [
        f'default_hooks.checkpoint.interval={INTERVAL}',
        f'train_cfg.val_interval={KILL_AFTER}'
    ]
    if num_workers:
        opts += [f'train_dataloader.num_workers={num_workers}',
                 'train_dataloader.persistent_workers=True']
    return opts


def _killing_config(directory) -> str:
    """The demo config plus the test-only hook that SIGKILLs the training
    after the checkpoint of iteration KILL_AFTER is written."""
    hooks = [dict(h) for h in Config.fromfile(DEMO_CONFIG).custom_hooks]
    assert hooks == [dict(type='mmseg_plugins.RNGStateHook'),
                     dict(type='mmseg_plugins.StrictLoadHook')]
    hooks.append(dict(type='sigkill_hook.SigkillAfterCheckpointHook',
                      after_iter=KILL_AFTER))
    path = osp.join(str(directory), 'killed_after_checkpoint.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{DEMO_CONFIG!r}]\ncustom_hooks = {hooks!r}\n')
    return path


def _env(**extra) -> dict:
    """tests/ on PYTHONPATH, for the config's ``sigkill_hook`` module."""
    paths = [TESTS] + [p for p in [os.environ.get('PYTHONPATH')] if p]
    return dict(PYTHONPATH=os.pathsep.join(paths), **extra)


def _without_rng_states(checkpoint: str, directory) -> str:
    """A copy of ``checkpoint`` as saved without RNGStateHook."""
    data = safe_load(checkpoint)
    del data[RNG_STATES_KEY]
    path = osp.join(str(directory), osp.basename(checkpoint))
    torch.save(data, path)
    return path


def _state_dict(work_dir: str) -> dict:
    return safe_load(osp.join(work_dir, f'iter_{ITERS}.pth'))['state_dict']


def _max_abs_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item()
               for k in a if a[k].numel())


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, (f'{len(differing)} tensors differ, max abs '
                           f'difference {_max_abs_difference(a, b)}')


@contextmanager
def _one_thread():
    """One intra-op thread, as the killed run's process has
    (``OMP_NUM_THREADS=1``): the in-process runs repeat its arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_here(*argv):
    """tools/train.py's ``main`` in this process (helpers.call)."""
    with _one_thread():
        return _ok(call(TRAIN, *argv))


@pytest.fixture(scope='module', params=[0, 2],
                ids=['num_workers=0', 'num_workers=2'])
def one_process_runs(request, demo_root, tmp_path_factory):
    """The killed run in a process of its own (SIGKILL ends it), beside the
    uninterrupted run in this one; then, in this process too, the resume of
    the killed run and a resume from its checkpoint stripped of the RNG
    states. The resumes run the demo config itself: the kill hook is not
    part of what is resumed."""
    num_workers = request.param
    root = tmp_path_factory.mktemp(f'resume_workers{num_workers}')
    work = {name: str(root / name) for name in
            ('uninterrupted', 'killed', 'stripped')}
    opts = _options(demo_root, num_workers)
    with ThreadPoolExecutor(1) as pool:
        killed = pool.submit(run, [
            PYTHON, TRAIN, _killing_config(root), '--work-dir',
            work['killed'], '--cfg-options', *opts], env=_env())
        _train_here(DEMO_CONFIG, '--work-dir', work['uninterrupted'],
                    '--cfg-options', *opts)
        killed = killed.result()
    files = sorted(os.listdir(work['killed']))
    stripped_checkpoint = _without_rng_states(
        osp.join(work['killed'], f'iter_{KILL_AFTER}.pth'), root)
    resumed = _train_here(DEMO_CONFIG, '--work-dir', work['killed'],
                          '--resume', '--cfg-options', *opts)
    stripped = _train_here(DEMO_CONFIG, '--work-dir', work['stripped'],
                           '--resume', '--cfg-options', *opts,
                           f'load_from={stripped_checkpoint}')
    return dict(work=work, killed=killed, files_after_kill=files,
                resumed=resumed, stripped=stripped)


def test_one_process_resume_after_sigkill_is_exact(one_process_runs):
    runs = one_process_runs
    assert runs['killed'].returncode == -9  # SIGKILL
    assert f'iter_{KILL_AFTER}.pth' in runs['files_after_kill']
    assert f'iter_{KILL_AFTER + INTERVAL}.pth' not in runs['files_after_kill']
    log = runs['resumed'].stdout
    assert f'resumed epoch: 0, iter: {KILL_AFTER}' in log
    assert f'Advance dataloader {KILL_AFTER} steps' in log
    assert NOT_EXACT not in log  # no warning from the hook
    _assert_same_weights(_state_dict(runs['work']['killed']),
                         _state_dict(runs['work']['uninterrupted']))


def test_resume_without_rng_states_warns_and_differs(one_process_runs):
    """Without the hook's states the resumed run is not the uninterrupted
    one: what the exact test above would see without the hook."""
    runs = one_process_runs
    log = runs['stripped'].stdout
    assert f'resumed epoch: 0, iter: {KILL_AFTER}' in log
    assert f'the checkpoint of iteration {KILL_AFTER} holds no RNG states' \
        in log and NOT_EXACT in log
    assert _max_abs_difference(
        _state_dict(runs['work']['stripped']),
        _state_dict(runs['work']['uninterrupted'])) > 1e-3


@pytest.fixture(scope='module')
def torchrun_runs(demo_root, tmp_path_factory):
    """2-process CPU torchrun (tools/dist_train.sh): uninterrupted, killed,
    resumed. ``diff_rank_seed`` gives the ranks different RNG states, so
    restoring each rank's own entry matters."""
    root = tmp_path_factory.mktemp('resume_torchrun')
    work = {name: str(root / name) for name in ('uninterrupted', 'killed')}
    opts = _options(demo_root, 0) + ['randomness.diff_rank_seed=True']
    killing = _killing_config(root)
    path = osp.dirname(PYTHON) + os.pathsep + os.environ['PATH']

    def dist_train(config, work_dir, port, *args):
        return run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config,
                    '2', '--work-dir', work_dir, *args, '--cfg-options',
                    *opts], env=_env(PATH=path, PORT=str(port)))

    uninterrupted = _ok(dist_train(DEMO_CONFIG, work['uninterrupted'], 29527))
    killed = dist_train(killing, work['killed'], 29528)
    files = sorted(os.listdir(work['killed']))
    resumed = _ok(dist_train(killing, work['killed'], 29529, '--resume'))
    return dict(work=work, uninterrupted=uninterrupted, killed=killed,
                files_after_kill=files, resumed=resumed)


def test_torchrun_checkpoint_loads_like_a_one_process_one(
        torchrun_runs, one_process_runs):
    """tools/dist_train.sh on 2 CPU processes trains over gloo and saves
    what a 1-process run saves: the same entries and tensor shapes, keys
    without DDP's ``module.`` prefix."""
    assert 'gloo' in torchrun_runs['uninterrupted'].stdout
    dist = safe_load(osp.join(torchrun_runs['work']['uninterrupted'],
                              f'iter_{ITERS}.pth'))
    single = safe_load(osp.join(one_process_runs['work']['uninterrupted'],
                                f'iter_{ITERS}.pth'))
    assert dist['meta']['iter'] == ITERS
    assert set(dist) == set(single)
    assert {k: v.shape for k, v in dist['state_dict'].items()} == \
        {k: v.shape for k, v in single['state_dict'].items()}
    assert not any(k.startswith('module.') for k in dist['state_dict'])


def test_torchrun_resume_after_sigkill_is_exact(torchrun_runs):
    runs = torchrun_runs
    killed = runs['killed'].stdout + runs['killed'].stderr
    assert runs['killed'].returncode != 0
    assert killed.count('Signal 9 (SIGKILL) received') == 2  # both ranks
    assert f'iter_{KILL_AFTER}.pth' in runs['files_after_kill']
    assert f'iter_{KILL_AFTER + INTERVAL}.pth' not in runs['files_after_kill']
    entry = safe_load(osp.join(runs['work']['killed'],
                               f'iter_{KILL_AFTER}.pth'))[RNG_STATES_KEY]
    assert len(entry) == 2  # gathered from both ranks
    assert not torch.equal(entry[0]['torch'], entry[1]['torch'])
    log = runs['resumed'].stdout
    assert f'resumed epoch: 0, iter: {KILL_AFTER}' in log
    assert NOT_EXACT not in log
    _assert_same_weights(_state_dict(runs['work']['killed']),
                         _state_dict(runs['work']['uninterrupted']))


def test_stop_dataloader_workers_ends_persistent_workers():
    from types import SimpleNamespace

    from mmseg_plugins.hooks import stop_dataloader_workers
    loader = torch.utils.data.DataLoader(
        list(range(8)), batch_size=2, num_workers=1, persistent_workers=True)
    next(iter(loader))  # mid-epoch, as an iteration-based run leaves it
    workers = list(loader._iterator._workers)
    assert all(w.is_alive() for w in workers)
    runner = SimpleNamespace(_train_loop=SimpleNamespace(dataloader=loader),
                             _val_loop=dict(type='ValLoop'))  # not built
    stop_dataloader_workers(runner)
    assert loader._iterator is None
    assert not any(w.is_alive() for w in workers)
