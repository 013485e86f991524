"""Peak memory and time of tiled, streaming inference by image size.

    python tools/analysis_tools/benchmark_tiled.py CONFIG [CONFIG ...]
        [--sizes 2048 8192 16384] [--tile 1024] [--overlap 128]
        [--checkpoint PTH] [--out docs/benchmarks/cpu-tiled/table.md]

Each (config, size) runs in a fresh child process: a synthetic BGR image
of size x size is written to a raw file, read window by window (os.pread,
no memory map, so the image never counts in the child's memory), labelled
by ``Segmenter(..., tile=, overlap=)`` and its label rows written to a raw
file as they become final. The child reports its peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the seconds of the
labelling; the parent prints a markdown table (peak RSS, s/MP, RSS
relative to the smallest size) and writes it to ``--out``. Without
``--checkpoint`` the model keeps its initial weights (time and memory do
not depend on them). This is a measurement, not a test.
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
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--out', default=None, help='markdown table file')
    parser.add_argument('--child', nargs=2, metavar=('CONFIG', 'SIZE'),
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


def child(args) -> None:
    import resource

    import numpy as np
    import torch

    from mmseg_plugins.builder import build_model
    from mmseg_plugins.inference import Segmenter
    config, size = args.child[0], int(args.child[1])
    work = tempfile.mkdtemp(prefix='tiled_bench_')
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = osp.join(work, 'init.pth')
        model = build_model(config, None, 'cpu')
        torch.save({'state_dict': model.state_dict(), 'meta': {}},
                   checkpoint)
        del model
    image = osp.join(work, 'image.raw')
    synthetic_image(image, size)
    seg = Segmenter(config, checkpoint, device='cpu', tile=args.tile,
                    overlap=args.overlap)
    fd = os.open(image, os.O_RDONLY)
    row_bytes = size * 3

    def read(y1, y2, x1, x2):
        data = os.pread(fd, (y2 - y1) * row_bytes, y1 * row_bytes)
        rows = np.frombuffer(data, np.uint8).reshape(y2 - y1, size, 3)
        return rows[:, x1:x2].astype(np.float32)

    start = time.perf_counter()
    with open(osp.join(work, 'labels.raw'), 'wb') as out:
        for _, labels in seg.label_rows(read, size, size):
            out.write(labels.astype(np.uint8).tobytes())
    seconds = time.perf_counter() - start
    os.close(fd)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name in os.listdir(work):
        os.remove(osp.join(work, name))
    os.rmdir(work)
    print(json.dumps(dict(seconds=seconds, peak_rss_mib=peak,
                          classes=seg.num_classes)))


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    return (f'{os.cpu_count()}-core CPU ({cpu}), torch '
            f'{torch.__version__}, {torch.get_num_threads()} threads')


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    rows = ['| model | image | tiles | peak RSS (MiB) | RSS / smallest '
            '| s/MP |', '|---|---|---|---|---|---|']
    for config in args.configs:
        first = None
        for size in args.sizes:
            cmd = [sys.executable, osp.abspath(__file__), config,
                   '--child', config, str(size), '--tile', str(args.tile),
                   '--overlap', str(args.overlap)]
            if args.checkpoint:
                cmd += ['--checkpoint', args.checkpoint]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f'error: {config} at {size}: '
                         f'{proc.stderr.strip().splitlines()[-1]}')
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            first = first or got['peak_rss_mib']
            stride = args.tile - args.overlap
            tiles = (max(size - args.tile + stride - 1, 0) // stride + 1) ** 2
            line = (f'| {osp.splitext(osp.basename(config))[0]} | '
                    f'{size}x{size} | {tiles} | {got["peak_rss_mib"]:.0f} | '
                    f'{got["peak_rss_mib"] / first:.2f} | '
                    f'{got["seconds"] / (size * size / 1e6):.3f} |')
            print(line, flush=True)
            rows.append(line)
    table = '\n'.join(
        [f'Tiled inference, --tile {args.tile} --overlap {args.overlap}, '
         f'on {machine()}.', ''] + rows) + '\n'
    print(table)
    if args.out:
        from mmseg_plugins.fileio import atomic_path
        with atomic_path(args.out) as tmp:
            with open(tmp, 'w') as f:
                f.write(table)


if __name__ == '__main__':
    run_tool(main)
