"""mmseg_plugins/inference/outputs.py: the three PNGs of an image, their
dtypes, and tiled outputs written by rows equal to the whole image's."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mmseg_plugins.inference.outputs import (LabelWriter, label_dtype,
                                             pictures)
from mmseg_plugins.inference.visualize import colorize, overlay


def _segmenter(num_classes):
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        num_classes=num_classes,
        palette=rng.integers(0, 256, (num_classes, 3)).tolist(),
        display=lambda image: image)


def test_label_dtype_by_class_count():
    assert label_dtype(256) == np.uint8
    assert label_dtype(257) == np.uint16


@pytest.mark.parametrize('num_classes', [4, 300])
def test_the_three_pngs_of_an_image(tmp_path, num_classes):
    segmenter = _segmenter(num_classes)
    image = np.random.default_rng(1).integers(0, 256, (9, 11, 3),
                                              dtype=np.uint8)
    label = np.random.default_rng(2).integers(0, num_classes, (9, 11))
    LabelWriter(str(tmp_path), segmenter, 0.3).write('sub/a', image, label)
    got = {kind: cv2.imread(str(tmp_path / kind / 'sub' / 'a.png'),
                            cv2.IMREAD_UNCHANGED)
           for kind in ('labels', 'color', 'overlay')}
    np.testing.assert_array_equal(got['labels'], label)
    assert got['labels'].dtype == label_dtype(num_classes)
    np.testing.assert_array_equal(got['color'],
                                  colorize(label, segmenter.palette))
    np.testing.assert_array_equal(
        got['overlay'], overlay(image, label, segmenter.palette, 0.3))
    assert set(pictures(image, label, segmenter, 0.3, ('color', ))) == {
        'color'}


def test_an_unwritable_png_raises_oserror(tmp_path, monkeypatch):
    monkeypatch.setattr(cv2, 'imwrite', lambda path, array: False)
    with pytest.raises(OSError, match='could not write a.png'):
        LabelWriter(str(tmp_path), _segmenter(3)).write(
            'a', np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), int))
    assert not (tmp_path / 'labels' / 'a.png').exists()
