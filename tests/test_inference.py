"""Tests of mmseg_plugins/inference.py: labels of arrays equal mmseg's own
inference (whole image and sliding windows), at any image size and batch
size."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from helpers import ROOT
from mmseg_plugins.inference import (Segmenter, colorize, normalize_images,
                                     overlay, segment)

CONFIG = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A checkpoint of the demo config's model with random weights (and
    random BatchNorm statistics, so that every layer matters)."""
    import mhca_reference as ref
    from mmseg_plugins.builder import build_model
    model = ref.randomise(build_model(CONFIG, None, 'cpu'), seed=3,
                          scale=0.2)
    path = tmp_path_factory.mktemp('ckpt') / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoint_with_meta(checkpoint):
    """The same weights with the demo dataset's classes in their meta, for
    mmseg's init_model (without them it warns and calls
    ``warnings.simplefilter('once')``, which overrides the test session's
    filters)."""
    from mmseg_plugins.checkpoint import safe_load
    from mmseg_plugins.datasets import DemoShapesDataset
    path = checkpoint[:-len('.pth')] + '_with_meta.pth'
    torch.save({'state_dict': safe_load(checkpoint)['state_dict'],
                'meta': {'dataset_meta': dict(DemoShapesDataset.METAINFO)}},
               path)
    return path


def _images(demo_root, n=3):
    files = sorted(glob.glob(osp.join(demo_root, 'images', 'validation',
                                      '*.png')))[:n]
    return [cv2.imread(f) for f in files]


def _mmseg_labels(checkpoint, images, cfg_options=None):
    from mmseg.apis import inference_model, init_model
    model = init_model(CONFIG, checkpoint, device='cpu',
                       cfg_options=cfg_options)
    return [inference_model(model, image).pred_sem_seg.data[0].numpy()
            for image in images]


def test_labels_equal_mmseg_inference_and_do_not_depend_on_batching(
        demo_root, checkpoint, checkpoint_with_meta):
    images = _images(demo_root) + [cv2.resize(_images(demo_root, 1)[0],
                                              (77, 53))]
    segmenter = Segmenter(CONFIG, checkpoint, device='cpu')
    assert segmenter.classes == ('background', 'disk', 'square', 'triangle')
    one_by_one = segmenter(images, batch_size=1)
    batched = segmenter(images, batch_size=3)
    expected = _mmseg_labels(checkpoint_with_meta, images)
    for a, b, c in zip(one_by_one, batched, expected):
        assert a.shape == c.shape
        assert (a != c).mean() < 1e-3  # equal but for float ties
        assert (a != b).mean() < 1e-3
    assert len({label.tobytes() for label in one_by_one}) > 1


def test_sliding_windows_equal_mmseg(demo_root, checkpoint,
                                     checkpoint_with_meta):
    slide = {'model.test_cfg': dict(mode='slide', crop_size=(64, 64),
                                    stride=(48, 48))}
    image = cv2.resize(_images(demo_root, 1)[0], (150, 110))
    sliding = Segmenter(CONFIG, checkpoint, cfg_options=slide)
    ours = sliding([image])[0]
    expected = _mmseg_labels(checkpoint_with_meta, [image], slide)[0]
    assert (ours != expected).mean() < 1e-3
    whole = Segmenter(CONFIG, checkpoint)
    x = whole.preprocess(image)[0][None]
    # the windows do change the logits
    assert (sliding.logits(x) - whole.logits(x)).abs().max() > 1e-3


def test_images_below_the_minimum_size_are_padded(checkpoint):
    rng = np.random.default_rng(0)
    tiny = rng.integers(0, 255, (9, 20, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, (40, 31), dtype=np.uint8)
    labels = segment([tiny, gray], CONFIG, checkpoint)
    assert [lab.shape for lab in labels] == [(9, 20), (40, 31)]
    assert segment(tiny, CONFIG, checkpoint).shape == (9, 20)
    from mmseg_plugins.errors import InvalidInputError
    with pytest.raises(InvalidInputError,
                       match=r'has 5 channels, the model takes 3'):
        segment(rng.integers(0, 255, (8, 8, 5), dtype=np.uint8), CONFIG,
                checkpoint)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    from mmseg_plugins.models import MPViT
    from mmseg_plugins.errors import MMSegPluginsError
    other = tmp_path / 'mpvit.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               MPViT('tiny').state_dict().items()}}, other)
    with pytest.raises(MMSegPluginsError, match='does not fit the model'):
        Segmenter(CONFIG, str(other))


def test_colorize_and_overlay():
    label = np.array([[0, 1], [2, 1]])
    palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]  # RGB
    color = colorize(label, palette)
    assert color[0, 0].tolist() == [0, 0, 255]  # BGR
    image = np.zeros((2, 2, 3), np.uint8)
    assert overlay(image, label, palette, 0.5)[1, 0].tolist() == [128, 0, 0]


@pytest.mark.parametrize('bgr_to_rgb', [True, False])
@pytest.mark.parametrize('with_mean_std', [True, False])
def test_normalize_images_equals_the_data_preprocessor(bgr_to_rgb,
                                                       with_mean_std):
    from mmseg.models import SegDataPreProcessor
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    pre = SegDataPreProcessor(mean=mean if with_mean_std else None,
                              std=std if with_mean_std else None,
                              bgr_to_rgb=bgr_to_rgb)
    images = torch.rand(2, 3, 5, 7) * 255
    expected = pre(dict(inputs=list(images)))['inputs']
    got = normalize_images(images, torch.tensor(mean) if with_mean_std
                           else None, torch.tensor(std), bgr_to_rgb)
    torch.testing.assert_close(got, expected)
