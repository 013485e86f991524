"""Peak memory and time of tiled, streaming inference by image size.

    python tools/analysis_tools/benchmark_tiled.py CONFIG [CONFIG ...]
        [--sizes 2048 8192 16384] [--tile 1024] [--overlap 128]
        [--format raw|png|jpg] [--stand-in] [--runs N]
        [--checkpoint PTH] [--out docs/benchmarks/cpu-tiled/table.md]

Each (config, size) runs in a fresh child process on a synthetic BGR image
of size x size, written by the parent (so that writing it never counts in
the child's memory). ``--format raw`` (the default): a raw file, read
window by window (os.pread, no memory map), labelled by ``Segmenter(...,
tiling=TileOptions(tile, overlap))`` and its label rows written to a raw
file as they become final: the tiler and the network alone. ``--format
png`` or ``jpg``: a PNG or JPEG file labelled by ``tools/inference.py``'s
own tiled path (``mmseg_plugins.inference.outputs.LabelWriter.
write_tiled``: the image read by rows or through a temporary file, the
labels, colour and overlay PNGs written by rows; see
``mmseg_plugins.inference.rasters``).
``--stand-in`` replaces the network by a 1x1 convolution to the config's
classes (a few operations per pixel), so that on a slow machine the
tiler, the image reading and the output writing can be measured at large
sizes in minutes: what they hold is the same. The child reports its peak
resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, what
``/usr/bin/time -v`` reports as maximum resident set size) and the
seconds of the labelling; the parent prints a markdown table (peak RSS,
s/MP, RSS relative to the smallest size; ranges over ``--runs``) and
writes it to ``--out``. Without ``--checkpoint`` the model keeps its
initial weights (time and memory do not depend on them). This is a
measurement, not a test.
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[2048, 8192, 16384])
    parser.add_argument('--tile', type=int, default=1024)
    parser.add_argument('--overlap', type=int, default=128)
    parser.add_argument('--format', default='raw',
                        choices=('raw', 'png', 'jpg'))
    parser.add_argument('--stand-in', action='store_true',
                        help='a 1x1 convolution instead of the network')
    parser.add_argument('--runs', type=int, default=1,
                        help='runs of each (config, size)')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--out', default=None, help='markdown table file')
    parser.add_argument('--child', nargs=3,
                        metavar=('CONFIG', 'SIZE', 'IMAGE'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def synthetic_image(path: str, size: int) -> None:
    """A size x size x 3 uint8 raw image of stripes and noise, written in
    blocks of rows."""
    import numpy as np
    rng = np.random.default_rng(0)
    x = np.arange(size)
    with open(path, 'wb') as f:
        for y0 in range(0, size, 256):
            ys = np.arange(y0, min(y0 + 256, size))[:, None]
            base = ((x[None] // 97 + ys // 131) % 5 * 50).astype(np.uint8)
            block = np.repeat(base[..., None], 3, axis=2)
            block += rng.integers(0, 6, block.shape, dtype=np.uint8)
            f.write(block.tobytes())


def write_image(path: str, size: int, fmt: str) -> None:
    """The synthetic image as a raw file, a PNG (written by rows) or a
    JPEG (OpenCV's default quality 95)."""
    raw = path if fmt == 'raw' else path + '.raw'
    synthetic_image(raw, size)
    if fmt == 'raw':
        return
    import numpy as np
    image = np.memmap(raw, np.uint8, 'r', shape=(size, size, 3))
    if fmt == 'png':
        from mmseg_plugins.inference.png_stream import PngWriter
        with PngWriter(path, size, size, 3) as png:
            for y0 in range(0, size, 256):
                png.write(image[y0:y0 + 256])
    else:
        import cv2
        from mmseg_plugins.fileio import atomic_path
        with atomic_path(path) as tmp:
            if not cv2.imwrite(tmp, np.asarray(image)):
                raise OSError(f'could not write {path}')
    del image
    os.remove(raw)


def label_file(seg, image: str, out_dir: str) -> None:
    """``tools/inference.py``'s tiled labelling of one image file."""
    from mmseg_plugins.inference.outputs import LabelWriter
    LabelWriter(out_dir, seg, 0.5).write_tiled(image, 'image', 1)


def child(args) -> None:
    import resource

    import numpy as np
    import torch

    from mmseg_plugins.builder import build_model
    from mmseg_plugins.inference import Segmenter, TileOptions
    config, size, image = (args.child[0], int(args.child[1]),
                           args.child[2])
    work = tempfile.mkdtemp(prefix='tiled_bench_')
    try:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = osp.join(work, 'init.pth')
            model = build_model(config, None, 'cpu')
            torch.save({'state_dict': model.state_dict(), 'meta': {}},
                       checkpoint)
            del model
        seg = Segmenter(config, checkpoint, device='cpu',
                        tiling=TileOptions(args.tile, args.overlap))
        if args.stand_in:
            weight = torch.randn(seg.num_classes, 3, 1, 1,
                                 generator=torch.Generator().manual_seed(0))
            seg._network_logits = lambda x: torch.nn.functional.conv2d(x,
                                                                       weight)
        start = time.perf_counter()
        if args.format == 'raw':
            fd = os.open(image, os.O_RDONLY)
            row_bytes = size * 3

            def read(y1, y2, x1, x2):
                data = os.pread(fd, (y2 - y1) * row_bytes, y1 * row_bytes)
                rows = np.frombuffer(data, np.uint8).reshape(y2 - y1, size, 3)
                return rows[:, x1:x2].astype(np.float32)

            with open(osp.join(work, 'labels.raw'), 'wb') as out:
                for _, labels in seg.label_rows(read, size, size):
                    out.write(labels.astype(np.uint8).tobytes())
            os.close(fd)
        else:
            label_file(seg, image, osp.join(work, 'out'))
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(dict(seconds=seconds, peak_rss_mib=peak,
                          classes=seg.num_classes)))


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    return (f'{os.cpu_count()}-core CPU ({cpu}), torch '
            f'{torch.__version__}, {torch.get_num_threads()} threads')


def span(values, fmt: str) -> str:
    """``'a'`` or ``'a-b'`` (min-max) of values."""
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f'{low}-{high}'


def run_child(args, config: str, size: int, image: str) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), config,
           '--child', config, str(size), image, '--tile', str(args.tile),
           '--overlap', str(args.overlap), '--format', args.format]
    if args.stand_in:
        cmd.append('--stand-in')
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'error: {config} at {size}: '
                 f'{proc.stderr.strip().splitlines()[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    rows = ['| model | image | tiles | peak RSS (MiB) | RSS / smallest '
            '| s/MP |', '|---|---|---|---|---|---|']
    work = tempfile.mkdtemp(prefix='tiled_bench_images_')
    try:
        for config in args.configs:
            first = None
            for size in args.sizes:
                image = osp.join(work, f'image{size}.{args.format}')
                if not osp.exists(image):
                    write_image(image, size, args.format)
                runs = [run_child(args, config, size, image)
                        for _ in range(max(args.runs, 1))]
                peaks = [got['peak_rss_mib'] for got in runs]
                speeds = [got['seconds'] / (size * size / 1e6)
                          for got in runs]
                first = first or min(peaks)
                stride = args.tile - args.overlap
                tiles = (max(size - args.tile + stride - 1, 0) // stride
                         + 1) ** 2
                line = (f'| {osp.splitext(osp.basename(config))[0]} | '
                        f'{size}x{size} {args.format} | {tiles} | '
                        f'{span(peaks, "{:.0f}")} | '
                        f'{span([p / first for p in peaks], "{:.2f}")} | '
                        f'{span(speeds, "{:.3f}")} |')
                print(line, flush=True)
                rows.append(line)
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    what = (f'Tiled inference, --tile {args.tile} --overlap '
            f'{args.overlap}, {args.format} input'
            + (', a 1x1 convolution instead of the network'
               if args.stand_in else '')
            + f', {max(args.runs, 1)} run(s) each (ranges)')
    table = '\n'.join([f'{what}, on {machine()}.', ''] + rows) + '\n'
    print(table)
    if args.out:
        from mmseg_plugins.fileio import atomic_path
        with atomic_path(args.out) as tmp:
            with open(tmp, 'w') as f:
                f.write(table)


if __name__ == '__main__':
    run_tool(main)
