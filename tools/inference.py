"""Label one's own images (or video frames) with a trained or converted
model.

    python tools/inference.py CONFIG CHECKPOINT INPUT [INPUT ...] --out-dir DIR
        [--batch-size N] [--device auto|cpu|cuda[:N]] [--opacity A]
        [--precision fp32|fp16|bf16] [--channels-last]
        [--compile [MODE]] [--compile-backend B] [--cfg-options k=v ...]
        [--tile SIZE [--overlap PX] [--scale S] [--blend mean|smooth]]

CHECKPOINT is a checkpoint of CONFIG's model (``.pth``; trained here or
converted by ``tools/model_converters``) or an ONNX file exported from it by
``tools/deployment/pytorch2onnx.py --output logits`` (run by ONNX Runtime).
INPUT is an image file, a folder (searched recursively for images) or a
video file. For every image (every frame of a video) three PNGs are written,
keeping the input's name and sub-folder structure:

    DIR/labels/<name>.png    class indices (8-bit; 16-bit above 256 classes)
    DIR/color/<name>.png     the labels in the dataset's palette
    DIR/overlay/<name>.png   the image blended with the palette colours

(video frames as ``<video name>/frame_000000.png``). Images of any size run:
the config's test pipeline resizes them, ``test_cfg`` decides between whole
image and sliding windows, and images below the network's minimum size are
padded. Inputs that cannot be read are reported by name, skipped and
counted; the exit code is then 1. Bad arguments (a checkpoint of another
model, an output directory that is a file, no images at all) stop the tool
with one ``error:`` line and exit code 2. Every output file is written
atomically.

With ``--tile SIZE`` images run tiled and streaming at the model's scale
(no test-pipeline resize; ``--scale`` resamples on the fly): windows of
SIZE pixels, ``--overlap`` shared, blended by ``--blend`` (see
docs/large_images.md); only one row of tiles is held in memory. TIFF
inputs (16-bit, float, gray, multi-band; GeoTIFF) are read window by
window and their labels are written as they become final to a tiled,
compressed ``DIR/labels/<name>.tif`` with the input's georeference; its
nodata pixels are labelled 255. PNG inputs are decoded by row bands,
JPEG (and other) inputs once into a temporary file read by windows; the
PNGs are written by rows as the labels become final. Colour and overlay
PNGs are written for TIFF images up to 64 megapixels and for every other
image.

Images are read as the model's config reads them (``mmseg_plugins.
model_input``): colour for RGB models (a grey image repeated), the stored
bands for grey and multi-band models; an image whose channels the model
cannot take stops the tool before anything is written, with one ``error:``
line naming both counts. Overlays of grey and multi-band images are drawn
on an 8-bit colour rendering of them.

The same from Python: ``mmseg_plugins.inference.run_inference(
InferenceOptions(...))``.
"""
import argparse
import sys

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmseg_plugins.accelerate import COMPILE_MODES, PRECISIONS
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split('\n\n', 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint (.pth) or ONNX file')
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image files, folders or video files')
    parser.add_argument('--out-dir', required=True,
                        help='folder for labels/, color/ and overlay/')
    parser.add_argument('--batch-size', type=int, default=4,
                        help='images of the same size run together')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the colours in the overlay')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS)
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', nargs='?', const='default', default=None,
                        choices=COMPILE_MODES,
                        help='torch.compile the network (optional mode)')
    parser.add_argument('--compile-backend', default='inductor')
    parser.add_argument('--tile', type=int, default=None, metavar='SIZE',
                        help='tiled, streaming inference in SIZE windows')
    parser.add_argument('--overlap', type=int, default=0, metavar='PX',
                        help='pixels shared by neighbouring tiles')
    parser.add_argument('--scale', type=float, default=1.,
                        help='resample the image by S before tiling')
    parser.add_argument('--blend', default='mean',
                        help='mean (as slide_inference) or smooth')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.inference import (InferenceOptions, TileOptions,
                                         TorchOptions, run_inference)
    summary = run_inference(InferenceOptions(
        args.config, args.checkpoint, args.inputs, args.out_dir,
        batch_size=args.batch_size, device=args.device,
        opacity=args.opacity, cfg_options=args.cfg_options,
        torch_options=TorchOptions(args.precision, args.channels_last,
                                   args.compile, args.compile_backend),
        tiling=None if args.tile is None else TileOptions(
            args.tile, args.overlap, args.scale, args.blend)))
    for path, why in summary.skipped:
        print(f'skipped {path}: {why}', file=sys.stderr)
    print(summary.message())
    if summary.skipped:
        sys.exit(1)


if __name__ == '__main__':
    run_tool(main)
