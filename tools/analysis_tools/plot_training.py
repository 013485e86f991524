"""Training curve of a run: training loss and validation metrics by
iteration, from mmengine's log.

    python tools/analysis_tools/plot_training.py WORK_DIR --out curve.png
        [--metrics mIoU mAcc] [--title TEXT]

WORK_DIR is a training run's work directory (the newest
``<timestamp>/vis_data/scalars.json`` under it is read) or a
``scalars.json`` itself. Writes the PNG atomically and prints the loss at
the first and last records and each metric's best and last values.
"""
import argparse
import os.path as osp

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('log', help='work directory or scalars.json')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--metrics', nargs='+', default=None,
                        help='validation metrics to draw (default: the '
                        'mean metrics in the log, mIoU first)')
    parser.add_argument('--title', default='', help='figure title')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.cli import ToolError
    from mmseg_plugins.own_data.curves import (find_scalars,
                                               plot_training_curve,
                                               read_scalars)
    parent = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(parent):
        raise ToolError(f'output directory {parent} does not exist')
    if not args.out.lower().endswith('.png'):
        raise ToolError(f'--out must be a .png file, got {args.out}')
    path = find_scalars(args.log)
    curve = read_scalars(path)
    plot_training_curve(curve, args.out, args.metrics, args.title)
    print(f'read {path}')
    for line in curve.summary():
        print(line)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    run_tool(main)
