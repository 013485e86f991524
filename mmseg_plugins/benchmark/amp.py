"""Mixed-precision training check (``tools/analysis_tools/check_amp.py``):
each config trained for a few hundred iterations in float32 and under AMP
from the same seed, with mmengine's ``AmpOptimWrapper`` exactly as
``tools/train.py --amp`` sets it up (autocast to float16 with a dynamic loss
scale, or to bfloat16), then evaluated.

Reported per run (:class:`AmpRun`):

* whether every training loss was finite, the first loss and the mean of
  the last ten, and the loss scale at the end (fp16 halves it for every
  step it skips because a gradient overflowed);
* the validation mIoU, evaluated in float32, and its difference from the
  float32 run's (two trainings diverge in their rounding from the first
  step, so their logits are not compared with each other);
* the **logits' relative error** of the trained weights under the run's
  autocast against float32 with the same weights: largest
  ``|autocast - float32|`` over the largest ``|float32|`` logit, on the
  first validation batch (the precision's own error at inference).
"""
import math
import os.path as osp
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.hooks import Hook

from ..accelerate import autocast, check_amp_training, use_amp_optim_wrapper

__all__ = ['AmpRun', 'LossRecorder', 'check_amp_precisions',
           'train_and_check', 'run_amp_check', 'AMP_COLUMNS']

#: (key, header) of the check's table.
AMP_COLUMNS = (
    ('config', 'config'),
    ('precision', 'precision'),
    ('iters', 'iterations'),
    ('losses_finite', 'all losses finite'),
    ('first_loss', 'first loss'),
    ('last_loss', 'last loss (mean of 10)'),
    ('loss_scale', 'final loss scale'),
    ('miou', 'val mIoU (fp32 eval)'),
    ('miou_vs_fp32', 'mIoU - fp32 run\'s'),
    ('logits_rel_error', 'logits rel. error vs fp32 (same weights)'),
    ('train_s', 'train time (s)'),
)


class LossRecorder(Hook):
    """Records the total training loss of every iteration."""

    def __init__(self) -> None:
        self.losses: List[float] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        self.losses.append(float(outputs['loss'].detach()))


@dataclass
class AmpRun:
    """One training run of the check (see the module docstring)."""
    config: str
    precision: str
    iters: int
    losses: List[float] = field(repr=False)
    loss_scale: Optional[float]
    miou: Optional[float]
    logits_rel_error: Optional[float]
    train_s: float
    miou_vs_fp32: Optional[float] = None

    @property
    def losses_finite(self) -> bool:
        return len(self.losses) == self.iters and all(
            math.isfinite(v) for v in self.losses)

    def row(self) -> Dict:
        tail = self.losses[-10:]
        return dict(
            config=self.config, precision=self.precision, iters=self.iters,
            losses_finite='yes' if self.losses_finite else 'NO',
            first_loss=self.losses[0] if self.losses else None,
            last_loss=sum(tail) / len(tail) if tail else None,
            loss_scale=self.loss_scale, miou=self.miou,
            miou_vs_fp32=self.miou_vs_fp32,
            logits_rel_error=self.logits_rel_error, train_s=self.train_s)


def _logits_rel_error(runner, precision: str, device: str) -> float:
    """Largest |autocast - float32| logit over the largest |float32| one,
    on the first validation batch, same weights."""
    model = runner.model
    model.eval()
    batch = next(iter(runner.val_dataloader))
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        reference = model(data['inputs'], mode='tensor').float()
        with autocast(precision, device):
            reduced = model(data['inputs'], mode='tensor').float()
    scale = reference.abs().max().clamp_min(1e-12)
    return float((reduced - reference).abs().max() / scale)


def check_amp_precisions(precisions: Sequence[str], device: str) -> None:
    """Refuse, before any training, an AMP precision ``device`` cannot
    train in ('fp32' always runs)."""
    for precision in precisions:
        if precision != 'fp32':
            check_amp_training(precision, device)


def train_and_check(config: str, precision: str, iters: int,
                    device: str, work_dir: Optional[str] = None,
                    cfg_options: Optional[dict] = None) -> AmpRun:
    """Train the model of ``config`` for ``iters`` iterations in
    ``precision`` ('fp32', 'fp16' or 'bf16'), evaluate it and measure its
    logits' relative error under that precision.

    Args:
        config (str): A config file whose training and validation data
            exist.
        precision (str): 'fp32', or the AMP precision.
        iters (int): Training iterations (the config's schedule is kept,
            cut off here; no validation or checkpoint during training).
        device (str): 'cuda' or 'cpu' (float32 only).
        work_dir (str, optional): The runner's work_dir (default: a
            temporary folder, removed afterwards).
        cfg_options (dict, optional): Overrides of the config.
    """
    from mmengine.runner import Runner

    from ..config import check_data_paths, load_config
    from ..hooks import stop_dataloader_workers
    check_amp_precisions([precision], device)
    cfg = load_config(config, cfg_options)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    stem = osp.splitext(osp.basename(config))[0]
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1  # validated below, once
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    # unique names: mmengine keeps one visualizer (and logger) per name
    # for the process, with the first run's folders
    cfg.experiment_name = f'amp_check_{stem}_{precision}_{time.time_ns()}'
    if cfg.get('visualizer'):
        cfg.visualizer.name = cfg.experiment_name
    if precision != 'fp32':
        use_amp_optim_wrapper(cfg, precision)
    recorder = LossRecorder()
    with tempfile.TemporaryDirectory() as tmp:
        cfg.work_dir = work_dir or tmp
        runner = Runner.from_cfg(cfg)
        runner.register_hook(recorder, priority='LOWEST')
        start = time.perf_counter()
        runner.train()
        train_s = time.perf_counter() - start
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        loss_scale = float(scaler.get_scale()) if scaler is not None and \
            scaler.is_enabled() else None
        metrics = runner.val()
        error = None if precision == 'fp32' else _logits_rel_error(
            runner, precision, device)
        stop_dataloader_workers(runner)
    miou = metrics.get('mIoU')
    return AmpRun(stem, precision, iters, recorder.losses, loss_scale,
                  None if miou is None else float(miou), error, train_s)


def run_amp_check(configs: Sequence[str], precisions: Sequence[str],
                  iters: int, device: str,
                  progress: Optional[Callable[[str], None]] = None,
                  cfg_options: Optional[dict] = None) -> List[AmpRun]:
    """:func:`train_and_check` for every config in float32 and in each of
    ``precisions`` (with ``cfg_options``); each AMP run's mIoU difference
    from the float32 run's is filled in."""
    check_amp_precisions(precisions, device)
    runs = []
    for config in configs:
        fp32 = None
        for precision in ['fp32'] + [p for p in precisions if p != 'fp32']:
            run = train_and_check(config, precision, iters, device,
                                  cfg_options=cfg_options)
            if precision == 'fp32':
                fp32 = run
            elif fp32.miou is not None and run.miou is not None:
                run.miou_vs_fp32 = run.miou - fp32.miou
            runs.append(run)
            if progress is not None:
                progress(f'{run.config}: {precision}')
    return runs
