"""Tests of mmseg_plugins/deploy/evaluate.py on the demo dataset."""
import numpy as np
import pytest
import torch

from mmseg_plugins.deploy.evaluate import (build_split, dataset_samples,
                                           evaluate_miou, predict_mask)
from mmseg_plugins.deploy.onnx_runtime import OnnxSegmentor
from mmseg_plugins.tools import ToolError, load_config


@pytest.fixture(scope='module')
def demo_cfg(demo_root, demo_configs):
    return load_config(demo_configs['afformer'], {
        f'{s}_dataloader.dataset.data_root': demo_root
        for s in ('train', 'val', 'test')})


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
    session.metadata.test_cfg = dict(mode='slide')
    with pytest.raises(ToolError, match='only whole-image'):
        predict_mask(session, image, (64, 96))
