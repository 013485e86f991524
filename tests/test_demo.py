"""Tests of mmseg_plugins/demo.py: the majority-class baseline and the
overrides of a demo run (the run itself: tests/tools/test_tools.py's
test_demo_tool)."""
import os

import cv2
import numpy as np
import pytest

from mmseg_plugins.demo import (DemoOptions, DemoResult, _overrides,
                                majority_baseline_miou)


def test_majority_baseline(tmp_path):
    folder = tmp_path / 'annotations' / 'validation'
    os.makedirs(folder)
    label = np.zeros((10, 10), np.uint8)
    label[:3] = 1  # class 0: 70 % of the pixels, class 1: 30 %, 2: absent
    cv2.imwrite(str(folder / 'a.png'), label)
    # IoU 70 % for the majority class, 0 for the other present class
    assert majority_baseline_miou(str(tmp_path), 3) == pytest.approx(35.)


def test_iterations_set_the_schedule():
    opts = _overrides(DemoOptions('c.py', data_root='d', iters=50,
                                  cfg_options={'train_cfg.val_interval': 7}))
    assert opts['train_dataloader.dataset.data_root'] == 'd'
    assert opts['param_scheduler.0.end'] == 5
    assert opts['param_scheduler.1.end'] == 50
    assert opts['train_cfg.val_interval'] == 7  # the user's last
    assert 'train_cfg.max_iters' not in _overrides(DemoOptions('c.py'))
    assert DemoResult(12.345, 3.5, 6, 10.2, 'w/iter_6.pth',
                      'w/o.png').message() == (
        'demo: mIoU 12.35 (predicting the majority class everywhere gives '
        '3.50) after 6 iterations in 10 s; checkpoint w/iter_6.pth; '
        'overlay w/o.png')
