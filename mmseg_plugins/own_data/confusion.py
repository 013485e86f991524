"""The confusion matrix of a segmentor on its config's test set, counted by
running the model (mmseg 1.x's ``test.py`` writes no results file for its
``confusion_matrix.py`` to read), written as counts (CSV) and as a
row-normalised picture with the class names (PNG)."""
import copy
import csv
import io
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..fileio import atomic_path, atomic_write

__all__ = ['count_confusion', 'confusion_csv', 'plot_confusion',
           'confusion_summary', 'model_confusion', 'write_confusion']


def count_confusion(model: torch.nn.Module, dataloader, num_classes: int,
                    ignore_index: int = 255,
                    step: Optional[Callable[[], None]] = None) -> np.ndarray:
    """Pixel counts ``matrix[gt, pred]`` over the dataloader's samples
    (pixels labelled ``ignore_index`` or outside the classes left out).

    Args:
        model: an mmseg segmentor in eval mode (its ``test_step`` runs the
            data preprocessor and resizes predictions to the label maps).
        dataloader: yields mmseg data batches with ``gt_sem_seg``.
        num_classes (int): classes of the model.
        step (callable, optional): called after each batch (progress).

    Returns:
        ndarray: (num_classes, num_classes) int64, rows ground truth.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    with torch.no_grad():
        for batch in dataloader:
            for sample in model.test_step(batch):
                gt = sample.gt_sem_seg.data.cpu().numpy().ravel()
                pred = sample.pred_sem_seg.data.cpu().numpy().ravel()
                if gt.shape != pred.shape:
                    raise ConfigError(
                        f'prediction of {sample.img_path} has '
                        f'{pred.size} pixels, its label map {gt.size}')
                keep = (gt != ignore_index) & (gt < num_classes)
                matrix += np.bincount(
                    gt[keep].astype(np.int64) * num_classes +
                    pred[keep].astype(np.int64),
                    minlength=num_classes ** 2).reshape(num_classes, -1)
            if step:
                step()
    return matrix


def confusion_csv(matrix: np.ndarray, classes: Sequence[str]) -> str:
    """Counts as CSV: a header of predicted classes, one row per
    ground-truth class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['ground truth \\ predicted'] + list(classes))
    for name, row in zip(classes, matrix):
        writer.writerow([name] + [int(v) for v in row])
    return buf.getvalue()


def confusion_summary(matrix: np.ndarray,
                      classes: Sequence[str]) -> List[str]:
    """Per class: recall (row share on the diagonal), precision (column
    share) and the class it is most confused with; then the means, by the
    rule of :mod:`mmseg_plugins.evaluation` (a class present in the labels
    or the predictions counts in every mean, a 0/0 ratio as 0)."""
    from ..evaluation import (MEAN_RULE, class_metrics, confusion_counts,
                              mean_metrics)
    lines = []
    for i, name in enumerate(classes):
        row, col = matrix[i].sum(), matrix[:, i].sum()
        recall = matrix[i, i] / row if row else float('nan')
        precision = matrix[i, i] / col if col else float('nan')
        off = matrix[i].copy()
        off[i] = 0
        worst = (f', most often taken for {classes[int(off.argmax())]} '
                 f'({off.max() / row:.1%})') if row and off.max() else ''
        lines.append(f'{name}: {int(row)} px, recall {recall:.1%}, '
                     f'precision {precision:.1%}{worst}')
    per_class = class_metrics(*confusion_counts(matrix))
    counted = int((~np.isnan(per_class['IoU'])).sum())
    means = mean_metrics(per_class)
    lines.append(', '.join(f'{k} {v:.2f}' for k, v in means.items()) +
                 f' ({MEAN_RULE}: {counted} of {len(classes)} classes)')
    return lines


def plot_confusion(matrix: np.ndarray, classes: Sequence[str],
                   path: str) -> None:
    """Row-normalised matrix (each ground-truth row sums to 1) as a PNG
    with the class names, written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, float),
                     where=rows > 0)
    n = len(classes)
    side = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90 if n > 6 else 45,
                  ha='right' if n <= 6 else 'center')
    ax.set_yticks(range(n), classes)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    ax.set_title('confusion matrix (row-normalised)')
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f'{norm[i, j]:.2f}', ha='center',
                        va='center', fontsize=7,
                        color='white' if norm[i, j] > 0.5 else 'black')
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=100)
    plt.close(fig)


def model_confusion(cfg, checkpoint: str, device: str = 'cpu',
                    step: Optional[Callable[[], None]] = None):
    """Build the config's model with ``checkpoint`` and its test dataloader
    and count the confusion matrix.

    Returns:
        tuple: (matrix, class names).
    """
    from mmengine.runner import Runner

    from ..builder import build_segmentor
    from ..config import dataset_meta
    from ..hooks import stop_loader_workers
    model, meta = build_segmentor(cfg, checkpoint, device)
    num_classes = int(model.decode_head.num_classes)
    if not cfg.get('test_dataloader'):
        raise ConfigError(f'{cfg.filename} has no test_dataloader')
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
    ignore = int(getattr(model.decode_head, 'ignore_index', 255))
    try:
        matrix = count_confusion(model, loader, num_classes, ignore, step)
    finally:
        stop_loader_workers(loader)
    classes = list(dataset_meta(cfg, meta, num_classes)['classes'])
    return matrix, classes


def write_confusion(matrix: np.ndarray, classes: Sequence[str],
                    csv_path: str, png_path: str) -> None:
    """The CSV of counts and the PNG picture, each written atomically."""
    text = confusion_csv(matrix, classes)
    atomic_write(csv_path, lambda f: f.write(text.encode()))
    plot_confusion(matrix, classes, png_path)
