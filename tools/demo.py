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


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.demo import DemoOptions, run_demo
    result = run_demo(DemoOptions(args.config, args.work_dir, args.data_root,
                                  args.iters, args.cfg_options))
    print(result.message())


if __name__ == '__main__':
    run_tool(main)
