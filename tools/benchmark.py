"""Benchmark configs' models: parameters, GFLOPs, latency, throughput,
training step and peak memory, beside the papers' figures.

    python tools/benchmark.py CONFIG_OR_DIR [...] [--pattern GLOB ...]
        [--shape H W] [--flops-shape H W] [--repeats R] [--warmup W]
        [--throughput-batch N] [--throughput-repeats R]
        [--train-batch N] [--train-repeats R] [--skip WHAT ...]
        [--device auto|cpu|cuda] [--precision fp32|fp16|bf16]
        [--threads T] [--checkpoint FILE] [--fuse-bn] [--backbone-only]
        [--compare module.path:builder] [--out-dir DIR] [--no-plot]

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
"""
import argparse
import fnmatch
import os
import os.path as osp
import sys

MEASURES = ('flops', 'latency', 'throughput', 'train', 'memory')


def parse_args(argv=None):
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
                        help='fp16/bf16: autocast (CUDA only)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument(
        '--fuse-bn', action='store_true',
        help='fold BatchNorm into the preceding convolutions of our model '
        'for the inference measurements (same outputs up to rounding)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='measure the backbone alone')
    parser.add_argument('--compare', default=None,
                        help='module.path:builder of a reference model')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--no-plot', action='store_true')
    return parser.parse_args(argv)


def collect_configs(paths, patterns):
    from mmseg_plugins.tools import ToolError
    found = []
    for path in paths:
        if osp.isfile(path):
            found.append(path)
        elif osp.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != '_base_')
                found += [osp.join(root, f) for f in sorted(files)
                          if f.endswith('.py') and any(
                              fnmatch.fnmatch(f, p) for p in patterns)]
        else:
            raise ToolError(f'config file not found: {path}')
    if not found:
        raise ToolError(f'no config matching {patterns} under {paths}')
    return found


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done = max(total, 1), 0

    def step(self, label: str = '') -> None:
        self.done += 1
        bar = '#' * (30 * self.done // self.total)
        print(f'\r[{bar:<30}] {self.done}/{self.total} {label[:40]:<40}',
              end='', file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)


def build_model(path, args, device):
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg_plugins.tools import ToolError, load_config
    cfg = load_config(path)
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'{path} defines no model (not a model config)')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pop('pretrained', None)
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True, logger='silent')
    else:
        import logging

        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # no per-parameter init report
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    torch.manual_seed(0)
    return model.to(device).eval()


def benchmark_config(path, args, device, progress, report):
    """One table row (and, with --compare, the comparison lines)."""
    import copy
    import contextlib

    import torch
    from mmseg_plugins import benchmark as B

    model = build_model(path, args, device)
    target = model.backbone if args.backbone_only else model
    paper = B.paper_figures(path)
    stem = osp.splitext(osp.basename(path))[0]
    flops_shape = tuple(args.flops_shape or (
        paper.flops_shape if paper else args.shape))
    row = dict(config=stem, model=paper.model if paper else stem,
               params_m=B.count_params(target) / 1e6,
               paper_params_m=paper and paper.params_m,
               flops_shape=f'{flops_shape[0]}x{flops_shape[1]}',
               paper_gflops=paper and paper.gflops,
               paper_miou=paper and paper.miou)
    if args.backbone_only:
        row.update(model=f'{row["model"]} (backbone)', paper_params_m=None,
                   paper_gflops=None, paper_miou=None)
    skip = set(args.skip)
    if 'flops' not in skip:
        counted = target if args.backbone_only else B.InferenceForward(model)
        row['gflops'], _ = B.count_flops(counted.eval(), flops_shape, device)
    progress.step(f'{stem}: flops')

    ref = None
    if args.compare:  # may load its weights into our model
        ref = B.build_reference(B.load_builder(args.compare), target)
        if isinstance(ref, torch.nn.Module):
            ref = ref.to(device)
    infer_target = target
    if args.fuse_bn:
        from mmcv.cnn import fuse_conv_bn
        infer_target = fuse_conv_bn(copy.deepcopy(target).eval())

    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16).get(args.precision)

    def autocast():
        return torch.autocast('cuda', dtype=dtype) if dtype else \
            contextlib.nullcontext()

    def wrap(fn):
        def call(x):
            with autocast():
                return fn(x)
        return call

    ours_infer = wrap(infer_target if args.backbone_only else
                      (lambda x: infer_target(x, mode='tensor')))
    infer = {'ours': ours_infer}
    if ref is not None:
        infer['reference'] = wrap(ref)
    h, w = args.shape
    results = {}
    diff = None
    if ref is not None:  # before training steps change BatchNorm statistics
        x = torch.randn(1, 3, h, w, device=device)
        with torch.no_grad():
            theirs = infer['reference'](x)
            diff = B.max_abs_diff(ours_infer(x), theirs)
            if diff is not None:
                scale = max(t.abs().max().item()
                            for t in B.output_tensors(theirs))
                diff = (diff, diff / max(scale, 1e-12))

    def run(name, fns, batch, repeats, warmup, grad=False):
        x = torch.randn(batch, 3, h, w, device=device)
        results[name] = B.time_models(fns, x, repeats, warmup, grad=grad)
        progress.step(f'{stem}: {name}')

    if 'latency' not in skip:
        run('latency', infer, 1, args.repeats, args.warmup)
        row['latency_ms'] = results['latency'][0].median * 1e3
    if 'throughput' not in skip:
        run('throughput', infer, args.throughput_batch,
            args.throughput_repeats, 1)
        row['throughput'] = args.throughput_batch / \
            results['throughput'][0].median

    # training: model.loss (all heads) for the table; with --compare the
    # same generic step (mean of the outputs) for both models
    if ref is not None or args.backbone_only:
        train = {'ours': wrap(B.generic_train_step(
            target, list(target.parameters())))}
        if ref is not None:
            ref_params = list(ref.parameters()) if isinstance(
                ref, torch.nn.Module) else []
            train['reference'] = wrap(B.generic_train_step(ref, ref_params))
    else:
        samples = B.make_seg_samples(args.train_batch, tuple(args.shape),
                                     model.decode_head.num_classes, device)

        def loss_step(x):
            losses = model.loss(x, samples)
            sum(v for k, v in losses.items() if 'loss' in k).backward()
            model.zero_grad(set_to_none=True)

        train = {'ours': wrap(loss_step)}
    modules = [target] + ([ref] if isinstance(ref, torch.nn.Module) else [])
    if 'train' not in skip:
        for m in modules:
            m.train()
        run('train', train, args.train_batch, args.train_repeats, 1,
            grad=True)
        for m in modules:
            m.eval()
        row['train_ms'] = results['train'][0].median * 1e3
    if 'memory' not in skip:
        peaks = {}
        xb = torch.randn(args.throughput_batch, 3, h, w, device=device)
        xt = torch.randn(args.train_batch, 3, h, w, device=device)
        for name in infer:
            with torch.no_grad():
                peaks[(name, 'infer')] = B.peak_memory_mb(
                    lambda: infer[name](xb), device)
            for m in modules:
                m.train()
            with torch.enable_grad():
                peaks[(name, 'train')] = B.peak_memory_mb(
                    lambda: train[name](xt), device)
            for m in modules:
                m.eval()
        progress.step(f'{stem}: memory')
        row['peak_infer_mb'] = peaks[('ours', 'infer')]
        row['peak_train_mb'] = peaks[('ours', 'train')]
    if ref is not None:
        report.append(_comparison_lines(results, peaks if 'memory' not in
                                        skip else {}, diff, args))
    return row


def _comparison_lines(results, peaks, diff, args):
    from mmseg_plugins.benchmark import paired_ratio
    lines = []
    labels = dict(latency='latency (batch 1)',
                  throughput=f'throughput (batch {args.throughput_batch})',
                  train=f'train step (batch {args.train_batch})')
    for key, label in labels.items():
        if key not in results:
            continue
        ours, ref = results[key]
        lines.append(
            f'  {label}: ours median {ours.median * 1e3:.1f} ms, reference '
            f'median {ref.median * 1e3:.1f} ms; throughput ratio (reference'
            f' / ours): {ref.median / ours.median:.2f}x of medians, '
            f'{paired_ratio(ref, ours):.2f}x median of paired repeats')
    for mode, label in (('infer', f'inference (batch '
                         f'{args.throughput_batch})'),
                        ('train', f'train step (batch {args.train_batch})')):
        if (('ours', mode)) in peaks:
            o, r = peaks[('ours', mode)], peaks[('reference', mode)]
            lines.append(f'  peak memory {label}: ours {o:.0f} MiB, '
                         f'reference {r:.0f} MiB; ours / reference '
                         f'{o / r:.2f}x')
    lines.append('  max abs output difference: ' + (
        'shapes differ' if diff is None else
        f'{diff[0]:.3g} ({diff[1]:.2g} of the largest output value)'))
    return '\n'.join(lines)


def environment_lines(args, device):
    import platform

    import mmcv
    import mmengine
    import mmseg
    import torch
    if device.startswith('cuda'):
        where = torch.cuda.get_device_name(0)
    else:
        where = (f'CPU ({platform.processor() or platform.machine()}, '
                 f'{os.cpu_count()} cores, {torch.get_num_threads()} '
                 'threads)')
    h, w = args.shape
    return [
        f'- device: {where}; precision {args.precision}',
        f'- torch {torch.__version__}, mmseg {mmseg.__version__}, mmengine '
        f'{mmengine.__version__}, mmcv {mmcv.__version__}, python '
        f'{platform.python_version()}',
        f'- timing input {h}x{w}; latency: batch 1, median of '
        f'{args.repeats} after {args.warmup} warm-up; throughput: batch '
        f'{args.throughput_batch}, median of {args.throughput_repeats}; '
        f'train step (model.loss + backward): batch {args.train_batch}, '
        f'median of {args.train_repeats}' +
        ('; BatchNorm folded for inference' if args.fuse_bn else ''),
        '- params: unique, auxiliary heads included; GFLOPs: fvcore '
        'convention (mmengine FlopAnalyzer), inference path, at the '
        "paper's input size; peak memory: live tensors during one call",
    ]


def main(argv=None):
    args = parse_args(argv)
    import torch
    import mmseg_plugins  # noqa: F401
    from mmseg_plugins import benchmark as B
    from mmseg_plugins.tools import ToolError

    h, w = args.shape
    sizes = [h, w] + list(args.flops_shape or [])
    if min(sizes) < 32:
        raise ToolError(f'input sizes must be at least 32x32, got '
                        f'--shape {h}x{w}' + (
                            f', --flops-shape {args.flops_shape[0]}x'
                            f'{args.flops_shape[1]}'
                            if args.flops_shape else ''))
    counts = (args.repeats, args.throughput_batch, args.throughput_repeats,
              args.train_batch, args.train_repeats)
    if min(counts) < 1 or args.warmup < 0:
        raise ToolError('batch sizes and repeats must be positive and '
                        '--warmup not negative')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise ToolError('--device cuda but no CUDA device is available')
    device = 'cuda' if args.device == 'cuda' or (
        args.device == 'auto' and torch.cuda.is_available()) else 'cpu'
    if args.precision != 'fp32' and device == 'cpu':
        raise ToolError(f'--precision {args.precision} uses CUDA autocast; '
                        'this run is on the CPU (use fp32)')
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = collect_configs(args.paths, args.pattern)
    if args.compare and len(configs) != 1:
        raise ToolError(f'--compare needs exactly one config, got '
                        f'{len(configs)}')
    if args.compare:
        B.load_builder(args.compare)  # fail before any measurement

    phases = 1 + sum(m not in args.skip for m in MEASURES[1:])
    progress = Progress(phases * len(configs))
    rows, report = [], []
    try:
        for path in configs:
            rows.append(benchmark_config(path, args, device, progress,
                                         report))
    finally:
        progress.close()
    header = ['# Benchmark (`tools/benchmark.py`)', ''] + \
        environment_lines(args, device)
    print('\n'.join(header + ['', B.format_table(rows)]))
    if report:
        print(f'\ncomparison with {args.compare}:')
        print('\n'.join(report))
    md, csv_path = B.write_tables(rows, header, args.out_dir)
    print(f'\nwrote {md} and {csv_path}')
    if not args.no_plot and 'flops' not in args.skip:
        png = B.plot_miou_vs_flops(
            rows, osp.join(args.out_dir, 'miou_vs_gflops.png'),
            title=header[2][2:])
        if png:
            print(f'wrote {png}')


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import warnings
    warnings.filterwarnings('ignore')
    from mmseg_plugins.tools import run_tool
    run_tool(main)
