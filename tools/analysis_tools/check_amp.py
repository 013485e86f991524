"""Check mixed-precision training: train each config in float32 and under
AMP (fp16 with a dynamic loss scale, bf16) from the same seed, and report
whether every loss stayed finite, the validation mIoU beside the float32
run's, and the logits' relative error under autocast against float32 with
the same weights (``mmseg_plugins/benchmark/amp.py`` says how each column is
taken).

    python tools/analysis_tools/check_amp.py CONFIG [...]
        [--precisions fp16 bf16] [--iters N] [--demo-data DIR]
        [--out-dir DIR] [--cfg-options k=v ...]

AMP training uses mmengine's ``AmpOptimWrapper`` as ``tools/train.py --amp``
does, so it needs a CUDA device (bf16 a GPU with bfloat16 arithmetic); on a
machine without one only ``--precisions fp32`` runs. ``--demo-data DIR``
writes the generated shapes dataset there (once) and trains the configs on
it, e.g. every family on the demo data:

    python tools/analysis_tools/check_amp.py configs/demo/*.py \\
        --demo-data data/demo_shapes --iters 300

The table is printed and written as ``amp_check.md`` and ``amp_check.csv``
in ``--out-dir``; the exit code is 1 when any loss was not finite.
"""
import argparse
import sys

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--precisions', nargs='+', default=['fp16', 'bf16'],
                        choices=['fp32', 'fp16', 'bf16'],
                        help='AMP precisions trained beside float32')
    parser.add_argument('--iters', type=int, default=300,
                        help='training iterations of every run')
    parser.add_argument('--demo-data', default=None, metavar='DIR',
                        help='generate the demo shapes dataset in DIR and '
                        'train on it')
    parser.add_argument('--device', default='auto',
                        choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--out-dir', default='work_dirs/amp_check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in every config')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import os.path as osp

    import torch

    from mmseg_plugins.accelerate import resolve_device
    from mmseg_plugins.benchmark import (AMP_COLUMNS, check_amp_precisions,
                                         format_table, run_amp_check,
                                         write_tables)
    from mmseg_plugins.cli import Progress, ToolError
    if args.iters < 1:
        raise ToolError(f'--iters must be positive, got {args.iters}')
    for config in args.configs:
        if not osp.isfile(config):
            raise ToolError(f'config file not found: {config}')
    device = resolve_device(args.device)
    check_amp_precisions(args.precisions, device)  # before writing data
    cfg_options = dict(args.cfg_options or {})
    if args.demo_data:
        from mmseg_plugins.demo_data import (data_root_options,
                                             ensure_shapes_dataset)
        ensure_shapes_dataset(args.demo_data)
        cfg_options.update(data_root_options(args.demo_data))
    precisions = [p for p in args.precisions if p != 'fp32']
    progress = Progress(len(args.configs) * (1 + len(precisions)), 'runs')
    try:
        runs = run_amp_check(args.configs, precisions, args.iters, device,
                             progress.step, cfg_options or None)
    finally:
        progress.close()
    rows = [run.row() for run in runs]
    where = torch.cuda.get_device_name(0) if device.startswith('cuda') \
        else 'CPU'
    header = [
        '# Mixed-precision training check '
        '(`tools/analysis_tools/check_amp.py`)', '',
        f'- device: {where}; torch {torch.__version__}; {args.iters} '
        'iterations per run from the same seed; AMP: mmengine '
        'AmpOptimWrapper, dynamic loss scale',
        '- mIoU evaluated in float32; logits rel. error: largest '
        '|autocast - float32| logit over the largest |float32| logit, same '
        'weights, first validation batch'
    ]
    print('\n'.join(header + ['', format_table(rows, AMP_COLUMNS)]))
    md, csv_path = write_tables(rows, header, args.out_dir, 'amp_check',
                                AMP_COLUMNS)
    print(f'\nwrote {md} and {csv_path}')
    bad = [f'{r.config} ({r.precision})' for r in runs
           if not r.losses_finite]
    if bad:
        print(f'losses not finite in: {", ".join(bad)}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    run_tool(main)
