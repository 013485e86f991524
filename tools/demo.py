"""The main job on the embedded default: train, evaluate, save, visualise.

    python tools/demo.py [--config CONFIG] [--work-dir DIR] [--iters N]
        [--cfg-options k=v ...]

1. writes the deterministic demo dataset to ``data/demo_shapes`` (if it is
   not already complete);
2. trains the demo config (AFFormer-tiny from scratch; ``--config
   configs/demo/segformer_mit-b0_shapes-128x128.py`` for SegFormer-B0) on
   the CPU;
3. evaluates mIoU on the validation split;
4. saves the checkpoint (``<work-dir>/iter_<N>.pth``) and an overlay of a
   validation prediction (``<work-dir>/demo_overlay.png``, ground truth on
   the left, prediction on the right);
5. prints a one-line summary with the time taken.
"""
import argparse
import os.path as osp
import time

from mmseg_plugins.cli import run_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'demo',
                          'afformer_tiny_shapes-128x128.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo_shapes')
    parser.add_argument(
        '--iters', type=int, default=None, help='override max_iters')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value '
                        '(e.g. model.backbone.arch=base)')
    return parser.parse_args(argv)


def save_overlay(runner, out_file: str) -> None:
    """Predict the first validation image and save GT | prediction."""
    import torch
    model = runner.model
    model.eval()
    batch = next(iter(runner.test_dataloader))
    with torch.no_grad():
        sample = model.test_step(batch)[0]
    image = batch['inputs'][0].permute(1, 2, 0).numpy()[..., ::-1]  # RGB
    from mmseg_plugins.fileio import atomic_path
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


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    import mmseg_plugins  # noqa: F401
    from mmengine.runner import Runner
    from mmseg_plugins.hooks import stop_dataloader_workers
    from mmseg_plugins.demo_data import (data_root_options,
                                         ensure_shapes_dataset)
    from mmseg_plugins.cli import load_config

    opts = data_root_options(args.data_root)
    if args.iters:
        warmup = max(1, min(30, args.iters // 10))
        opts.update({
            'param_scheduler.0.end': warmup,
            'param_scheduler.1.begin': warmup,
            'train_cfg.max_iters': args.iters,
            'train_cfg.val_interval': args.iters,
            'default_hooks.checkpoint.interval': args.iters,
            'param_scheduler.1.end': args.iters,
        })
    opts.update(args.cfg_options or {})
    cfg = load_config(args.config, opts)  # a bad config: nothing written
    cfg.work_dir = args.work_dir
    if ensure_shapes_dataset(args.data_root):
        print(f'demo data written to {args.data_root}')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    iters = cfg.train_cfg.max_iters
    ckpt = osp.join(args.work_dir, f'iter_{iters}.pth')
    overlay = osp.join(args.work_dir, 'demo_overlay.png')
    save_overlay(runner, overlay)
    stop_dataloader_workers(runner)
    baseline = majority_baseline_miou(
        args.data_root,
        len(runner.test_dataloader.dataset.metainfo['classes']))
    print(f'demo: mIoU {metrics["mIoU"]:.2f} (predicting the majority '
          f'class everywhere gives {baseline:.2f}) after {iters} iterations '
          f'in {time.time() - t0:.0f} s; checkpoint {ckpt}; overlay {overlay}')


if __name__ == '__main__':
    run_tool(main)
