"""Benchmark configs' models: parameters, GFLOPs, latency, throughput,
training step and peak memory, beside the papers' figures.

    python tools/benchmark.py CONFIG_OR_DIR [...] [--pattern GLOB ...]
        [--shape H W] [--flops-shape H W] [--repeats R] [--warmup W]
        [--throughput-batch N] [--throughput-repeats R]
        [--train-batch N] [--train-repeats R] [--skip WHAT ...]
        [--device auto|cpu|cuda] [--precision fp32|fp16|bf16]
        [--compile [MODE]] [--compile-backend B] [--channels-last]
        [--threads T] [--checkpoint FILE] [--no-fuse] [--backbone-only]
        [--compare module.path:builder] [--versus-eager]
        [--out-dir DIR] [--no-plot]
        [--backend pytorch|onnxruntime [--exporter dynamo|torchscript]]

Every config (folders are searched recursively, ``_base_`` skipped,
``--pattern`` filters file names) gives one table row; the table is printed
and written as ``benchmark.md`` and ``benchmark.csv`` in ``--out-dir`` (with
the device, the library versions and the settings), with ``miou_vs_gflops.png``
plotting the papers' mIoU against the counted GFLOPs. See
``mmseg_plugins/benchmark.py`` for how each column is measured. FLOPs are
counted at the paper's input size for configs the project knows (see
``PAPER_FIGURES``), else at ``--shape``; timings use ``--shape``.

``--compare`` (one config) imports a builder (a function; if it takes an
argument it receives our model -- or its backbone with ``--backbone-only``
-- so it can load the same weights) and measures the module it returns on
the same inputs, alternating with ours call by call: it prints both
latencies, throughputs, training steps (forward, mean of the outputs,
backward) and peak memories, their ratios, and the largest difference of
the outputs.

``--versus-eager`` times the model as measured (``--compile``,
``--precision``, ``--channels-last``, ``--no-fuse``) beside a copy of it as
built (eager float32, contiguous), alternating call by call, and adds the
speed-ups of latency, throughput and training step over that copy and the
logits' difference relative to it: the GPU options' gains and their cost in
accuracy, measured side by side in one run.

``--backend onnxruntime`` (needs ``pip install 'mmseg_plugins[deploy]'``)
exports each model to ONNX with dynamic shapes (verified against PyTorch at
three sizes, ``mmseg_plugins/deploy``) and times ONNX Runtime (CPU, or the
CUDA execution provider with ``--device cuda``) beside PyTorch eager on the
same inputs, alternating call by call: latency, throughput, their ratios,
export time, file size and the largest differences (no training step or
peak memory).
"""
import argparse
import os.path as osp

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmseg_plugins.accelerate import COMPILE_MODES
    from mmseg_plugins.benchmark import MEASURES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('paths', nargs='+', help='config files or folders')
    parser.add_argument('--pattern', nargs='+', default=['*.py'],
                        help='file-name globs for configs found in folders')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'), help='timing input size')
    parser.add_argument('--flops-shape', type=int, nargs=2, default=None,
                        metavar=('H', 'W'),
                        help='FLOPs input size (default: the paper\'s)')
    parser.add_argument('--repeats', type=int, default=10,
                        help='timed batch-1 calls (latency)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--throughput-batch', type=int, default=8)
    parser.add_argument('--throughput-repeats', type=int, default=3)
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--train-repeats', type=int, default=3)
    parser.add_argument('--skip', nargs='+', default=[], choices=MEASURES,
                        help='measurements to leave out')
    parser.add_argument('--device', default='auto',
                        choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--precision', default='fp32',
                        choices=['fp32', 'fp16', 'bf16'],
                        help='fp16/bf16: autocast (fp16 on CUDA; bf16 on '
                        'CUDA or a CPU with bfloat16 arithmetic)')
    parser.add_argument('--compile', nargs='?', const='default',
                        default=None, choices=COMPILE_MODES,
                        help='torch.compile backbone and head (optional '
                        'mode; reduce-overhead = CUDA graphs)')
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend (aot_eager needs no '
                        'compiler)')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last weights and inputs')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument(
        '--no-fuse', dest='fuse', action='store_false',
        help='time the reference forward: by default our model is fused for '
        'the inference measurements (mmseg_plugins.fuse: BatchNorm folded, '
        'speed forms; the same outputs up to rounding, verified)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='measure the backbone alone')
    parser.add_argument('--compare', default=None,
                        help='module.path:builder of a reference model')
    parser.add_argument('--versus-eager', action='store_true',
                        help='also time the eager fp32 model beside, with '
                        'speed-ups and the logits\' relative difference')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        default='pytorch',
                        help='onnxruntime: time ONNX Runtime on the exported '
                        'model beside PyTorch')
    parser.add_argument('--exporter', choices=['dynamo', 'torchscript'],
                        default='dynamo',
                        help='ONNX exporter of --backend onnxruntime')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--no-plot', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmseg_plugins import benchmark as B
    from mmseg_plugins.accelerate import resolve_device

    device = resolve_device(args.device)
    settings = B.BenchmarkSettings(
        shape=tuple(args.shape),
        flops_shape=tuple(args.flops_shape) if args.flops_shape else None,
        repeats=args.repeats, warmup=args.warmup,
        throughput_batch=args.throughput_batch,
        throughput_repeats=args.throughput_repeats,
        train_batch=args.train_batch, train_repeats=args.train_repeats,
        skip=args.skip, device=device, precision=args.precision,
        checkpoint=args.checkpoint, fuse=args.fuse,
        backbone_only=args.backbone_only, compare=args.compare,
        compile=args.compile, compile_backend=args.compile_backend,
        channels_last=args.channels_last, backend=args.backend,
        exporter=args.exporter, versus_eager=args.versus_eager)
    settings.validate()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = B.collect_configs(args.paths, args.pattern)
    rows, header, reports = B.run_benchmark(configs, settings)
    columns = B.ONNXRUNTIME_COLUMNS if args.backend == 'onnxruntime' else \
        B.COLUMNS + (B.VERSUS_EAGER_COLUMNS if args.versus_eager else ())
    print('\n'.join(header + ['', B.format_table(rows, columns)]))
    if reports:
        print(f'\ncomparison with {args.compare}:')
        print('\n'.join(reports))
    md, csv_path = B.write_tables(rows, header, args.out_dir,
                                  columns=columns)
    print(f'\nwrote {md} and {csv_path}')
    if not args.no_plot and 'flops' in settings.measures:
        png = B.plot_miou_vs_flops(
            rows, osp.join(args.out_dir, 'miou_vs_gflops.png'),
            title=header[2][2:])
        if png:
            print(f'wrote {png}')


if __name__ == '__main__':
    run_tool(main)
