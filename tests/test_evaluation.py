"""mmseg_plugins.evaluation: one rule for every mean over the classes; a
model that predicts one class everywhere looks good on no mean."""
import numpy as np
import pytest
import torch

from mmseg_plugins.evaluation import (class_metrics, confusion_counts,
                                      mean_metrics)

CLASSES = [f'c{i}' for i in range(8)]


def _background_everywhere(num_classes=8, absent=()):
    """A confusion matrix (rows truth): 74% background, the rest spread
    over the other classes (except ``absent``), all predicted background."""
    label = np.full(num_classes, 26 / (num_classes - 1 - len(absent)))
    label[list(absent)] = 0
    label[0] = 74
    matrix = np.zeros((num_classes, num_classes))
    matrix[:, 0] = label * 100
    return matrix


def test_one_class_everywhere_looks_good_on_no_mean():
    means = mean_metrics(class_metrics(*confusion_counts(
        _background_everywhere())))
    assert means['aAcc'] == 74.0  # the only number that may look good
    for name in ('mIoU', 'mAcc', 'mDice', 'mFscore', 'mPrecision',
                 'mRecall'):
        assert means[name] < 20, (name, means[name])
    # Dice and F1 are the same per class, so are their means
    assert means['mDice'] == means['mFscore']
    assert means['mAcc'] == means['mRecall']


def test_mmseg_iou_metric_skips_never_predicted_classes():
    """The issue's numbers: mmseg's mFscore twice its mDice; ours equal."""
    from mmseg.evaluation.metrics import IoUMetric
    intersect, union, pred, label = (torch.tensor(a) for a in
                                     confusion_counts(
                                         _background_everywhere()))
    theirs = IoUMetric.total_area_to_metrics(
        intersect, union, pred, label, ['mIoU', 'mDice', 'mFscore'])
    ours = class_metrics(intersect.numpy(), union.numpy(), pred.numpy(),
                         label.numpy())
    assert np.isnan(np.asarray(theirs['Precision'])).sum() == 7
    assert np.nanmean(np.asarray(theirs['Fscore'])) > 0.8  # "looks good"
    assert (ours['Precision'][1:] == 0).all()
    np.testing.assert_allclose(ours['Fscore'], ours['Dice'])


def test_classes_absent_everywhere_are_left_out_of_every_mean():
    matrix = _background_everywhere(absent=(5, 6))
    matrix[1, 1], matrix[1, 0] = matrix[1, 0], 0  # class 1 right
    per_class = class_metrics(*confusion_counts(matrix))
    for name in ('IoU', 'Acc', 'Dice', 'Fscore', 'Precision', 'Recall'):
        values = per_class[name]
        assert np.isnan(values[[5, 6]]).all()  # left out, equally
        assert not np.isnan(values[[0, 1, 2, 3, 4, 7]]).any()
    means = mean_metrics(per_class)
    assert means['mIoU'] == pytest.approx(
        100 * np.mean(per_class['IoU'][[0, 1, 2, 3, 4, 7]]), abs=0.01)
    # a class predicted but absent from the labels: recall 0, counted
    matrix = np.array([[10., 5.], [0., 0.]])
    per_class = class_metrics(*confusion_counts(matrix))
    assert per_class['Recall'].tolist() == [10 / 15, 0.0]
    assert per_class['Precision'].tolist() == [1.0, 0.0]


def test_registered_metric_computes_the_same_and_mmseg_is_unchanged():
    from mmengine.registry import METRICS as ROOT_METRICS
    from mmengine.registry import init_default_scope
    from mmseg.registry import METRICS
    init_default_scope('mmseg')
    assert METRICS.get('IoUMetric').__module__.startswith('mmseg.')
    metric = ROOT_METRICS.build(dict(type='mmseg_plugins.ClassMeanIoUMetric',
                                     iou_metrics=['mIoU', 'mDice',
                                                  'mFscore']))
    metric.dataset_meta = dict(classes=CLASSES[:3])
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    gt[0, :, 2:] = 1
    sample = dict(pred_sem_seg=dict(data=torch.zeros(1, 4, 4,
                                                     dtype=torch.long)),
                  gt_sem_seg=dict(data=gt))
    metric.process([], [sample])
    got = metric.compute_metrics(metric.results)
    assert got['aAcc'] == 50.0
    # class 2 (absent from both) left out; class 1 never predicted: 0
    assert got['mIoU'] == 25.0 and got['mPrecision'] == 25.0
    assert got['mFscore'] == got['mDice']


def test_test_tool_puts_the_metric_in_place_of_iou_metric():
    from mmengine.config import Config

    from mmseg_plugins.evaluation import use_class_mean_metric
    cfg = Config(dict(
        val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        test_evaluator=[dict(type='IoUMetric', iou_metrics=['mDice']),
                        dict(type='CityscapesMetric')]))
    assert use_class_mean_metric(cfg) == 2
    assert cfg.val_evaluator == dict(type='mmseg_plugins.ClassMeanIoUMetric',
                                     iou_metrics=['mIoU'])
    assert cfg.test_evaluator[0].type == 'mmseg_plugins.ClassMeanIoUMetric'
    assert cfg.test_evaluator[1].type == 'CityscapesMetric'
