"""Segmentation metrics with one rule for every mean over the classes.

mmseg's ``IoUMetric`` averages each per-class metric with ``nanmean``, so a
class whose ratio is 0/0 drops out of that mean alone: a class never
predicted has precision 0/0 and leaves ``mPrecision`` and ``mFscore``,
while it counts as 0 in ``mIoU`` and ``mDice``. A model that predicts the
background everywhere then shows a high ``mFscore`` (the background's),
and ``mDice`` and ``mFscore`` differ although Dice and F1 are the same per
class. :class:`ClassMeanIoUMetric`
(``type='mmseg_plugins.ClassMeanIoUMetric'``; mmseg's own ``IoUMetric`` is
left as it is) uses one rule:

- a class present in the labels or in the predictions counts in **every**
  mean; a ratio of such a class that is 0/0 is 0 (never predicted:
  precision 0; predicted but absent from the labels: recall 0), so its IoU,
  Dice, F-score, precision and recall are all 0 when it is never right;
- a class absent from both the labels and the predictions is left out of
  **every** mean (its row shows ``nan``): nothing about it was measured.

With F-score's beta 1, ``mFscore`` then equals ``mDice``.
"""
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation.metrics import IoUMetric
from prettytable import PrettyTable

from .registry import METRICS

__all__ = ['class_metrics', 'mean_metrics', 'confusion_counts',
           'ClassMeanIoUMetric', 'MEAN_RULE', 'use_class_mean_metric']

#: the rule, in one line, for reports
MEAN_RULE = ('means over the classes present in the labels or the '
             'predictions; a 0/0 ratio of such a class counts as 0')


def _ratio(num: np.ndarray, den: np.ndarray, counted: np.ndarray):
    """num / den; 0 where den is 0 and the class counts, NaN where it is
    left out."""
    out = np.divide(num, den, out=np.zeros(num.shape, float),
                    where=den > 0)
    out[~counted] = np.nan
    return out


def class_metrics(intersect: np.ndarray, union: np.ndarray,
                  pred: np.ndarray, label: np.ndarray,
                  metrics: Sequence[str] = ('mIoU', 'mDice', 'mFscore'),
                  beta: float = 1) -> 'OrderedDict[str, np.ndarray]':
    """Per-class metrics (fractions) under the rule of the module
    docstring, mmseg's names: ``aAcc`` (a scalar), then per ``mIoU``:
    ``IoU``, ``Acc``; ``mDice``: ``Dice``; ``mFscore``: ``Fscore``,
    ``Precision``, ``Recall``.

    Args:
        intersect, union, pred, label: (num_classes, ) pixel counts: the
            correct pixels, the union, the predicted and the labelled
            pixels of each class.
    """
    intersect, union, pred, label = (np.asarray(a, np.float64) for a in
                                     (intersect, union, pred, label))
    counted = (label > 0) | (pred > 0)
    out = OrderedDict(aAcc=intersect.sum() / max(label.sum(), 1))
    recall = _ratio(intersect, label, counted)
    precision = _ratio(intersect, pred, counted)
    for metric in metrics:
        if metric == 'mIoU':
            out['IoU'] = _ratio(intersect, union, counted)
            out['Acc'] = recall
        elif metric == 'mDice':
            out['Dice'] = _ratio(2 * intersect, pred + label, counted)
        elif metric == 'mFscore':
            out['Fscore'] = _ratio((1 + beta ** 2) * precision * recall,
                                   beta ** 2 * precision + recall, counted)
            out['Precision'] = precision
            out['Recall'] = recall
        else:
            raise KeyError(f'metrics {metric} is not supported')
    return out


def confusion_counts(matrix: np.ndarray):
    """(intersect, union, pred, label) per class of a confusion matrix
    (rows ground truth, columns prediction), for :func:`class_metrics`."""
    matrix = np.asarray(matrix, np.float64)
    intersect = np.diag(matrix)
    label, pred = matrix.sum(1), matrix.sum(0)
    return intersect, label + pred - intersect, pred, label


def use_class_mean_metric(cfg) -> int:
    """Replace mmseg's ``IoUMetric`` in a config's ``val_evaluator`` and
    ``test_evaluator`` (alone or in a list) by :class:`ClassMeanIoUMetric`
    with the same arguments.

    Returns:
        int: how many were replaced.
    """
    replaced = 0
    for key in ('val_evaluator', 'test_evaluator'):
        node = cfg.get(key)
        for metric in node if isinstance(node, (list, tuple)) else [node]:
            if hasattr(metric, 'get') and \
                    metric.get('type') in ('IoUMetric', 'mmseg.IoUMetric'):
                metric['type'] = 'mmseg_plugins.ClassMeanIoUMetric'
                replaced += 1
    return replaced


def mean_metrics(per_class: Dict[str, np.ndarray]) -> Dict[str, float]:
    """``aAcc`` and ``m<name>`` of each per-class metric, in percent (two
    decimals), the mean over the counted classes (the non-NaN ones)."""
    out = {}
    for name, values in per_class.items():
        if name == 'aAcc':
            out[name] = float(np.round(values * 100, 2))
            continue
        kept = values[~np.isnan(values)]
        out['m' + name] = float(np.round(kept.mean() * 100, 2)) \
            if kept.size else float('nan')
    return out


@METRICS.register_module()
class ClassMeanIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (same arguments, same per-sample counts, same
    keys) with one rule for every mean over the classes: a class present
    in the labels or the predictions counts in every mean, a 0/0 ratio of
    it counting as 0 (never predicted: precision 0, not left out); a class
    absent from both is left out of every mean (see
    :mod:`mmseg_plugins.evaluation`)."""

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        logger = MMLogger.get_current_instance()
        totals = [sum(r) for r in zip(*results)]
        per_class = class_metrics(*(np.asarray(t) for t in totals),
                                  metrics=self.metrics, beta=self.beta)
        metrics = mean_metrics(per_class)
        per_class.pop('aAcc')
        classes = list(self.dataset_meta['classes'])
        table = PrettyTable()
        table.add_column('Class', classes)
        for name, values in per_class.items():
            table.add_column(name, np.round(values * 100, 2))
        counted = int((~np.isnan(next(iter(per_class.values())))).sum())
        print_log('per class results:', logger)
        print_log('\n' + table.get_string(), logger=logger)
        print_log(f'{MEAN_RULE} ({counted} of {len(classes)} classes)',
                  logger=logger)
        return metrics
