"""Test-only hook: SIGKILL the training right after a checkpoint is written.

Configs name it by its dotted path,
``type='sigkill_hook.SigkillAfterCheckpointHook'`` (mmengine's registries
import the module of a type given that way), with ``tests/`` on
``PYTHONPATH``.
"""
import os
import signal
from typing import Optional, Sequence

import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.runner import Runner


class SigkillAfterCheckpointHook(Hook):
    """Kill every training process with SIGKILL at the end of an iteration.

    Runs after ``CheckpointHook`` (priority ``VERY_LOW``), so the checkpoint
    of that iteration is on disk; the processes die without any cleanup, as
    under ``kill -9``.

    Args:
        after_iter (int): The iteration count (1-based, as in the checkpoint
            name ``iter_{after_iter}.pth``) after which to die.
    """

    priority = 'LOWEST'

    def __init__(self, after_iter: int) -> None:
        self.after_iter = after_iter

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: Optional[Sequence[dict]] = None,
                         outputs: Optional[dict] = None) -> None:
        if runner.iter + 1 != self.after_iter:
            return
        # only rank 0 writes the checkpoint: the other ranks wait for it so
        # that torchrun does not stop rank 0 before the file is complete
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        os.kill(os.getpid(), signal.SIGKILL)
