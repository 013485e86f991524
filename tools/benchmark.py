"""Time a config's model, optionally against a reference implementation.

    python tools/benchmark.py CONFIG [--shape H W] [--batch N] [--repeats R]
        [--warmup W] [--threads T] [--checkpoint FILE] [--fuse-bn]
        [--compare module.path:builder]

The model is built from CONFIG (eval mode, SyncBN reverted) and called as
``model(inputs, mode='tensor')`` on a random batch. ``--compare`` imports a
builder (a function; if it takes an argument it receives our model, so it
can load the same weights) and times the module it returns on the same
input, alternating with ours in the same process; the tool prints both
medians, the throughput ratio (reference / ours; also as the median of the
per-repeat ratios, which cancels slow drift of the machine) and the max abs
difference of the outputs when their shapes match.
"""
import argparse
import os.path as osp
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument(
        '--fuse-bn', action='store_true',
        help='fold BatchNorm into the preceding convolutions of our model '
        'before timing (inference only; same outputs up to rounding)')
    parser.add_argument('--compare', default=None,
                        help='module.path:builder of a reference model')
    return parser.parse_args()


def main():
    args = parse_args()
    import torch
    import mmseg_plugins  # noqa: F401
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg_plugins.benchmark import (build_reference, load_builder,
                                         max_abs_diff, time_models)
    from mmseg_plugins.tools import ToolError, load_config

    h, w = args.shape
    if min(h, w) < 32 or args.batch < 1 or args.repeats < 1:
        raise ToolError(f'--shape must be at least 32x32 and --batch/'
                        f'--repeats positive, got {h}x{w}, batch '
                        f'{args.batch}, repeats {args.repeats}')
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pop('pretrained', None)
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True)
    else:
        model.init_weights()
    inputs = torch.randn(args.batch, 3, h, w)
    ref = None
    if args.compare:  # may load its weights into our model
        ref = build_reference(load_builder(args.compare), model)
    if args.fuse_bn:
        from mmcv.cnn import fuse_conv_bn
        model = fuse_conv_bn(model)
    models = {'ours': lambda x: model(x, mode='tensor')}
    if ref is not None:
        models['reference'] = ref

    def progress(done, total):
        bar = '#' * (30 * done // total)
        print(f'\r[{bar:<30}] {done}/{total}', end='', file=sys.stderr,
              flush=True)

    timings = time_models(models, inputs, args.repeats, args.warmup,
                          progress)
    print(file=sys.stderr)
    name = osp.splitext(osp.basename(args.config))[0]
    print(f'{name}: input {args.batch}x3x{h}x{w}, {args.repeats} repeats, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    for t in timings:
        print(f'  {t.name:<10} median {t.median * 1e3:8.2f} ms  '
              f'({args.batch / t.median:7.2f} img/s, IQR '
              f'{100 * t.spread:.0f}%)')
    if ref is not None:
        ours, theirs = timings
        with torch.no_grad():
            diff = max_abs_diff(model(inputs, mode='tensor'), ref(inputs))
        import statistics
        paired = statistics.median(
            r / o for r, o in zip(theirs.times, ours.times))
        print(f'  throughput ratio (reference / ours): '
              f'{theirs.median / ours.median:.2f}x of medians, '
              f'{paired:.2f}x median of paired repeats')
        print('  max abs output difference: ' +
              ('shapes differ' if diff is None else f'{diff:.3g}'))


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import warnings
    warnings.filterwarnings('ignore')
    from mmseg_plugins.tools import run_tool
    run_tool(main)
