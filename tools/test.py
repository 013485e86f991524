"""Test a segmentor (mmseg's ``tools/test.py`` plus input checks).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show-dir DIR] [--tta] [--no-fuse] [--cfg-options k=v ...]
        [--launcher ...]

The checkpoint is loaded with ``torch.load(weights_only=True)`` and an
allow-list (see ``mmseg_plugins.checkpoint``); a file that is not a
checkpoint, is truncated, or holds other pickled objects is refused.
``--tta`` needs ``tta_pipeline`` and ``tta_model`` in the config (the demo
configs have them); without them it is refused. mmseg's ``IoUMetric`` is
replaced by ``mmseg_plugins.ClassMeanIoUMetric`` (same arguments and keys,
one rule for every mean over the classes: a class never predicted counts
with precision 0 instead of leaving ``mPrecision`` and ``mFscore``; see
``mmseg_plugins.evaluation``). The model is fused for inference after
loading (``mmseg_plugins.fuse``, verified against the reference forward);
``--no-fuse`` tests the reference forward.
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmseg_plugins.cli import add_runner_args, parse_runner_args
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str, help='dir to save predictions')
    parser.add_argument('--show-dir', help='dir to save painted images')
    parser.add_argument('--tta', action='store_true', help='test time aug')
    parser.add_argument('--no-fuse', dest='fuse', action='store_false',
                        help='test the reference forward (by default the '
                        'model is fused after loading: mmseg_plugins.fuse)')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.runs import EvaluationOptions, evaluate
    evaluate(EvaluationOptions(
        args.config, args.checkpoint, work_dir=args.work_dir,
        cfg_options=args.cfg_options, out=args.out, show_dir=args.show_dir,
        tta=args.tta, launcher=args.launcher, fuse=args.fuse))


if __name__ == '__main__':
    run_tool(main)
