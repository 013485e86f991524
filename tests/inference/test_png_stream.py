"""PNG read and written by rows: the pixels of cv2.imread for every PNG
kind, interlaced PNG and JPEG through a temporary file, written PNGs read
back identical, memory bounded by a few bands of rows."""
import os
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from mmseg_plugins.inference import png_stream
from mmseg_plugins.inference.png_stream import PngRows, PngWriter, is_row_png
from mmseg_plugins.inference.rasters import SpooledImage, open_raster
from mmseg_plugins.inference.tiled import TiledSegmenter, TileOptions

H, W = 53, 37


def smooth(channels, dtype=np.uint8, h=H, w=W, seed=0):
    """Gradients with noise (so that PNG encoders pick every filter)."""
    top = np.iinfo(dtype).max
    y, x = np.mgrid[:h, :w]
    a = ((x * 3 + y * 5)[..., None] * (top // 255)
         + np.arange(channels) * 40 * (top // 255))
    a = a + np.random.default_rng(seed).integers(0, 9, a.shape)
    a = (a % top).astype(dtype)
    return a[..., 0] if channels == 1 else a


def write_kind(path, kind):
    """A PNG of one kind: OpenCV for grey/BGR(A) 8/16-bit, Pillow for
    palette (8- and 4-bit, with transparency), 1-bit and grey+alpha."""
    if kind in ('grey8', 'bgr8', 'bgra8', 'grey16', 'bgr16'):
        channels = {'grey': 1, 'bgr': 3, 'bgra': 4}[kind[:-1].rstrip('1')]
        dtype = np.uint16 if kind.endswith('16') else np.uint8
        cv2.imwrite(path, smooth(channels, dtype))
    elif kind == 'palette8':
        Image.fromarray(smooth(3)).convert(
            'P', palette=Image.ADAPTIVE, colors=200).save(path)
    elif kind == 'palette4_trns':
        Image.fromarray(smooth(3)).convert(
            'P', palette=Image.ADAPTIVE, colors=12).save(
                path, bits=4, transparency=3)
    elif kind == 'bit1':
        Image.fromarray(smooth(1) > 128).save(path)
    elif kind == 'grey_alpha':
        Image.fromarray(smooth(2), 'LA').save(path)


KINDS = ['grey8', 'bgr8', 'bgra8', 'grey16', 'bgr16', 'palette8',
         'palette4_trns', 'bit1', 'grey_alpha']


@pytest.mark.parametrize('kind', KINDS)
def test_rows_equal_cv2_imread(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(png_stream, 'BAND_ROWS', 7)  # many bands
    path = str(tmp_path / 'a.png')
    write_kind(path, kind)
    want = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    rows = PngRows(path)
    assert (rows.shape, rows.dtype) == (want.shape, want.dtype)
    # windows as the tiler reads them: rows of windows, columns left to
    # right, overlapping rows
    for y in range(0, H, 16):
        for x in range(0, W, 16):
            np.testing.assert_array_equal(rows[y:y + 24, x:x + 24],
                                          want[y:y + 24, x:x + 24])
    assert rows.restarts == 0
    np.testing.assert_array_equal(rows[3:9, 5:6], want[3:9, 5:6])  # back
    assert rows.restarts == 1
    rows.close()


def adam7_png(path, grey):
    """An interlaced (Adam7) 8-bit grey PNG (filter None)."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
              (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    data = b''
    for x0, y0, dx, dy in passes:
        sub = grey[y0::dy, x0::dx]
        if sub.size:
            data += b''.join(b'\0' + row.tobytes() for row in sub)
    h, w = grey.shape
    with open(path, 'wb') as f:
        f.write(png_stream.SIGNATURE
                + png_stream._ihdr(w, h, 8, 0, interlace=1)
                + png_stream._chunk(b'IDAT', zlib.compress(data))
                + png_stream._chunk(b'IEND', b''))


def test_interlaced_png_and_jpeg_through_a_temporary_file(tmp_path,
                                                          monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    os.mkdir(tmp_path / 'tmp')
    grey = smooth(1)
    adam7_png(str(tmp_path / 'i.png'), grey)
    assert not is_row_png(str(tmp_path / 'i.png'))
    with pytest.raises(ValueError, match='interlaced'):
        PngRows(str(tmp_path / 'i.png'))
    cv2.imwrite(str(tmp_path / 'a.jpg'), smooth(3))
    for name in ('i.png', 'a.jpg'):
        path = str(tmp_path / name)
        want = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        raster = open_raster(path)
        assert isinstance(raster._array, SpooledImage)
        np.testing.assert_array_equal(raster._raw(0, H, 0, W), want)
        np.testing.assert_array_equal(raster._raw(10, 30, 4, 20),
                                      want[10:30, 4:20])
        # the temporary file has no name from the start
        assert os.listdir(tmp_path / 'tmp') == []
        fd = raster._array._file.fileno()
        raster.close()
        with pytest.raises(OSError):
            os.fstat(fd)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'i.png'),
                                             cv2.IMREAD_UNCHANGED), grey)


@pytest.mark.parametrize('channels,dtype', [(1, np.uint8), (1, np.uint16),
                                            (3, np.uint8)])
def test_writer_reads_back_identical(tmp_path, channels, dtype):
    image = smooth(channels, dtype, h=70, w=45)
    path = tmp_path / 'out.png'
    with PngWriter(str(path), 70, 45, channels, dtype) as png:
        for y0, y1 in ((0, 1), (1, 30), (30, 30), (30, 70)):
            png.write(image[y0:y1])
    np.testing.assert_array_equal(
        cv2.imread(str(path), cv2.IMREAD_UNCHANGED), image)
    np.testing.assert_array_equal(PngRows(str(path))[0:70], image)


def test_writer_leaves_nothing_when_short_or_failing(tmp_path):
    image = smooth(1, h=20, w=10)
    with pytest.raises(ValueError, match='10 of 20 rows'):
        with PngWriter(str(tmp_path / 'a.png'), 20, 10) as png:
            png.write(image[:10])
    with pytest.raises(RuntimeError):
        with PngWriter(str(tmp_path / 'b.png'), 20, 10) as png:
            png.write(image[:10])
            raise RuntimeError('the labelling failed')
    assert os.listdir(tmp_path) == []


def test_reader_memory_flat_in_the_height(tmp_path, monkeypatch):
    """Reading a PNG in windows of 100 rows (stride 90) holds the kept
    rows (2 x 100) and the bands being decoded (32 rows each) in a few
    copies: the same peak (tracemalloc) for 1500 and 4500 rows, a small
    part of the image."""
    monkeypatch.setattr(png_stream, 'BAND_ROWS', 32)
    peaks = []
    for height in (1500, 4500):
        image = smooth(3, h=height, w=200)
        path = str(tmp_path / f'{height}.png')
        cv2.imwrite(path, image)
        rows = PngRows(path)
        tracemalloc.start()
        try:
            for y in range(0, height, 90):
                rows[y:y + 100, 0:150]
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
            rows.close()
    assert peaks[1] < 1.1 * peaks[0]
    assert peaks[1] < image.nbytes / 4


@pytest.mark.parametrize('scale', [1., 0.5])
def test_tiler_reads_each_row_once(tmp_path, scale):
    """The tiler's windows, and the label rows' image rows read as they
    become final (for the overlay), never decode the PNG again."""
    image = smooth(3, h=300, w=120)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, image)
    raster = open_raster(path)
    tiler = TiledSegmenter(lambda x: x[:, :2],
                           lambda x: x.permute(0, 3, 1, 2), 2,
                           TileOptions(48, 16, scale=scale))
    done = 0
    for y0, labels in tiler.label_rows(raster.read, 300, 120):
        got = raster.read(y0, y0 + len(labels), 0, 120)
        np.testing.assert_array_equal(got, image[y0:y0 + len(labels)])
        done += len(labels)
    assert done == 300 and raster._array.restarts == 0
    raster.close()


def test_truncated_png_refused(tmp_path):
    path = tmp_path / 'a.png'
    cv2.imwrite(str(path), smooth(3, h=200, w=50))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    rows = PngRows(str(path))
    with pytest.raises(ValueError, match='truncated|end early'):
        rows[0:200]
    rows.close()
