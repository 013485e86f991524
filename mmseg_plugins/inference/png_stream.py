"""PNG read and written by rows, in memory independent of the height.

A PNG's pixels are one zlib stream of *filtered* rows: each row is a
filter byte and the row's bytes, predicted from the row before (and from
the pixel to the left, for the Sub, Average and Paeth filters). Rows can
therefore be decoded in order, holding only the previous row.

:class:`PngRows` inflates the stream band by band (``zlib.decompressobj``)
and lets OpenCV do the unfiltering and the pixel conversion, on small
PNGs made of one band each:

1. *Unfilter*: the band's filtered rows, preceded by the previous band's
   last row unfiltered (filter byte 0, None), are stored uncompressed
   (deflate level 0) in a PNG of a "carrier" type with the same bytes per
   pixel whose decoded samples are the raw bytes (8-bit grey for one byte
   per pixel or less, 16-bit grey for two, RGB(A) 8- or 16-bit for three,
   four, six and eight); decoding it undoes the filters exactly as the
   full image's decoder would, since each filter only looks at the row
   above and the bytes to the left.
2. *Convert*: the unfiltered rows, with filter byte 0, in a PNG with the
   input's own header and the chunks that decide how samples become
   pixels (PLTE, tRNS, sBIT, gAMA, cHRM, sRGB, iCCP, bKGD), decoded with
   ``cv2.imdecode(..., IMREAD_UNCHANGED)``: the pixels are those of
   ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` (BGR(A), 16-bit kept,
   palette expanded), row for row.

Interlaced (Adam7) PNGs are not stored by rows and are refused here
(:func:`is_row_png` tells them apart); :mod:`.rasters` decodes those
whole.

:class:`PngWriter` writes rows as they come: the header, then the rows
with the Up filter (difference to the row above, exact in uint8
arithmetic), deflated (``zlib.compressobj``, level 1 and run-length
strategy as OpenCV's PNG defaults; on a noisy 8000 x 8000 RGB image this
was both the fastest and the smallest of levels 1, 3, 6 with and without
the Up filter) into IDAT chunks of up to 1 MiB, then IEND, to a
temporary file renamed into place when every row
has been written (:func:`mmseg_plugins.fileio.atomic_path`). Its files
decode to exactly the arrays given (BGR as OpenCV writes them).
"""
import struct
import zlib
from typing import BinaryIO, List, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError

__all__ = ['PngRows', 'PngWriter', 'is_row_png']

SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: Samples per pixel of each PNG colour type.
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Chunks before IDAT that decide how samples become pixels.
PIXEL_CHUNKS = (b'PLTE', b'tRNS', b'sBIT', b'gAMA', b'cHRM', b'sRGB',
                b'iCCP', b'bKGD')
#: Carrier (colour type, bit depth) whose samples are the raw bytes, by
#: bytes per pixel.
CARRIERS = {1: (0, 8), 2: (0, 16), 3: (2, 8), 4: (6, 8), 6: (2, 16),
            8: (6, 16)}
#: Rows decoded together (bounds the transient band buffers).
BAND_ROWS = 256
_READ_BYTES = 1 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(data, zlib.crc32(kind))))


def _ihdr(width: int, height: int, depth: int, color: int,
          interlace: int = 0) -> bytes:
    return _chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, depth,
                                       color, 0, 0, interlace))


def _read_chunks(f: BinaryIO, path: str
                 ) -> Tuple[bytes, List[Tuple[bytes, bytes]], int]:
    """``(IHDR data, [(type, data) of the chunks before IDAT], offset of
    the first IDAT chunk)``."""
    if f.read(8) != SIGNATURE:
        raise InvalidInputError(f'{path} is not a PNG')
    header, chunks = None, []
    while True:
        offset = f.tell()
        head = f.read(8)
        if len(head) < 8:
            raise InvalidInputError(f'{path}: no image data (IDAT)')
        length, kind = struct.unpack('>I4s', head)
        if kind == b'IDAT':
            if header is None:
                raise InvalidInputError(f'{path}: IDAT before IHDR')
            return header, chunks, offset
        data = f.read(length)
        f.seek(4, 1)  # CRC
        if kind == b'IHDR':
            header = data
        elif kind in PIXEL_CHUNKS:
            chunks.append((kind, data))


def is_row_png(path: str) -> bool:
    """Whether ``path`` is a non-interlaced PNG (readable by rows)."""
    with open(path, 'rb') as f:
        head = f.read(33)
    return (len(head) == 33 and head[:8] == SIGNATURE
            and head[12:16] == b'IHDR' and head[28] == 0)


def _decode(png: bytes, path: str) -> np.ndarray:
    import cv2
    out = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if out is None:
        raise InvalidInputError(f'{path}: corrupt PNG image data')
    return out


class PngRows:
    """The rows of a non-interlaced PNG, decoded in order (see the
    module), as ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` gives them.

    ``rows[y1:y2, x1:x2]`` returns the pixels (``shape`` and ``dtype`` as
    the full array's). Decoded rows are kept from ``2 x`` the tallest
    read below the lowest row read so far (so the windows of a row of
    tiles, and of the last two rows, are served without decoding again);
    a read above the kept rows decodes from the start again (counted in
    ``restarts``).

    Args:
        path (str): The PNG file.

    Raises:
        InvalidInputError: not a PNG, interlaced, or corrupt.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, 'rb')
        try:
            header, self._chunks, self._idat = _read_chunks(self._file,
                                                            path)
            (self.width, self.height, self.depth, self.color, _, _,
             interlace) = struct.unpack('>IIBBBBB', header)
            if interlace:
                raise InvalidInputError(f'{path} is interlaced')
            if self.color not in CHANNELS:
                raise InvalidInputError(f'{path}: unknown PNG colour type '
                                        f'{self.color}')
            bits = CHANNELS[self.color] * self.depth
            self.row_bytes = (self.width * bits + 7) // 8
            self.pixel_bytes = max(1, bits // 8)
            self._start()
            first = self._decode_rows(1) if self.height else None
            self._start()
        except BaseException:
            self._file.close()
            raise
        if first is None:
            raise InvalidInputError(f'{path} has no rows')
        self.dtype = first.dtype
        self.shape = (self.height, self.width) + first.shape[2:]
        self.restarts = 0

    def _start(self) -> None:
        """Back to the first row."""
        self._file.seek(self._idat)
        self._inflate = zlib.decompressobj()
        self._chunk_left = 0  # bytes of the current IDAT chunk unread
        self._pending = b''   # compressed bytes not yet inflated
        self._previous = b''  # the last row decoded, unfiltered
        self._rows: Optional[np.ndarray] = None  # decoded rows lo:hi
        self._lo = self._hi = 0
        self._tallest = 0

    def _compressed(self) -> bytes:
        """The next piece of the IDAT chunks' data."""
        while not self._chunk_left:
            if self._file.tell() != self._idat:
                self._file.seek(4, 1)  # CRC of the chunk just read
            head = self._file.read(8)
            if len(head) < 8:
                raise InvalidInputError(f'{self.path}: image data end '
                                        'early (truncated PNG)')
            length, kind = struct.unpack('>I4s', head)
            if kind != b'IDAT':
                raise InvalidInputError(f'{self.path}: image data end '
                                        'early (truncated PNG)')
            self._chunk_left = length
        data = self._file.read(min(self._chunk_left, _READ_BYTES))
        if not data:
            raise InvalidInputError(f'{self.path}: truncated PNG')
        self._chunk_left -= len(data)
        return data

    def _inflated(self, size: int) -> bytes:
        """The next ``size`` bytes of the filtered rows."""
        parts, need = [], size
        while need:
            if not self._pending:
                self._pending = self._compressed()
            try:
                data = self._inflate.decompress(self._pending, need)
            except zlib.error as err:
                raise InvalidInputError(f'{self.path}: corrupt PNG image '
                                        f'data ({err})') from None
            self._pending = self._inflate.unconsumed_tail
            if not data and self._inflate.eof:
                raise InvalidInputError(f'{self.path}: image data end '
                                        'early (truncated PNG)')
            parts.append(data)
            need -= len(data)
        return b''.join(parts)

    def _decode_rows(self, count: int) -> np.ndarray:
        """Decode the next ``count`` rows (below ``_previous``, the raw
        row above them, empty at the top) and update ``_previous``."""
        filtered = self._inflated(count * (self.row_bytes + 1))
        # 1. unfilter in a carrier PNG of the same bytes per pixel
        if self.depth >= 8:
            carrier, depth = CARRIERS[self.pixel_bytes]
            width = self.width
        else:  # 1, 2 or 4 bits: filters work on whole bytes
            (carrier, depth), width = (0, 8), self.row_bytes
        above = int(bool(self._previous))
        raw = _decode(b''.join([
            SIGNATURE, _ihdr(width, count + above, depth, carrier),
            _chunk(b'IDAT', zlib.compress(
                (b'\x00' + self._previous if above else b'') + filtered,
                0)),
            _chunk(b'IEND', b'')]), self.path)
        if CHANNELS[carrier] >= 3:  # OpenCV's BGR(A) back to RGB(A)
            raw = raw[..., [2, 1, 0, 3][:CHANNELS[carrier]]]
        raw = np.ascontiguousarray(raw, raw.dtype.newbyteorder('>'))
        raw = raw.view(np.uint8).reshape(count + above, self.row_bytes)
        raw = raw[above:]
        self._previous = raw[-1].tobytes()
        # 2. convert with the input's own header and pixel chunks
        plain = np.zeros((count, self.row_bytes + 1), np.uint8)
        plain[:, 1:] = raw  # filter byte 0: None
        return _decode(b''.join(
            [SIGNATURE, _ihdr(self.width, count, self.depth, self.color)]
            + [_chunk(kind, data) for kind, data in self._chunks]
            + [_chunk(b'IDAT', zlib.compress(plain.tobytes(), 0)),
               _chunk(b'IEND', b'')]), self.path)

    def _extend(self, end: int, keep_from: int) -> None:
        """Decode up to row ``end``, dropping rows above ``keep_from``."""
        parts = [] if self._rows is None else [self._rows]
        lo, hi = self._lo, self._hi
        while hi < end:
            count = min(BAND_ROWS, self.height - hi)
            parts.append(self._decode_rows(count))
            hi += count
            while parts and lo + len(parts[0]) <= keep_from:
                lo += len(parts.pop(0))
        rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        cut = max(keep_from - lo, 0)
        self._rows, self._lo, self._hi = rows[cut:], lo + cut, hi

    def __getitem__(self, index) -> np.ndarray:
        rows, cols = index if isinstance(index, tuple) else (index,
                                                             slice(None))
        y1, y2, _ = rows.indices(self.height)
        if y2 <= y1:
            return np.zeros((0,) + self.shape[1:], self.dtype)[:, cols]
        self._tallest = max(self._tallest, y2 - y1)
        if y1 < self._lo:
            self._start()
            self._tallest = y2 - y1
            self.restarts += 1
        if y2 > self._hi:
            self._extend(y2, min(y1, y2 - 2 * self._tallest))
        return self._rows[y1 - self._lo:y2 - self._lo, cols]

    def close(self) -> None:
        self._file.close()
        self._rows = None


class PngWriter:
    """Write a PNG row band by row band, atomically (see the module).

    Use as a context manager; the file appears at ``path`` when the block
    ends without error after all ``height`` rows were written, and nothing
    is left otherwise.

    Args:
        path (str): The PNG to write.
        height, width (int): Its size.
        channels (int): 1 (grey) or 3 (BGR rows, stored as RGB).
        dtype: ``np.uint8`` or ``np.uint16``.
        level (int): zlib compression level. Default: 1.
    """

    def __init__(self, path: str, height: int, width: int,
                 channels: int = 1, dtype=np.uint8, level: int = 1) -> None:
        if channels not in (1, 3):
            raise ValueError(f'channels must be 1 or 3, got {channels}')
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'dtype must be uint8 or uint16, got {dtype}')
        self.path, self.height, self.width = path, height, width
        self.channels, self.level = channels, level
        self._context = None

    def __enter__(self) -> 'PngWriter':
        from ..fileio import atomic_path
        self._context = atomic_path(self.path)
        tmp = self._context.__enter__()
        try:
            self._file = open(tmp, 'wb')
            depth = 8 * self.dtype.itemsize
            self._file.write(SIGNATURE + _ihdr(
                self.width, self.height, depth,
                0 if self.channels == 1 else 2))
            self._deflate = zlib.compressobj(self.level, zlib.DEFLATED,
                                             15, 9, zlib.Z_RLE)
            self._out: List[bytes] = []
            self._out_bytes = 0
            self._previous = np.zeros(
                self.width * self.channels * self.dtype.itemsize, np.uint8)
            self.written = 0
        except BaseException as err:
            self._context.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, rows: np.ndarray) -> None:
        """Append rows ``(h, width)`` (grey) or ``(h, width, 3)`` (BGR)."""
        shape = (self.width,) + ((3,) if self.channels == 3 else ())
        if rows.shape[1:] != shape:
            raise ValueError(f'rows of shape {rows.shape[1:]} given to a '
                             f'PNG of rows {shape}')
        if self.written + len(rows) > self.height:
            raise ValueError(f'more than {self.height} rows written')
        if not len(rows):
            return
        if self.channels == 3:
            rows = rows[..., ::-1]  # BGR -> RGB
        raw = np.ascontiguousarray(rows, self.dtype.newbyteorder('>'))
        raw = raw.reshape(len(rows), -1).view(np.uint8)
        filtered = np.empty((len(rows), raw.shape[1] + 1), np.uint8)
        filtered[:, 0] = 2  # Up: the difference to the row above
        np.subtract(raw[1:], raw[:-1], out=filtered[1:, 1:])
        np.subtract(raw[0], self._previous, out=filtered[0, 1:])
        self._previous = raw[-1].copy()
        self._emit(self._deflate.compress(filtered.tobytes()))
        self.written += len(rows)

    def _emit(self, data: bytes, last: bool = False) -> None:
        if data:
            self._out.append(data)
            self._out_bytes += len(data)
        if self._out_bytes >= _READ_BYTES or (last and self._out):
            self._file.write(_chunk(b'IDAT', b''.join(self._out)))
            self._out, self._out_bytes = [], 0

    def __exit__(self, kind, value, traceback) -> bool:
        try:
            if kind is None:
                if self.written != self.height:
                    raise ValueError(f'{self.path}: {self.written} of '
                                     f'{self.height} rows written')
                self._emit(self._deflate.flush(), last=True)
                self._file.write(_chunk(b'IEND', b''))
            self._file.close()
        except BaseException as err:
            self._file.close()
            self._context.__exit__(type(err), err, err.__traceback__)
            raise
        return self._context.__exit__(kind, value, traceback)
