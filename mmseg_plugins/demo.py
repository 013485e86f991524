"""The main job on the embedded default, as one call (:func:`run_demo`;
``tools/demo.py`` is its command line): write the deterministic demo
dataset (:mod:`mmseg_plugins.demo_data`) if it is not complete, train the
demo config on it, evaluate mIoU on the validation split, save the
checkpoint and an overlay of a validation prediction (ground truth |
prediction), and compare with the mIoU of predicting the majority class
everywhere."""
import os.path as osp
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .config import load_config
from .demo_data import data_root_options, ensure_shapes_dataset
from .fileio import atomic_path

__all__ = ['DemoOptions', 'DemoResult', 'run_demo', 'save_overlay',
           'majority_baseline_miou']


@dataclass
class DemoOptions:
    """A demo run.

    Args:
        config (str): The demo config (e.g.
            ``configs/demo/afformer_tiny_shapes-128x128.py``).
        work_dir (str): Where logs, the checkpoint and the overlay go.
        data_root (str): The demo dataset's folder (written if incomplete).
        iters (int, optional): Training iterations (warmup, validation and
            checkpoint interval follow); None: the config's.
        cfg_options (dict, optional): Further overrides of the config.
    """
    config: str
    work_dir: str = 'work_dirs/demo'
    data_root: str = 'data/demo_shapes'
    iters: Optional[int] = None
    cfg_options: Optional[dict] = None


@dataclass
class DemoResult:
    """What :func:`run_demo` measured and wrote."""
    miou: float
    baseline_miou: float
    iters: int
    seconds: float
    checkpoint: str
    overlay: str

    def message(self) -> str:
        """The one-line summary."""
        return (f'demo: mIoU {self.miou:.2f} (predicting the majority '
                f'class everywhere gives {self.baseline_miou:.2f}) after '
                f'{self.iters} iterations in {self.seconds:.0f} s; '
                f'checkpoint {self.checkpoint}; overlay {self.overlay}')


def save_overlay(runner, out_file: str) -> None:
    """Predict the first validation image of a runner's test loader and
    save ground truth | prediction side by side."""
    import torch
    model = runner.model
    model.eval()
    batch = next(iter(runner.test_dataloader))
    with torch.no_grad():
        sample = model.test_step(batch)[0]
    image = batch['inputs'][0].permute(1, 2, 0).numpy()[..., ::-1]  # RGB
    # the runner's own visualizer (the config's SegLocalVisualizer), not
    # mmengine's "current instance", which another runner in the same
    # process may have replaced
    visualizer = runner.visualizer
    visualizer.dataset_meta = runner.test_dataloader.dataset.metainfo
    # mmseg draws "ground truth | prediction" side by side into out_file
    with atomic_path(out_file) as tmp:
        visualizer.add_datasample(
            'demo', image.copy(), sample, draw_gt=True, draw_pred=True,
            show=False, wait_time=0, out_file=tmp, with_labels=False)


def majority_baseline_miou(data_root: str, num_classes: int) -> float:
    """mIoU (%) of predicting the most frequent class at every pixel of the
    validation split: the bar a trained model has to clear."""
    import glob

    import cv2
    import numpy as np
    counts = np.zeros(num_classes, np.int64)
    for f in glob.glob(osp.join(data_root, 'annotations/validation/*.png')):
        label = cv2.imread(f, cv2.IMREAD_UNCHANGED)
        counts += np.bincount(label.ravel(),
                              minlength=num_classes)[:num_classes]
    # IoU of the majority class = its pixel share; the others score 0
    return 100.0 * counts.max() / counts.sum() / int((counts > 0).sum())


def _overrides(options: DemoOptions) -> dict:
    """The config overrides of a demo run: the data root, the iterations
    (and the schedule that follows them), then the user's."""
    opts = data_root_options(options.data_root)
    iters = options.iters
    if iters:
        warmup = max(1, min(30, iters // 10))
        opts.update({
            'param_scheduler.0.end': warmup,
            'param_scheduler.1.begin': warmup,
            'train_cfg.max_iters': iters,
            'train_cfg.val_interval': iters,
            'default_hooks.checkpoint.interval': iters,
            'param_scheduler.1.end': iters,
        })
    opts.update(options.cfg_options or {})
    return opts


def run_demo(options: DemoOptions,
             notify: Callable[[str], None] = print) -> DemoResult:
    """Train, evaluate, save and compare (see the module). A bad config
    stops the run before anything is written; ``notify`` is told when the
    demo dataset was written."""
    from mmengine.runner import Runner

    from .hooks import stop_dataloader_workers
    start = time.time()
    cfg = load_config(options.config, _overrides(options))
    cfg.work_dir = options.work_dir
    if ensure_shapes_dataset(options.data_root):
        notify(f'demo data written to {options.data_root}')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    iters = cfg.train_cfg.max_iters
    overlay = osp.join(options.work_dir, 'demo_overlay.png')
    save_overlay(runner, overlay)
    stop_dataloader_workers(runner)
    baseline = majority_baseline_miou(
        options.data_root,
        len(runner.test_dataloader.dataset.metainfo['classes']))
    return DemoResult(metrics['mIoU'], baseline, iters, time.time() - start,
                      osp.join(options.work_dir, f'iter_{iters}.pth'),
                      overlay)
