"""Multi-process runs without CUDA, and a clean end of every
multi-process run.

mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the
model in DDP with ``device_ids=[LOCAL_RANK]``, both of which fail on a
machine without CUDA. For such runs the project's tools call
:func:`configure_cpu_distributed`, which initialises a gloo process group
first and selects :class:`mmseg_plugins.models.wrappers.
CPUDistributedDataParallel`; GPU runs are untouched.
"""
import os

import torch

__all__ = [
    'init_cpu_distributed', 'configure_cpu_distributed',
    'prepare_launcher', 'shutdown_distributed'
]


def init_cpu_distributed(timeout_s: int = 1800) -> bool:
    """Initialise a gloo process group from torchrun's environment.

    Does nothing (returns False) when CUDA is available, when the group is
    already initialised, or when the process was not launched by torchrun.
    """
    import datetime

    import torch.distributed as dist
    if torch.cuda.is_available() or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        return False
    dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        timeout=datetime.timedelta(seconds=timeout_s))
    return True


def configure_cpu_distributed(cfg) -> bool:
    """Prepare an mmengine config for a CPU/gloo multi-process run.

    Sets the gloo backend and the :class:`CPUDistributedDataParallel`
    wrapper (keeping the user's wrapper options) and initialises the process
    group, so mmengine never calls ``torch.cuda.set_device``. A no-op on
    machines with CUDA.
    """
    if torch.cuda.is_available():
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel',
            'mmseg_plugins.CPUDistributedDataParallel'):
        wrapper['type'] = 'mmseg_plugins.CPUDistributedDataParallel'
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters',
                           cfg.get('find_unused_parameters', False))
        cfg.model_wrapper_cfg = wrapper
    return init_cpu_distributed(dist_cfg.get('timeout', 1800))


def shutdown_distributed() -> None:
    """After a finished multi-process run: wait for every rank, then tear
    the process group down, so that no communication thread is still alive
    when the interpreter exits (gloo aborts the process otherwise, now and
    then, with 'terminate called without an active exception'). Call it
    after dropping the runner (``del runner``): its model's DDP wrapper
    holds the process group, which is destroyed here, threads joined, only
    once nothing else refers to it (the runner's reference cycles are
    collected first)."""
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()
        dist.destroy_process_group()


def prepare_launcher(cfg, launcher: str) -> None:
    """Set ``cfg.launcher``; for multi-process runs without CUDA, switch to
    gloo and the CPU-aware DDP wrapper (see :mod:`mmseg_plugins.compat`)."""
    cfg.launcher = launcher
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    configure_cpu_distributed(cfg)
