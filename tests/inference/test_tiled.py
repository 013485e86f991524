"""Tiled streaming inference: equal to mmseg's slide_inference, bounded
memory, refusals."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.forward import slide_logits
from mmseg_plugins.inference.tiled import (TiledSegmenter, TileOptions,
                                           band_bytes, check_tiling,
                                           row_groups, scaled_reader)

K = 5


def toy_logits(x):
    """A position-dependent stand-in network: (B, 3, h, w) -> (B, K, h, w)
    with a receptive field (so overlapping windows differ)."""
    torch.manual_seed(0)
    weight = torch.randn(K, 3, 5, 5)
    return F.conv2d(x, weight, padding=2)


def prepare(images):
    return images.permute(0, 3, 1, 2) / 255.  # (B, C, h, w)


def image(h, w, seed=1):
    return np.random.default_rng(seed).integers(
        0, 256, (h, w, 3)).astype(np.float32)


def array_reader(img):
    return lambda y1, y2, x1, x2: img[y1:y2, x1:x2]


@pytest.mark.parametrize('h,w,tile,overlap', [
    (100, 130, 48, 16), (64, 64, 64, 8), (70, 40, 32, 0), (57, 91, 32, 8)])
def test_mean_blend_equals_slide_logits(h, w, tile, overlap):
    img = image(h, w)
    tiler = TiledSegmenter(toy_logits, prepare, K,
                           TileOptions(tile, overlap), batch_size=3)
    bands = list(tiler.rows(array_reader(img), h, w))
    assert [y0 for y0, _ in bands] == sorted({y0 for y0, _ in bands})
    got = torch.cat([b for _, b in bands], dim=1)
    x = prepare(torch.from_numpy(img)[None])
    want = slide_logits(toy_logits, x, K, (tile, tile),
                        (tile - overlap, tile - overlap))[0]
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    rows = np.concatenate([r for _, r in tiler.label_rows(
        array_reader(img), h, w)])
    np.testing.assert_array_equal(rows, want.argmax(0).numpy())


def test_smooth_blend_close_to_whole_image():
    img = image(96, 96)
    whole = toy_logits(prepare(torch.from_numpy(img)[None]))[0].argmax(0)
    agreement = {}
    for blend in ('mean', 'smooth'):
        tiler = TiledSegmenter(toy_logits, prepare, K,
                               TileOptions(40, 16, blend=blend))
        labels = np.concatenate(
            [r for _, r in tiler.label_rows(array_reader(img), 96, 96)])
        agreement[blend] = (labels == whole.numpy()).mean()
    # the toy network's 5x5 field: only pixels near tile borders differ,
    # and the smooth window down-weights exactly those
    assert 0.9 < agreement['mean'] < agreement['smooth']


def test_memory_bound_from_tile_size_not_image_height():
    peaks = []
    for h in (64, 400):
        tiler = TiledSegmenter(toy_logits, prepare, K, TileOptions(32, 8))
        img = image(h, 150)
        for _ in tiler.label_rows(array_reader(img), h, 150):
            pass
        peaks.append(tiler.peak_band_bytes)
    assert peaks[0] == peaks[1]
    assert 0 < peaks[1] <= band_bytes(K, 32, 8, 150)
    # far below the whole image's logits
    assert peaks[1] < (K + 1) * 400 * 150 * 4 / 4


def test_last_two_rows_of_windows_form_one_band():
    # tile 32, stride 24: windows start at rows 0, 24 and 25 (the last ends
    # at the border), and the last two share 31 rows, more than the overlap
    assert row_groups([(0, 32), (24, 56), (25, 57)], 8) == [
        [(0, 32)], [(24, 56), (25, 57)]]
    assert row_groups([(0, 32), (24, 56), (48, 80)], 8) == [
        [(0, 32)], [(24, 56)], [(48, 80)]]


def test_memory_grows_with_width_by_the_overlap_rows_only():
    """57 rows: the last two rows of windows share 31 rows; held at the
    image's width they would add (K + 1) x 4 B x 31 rows per column."""
    peaks = {}
    for w in (150, 450):
        tiler = TiledSegmenter(toy_logits, prepare, K, TileOptions(32, 8))
        for _ in tiler.label_rows(array_reader(image(57, w)), 57, w):
            pass
        peaks[w] = tiler.peak_band_bytes
        assert 0 < peaks[w] <= band_bytes(K, 32, 8, w)
    assert peaks[450] - peaks[150] <= (K + 1) * 4 * 8 * (300 + 2 * 32)


def test_scale_reader_matches_cv2_and_labels_original_size():
    import cv2
    img = image(37, 53)
    read, oh, ow = scaled_reader(array_reader(img), 37, 53, 2.0)
    assert (oh, ow) == (74, 106)
    want = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(read(0, oh, 0, ow), want, atol=1e-3)
    np.testing.assert_allclose(read(10, 30, 7, 50), want[10:30, 7:50],
                               atol=1e-3)
    tiler = TiledSegmenter(toy_logits, prepare, K,
                           TileOptions(32, 8, scale=0.5))
    out = list(tiler.label_rows(array_reader(img), 37, 53))
    labels = np.concatenate([r for _, r in out])
    assert labels.shape == (37, 53)
    assert [y0 for y0, _ in out][0] == 0


@pytest.mark.parametrize('tile,overlap,scale,blend', [
    (16, 0, 1., 'mean'), (64, 64, 1., 'mean'), (64, -1, 1., 'mean'),
    (64, 8, 0., 'mean'), (64, 8, -2., 'mean'), (64, 8, 1., 'gauss')])
def test_check_tiling_refuses(tile, overlap, scale, blend):
    with pytest.raises(InvalidInputError):
        check_tiling(tile, overlap, scale, 32, blend)
    with pytest.raises(InvalidInputError):
        TileOptions(tile, overlap, scale, blend).check(32)


def test_tiler_refuses_bad_options_when_made():
    with pytest.raises(InvalidInputError, match='--scale must be positive'):
        TiledSegmenter(toy_logits, prepare, K, TileOptions(32, 8, scale=0))
