"""The demo with segmentation_models_pytorch: an smp decoder on one of the
package's encoders, trained and evaluated on the demo data with the demo
config's recipe (``mmseg_plugins/smp_demo.py`` says which parts are the
same and what differs).

    python tools/smp_demo.py [--decoder Segformer] [--encoder mit_b0]
        [--data-root data/demo_shapes] [--iters 1000] [--save model.pth]

Needs ``pip install 'mmseg_plugins[smp]'``. Writes the demo data if it is
not complete, trains on the CPU, prints the validation mIoU (mmseg's
IoUMetric definition) and the time taken; ``--save`` writes the trained
state dict.
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmseg_plugins.smp_demo import DECODERS, SmpDemoSettings
    defaults = SmpDemoSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--decoder', default=defaults.decoder,
                        choices=DECODERS)
    parser.add_argument('--encoder', default=defaults.encoder,
                        help='timm name: mit_b0..b5, mpvit_tiny..base')
    parser.add_argument('--data-root', default='data/demo_shapes')
    parser.add_argument('--iters', type=int, default=defaults.iters)
    parser.add_argument('--batch-size', type=int,
                        default=defaults.batch_size)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--log-interval', type=int,
                        default=defaults.log_interval)
    parser.add_argument('--save', help='write the trained state dict here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmseg_plugins.demo_data import (SHAPES_METAINFO,
                                         ensure_shapes_dataset)
    from mmseg_plugins.fileio import atomic_path
    from mmseg_plugins.smp_demo import SmpDemoSettings, train_smp_demo
    settings = SmpDemoSettings(
        encoder=args.encoder, decoder=args.decoder, iters=args.iters,
        batch_size=args.batch_size, seed=args.seed,
        log_interval=args.log_interval)
    if ensure_shapes_dataset(args.data_root):
        print(f'demo data written to {args.data_root}')
    classes = SHAPES_METAINFO['classes']
    result = train_smp_demo(args.data_root, settings, len(classes))
    per_class = ', '.join(f'{name} {iou:.2f}'
                          for name, iou in zip(classes, result['IoU']))
    if args.save:
        with atomic_path(args.save) as tmp:
            torch.save(result['model'].state_dict(), tmp)
    print(f'smp demo: {args.decoder}(tu-{args.encoder}) mIoU '
          f'{result["mIoU"]:.2f} ({per_class}) after {args.iters} '
          f'iterations in {result["seconds"]:.0f} s')


if __name__ == '__main__':
    run_tool(main)
