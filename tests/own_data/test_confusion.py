"""Confusion matrix counting and writing, on a stand-in model."""
import csv
import os

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmseg_plugins.own_data.confusion import (confusion_summary,
                                              count_confusion,
                                              write_confusion)

from own_data_helpers import load_tool, run_tool_main


class _Echo:
    """``test_step`` predicts the batch's own 'pred' maps."""

    def test_step(self, batch):
        out = []
        for gt, pred in batch:
            s = SegDataSample()
            s.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
            s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
            out.append(s)
        return out


def test_counts_ignore_and_files(tmp_path):
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    matrix = count_confusion(_Echo(), [[(gt, pred)], [(gt, gt)]], 3)
    expected = np.array([[3, 1, 0], [0, 4, 0], [1, 0, 1]])
    np.testing.assert_array_equal(matrix, expected)
    classes = ['bg', 'a', 'b']
    lines = confusion_summary(matrix, classes)
    assert lines[0] == ('bg: 4 px, recall 75.0%, precision 75.0%, most '
                        'often taken for a (25.0%)')
    csv_path, png_path = str(tmp_path / 'm.csv'), str(tmp_path / 'm.png')
    write_confusion(matrix, classes, csv_path, png_path)
    with open(csv_path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['ground truth \\ predicted', 'bg', 'a', 'b']
    assert rows[3] == ['b', '1', '0', '1']
    assert os.path.getsize(png_path) > 1000
    assert sorted(os.listdir(tmp_path)) == ['m.csv', 'm.png']  # no temps


def test_missing_checkpoint_refused(tmp_path, capsys):
    tool = load_tool(os.path.join('analysis_tools', 'confusion_matrix.py'))
    code, _, err = run_tool_main(
        tool, ['cfg.py', str(tmp_path / 'none.pth'), '--out',
               str(tmp_path / 'cm')], capsys)
    assert code == 2 and 'checkpoint not found' in err
    assert not (tmp_path / 'cm').exists()


def test_summary_means_follow_one_rule():
    """A model predicting the background everywhere: every mean low, the
    never-predicted classes counted (precision 0), an absent class left
    out of every mean."""
    matrix = np.array([[74, 0, 0, 0], [13, 0, 0, 0], [13, 0, 0, 0],
                       [0, 0, 0, 0]])
    means = confusion_summary(matrix, ['bg', 'a', 'b', 'never'])[-1]
    assert means.startswith('aAcc 74.00, mIoU 24.67, mAcc 33.33, '
                            'mDice 28.35, mFscore 28.35, mPrecision 24.67, '
                            'mRecall 33.33')
    assert means.endswith(': 3 of 4 classes)')
