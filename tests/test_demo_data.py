"""Tests of mmseg_plugins/demo_data.py."""
import hashlib
import os

import cv2
import numpy as np

from mmseg_plugins.demo_data import (SHAPES_METAINFO, dataset_is_complete,
                                     generate_shapes_dataset)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            with open(os.path.join(dirpath, f), 'rb') as fh:
                h.update(f.encode() + fh.read())
    return h.hexdigest()


def test_layout_size_and_determinism(tmp_path, demo_root):
    assert dataset_is_complete(demo_root)
    other = tmp_path / 'again'
    generate_shapes_dataset(str(other))
    assert _digest(demo_root) == _digest(str(other))
    total = sum(os.path.getsize(os.path.join(d, f))
                for d, _, fs in os.walk(demo_root) for f in fs)
    assert total < 16 * 2**20
    assert not dataset_is_complete(str(tmp_path / 'missing'))


def test_every_class_present_and_labels_valid(demo_root):
    counts = np.zeros(4, np.int64)
    ann = os.path.join(demo_root, 'annotations', 'validation')
    for f in os.listdir(ann):
        label = cv2.imread(os.path.join(ann, f), cv2.IMREAD_UNCHANGED)
        assert label.shape == (128, 128) and label.max() < 4
        counts += np.bincount(label.ravel(), minlength=4)
    assert (counts > 0).all()
    assert len(SHAPES_METAINFO['classes']) == 4
