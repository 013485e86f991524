"""Confusion matrix of a trained segmentor on its config's test set.

    python tools/analysis_tools/confusion_matrix.py CONFIG CHECKPOINT
        --out DIR [--device cpu|cuda] [--cfg-options k=v ...]

Runs the model itself on ``test_dataloader`` (no results file needed) and
writes ``DIR/confusion_matrix.csv`` (pixel counts, rows ground truth,
columns prediction) and ``DIR/confusion_matrix.png`` (row-normalised, with
the class names), each atomically; prints each class's recall, precision
and the class it is most often taken for.
"""
import argparse
import os.path as osp

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.cli import ToolError, check_data_paths, load_config
    from mmseg_plugins.own_data.confusion import (confusion_summary,
                                                  model_confusion,
                                                  write_confusion)
    from mmseg_plugins.weights import checkpoint_found
    if not checkpoint_found(args.checkpoint):
        raise ToolError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options)
    check_data_paths(cfg, ('test_dataloader', ))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    matrix, classes = model_confusion(cfg, args.checkpoint, device)
    csv_path = osp.join(args.out, 'confusion_matrix.csv')
    png_path = osp.join(args.out, 'confusion_matrix.png')
    write_confusion(matrix, classes, csv_path, png_path)
    for line in confusion_summary(matrix, classes):
        print(line)
    print(f'wrote {csv_path} and {png_path}')


if __name__ == '__main__':
    run_tool(main)
