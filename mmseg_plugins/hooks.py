"""Training hooks, registered in :data:`mmseg_plugins.registry.HOOKS`.

:class:`RNGStateHook` makes ``--resume`` exact: a run killed after the
checkpoint of iteration N and resumed from it ends with the same weights as
a run that was never interrupted. :class:`CompileHook` compiles the
model's networks with ``torch.compile``. :func:`stop_dataloader_workers`
ends a finished runner's persistent data workers.
"""
import logging
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop, Runner
from mmengine.runner.priority import Priority

from .registry import HOOKS

__all__ = ['RNG_STATES_KEY', 'capture_rng_states', 'restore_rng_states',
           'RNGStateHook', 'CompileHook', 'FuseHook', 'unwrapped_model',
           'stop_loader_workers',
           'stop_dataloader_workers']

#: Top-level checkpoint key under which :class:`RNGStateHook` stores one
#: :func:`capture_rng_states` dict per rank (a list indexed by rank).
RNG_STATES_KEY = 'rng_states'

RNGStates = Dict[str, Any]

_NOT_EXACT = 'the resumed run will not repeat an uninterrupted run exactly'


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def capture_rng_states() -> RNGStates:
    """The states of this process's global random number generators.

    Everything is a tensor or a plain Python value (tuples, lists, ints,
    floats, strings, ``None``), so a checkpoint holding it loads with
    ``torch.load(weights_only=True)`` and no allow-list entry.

    Returns:
        dict: ``python`` (``random.getstate()``: a version int, a tuple of
        625 ints and ``None`` or a float), ``numpy`` (the legacy global
        ``np.random`` Mersenne Twister, its key as an int64 tensor),
        ``torch`` (the CPU generator's uint8 tensor) and, when CUDA is
        available, ``cuda`` (one uint8 tensor per visible device).
    """
    # np.random's global RandomState is always a Mersenne Twister, whose
    # legacy state is this 5-tuple
    bit_generator, key, pos, has_gauss, cached_gaussian = \
        np.random.get_state(legacy=True)
    states = {
        'python': random.getstate(),
        'numpy': {
            'bit_generator': str(bit_generator),
            'key': torch.from_numpy(key.astype(np.int64)),
            'pos': int(pos),
            'has_gauss': int(has_gauss),
            'cached_gaussian': float(cached_gaussian),
        },
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: RNGStates) -> None:
    """Set this process's global generators to ``states``.

    Args:
        states (dict): What :func:`capture_rng_states` returned, possibly
            after a round trip through a checkpoint (tensors may come back
            on another device, tuples as lists).
    """
    version, internal_state, gauss_next = states['python']
    random.setstate((version, tuple(internal_state), gauss_next))
    numpy_state = states['numpy']
    np.random.set_state(
        (numpy_state['bit_generator'],
         numpy_state['key'].cpu().numpy().astype(np.uint32),
         numpy_state['pos'], numpy_state['has_gauss'],
         numpy_state['cached_gaussian']))
    torch.set_rng_state(states['torch'].cpu())
    saved_cuda = states.get('cuda')
    current_devices = torch.cuda.device_count() if torch.cuda.is_available() \
        else 0
    if saved_cuda is not None and len(saved_cuda) == current_devices:
        torch.cuda.set_rng_state_all([state.cpu() for state in saved_cuda])
    elif saved_cuda or current_devices:
        _warn(f'RNG states were saved with {len(saved_cuda or [])} CUDA '
              f'device(s) but {current_devices} are visible now; the CUDA '
              f'generators keep their seeded states: {_NOT_EXACT}')


class _RestoreRNGBeforeBatch:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` on resume.

    The loop first skips the ``batches_to_skip`` batches that were already
    trained on, then fetches the next batch *before* the iteration's first
    hook (``before_train_iter``) runs. Upstream mmengine replays (and
    discards) the batches through ``next``; OneDL's mmengine calls
    ``skip_iter(n)`` once, which advances the sampler (or the index stream)
    without loading, then rebuilds the data loader's iterator lazily at the
    next fetch. Replaying consumes random numbers (the data pipeline runs in
    this process when ``num_workers=0``), and so does building a data loader
    iterator (its base seed, from torch's generator), so the states are
    restored here, after the skip and after the iterator exists, just before
    the fetch of the first new batch; then the loop gets its own iterator
    back. Attributes this class lacks are those of the loop's iterator.
    """

    def __init__(self, loop: IterBasedTrainLoop, rng_states: RNGStates,
                 batches_to_skip: int) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._rng_states = rng_states
        self._batches_to_skip = batches_to_skip

    def __iter__(self) -> '_RestoreRNGBeforeBatch':
        return self

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not found on this object
        return getattr(self.__dict__['_iterator'], name)

    def skip_iter(self, num_iters: int) -> None:
        """OneDL's way to skip the batches already trained on: its own
        (without loading them) where the pipeline runs in this process,
        whose states are restored next; with data workers, which draw from
        their own generators (seeded per worker), the batches are loaded
        and discarded as upstream mmengine does, so that the workers draw
        what they drew in the uninterrupted run."""
        loader = getattr(self._loop, 'dataloader', None)
        if getattr(loader, 'num_workers', 0) > 0:
            for _ in range(num_iters):
                next(self._iterator)
        else:
            self._iterator.skip_iter(num_iters)
        self._batches_to_skip = max(0, self._batches_to_skip - num_iters)

    def __next__(self) -> Any:
        if self._batches_to_skip > 0:
            self._batches_to_skip -= 1
        else:
            self._loop.dataloader_iterator = self._iterator
            # OneDL's iterator builds the data loader's iterator at its
            # first fetch after a skip (drawing its base seed); build it
            # before the restore, as the uninterrupted run had it
            ensure_iterator = getattr(self._iterator, '_ensure_iterator', None)
            if ensure_iterator is not None:
                ensure_iterator()
            restore_rng_states(self._rng_states)
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random number generator states of every rank in each
    checkpoint and restore them on resume, so that a resumed
    :class:`~mmengine.runner.IterBasedTrainLoop` run continues exactly as
    the uninterrupted run would have. This needs a fixed ``randomness.seed``
    (mmengine seeds the sampler and the data workers from it before the
    checkpoint is loaded) and ``deterministic=True`` where the kernels need
    it.

    mmengine checkpoints the model, optimizer, schedulers and message hub,
    but not the generators of Python's ``random``, NumPy's global
    ``np.random``, torch's CPU generator and the CUDA generators, which drop
    path, dropout and the random data transforms draw from. This hook:

    - after a training iteration at which a ``CheckpointHook`` will save
      (the hook runs just before it), captures the states of every rank and
      gathers them (a collective, so it cannot happen in
      ``before_save_checkpoint``, which only rank 0 calls); rank 0 writes
      them into the checkpoint under :data:`RNG_STATES_KEY`, one entry per
      rank;
    - on resume from iteration N, lets the loop skip the first N batches
      as mmengine does (upstream replays them; data workers, if any, then
      draw the same random numbers as in the original run: mmengine seeds
      each of them from the seed, rank and worker id; OneDL's
      ``skip_iter`` skips without loading where no workers run), and
      restores each rank's own states right before batch N is fetched.
      OneDL's ``train_cfg.fast_forward_on_resume=True`` (no skipping) is
      honoured, with a warning that the run is then not exact;
    - restores the states after each validation, which mmengine runs
      between a checkpoint and the next batch but does not repeat on resume,
      so validation does not shift the training's random streams.

    A checkpoint without the entry (saved without this hook), or saved with
    another number of ranks, still resumes, with a warning that the result
    will differ from an uninterrupted run. Restoring needs
    ``IterBasedTrainLoop``; with another train loop the hook warns on resume.

    The hook takes no arguments. Its priority, one step before
    ``'VERY_LOW'`` (``CheckpointHook``'s), makes it capture the states after
    every other hook of the iteration and before the save; a ``priority``
    given in the config must keep it before ``CheckpointHook`` (checked at
    the start of training).
    """

    priority = Priority.VERY_LOW.value - 1

    def __init__(self) -> None:
        # (iteration count N, states of every rank) captured at the end of
        # the last iteration after which a checkpoint was due
        self._captured: Optional[Tuple[int, List[RNGStates]]] = None
        # the entry of the checkpoint loaded before training; None if the
        # checkpoint had none
        self._loaded: Optional[List[RNGStates]] = None
        self._before_val: Optional[RNGStates] = None

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Keep the checkpoint's RNG states; :meth:`before_train` uses them
        if the load was a resume (mmengine calls this hook for ``load_from``
        too).

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        self._loaded = checkpoint.get(RNG_STATES_KEY)

    def before_train(self, runner: Runner) -> None:
        """Check the hook order; on resume, arrange the restore of this
        rank's states right before the first new batch is fetched.

        Args:
            runner (Runner): The runner, after ``load_or_resume``.
        """
        # runner.hooks is in execution order
        position = runner.hooks.index(self)
        if any(isinstance(hook, CheckpointHook)
               for hook in runner.hooks[:position]):
            _warn('RNGStateHook runs after CheckpointHook (see their '
                  'priorities): the checkpoints will hold no RNG states')
        if runner.iter == 0:  # a fresh start, or load_from without resume
            return
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop):
            _warn(f'RNGStateHook supports IterBasedTrainLoop only, not '
                  f'{type(loop).__name__}: {_NOT_EXACT}')
        elif self._loaded is None:
            _warn(f'the checkpoint of iteration {runner.iter} holds no RNG '
                  f'states (saved without RNGStateHook): {_NOT_EXACT}')
        elif len(self._loaded) != runner.world_size:
            _warn(f'the checkpoint of iteration {runner.iter} holds the RNG '
                  f'states of {len(self._loaded)} process(es), but this run '
                  f'has {runner.world_size}: the states are not restored and '
                  f'{_NOT_EXACT}')
        else:
            # IterBasedTrainLoop.run skips exactly `iter` batches, unless
            # OneDL's `fast_forward_on_resume` tells it not to
            skips = runner.iter
            if getattr(loop, 'fast_forward_on_resume', False):
                skips = 0
                _warn(f'train_cfg.fast_forward_on_resume=True: the loop does '
                      f'not skip the {runner.iter} batches already trained '
                      f'on, so the data differs: {_NOT_EXACT} (the RNG '
                      f'states are restored before the first batch)')
            loop.dataloader_iterator = _RestoreRNGBeforeBatch(
                loop, self._loaded[runner.rank], batches_to_skip=skips)
        self._loaded = None

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: Optional[Sequence[dict]] = None,
                         outputs: Optional[dict] = None) -> None:
        """Capture and gather the states of every rank if a checkpoint will
        be saved after this iteration.

        Args:
            runner (Runner): The runner.
            batch_idx (int): The index of the iteration's batch.
            data_batch (Sequence[dict], optional): The batch (unused).
            outputs (dict, optional): The model's outputs (unused).
        """
        if self._checkpoint_due(runner):
            self._captured = (runner.iter + 1,
                              all_gather_object(capture_rng_states()))

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Store the gathered states (rank 0 only, like the save) if they
        belong to this checkpoint's iteration.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint about to be written.
        """
        if self._captured is not None and \
                self._captured[0] == checkpoint['meta'].get('iter'):
            checkpoint[RNG_STATES_KEY] = self._captured[1]

    def before_val(self, runner: Runner) -> None:
        """Remember the states before validation."""
        self._before_val = capture_rng_states()

    def after_val(self, runner: Runner) -> None:
        """Undo validation's draws from the generators."""
        restore_rng_states(self._before_val)
        self._before_val = None

    @staticmethod
    def _checkpoint_due(runner: Runner) -> bool:
        """Whether a ``CheckpointHook`` saves after this iteration: the
        condition of ``CheckpointHook.after_train_iter``, evaluated the same
        way on every rank."""
        return any(
            not hook.by_epoch and (
                hook.every_n_train_iters(runner, hook.interval,
                                         hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner)))
            for hook in runner.hooks if isinstance(hook, CheckpointHook))


def unwrapped_model(runner: Runner) -> torch.nn.Module:
    """The runner's model without its distributed wrapper (if any)."""
    from mmengine.model import is_model_wrapper
    model = runner.model
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class CompileHook(Hook):
    """``torch.compile`` the networks of the model (backbone, neck, decode
    and auxiliary heads, each in place, so checkpoints keep their keys)
    before training, validation and testing.

    mmengine's own ``compile`` option compiles the whole ``train_step``,
    optimizer step included, which TorchDynamo in current PyTorch (2.14)
    fails to trace through mmengine's parameter groups
    (``'UserDefinedDictVariable' object has no attribute 'items'`` inside
    ``Adam.step``). Compiling the networks leaves the data preprocessor,
    losses and optimizer eager; the project's ``tools/train.py`` turns a
    config's ``compile`` option into this hook.

    Args:
        mode (str, optional): ``torch.compile`` mode (``'default'``,
            ``'reduce-overhead'``, ``'max-autotune'``,
            ``'max-autotune-no-cudagraphs'``). Default: None (default).
        backend (str): ``torch.compile`` backend. Default: ``'inductor'``.
    """

    priority = Priority.VERY_HIGH.value

    #: The sub-modules of a segmentor that are compiled.
    NETWORKS = ('backbone', 'neck', 'decode_head', 'auxiliary_head')

    def __init__(self, mode: Optional[str] = None,
                 backend: str = 'inductor') -> None:
        self.mode = mode
        self.backend = backend
        self._done = False

    def _compile(self, runner: Runner) -> None:
        if self._done:
            return
        from .accelerate import compile_in_place
        model = unwrapped_model(runner)
        device = next(model.parameters()).device.type
        names = []
        for name in self.NETWORKS:
            part = getattr(model, name, None)
            for module in (part if isinstance(part, torch.nn.ModuleList)
                           else [part]):
                if isinstance(module, torch.nn.Module):
                    compile_in_place(module, self.mode, self.backend, device)
                    names.append(name)
        print_log(f'torch.compile (mode {self.mode or "default"}, backend '
                  f'{self.backend}): {", ".join(names)}', logger='current')
        self._done = True

    def before_train(self, runner: Runner) -> None:
        self._compile(runner)

    def before_val(self, runner: Runner) -> None:
        self._compile(runner)

    def before_test(self, runner: Runner) -> None:
        self._compile(runner)


@HOOKS.register_module()
class FuseHook(Hook):
    """Fuse the model for inference (:func:`mmseg_plugins.fuse`, verified
    against the reference forward) before testing, after the checkpoint
    is loaded (:class:`~mmseg_plugins.weights.StrictLoadHook` runs first).
    The project's ``tools/test.py`` adds it (``--no-fuse`` leaves it out).
    A test-time-augmentation wrapper's segmentor is fused inside it."""

    priority = Priority.VERY_HIGH.value + 1

    def before_test(self, runner: Runner) -> None:
        from .models.fuse import fuse
        model = unwrapped_model(runner)
        model = getattr(model, 'module', model)  # inside a TTA wrapper
        fuse(model.eval())
        print_log(f'fused for inference: {type(model).__name__}',
                  logger='current')


def stop_loader_workers(loader: Any) -> None:
    """Stop the data workers of a persistent ``DataLoader`` (or do nothing
    for anything else). Left alive after a run, they are killed at the
    interpreter's exit; in a process that goes on (a tool called
    in-process, a notebook), the garbage collector shuts them down at some
    later collection and waits there for each worker, seconds at a time.
    """
    iterator = getattr(loader, '_iterator', None)
    if iterator is not None and hasattr(iterator, '_shutdown_workers'):
        iterator._shutdown_workers()
        loader._iterator = None


def stop_dataloader_workers(runner: Runner) -> None:
    """:func:`stop_loader_workers` for a finished runner's train, val and
    test dataloaders (an iteration-based run leaves them mid-epoch)."""
    for split in ('train', 'val', 'test'):
        loop = getattr(runner, f'_{split}_loop', None)
        stop_loader_workers(getattr(loop, 'dataloader', None))
