"""Tiled, streaming inference over images larger than memory allows.

The image is read window by window through a *reader* (a callable
``(y1, y2, x1, x2) -> (h, w, C) array``; :mod:`.rasters` has readers for
arrays, memory maps and TIFF files), cut into the windows of mmseg's
``slide_inference`` (:func:`mmseg_plugins.forward.slide_windows`: tile
``size``, stride ``size - overlap``), each window's logits are blended into
a band of rows, and label rows are handed to a *sink* (a callable
``(y0, labels (h, W))``) as soon as no later window touches them. A band is
one row of windows, or the last two together (see :func:`row_groups`),
blended column by column; what is held is the band's columns not yet final
(at most ``2 tile x tile``) and the ``overlap`` rows shared with the next
band (column pieces, freed as they are taken): ``band_bytes``, whatever the
image's height and growing with its width only by ``overlap`` rows.

Blending:

- ``'mean'``: every window weighs 1, as mmseg's ``slide_inference``; with
  the same window and stride the blended logits equal
  :func:`~mmseg_plugins.forward.slide_logits` (up to floating-point
  rounding: where the last two rows of windows overlap, their windows are
  summed column by column rather than row by row).
- ``'smooth'``: each window weighs ``w(y) * w(x)``, a ramp that rises from
  ``0.5 / overlap`` at a tile's border to 1 at ``overlap`` pixels inside it,
  so that a tile's border (where the network sees least context) counts
  less than its neighbour's interior.

``scale`` resamples the image on the fly (bilinear at pixel centres, as
OpenCV's ``INTER_LINEAR``): tiles are cut from the resampled image and the
labels are mapped back to the original grid (nearest).
"""
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Tuple

import numpy as np
import torch

from ..errors import InvalidInputError
from ..forward import slide_windows
from ..reporting import Progress

__all__ = ['BLENDS', 'TileOptions', 'TiledSegmenter', 'check_tiling',
           'scaled_reader', 'band_bytes', 'row_groups']

#: The blending of overlapping windows.
BLENDS = ('mean', 'smooth')

Reader = Callable[[int, int, int, int], np.ndarray]


def check_tiling(tile: int, overlap: int, scale: float,
                 min_size: int, blend: str = 'mean') -> None:
    """Refuse a tiling that cannot run.

    Raises:
        InvalidInputError: ``tile`` below the network's minimum side,
            ``overlap`` negative or not below ``tile``, ``scale <= 0`` or
            an unknown ``blend``.
    """
    if tile < min_size:
        raise InvalidInputError(f'--tile {tile} is below the network\'s '
                                f'minimum input side {min_size}')
    if not 0 <= overlap < tile:
        raise InvalidInputError(f'--overlap must be in [0, tile), got '
                                f'{overlap} with --tile {tile}')
    if not scale > 0 or not math.isfinite(scale):
        raise InvalidInputError(f'--scale must be positive, got {scale}')
    if blend not in BLENDS:
        raise InvalidInputError(f'--blend must be one of {BLENDS}, got '
                                f'{blend!r}')


@dataclass(frozen=True)
class TileOptions:
    """How an image is cut into windows and blended (see the module).

    Args:
        size (int): Window side in pixels of the (scaled) image.
        overlap (int): Pixels shared by neighbouring windows. Default: 0.
        scale (float): Resample the image by this factor on the fly before
            tiling. Default: 1.
        blend (str): ``'mean'`` (as ``slide_inference``) or ``'smooth'``.
            Default: ``'mean'``.
    """
    size: int
    overlap: int = 0
    scale: float = 1.
    blend: str = 'mean'

    def check(self, min_size: int = 1) -> None:
        """Refuse options that cannot run with a network whose smallest
        input side is ``min_size`` (see :func:`check_tiling`)."""
        check_tiling(self.size, self.overlap, self.scale, min_size,
                     self.blend)


def band_bytes(num_classes: int, tile: int, overlap: int,
               width: int) -> int:
    """Bound of the bytes of logits and weights (float32) that the tiler
    holds for an image ``width`` pixels wide: the ``overlap`` rows shared
    with the next band (carried down in column pieces, the old band's
    freed as the new band's are made: at most ``width + 2 tile`` columns
    in all) and the columns of one band not yet final (a band is at most
    ``2 tile`` rows high and ``tile`` columns wide; twice that while a
    final piece is split off)."""
    return (num_classes + 1) * 4 * (overlap * (width + 2 * tile)
                                    + 4 * tile * tile)


def row_groups(tile_rows: list, overlap: int) -> list:
    """The rows of windows ``[(y1, y2), ...]`` (top to bottom) in bands
    blended together: a row alone, except where it shares more than
    ``overlap`` rows with the row above (mmseg's last row of windows ends
    at the image's border and may share up to ``tile - 1`` rows with the
    one above): then both rows run column by column in one band, so the
    rows they share are never held at the image's width."""
    groups = []
    for rows in tile_rows:
        if groups and groups[-1][-1][1] - rows[0] > overlap:
            groups[-1].append(rows)
        else:
            groups.append([rows])
    return groups


class _Carry:
    """The rows of logits and weights (``(C, rows, w)`` float32) that one
    band shares with the next, held as column pieces left to right; a
    piece is freed as soon as the next band has taken it."""

    def __init__(self, channels: int, rows: int) -> None:
        self.channels, self.rows = channels, rows
        self.pieces = []  # [(x0, (C, rows, w))]

    def put(self, x0: int, piece: torch.Tensor) -> None:
        if self.rows:
            self.pieces.append((x0, piece.clone()))

    def take(self, x1: int, x2: int) -> torch.Tensor:
        """Columns ``x1:x2`` (taken left to right, each once)."""
        out = torch.zeros((self.channels, self.rows, x2 - x1))
        while self.pieces:
            p0, piece = self.pieces[0]
            p1 = p0 + piece.shape[2]
            a, b = max(p0, x1), min(p1, x2)
            if a < b:
                out[:, :, a - x1:b - x1] = piece[:, :, a - p0:b - p0]
            if p1 > x2:
                break
            self.pieces.pop(0)
        return out

    def nbytes(self) -> int:
        return 4 * sum(piece.numel() for _, piece in self.pieces)


def _ramp(length: int, overlap: int) -> np.ndarray:
    """1-D smooth window weights of a tile side of ``length``."""
    if overlap <= 0:
        return np.ones(length, np.float32)
    i = np.arange(length, dtype=np.float32)
    edge = np.minimum(i, length - 1 - i) + 0.5
    return np.clip(edge / overlap, 0., 1.).astype(np.float32)


def _source_coords(n_out: int, scale: float, n_in: int) -> np.ndarray:
    """Source coordinates of output pixel centres (OpenCV's convention)."""
    c = (np.arange(n_out, dtype=np.float64) + 0.5) / scale - 0.5
    return np.clip(c, 0, n_in - 1)


def scaled_reader(reader: Reader, height: int, width: int,
                  scale: float) -> Tuple[Reader, int, int]:
    """A reader of ``reader``'s image resampled by ``scale`` (bilinear at
    pixel centres), reading only the source window it needs; returns
    ``(reader, scaled height, scaled width)``."""
    out_h = max(1, int(round(height * scale)))
    out_w = max(1, int(round(width * scale)))
    ys, xs = (_source_coords(out_h, scale, height),
              _source_coords(out_w, scale, width))

    def read(y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
        sy, sx = ys[y1:y2], xs[x1:x2]
        r0, r1 = int(np.floor(sy[0])), min(int(np.floor(sy[-1])) + 2, height)
        c0, c1 = int(np.floor(sx[0])), min(int(np.floor(sx[-1])) + 2, width)
        src = reader(r0, r1, c0, c1).astype(np.float32)  # (h, w, C)
        fy, fx = sy - r0, sx - c0
        iy = np.minimum(np.floor(fy).astype(int), r1 - r0 - 1)
        ix = np.minimum(np.floor(fx).astype(int), c1 - c0 - 1)
        iy1 = np.minimum(iy + 1, r1 - r0 - 1)
        ix1 = np.minimum(ix + 1, c1 - c0 - 1)
        wy = (fy - iy).astype(np.float32)[:, None, None]
        wx = (fx - ix).astype(np.float32)[None, :, None]
        top = src[iy][:, ix] * (1 - wx) + src[iy][:, ix1] * wx
        bottom = src[iy1][:, ix] * (1 - wx) + src[iy1][:, ix1] * wx
        return top * (1 - wy) + bottom * wy

    return read, out_h, out_w


class TiledSegmenter:
    """Label an image of any size tile by tile with bounded memory.

    Args:
        logits_fn (callable): (B, C, h, w) network inputs -> (B, K, h, w)
            logits (``Segmenter._network_logits``, an ONNX Runtime
            runner, ...).
        prepare (callable): (B, h, w, C) float32 image windows as the
            reader gives them -> (B, C, h, w) network inputs (the
            normalisation).
        num_classes (int): K.
        options (TileOptions): Window size, overlap, scale and blending.
        batch_size (int): Windows of the same shape run together.
        progress (bool): A progress bar per window on stderr.
    """

    def __init__(self, logits_fn: Callable[[torch.Tensor], torch.Tensor],
                 prepare: Callable[[torch.Tensor], torch.Tensor],
                 num_classes: int, options: TileOptions,
                 batch_size: int = 1, progress: bool = False) -> None:
        options.check()
        self.logits_fn, self.prepare = logits_fn, prepare
        self.num_classes, self.options = num_classes, options
        self.tile, self.overlap = options.size, options.overlap
        self.blend, self.batch_size = options.blend, max(1, batch_size)
        self.progress = progress
        #: Largest logits band held so far (bytes), for memory checks.
        self.peak_band_bytes = 0

    def chunks(self, reader: Reader, height: int, width: int
               ) -> Iterator[Tuple[int, int, torch.Tensor]]:
        """``(y0, x0, logits (K, h, w))``: the blended logits in final
        pieces, band by band (top to bottom; a band is a row of windows, or
        the last two, see :func:`row_groups`), each band's pieces left to
        right and covering the rows up to the next band."""
        size, stride = self.tile, self.tile - self.overlap
        windows = list(slide_windows(height, width, (size, size),
                                     (stride, stride)))
        groups = row_groups(sorted({w[:2] for w in windows}), self.overlap)
        bar = Progress(len(windows), 'tiles') if self.progress else None
        k = self.num_classes
        # logits and weight of the rows shared with the band above
        carry = _Carry(k + 1, 0)
        try:
            for index, group in enumerate(groups):
                y1, y2 = group[0][0], group[-1][1]
                nxt = (groups[index + 1][0][0] if index + 1 < len(groups)
                       else y2)
                # column by column, top to bottom within a column
                band = sorted((w for w in windows if w[:2] in group),
                              key=lambda w: (w[2], w[0]))
                new_carry = _Carry(k + 1, y2 - nxt)
                for x0, piece in self._blend_band(reader, band, carry,
                                                  new_carry, y1, y2, bar):
                    # piece: (K + 1, y2 - y1, w), final
                    new_carry.put(x0, piece[:, nxt - y1:])
                    top = piece[:, :nxt - y1]
                    yield y1, x0, top[:k] / top[k:]
                carry = new_carry
        finally:
            if bar is not None:
                bar.close()

    def _blend_band(self, reader: Reader, band: list, carry: _Carry,
                    new_carry: _Carry, y1: int, y2: int, bar
                    ) -> Iterator[Tuple[int, torch.Tensor]]:
        """``(x0, (K + 1, y2 - y1, w))``: logits and weights of one band of
        windows (sorted by column; plus the rows carried from above), in
        final column pieces."""
        k = self.num_classes
        work = torch.zeros((k + 1, y2 - y1, 0))  # columns x0:x0 + w
        x0 = band[0][2]
        for start in range(0, len(band), self.batch_size):
            chunk = band[start:start + self.batch_size]
            logits = self._logits(reader, chunk)
            for position, (window, one) in enumerate(zip(chunk, logits),
                                                     start):
                wy1, wy2, wx1, wx2 = window
                end = x0 + work.shape[2]
                if wx2 > end:  # extend to the right, with the carried rows
                    more = torch.zeros((k + 1, y2 - y1, wx2 - end))
                    more[:, :carry.rows] = carry.take(end, wx2)
                    work = torch.cat([work, more], dim=2)
                    self.peak_band_bytes = max(
                        self.peak_band_bytes, 4 * work.numel()
                        + carry.nbytes() + new_carry.nbytes())
                win = (None if self.blend == 'mean' else torch.from_numpy(
                    np.outer(_ramp(wy2 - wy1, self.overlap),
                             _ramp(wx2 - wx1, self.overlap))))
                rows, cols = slice(wy1 - y1, wy2 - y1), slice(wx1 - x0,
                                                              wx2 - x0)
                if win is None:
                    work[:k, rows, cols] += one
                    work[k, rows, cols] += 1
                else:
                    work[:k, rows, cols] += one * win
                    work[k, rows, cols] += win
                if bar is not None:
                    bar.step(f'tile y={wy1} x={wx1}')
                final = (band[position + 1][2] if position + 1 < len(band)
                         else x0 + work.shape[2])
                if final > x0:
                    rest = work[:, :, final - x0:].clone()
                    self.peak_band_bytes = max(
                        self.peak_band_bytes, 4 * (work.numel()
                                                   + rest.numel())
                        + carry.nbytes() + new_carry.nbytes())
                    yield x0, work[:, :, :final - x0]
                    work, x0 = rest, final

    def _logits(self, reader: Reader, chunk) -> list:
        """Logits (K, h, w) of a batch of windows (same shapes together)."""
        out = {}
        groups = {}
        for w in chunk:
            groups.setdefault((w[1] - w[0], w[3] - w[2]), []).append(w)
        for group in groups.values():
            images = np.stack([reader(*w) for w in group])
            inputs = self.prepare(torch.from_numpy(
                np.ascontiguousarray(images, dtype=np.float32)))
            logits = self.logits_fn(inputs).float().cpu()
            out.update(zip(group, logits))
        return [out[w] for w in chunk]

    def rows(self, reader: Reader, height: int, width: int
             ) -> Iterator[Tuple[int, torch.Tensor]]:
        """``(y0, logits (K, h, W))`` of the blended logits, top to
        bottom (assembled from :meth:`chunks`; holds one band of logits,
        for images whose logits band fits)."""
        band, band_y0 = [], None
        for y0, _, piece in self.chunks(reader, height, width):
            if band and y0 != band_y0:
                yield band_y0, torch.cat(band, dim=2)
                band = []
            band_y0 = y0
            band.append(piece)
        if band:
            yield band_y0, torch.cat(band, dim=2)

    def _label_bands(self, reader: Reader, height: int, width: int
                     ) -> Iterator[Tuple[int, np.ndarray]]:
        """``(y0, labels (h, width))`` per row of windows, from
        :meth:`chunks` (no band of logits held)."""
        labels, band_y0 = None, None
        for y0, x0, piece in self.chunks(reader, height, width):
            if labels is not None and y0 != band_y0:
                yield band_y0, labels
                labels = None
            if labels is None:
                labels = np.empty((piece.shape[1], width), np.int64)
            band_y0 = y0
            labels[:, x0:x0 + piece.shape[2]] = piece.argmax(0).numpy()
        if labels is not None:
            yield band_y0, labels

    def __call__(self, reader: Reader, height: int, width: int,
                 sink: Callable[[int, np.ndarray], None]) -> None:
        """Label the ``height`` x ``width`` image of ``reader``, handing
        ``(y0, labels (h, width))`` rows to ``sink``."""
        for y0, labels in self.label_rows(reader, height, width):
            sink(y0, labels)

    def label_rows(self, reader: Reader, height: int, width: int
                   ) -> Iterator[Tuple[int, np.ndarray]]:
        """``(y0, labels (h, width))`` rows (int64, top to bottom, at the
        original size) of the ``height`` x ``width`` image of ``reader``
        (resampled by the options' ``scale`` on the fly), each yielded as
        soon as it is final."""
        scale = self.options.scale
        if scale == 1:
            yield from self._label_bands(reader, height, width)
            return
        read, out_h, out_w = scaled_reader(reader, height, width, scale)
        # nearest scaled pixel of every original row / column
        row_of = np.minimum(((np.arange(height) + 0.5) * scale).astype(int),
                            out_h - 1)
        col_of = np.minimum(((np.arange(width) + 0.5) * scale).astype(int),
                            out_w - 1)
        done = 0
        for y0, labels in self._label_bands(read, out_h, out_w):
            end = y0 + labels.shape[0]
            stop = int(np.searchsorted(row_of, end))
            if stop > done:
                yield done, labels[row_of[done:stop] - y0][:, col_of]
                done = stop
