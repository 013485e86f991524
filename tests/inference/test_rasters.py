"""TIFF/GeoTIFF reading window by window and tiled label writing."""
import numpy as np
import pytest
import tifffile

from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.inference.rasters import open_raster, write_labels_tiff

GEO = [(33550, 12, 3, (0.5, 0.5, 0.0), True),
       (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4100000.0, 0.0), True),
       (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1,
                       3072, 0, 1, 32633), True),
       (42113, 2, 2, '0', True)]


def scene(h=70, w=90, bands=3, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    return rng.integers(1, top, (h, w, bands)).astype(dtype)


@pytest.mark.parametrize('tiled', [False, True])
def test_uint16_rgb_window_reads(tmp_path, tiled):
    data = scene()
    path = str(tmp_path / 'a.tif')
    tifffile.imwrite(path, data, tile=(32, 32) if tiled else None,
                     compression='zlib' if tiled else None,
                     photometric='rgb')
    r = open_raster(path)
    assert (r.height, r.width, r.bands, r.dtype) == (70, 90, 3, np.uint16)
    window = r.read(10, 50, 20, 85)
    want = data[10:50, 20:85, ::-1].astype(np.float32) / 257
    np.testing.assert_allclose(window, want, rtol=1e-6)
    r.close()


def test_multiband_and_grayscale(tmp_path):
    data = scene(bands=5, dtype=np.uint8)
    path = str(tmp_path / 'm.tif')
    tifffile.imwrite(path, data, photometric='minisblack',
                     planarconfig='contig')
    r = open_raster(path)
    assert r.bands == 5
    np.testing.assert_array_equal(r.read(0, 4, 0, 6),
                                  data[:4, :6, 2::-1].astype(np.float32))
    gray = str(tmp_path / 'g.tif')
    tifffile.imwrite(gray, data[..., 0])
    g = open_raster(gray).read(0, 3, 0, 3)
    assert g.shape == (3, 3, 3) and (g[..., 0] == g[..., 2]).all()


def test_geotiff_round_trip_with_nodata(tmp_path):
    data = scene(dtype=np.uint8)
    data[:5, :7] = 0  # nodata corner
    src = str(tmp_path / 'geo.tif')
    tifffile.imwrite(src, data, photometric='rgb', extratags=GEO)
    r = open_raster(src)
    assert r.nodata == 0.
    assert set(r.geo_tags) == {33550, 33922, 34735, 42113}
    mask = r.nodata_mask(0, 10)
    assert mask[:5, :7].all() and not mask[5:].any()
    labels = (np.arange(70 * 90) % 7).reshape(70, 90).astype(np.uint8)
    rows = ((y, labels[y:y + 9]) for y in range(0, 70, 9))
    out = str(tmp_path / 'labels.tif')
    write_labels_tiff(out, rows, 70, 90, np.uint8, r.geo_tags, tile=32)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.compression == 8  # zlib
        np.testing.assert_array_equal(page.asarray(), labels)
        for code, (_, _, value) in r.geo_tags.items():
            assert page.tags[code].value == value
    assert [p.name for p in tmp_path.iterdir()
            if p.name.startswith('.')] == []


def test_crs_without_geotransform_refused(tmp_path):
    path = str(tmp_path / 'bad.tif')
    tifffile.imwrite(path, scene(dtype=np.uint8), photometric='rgb',
                     extratags=[GEO[2]])
    with pytest.raises(InvalidInputError, match='no geotransform'):
        open_raster(path)


def test_failed_write_leaves_nothing(tmp_path):
    def rows():
        yield 0, np.zeros((40, 40), np.uint8)
        raise OSError('No space left on device')

    with pytest.raises(OSError, match='No space'):
        write_labels_tiff(str(tmp_path / 'x.tif'), rows(), 80, 40,
                          np.uint8, tile=16)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / 'file').write_text('')
    with pytest.raises(OSError):
        write_labels_tiff(str(tmp_path / 'file' / 'x.tif'),
                          [(0, np.zeros((4, 4), np.uint8))], 4, 4,
                          np.uint8)
