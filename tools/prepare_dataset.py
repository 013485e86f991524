"""Prepare your own dataset for training: scan, report, write a config.

    python tools/prepare_dataset.py DATA_ROOT --model MODEL --out DIR
        [--classes NAME ... | --classes-file FILE] [--epochs N]
        [--img-suffix .jpg] [--mask-suffix _mask.png] [--val-fraction F]
        [--zero-is-ignore] [--snap-jpeg] [--balance]

writes ``DIR/<dataset>_<model>.py`` (e.g. ``DIR/mydata_afformer_tiny.py``;
``tools/train.py`` trains it into ``work_dirs/<dataset>_<model>``), and says
whether the pretrained weights it starts from are in place. Then ``python
tools/test.py DIR/<dataset>_<model>.py CKPT`` reports per-class IoU, Acc,
Dice, F-score, precision and recall. The user's files are never modified.
Exit code 2 for what stops the tool (paths that do not exist are refused
before the libraries load), 1 when single unreadable files were skipped
(the config is written without them).
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='folder of images and masks')
    parser.add_argument('--model', required=True,
                        help='config path or name, or a short name such as '
                        'afformer_tiny, segformer_mit-b2, mpvit_small')
    parser.add_argument('--out', required=True, help='output folder')
    names = parser.add_mutually_exclusive_group()
    names.add_argument('--classes', nargs='+', help='class names')
    names.add_argument('--classes-file', help='one class a line, optionally '
                       'followed by its colour R G B')
    parser.add_argument('--img-suffix', help='e.g. .jpg')
    parser.add_argument('--mask-suffix', help='e.g. .png or _mask.png')
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--zero-is-ignore', action='store_true',
                        help="label 0 means ignore (reduce_zero_label)")
    parser.add_argument('--snap-jpeg', action='store_true',
                        help='accept JPEG masks, snapping pixels to the '
                        'nearest label colour')
    parser.add_argument('--epochs', type=float, default=50)
    parser.add_argument('--iters', type=int, help='overrides --epochs')
    parser.add_argument('--batch-size', type=int,
                        help="default: the model config's")
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--balance', action='store_true',
                        help='class_weight by median frequency balancing')
    return parser.parse_args(argv)


def path_problem(args) -> str:
    """What is wrong with the paths given (empty if nothing), found with
    the standard library only: before torch and mmseg load."""
    if not osp.isdir(args.data_root):
        return f'data root {osp.abspath(args.data_root)} is not a folder'
    if args.classes_file and not osp.isfile(args.classes_file):
        return f'classes file {args.classes_file} does not exist'
    if osp.exists(args.out) and not osp.isdir(args.out):
        return f'output folder {args.out} is a file'
    model = args.model
    if model.endswith('.py') and (osp.isabs(model) or
                                  model.startswith('.')) and \
            not osp.isfile(model):
        return f'model config {model} does not exist'
    return ''


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.cli import ToolError
    problem = path_problem(args)
    if problem:
        raise ToolError(problem)
    from mmseg_plugins.own_data import (PrepareOptions, prepare_dataset,
                                        read_classes_file)
    classes, colours = args.classes, None
    if args.classes_file:
        classes, colours = read_classes_file(args.classes_file)
    result = prepare_dataset(PrepareOptions(
        args.data_root, args.model, args.out, classes=classes,
        class_colours=colours, img_suffix=args.img_suffix,
        mask_suffix=args.mask_suffix, val_fraction=args.val_fraction,
        seed=args.seed, zero_is_ignore=args.zero_is_ignore,
        snap_jpeg=args.snap_jpeg, epochs=args.epochs, max_iters=args.iters,
        batch_size=args.batch_size, num_workers=args.num_workers,
        balance=args.balance))
    print(result.report, end='')
    for line in result.weights:
        print(line)
    print(f'config: {result.config}')
    print(f'train:  python tools/train.py {result.config}   # into '
          f'{result.work_dir}')
    if result.skipped:
        print(f'error: {result.skipped} unreadable file(s) skipped (listed '
              'above)', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    # a wrong path costs no library import (half a minute on a small
    # machine): refused here, as run_tool would, with one line and code 2
    _problem = path_problem(parse_args())
    if _problem:
        print(f'error: {_problem}', file=sys.stderr)
        sys.exit(2)
    from mmseg_plugins.cli import run_tool
    run_tool(main)
