"""Export a segmentor to ONNX, verified with ONNX Runtime before it is written.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx
        [--shape H W] [--dynamic] [--output logits|mask] [--opset N]
        [--exporter dynamo|torchscript] [--no-fuse] [--no-normalize]
        [--tolerance T] [--cfg-options k=v ...]

The graph computes mmseg's whole-image inference for a batch of images:
BGR->RGB and mean/std normalisation of raw images (as the config's data
preprocessor; ``--no-normalize`` leaves it out), backbone, decode head,
bilinear resize of the logits to the input size, and with ``--output mask``
the argmax. ``--dynamic`` frees batch, height and width (otherwise the graph
takes one image of ``--shape``). Where the exporters fail on the model as
written, the exported copy uses exact replacements (see
``mmseg_plugins/deploy/export.py``).

Before OUT.onnx is written, ONNX Runtime runs the file at ``--shape`` and,
with ``--dynamic``, at two other sizes (one not a multiple of 32, one at
batch 2) and compares with PyTorch: the largest logit difference must stay
within ``--tolerance`` (default 1e-4) of the largest logit (for masks: no
pixel may differ except where PyTorch's two best logits are that close).
Otherwise nothing is written and the tool exits with one ``error:`` line.
The config's test settings, preprocessing, classes and palette are stored
in the file's metadata (``mmseg_plugins.deploy.OnnxSegmentor`` reads them).
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='PyTorch checkpoint (.pth)')
    parser.add_argument('out', help='ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'), help='export (and first '
                        'verification) input size')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--output', choices=['logits', 'mask'],
                        default='logits')
    parser.add_argument('--opset', type=int, default=None,
                        help="ONNX opset (default: the exporter's)")
    parser.add_argument('--exporter', choices=['dynamo', 'torchscript'],
                        default='dynamo')
    parser.add_argument('--no-fuse', dest='fuse', action='store_false',
                        help='export the reference forward (by default the '
                        'model is fused first: mmseg_plugins.fuse)')
    parser.add_argument('--no-normalize', action='store_true',
                        help='leave BGR->RGB and mean/std normalisation out '
                        'of the graph (it then takes preprocessed images)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted difference to PyTorch, '
                        'relative to the largest logit')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import os.path as osp

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.deploy import (ExportSettings, export_metadata,
                                      export_onnx)
    from mmseg_plugins.deploy.onnx_runtime import is_onnx_model
    from mmseg_plugins.forward import DEFAULT_MIN_INPUT_SIZE
    from mmseg_plugins.cli import ToolError, load_config

    cfg = load_config(args.config, args.cfg_options)
    parent = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(parent):
        raise ToolError(f'output directory {parent} does not exist')
    from mmseg_plugins.weights import checkpoint_found
    if not checkpoint_found(args.checkpoint):
        raise ToolError(f'checkpoint not found: {args.checkpoint}')
    if is_onnx_model(args.checkpoint):
        raise ToolError(f'{args.checkpoint} is an ONNX model; this tool '
                        'exports a PyTorch checkpoint (.pth)')
    settings = ExportSettings(
        shape=tuple(args.shape), dynamic=args.dynamic, output=args.output,
        normalize=not args.no_normalize, exporter=args.exporter,
        opset=args.opset, fuse=args.fuse, tolerance=args.tolerance)
    settings.validate(DEFAULT_MIN_INPUT_SIZE)  # bad options fail early
    model, checkpoint_meta = build_segmentor(cfg, args.checkpoint, 'cpu')
    metadata = export_metadata(cfg, model, settings, checkpoint_meta)
    report = export_onnx(model, metadata, args.out, settings)
    print('\n'.join(report.lines()))


if __name__ == '__main__':
    run_tool(main)
