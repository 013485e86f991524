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
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Iterator, List, Tuple

from mmseg_plugins.cli import run_tool

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg',
                    '.mpeg', '.wmv')


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


class Inputs:
    """The images to label: ``(output name, image or None, source)`` in
    order, with the inputs that could not be read collected in
    ``skipped``."""

    def __init__(self, paths: List[str]) -> None:
        self.skipped: List[Tuple[str, str]] = []
        self.items: List[Tuple[str, str, str]] = []  # (kind, path, name)
        for path in paths:
            if osp.isdir(path):
                found = sorted(
                    osp.join(root, f) for root, _, files in os.walk(path)
                    for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
                if not found:
                    self.skipped.append((path, 'a folder without images '
                                         f'({", ".join(IMAGE_EXTENSIONS)})'))
                prefix = '' if len(paths) == 1 else osp.basename(
                    osp.normpath(path))
                for f in found:
                    rel = osp.splitext(osp.relpath(f, path))[0]
                    self.items.append(('image', f, osp.join(prefix, rel)))
            elif not osp.exists(path):
                self.skipped.append((path, 'no such file or folder'))
            elif path.lower().endswith(VIDEO_EXTENSIONS):
                self.items.append(('video', path,
                                   osp.splitext(osp.basename(path))[0]))
            else:
                self.items.append(('image', path,
                                   osp.splitext(osp.basename(path))[0]))
        names = {}
        for kind, path, name in self.items:
            if name in names:
                from mmseg_plugins.cli import ToolError
                raise ToolError(f'{path} and {names[name]} would both be '
                                f'written as {name}.png; label them in '
                                'separate runs or folders')
            names[name] = path

    def expected_count(self) -> int:
        import cv2
        total = 0
        for kind, path, _ in self.items:
            if kind == 'video':
                cap = cv2.VideoCapture(path)
                total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
                cap.release()
            else:
                total += 1
        return total

    def check_channels(self, model_input) -> None:
        """Refuse (``InvalidInputError``) before anything is written an
        image file whose header gives a channel count the model cannot
        take (see ``mmseg_plugins.model_input``); unreadable headers are
        left to the reading."""
        from mmseg_plugins.errors import DatasetError
        from mmseg_plugins.own_data.survey import image_info
        for kind, path, _ in self.items:
            if kind != 'image':
                continue
            try:
                channels = image_info(path).channels
            except DatasetError:
                continue
            model_input.check_channels(
                channels, path,
                alpha=not path.lower().endswith(('.tif', '.tiff')))

    def iterate(self, model_input) -> Iterator[Tuple[str, object]]:
        """``(output name, image)`` read as the model's loader reads them
        (``ModelInput``); unreadable inputs are recorded in ``skipped``
        and left out, images the model cannot take raise
        ``InvalidInputError``."""
        import cv2

        from mmseg_plugins.errors import DatasetError
        for kind, path, name in self.items:
            if kind == 'image':
                try:
                    image = model_input.read(path)
                except DatasetError:
                    self.skipped.append((path, 'not a readable image'))
                    continue
                yield name, image
                continue
            cap = cv2.VideoCapture(path)
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                self.skipped.append((path, 'a video the installed OpenCV '
                                     'cannot decode'))
            index = 0
            while ok:
                yield osp.join(name, f'frame_{index:06d}'), \
                    model_input.from_opencv(frame, f'{path} (frame {index})')
                index += 1
                ok, frame = cap.read()
            cap.release()


def label_dtype(segmenter):
    """The dtype of a labels PNG: 8-bit up to 256 classes, else 16-bit."""
    import numpy as np
    return np.uint8 if segmenter.num_classes <= 256 else np.uint16


def pictures(image, label, segmenter, opacity: float, kinds) -> dict:
    """``{kind: array}`` of the PNGs of an image (or of a band of its
    rows): ``labels`` (class indices), ``color``, ``overlay`` (BGR, drawn
    on ``segmenter.display(image)``)."""
    from mmseg_plugins.inference import colorize, overlay
    out = {}
    for kind in kinds:
        if kind == 'labels':
            out[kind] = label.astype(label_dtype(segmenter))
        elif kind == 'color':
            out[kind] = colorize(label, segmenter.palette)
        else:  # grey and multi-band images rendered as 8-bit colour
            out[kind] = overlay(segmenter.display(image), label,
                                segmenter.palette, opacity)
    return out


def write_outputs(out_dir: str, name: str, image, label, segmenter,
                  opacity: float,
                  kinds=('labels', 'color', 'overlay')) -> None:
    """The PNGs of one image (by default all three), each written
    atomically; the overlay is drawn on ``segmenter.display(image)`` (grey
    and multi-band images rendered as 8-bit colour)."""
    import cv2

    from mmseg_plugins.fileio import atomic_path
    arrays = pictures(image, label, segmenter, opacity, kinds)
    for kind in kinds:
        with atomic_path(osp.join(out_dir, kind, name + '.png')) as tmp:
            if not cv2.imwrite(tmp, arrays[kind]):
                raise OSError(f'could not write {name}.png in {out_dir}')


#: Largest TIFF (pixels) that gets colour and overlay PNGs when tiled.
PICTURE_PIXELS = 64 * 2 ** 20
#: Rows of the PNGs drawn at a time when tiled.
PICTURE_ROWS = 128


def label_tiled(args, segmenter, path: str, name: str) -> None:
    """One image file labelled tile by tile (see the module): the label
    rows go, as they become final, to the labels TIFF (TIFF inputs) and
    to PNGs written row by row (:class:`PngWriter`), so that neither the
    image nor its labels are ever held whole."""
    import contextlib

    import numpy as np

    from mmseg_plugins.inference.png_stream import PngWriter
    from mmseg_plugins.inference.rasters import (open_raster,
                                                 write_labels_tiff)
    raster = open_raster(path)
    try:
        # the raster's windows as the model's loader reads the image
        read = segmenter.input.tile_reader(raster)
        rows = segmenter.label_rows(read, raster.height,
                                    raster.width, args.batch_size,
                                    progress=True)
        dtype = np.uint8 if segmenter.num_classes <= 255 else np.uint16
        tiff = path.lower().endswith(('.tif', '.tiff'))
        kinds = ('color', 'overlay')
        if not tiff:
            kinds = ('labels',) + kinds
        elif raster.height * raster.width > PICTURE_PIXELS:
            kinds = ()
        with contextlib.ExitStack() as stack:
            pngs = {kind: stack.enter_context(PngWriter(
                osp.join(args.out_dir, kind, name + '.png'), raster.height,
                raster.width, 1 if kind == 'labels' else 3,
                label_dtype(segmenter) if kind == 'labels' else np.uint8))
                for kind in kinds}

            def masked():
                for y0, labels in rows:
                    y1 = y0 + labels.shape[0]
                    labels = labels.astype(dtype)
                    mask = raster.nodata_mask(y0, y1)
                    if mask is not None:
                        labels[mask] = np.iinfo(dtype).max
                    # pictures PICTURE_ROWS rows at a time: their float
                    # intermediates stay small whatever the band's height
                    for s0 in range(y0, y1, PICTURE_ROWS) if kinds else ():
                        s1 = min(s0 + PICTURE_ROWS, y1)
                        image = (read(s0, s1, 0, raster.width)
                                 if 'overlay' in kinds else None)
                        arrays = pictures(image, labels[s0 - y0:s1 - y0],
                                          segmenter, args.opacity, kinds)
                        for kind, png in pngs.items():
                            png.write(arrays[kind])
                    yield y0, labels

            if tiff:
                tags = dict(raster.geo_tags)
                if raster.nodata is not None:
                    value = str(np.iinfo(dtype).max)
                    tags[42113] = (2, len(value) + 1, value)  # ASCII
                write_labels_tiff(osp.join(args.out_dir, 'labels',
                                           name + '.tif'), masked(),
                                  raster.height, raster.width, dtype, tags)
            else:
                for _ in masked():
                    pass
    finally:
        raster.close()


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.inference import Segmenter
    from mmseg_plugins.cli import Progress, ToolError
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        raise ToolError(f'--out-dir {args.out_dir} is a file, not a folder')
    if args.batch_size < 1:
        raise ToolError('--batch-size must be at least 1')
    inputs = Inputs(args.inputs)
    if not inputs.items:
        raise ToolError('no images to label: ' + '; '.join(
            f'{path}: {why}' for path, why in inputs.skipped))
    segmenter = Segmenter(
        args.config, args.checkpoint, device=args.device,
        precision=args.precision, channels_last=args.channels_last,
        compile=args.compile, compile_backend=args.compile_backend,
        cfg_options=args.cfg_options, tile=args.tile, overlap=args.overlap,
        scale=args.scale, blend=args.blend)
    inputs.check_channels(segmenter.input)
    if args.tile is not None:
        return main_tiled(args, segmenter, inputs)
    progress = Progress(inputs.expected_count(), 'images')
    start = time.perf_counter()
    done = 0
    batch: List[Tuple[str, object]] = []

    def flush():
        labels = segmenter([image for _, image in batch], args.batch_size)
        for (name, image), label in zip(batch, labels):
            write_outputs(args.out_dir, name, image, label, segmenter,
                          args.opacity)
        progress.step(batch[-1][0], len(batch))
        batch.clear()

    try:
        for name, image in inputs.iterate(segmenter.input):
            batch.append((name, image))
            done += 1
            if len(batch) == args.batch_size:
                flush()
        if batch:
            flush()
    finally:
        progress.close()
    for path, why in inputs.skipped:
        print(f'skipped {path}: {why}', file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f'labelled {done} images in {elapsed:.1f} s '
          f'({done / max(elapsed, 1e-9):.2f} images/s) on '
          f'{segmenter.device} -> {args.out_dir}/{{labels,color,overlay}}'
          + (f'; skipped {len(inputs.skipped)} input(s)'
             if inputs.skipped else ''))
    if inputs.skipped:
        sys.exit(1)


def main_tiled(args, segmenter, inputs) -> None:
    """Every input image labelled tile by tile (no videos)."""
    start = time.perf_counter()
    done = 0
    for kind, path, name in inputs.items:
        if kind == 'video':
            inputs.skipped.append((path, 'a video; --tile labels images'))
            continue
        try:
            label_tiled(args, segmenter, path, name)
        except OSError as err:  # disk full, permissions: nothing was kept
            from mmseg_plugins.cli import ToolError
            raise ToolError(f'could not write the outputs of {path}: '
                            f'{err}') from None
        done += 1
    for path, why in inputs.skipped:
        print(f'skipped {path}: {why}', file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f'labelled {done} images tile by tile in {elapsed:.1f} s on '
          f'{segmenter.device} -> {args.out_dir}/labels'
          + (f'; skipped {len(inputs.skipped)} input(s)'
             if inputs.skipped else ''))
    if inputs.skipped:
        sys.exit(1)


if __name__ == '__main__':
    run_tool(main)
