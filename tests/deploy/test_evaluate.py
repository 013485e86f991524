"""Tests of mmseg_plugins/deploy/evaluate.py on the demo dataset."""
import numpy as np
import pytest
import torch

from mmseg_plugins.demo_data import data_root_options
from mmseg_plugins.deploy.evaluate import (build_split, dataset_samples,
                                           evaluate_miou, predict_mask)
from mmseg_plugins.deploy.onnx_runtime import OnnxSegmentor
from mmseg_plugins.config import load_config
from mmseg_plugins.errors import MMSegPluginsError


@pytest.fixture(scope='module')
def demo_cfg(demo_root, demo_configs):
    return load_config(demo_configs['afformer'],
                       data_root_options(demo_root))


def test_splits_come_through_the_test_pipeline(demo_cfg):
    train = build_split(demo_cfg, 'train')
    assert len(train) == 240
    # no RandomFlip: the same sample twice is the same image
    (a, gt, shape), = dataset_samples(train, 5, 1)
    (b, _, _), = dataset_samples(train, 5, 1)
    assert torch.equal(a, b) and a.dtype == torch.uint8
    assert a.shape == (3, 128, 128) and gt.shape == shape == (128, 128)
    assert len(list(dataset_samples(build_split(demo_cfg, 'test'), 10))) \
        == 6


def test_miou_of_known_predictions(demo_cfg):
    test = build_split(demo_cfg, 'test')
    truth = {i: gt for i, (_, gt, _) in enumerate(dataset_samples(test))}
    calls = iter(range(len(truth)))
    assert evaluate_miou(lambda image, shape: truth[next(calls)],
                         test) == pytest.approx(100.0)
    # background everywhere: IoU of background = its pixel share, others 0
    counts = np.bincount(torch.cat([t.flatten() for t in truth.values()]),
                         minlength=4)
    expected = 100 * counts[0] / counts.sum() / 4
    assert evaluate_miou(lambda image, shape: torch.zeros(shape,
                                                          dtype=torch.long),
                         test) == pytest.approx(expected, abs=0.005)  # rounded


def test_predict_mask_resizes_to_the_original_size(demo_export):
    path, _ = demo_export('afformer', dynamic=True)
    session = OnnxSegmentor(path)
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    logits = session(session.prepare(image))
    mask = predict_mask(session, image, (128, 192))
    assert mask.shape == (128, 192)
    resized = torch.nn.functional.interpolate(logits, size=(128, 192),
                                              mode='bilinear')
    assert torch.equal(mask, resized[0].argmax(0))


def test_predict_mask_slides_as_mmseg(demo_export, demo_segmentor):
    """A config that tests with sliding windows: the mask equals mmseg's
    ``slide_inference`` of the PyTorch model."""
    import copy

    from mmseg.structures import SegDataSample
    path, _ = demo_export('afformer', dynamic=True)
    session = OnnxSegmentor(path)
    test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(40, 40))
    session.metadata.test_cfg = test_cfg
    _, model = demo_segmentor('afformer')
    model = copy.deepcopy(model)
    model.test_cfg = type(model.test_cfg)(test_cfg)
    image = torch.randint(0, 256, (3, 96, 150), dtype=torch.uint8)
    meta = dict(ori_shape=(96, 150), img_shape=(96, 150),
                pad_shape=(96, 150))
    with torch.no_grad():
        data = model.data_preprocessor(dict(
            inputs=[image], data_samples=[SegDataSample(metainfo=meta)]))
        logits = model.slide_inference(data['inputs'], [meta])
    expected = logits[0].argmax(0)
    mask = predict_mask(session, image, (96, 150))
    assert (mask == expected).float().mean() > 0.999
    whole = predict_mask(OnnxSegmentor(path), image, (96, 150))
    assert (whole != expected).any()  # the windows make a difference


def test_predict_mask_refuses_what_it_cannot_compute(demo_export):
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    session = OnnxSegmentor(demo_export('afformer', dynamic=True)[0])
    session.metadata.test_cfg = dict(mode='mosaic')
    with pytest.raises(MMSegPluginsError, match="unknown test mode 'mosaic'"):
        predict_mask(session, image, (64, 96))
    masks = OnnxSegmentor(demo_export('afformer', dynamic=True,
                                      output='mask')[0])
    masks.metadata.test_cfg = dict(mode='slide', crop_size=(64, 64),
                                   stride=(32, 32))
    with pytest.raises(MMSegPluginsError, match='export with --output logits'):
        predict_mask(masks, image, (64, 96))
