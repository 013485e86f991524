"""Reading and writing large rasters window by window (TIFF, GeoTIFF,
PNG, JPEG).

:func:`open_raster` gives a :class:`Raster`: the image's size, bands and
dtype, a ``read(y1, y2, x1, x2)`` that returns the window as the network
wants it ((h, w, 3) float32 BGR, 0..255), and the georeference tags of a
GeoTIFF. A tiled TIFF is read tile by tile (only the tiles a window
touches are decoded), an uncompressed one through a memory map, a
strip-compressed one whole. A non-interlaced PNG is decoded row band by
row band as the windows move down (:class:`.png_stream.PngRows`). Other
images (JPEG, interlaced PNG, BMP, WebP, ...) have no row-by-row decoder
here: they are decoded once, whole (as ``cv2.imread(path,
cv2.IMREAD_UNCHANGED)``), into an unlinked temporary file (in
``tempfile.gettempdir()``: ``TMPDIR``), the decoded array is freed before
any tile runs, and windows are read from the file with ``os.pread`` (no
memory map, so what was read does not stay in the process's memory); the
operating system removes the file when it is closed or the process ends,
whatever the way.

Normalisation to the config's 8-bit BGR convention: uint8 as is, uint16
divided by 257 (0..65535 -> 0..255), floats taken as 0..255 unless their
maximum in the first window is <= 1 (then times 255); one band is
repeated to three, RGBA drops alpha, more bands keep the first three. TIFF
bands are RGB and are swapped to BGR (as OpenCV reads).

:func:`write_labels_tiff` writes label rows as they come to a tiled,
compressed TIFF (zlib), with a GeoTIFF's georeference tags and nodata,
atomically. GeoTIFF tags (GeoKeyDirectory 34735, GeoDoubleParams 34736,
GeoAsciiParams 34737, ModelPixelScale 33550, ModelTiepoint 33922,
ModelTransformation 34264, GDAL_NODATA 42113) are copied verbatim.
"""
import os
import os.path as osp
import tempfile
from typing import Dict, Iterable, Iterator, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError
from .png_stream import PngRows, is_row_png

__all__ = ['Raster', 'SpooledImage', 'open_raster', 'write_labels_tiff',
           'GEO_TAGS']

#: TIFF tags that carry a GeoTIFF's georeference (copied to outputs).
GEO_TAGS = {33550: 'ModelPixelScale', 33922: 'ModelTiepoint',
            34264: 'ModelTransformation', 34735: 'GeoKeyDirectory',
            34736: 'GeoDoubleParams', 34737: 'GeoAsciiParams',
            42113: 'GDAL_NODATA'}
_TRANSFORM_TAGS = (33550, 33922, 34264)
_TIFF = ('.tif', '.tiff')


def _to_bgr(window: np.ndarray, scale: float, tiff: bool) -> np.ndarray:
    """(h, w[, C]) raw window -> (h, w, 3) float32 BGR 0..255."""
    if window.ndim == 2:
        window = window[..., None]
    window = window[..., :3].astype(np.float32) * scale
    if window.shape[2] == 1:
        window = np.repeat(window, 3, axis=2)
    elif window.shape[2] == 2:
        window = np.repeat(window[..., :1], 3, axis=2)
    return window[..., ::-1] if tiff else window


class Raster:
    """An image read window by window (see the module).

    Attributes:
        height, width, bands (int): Its size.
        dtype (np.dtype): Its samples' type.
        geo_tags (dict): ``{tag code: (dtype, count, value)}`` of its
            GeoTIFF tags (empty for other images).
        nodata (float, optional): Its GDAL_NODATA value.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.geo_tags: Dict[int, tuple] = {}
        self.nodata: Optional[float] = None
        self._tif = None
        if path.lower().endswith(_TIFF):
            self._open_tiff(path)
        else:
            self._array = (PngRows(path) if is_row_png(path)
                           else SpooledImage(path))
            self._bgr = True
        self.height, self.width = self._shape[:2]
        self.bands = self._shape[2] if len(self._shape) == 3 else 1
        if np.issubdtype(self.dtype, np.floating):
            probe = self._raw(0, min(64, self.height), 0,
                              min(64, self.width))
            self._scale = 255. if np.nanmax(probe) <= 1 else 1.
        else:
            self._scale = 1. / 257 if self.dtype == np.uint16 else 1.

    def _open_tiff(self, path: str) -> None:
        import tifffile
        try:
            tif = tifffile.TiffFile(path)
        except Exception as err:  # tifffile raises several types
            raise InvalidInputError(f'{path} is not a readable TIFF '
                                    f'({err})') from None
        page = tif.pages.first
        for code in GEO_TAGS:
            tag = page.tags.get(code)
            if tag is not None:
                self.geo_tags[code] = (tag.dtype, tag.count, tag.value)
        if 34735 in self.geo_tags and not any(
                c in self.geo_tags for c in _TRANSFORM_TAGS):
            raise InvalidInputError(
                f'{path} has a CRS (GeoKeyDirectory) but no geotransform '
                '(ModelPixelScale/ModelTiepoint/ModelTransformation)')
        if 42113 in self.geo_tags:
            value = self.geo_tags[42113][2]
            self.nodata = float(str(value).strip('\x00 '))
        self._tif, self._page, self._bgr = tif, page, False
        self._array = None
        if page.is_memmappable and not page.is_tiled:
            self._array = tifffile.memmap(path, page=0, mode='r')
        elif not page.is_tiled:
            self._array = page.asarray()
        if self._array is not None and page.planarconfig == 2 and \
                self._array.ndim == 3:
            # planar (bands first): a bands-last view, nothing copied
            self._array = np.moveaxis(self._array, 0, -1)

    @property
    def _shape(self) -> Tuple[int, ...]:
        if self._array is not None:
            return self._array.shape
        shape = self._page.shape
        return shape if self._page.planarconfig == 1 else (
            shape[1], shape[2], shape[0])

    @property
    def dtype(self) -> np.dtype:
        if self._array is not None:
            return self._array.dtype
        return self._page.dtype

    def _raw(self, y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
        if self._array is not None:
            return np.asarray(self._array[y1:y2, x1:x2])
        return self._read_tiles(y1, y2, x1, x2)

    def _read_tiles(self, y1, y2, x1, x2) -> np.ndarray:
        """Decode only the TIFF tiles that the window touches."""
        page = self._page
        th, tw = page.tilelength, page.tilewidth
        across = -(-self.width // tw)
        out = np.zeros((y2 - y1, x2 - x1, self.bands), self.dtype)
        fh = self._tif.filehandle
        for ty in range(y1 // th, -(-y2 // th)):
            for tx in range(x1 // tw, -(-x2 // tw)):
                index = ty * across + tx
                fh.seek(page.dataoffsets[index])
                data = fh.read(page.databytecounts[index])
                tile = page.decode(data, index,
                                   jpegtables=page.jpegtables)[0]
                tile = tile.reshape(tile.shape[-3:])  # (th, tw, S)
                oy, ox = ty * th, tx * tw
                a0, a1 = max(y1, oy), min(y2, oy + th)
                b0, b1 = max(x1, ox), min(x2, ox + tw)
                out[a0 - y1:a1 - y1, b0 - x1:b1 - x1] = \
                    tile[a0 - oy:a1 - oy, b0 - ox:b1 - ox]
        return out

    def read(self, y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
        """The window rows ``y1:y2``, columns ``x1:x2`` as (h, w, 3)
        float32 BGR 0..255."""
        return _to_bgr(self._raw(y1, y2, x1, x2), self._scale,
                       not self._bgr)

    def read_bands(self, y1: int, y2: int, x1: int,
                   x2: int) -> np.ndarray:
        """The window as stored: (h, w, bands), the file's dtype, bands in
        the stored order (RGB(A) for colour files, not OpenCV's BGR)."""
        window = self._raw(y1, y2, x1, x2)
        if window.ndim == 2:
            window = window[..., None]
        if self._bgr and window.shape[2] in (3, 4):
            window = window[..., [2, 1, 0, 3][:window.shape[2]]]
        return window

    def nodata_mask(self, y1: int, y2: int) -> Optional[np.ndarray]:
        """(h, W) True where every band of rows ``y1:y2`` is nodata, or
        None without a nodata value."""
        if self.nodata is None:
            return None
        raw = self._raw(y1, y2, 0, self.width)
        raw = raw if raw.ndim == 3 else raw[..., None]
        if np.isnan(self.nodata):
            return np.isnan(raw).all(axis=2)
        return (raw == self.nodata).all(axis=2)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
        if isinstance(self._array, (SpooledImage, PngRows)):
            self._array.close()


class SpooledImage:
    """An image decoded once, whole, into an unlinked temporary file and
    read back by rows (see the module): ``image[y1:y2, x1:x2]``, with the
    ``shape`` and ``dtype`` of ``cv2.imread(path, IMREAD_UNCHANGED)``.

    Raises:
        InvalidInputError: OpenCV cannot decode ``path``.
    """

    def __init__(self, path: str) -> None:
        import cv2
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InvalidInputError(f'{path} is not a readable image')
        self.shape, self.dtype = image.shape, image.dtype
        self._row_bytes = image[0].nbytes
        self._file = tempfile.TemporaryFile(prefix='mmseg_plugins_')
        try:
            self._file.write(np.ascontiguousarray(image).data)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        # image is freed here, before any window is read

    def __getitem__(self, index) -> np.ndarray:
        rows, cols = index
        y1, y2, _ = rows.indices(self.shape[0])
        size, offset = max(y2 - y1, 0) * self._row_bytes, \
            y1 * self._row_bytes
        data = bytearray(size)
        view, done = memoryview(data), 0
        while done < size:  # pread returns at most about 2 GiB
            got = os.preadv(self._file.fileno(), [view[done:]],
                            offset + done)
            if not got:
                raise OSError('temporary image file ended early')
            done += got
        rows = np.frombuffer(data, self.dtype).reshape(
            (max(y2 - y1, 0),) + self.shape[1:])
        return rows[:, cols]

    def close(self) -> None:
        self._file.close()


def open_raster(path: str) -> Raster:
    """A :class:`Raster` of ``path``.

    Raises:
        InvalidInputError: unreadable, or a GeoTIFF with a CRS and no
            geotransform.
    """
    if not osp.isfile(path):
        raise InvalidInputError(f'no such image: {path}')
    return Raster(path)


def _tiles(rows: Iterable[Tuple[int, np.ndarray]], width: int,
           tile: int) -> Iterator[np.ndarray]:
    """Label rows (any heights, in order) -> (tile, tile) tiles in
    row-major order (edges zero-padded), holding ``tile`` rows at most."""
    pending = []
    count = 0

    def emit(block):
        for x in range(0, width, tile):
            out = np.zeros((tile, tile), block.dtype)
            part = block[:, x:x + tile]
            out[:part.shape[0], :part.shape[1]] = part
            yield out

    for _, block in rows:
        pending.append(block)
        count += block.shape[0]
        while count >= tile:
            stacked = np.concatenate(pending)
            yield from emit(stacked[:tile])
            pending, count = [stacked[tile:]], count - tile
    if count:
        yield from emit(np.concatenate(pending))


def write_labels_tiff(path: str, rows: Iterable[Tuple[int, np.ndarray]],
                      height: int, width: int, dtype,
                      geo_tags: Optional[dict] = None,
                      tile: int = 256) -> None:
    """Write label rows ``(y0, (h, width))`` (top to bottom) as they come
    to a tiled, zlib-compressed TIFF at ``path`` (atomically), with
    ``geo_tags`` (``{code: (dtype, count, value)}``) copied."""
    import tifffile

    from ..fileio import atomic_path
    dtype = np.dtype(dtype)
    extratags = [(code, d, n, v, True)
                 for code, (d, n, v) in sorted((geo_tags or {}).items())]
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=height * width > 2 ** 31) \
                as tif:
            tif.write((t.astype(dtype) for t in _tiles(rows, width, tile)),
                      shape=(height, width), dtype=dtype,
                      tile=(tile, tile), compression='zlib',
                      photometric='minisblack', extratags=extratags)
