"""The training curve of a run: the training loss by iteration and the
validation metrics of each evaluation, read from the ``scalars.json`` that
mmengine's ``LocalVisBackend`` (in mmseg's default runtime) writes to
``WORK_DIR/<timestamp>/vis_data/``, drawn as one PNG.

Each line of ``scalars.json`` is one JSON record with a ``step``: training
records (every ``LoggerHook`` interval) carry ``loss`` and its parts
(``decode.loss_ce`` ...), ``lr``, ``time``; validation records carry the
metrics (``aAcc``, ``mIoU``, ``mAcc``, ``mDice`` ...). The step is the
iteration of an iteration-based run (the epoch of an epoch-based run's
validation records).
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InvalidInputError
from ..fileio import atomic_path

__all__ = ['find_scalars', 'read_scalars', 'TrainingCurve',
           'plot_training_curve']

#: Keys of the training records that are not losses or accuracies.
_BOOKKEEPING = ('step', 'iter', 'epoch', 'time', 'data_time', 'memory',
                'lr', 'base_lr')

Series = List[Tuple[int, float]]

#: (line style, marker) of each validation metric in turn, so that curves
#: lying on each other (mAcc and mRecall are the same quantity) stay
#: visible
STYLES = (('-', 'o'), ('--', 's'), (':', '^'), ('-.', 'D'),
          ((0, (5, 1)), 'v'), ((0, (3, 1, 1, 1)), 'P'), ('-', 'x'),
          ('--', '*'))
#: means that mmseg's IoUMetric takes over the classes ever predicted only
SKIPPING_MEANS = ('mFscore', 'mPrecision')


def find_scalars(path: str) -> str:
    """``path`` itself if it is a file, else the newest run's
    ``scalars.json`` under the work directory ``path``.

    Raises:
        InvalidInputError: no such path, or no training log under it.
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise InvalidInputError(f'no such file or folder: {path}')
    # run folders are timestamps (YYYYmmdd_HHMMSS): the last sorts newest
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data',
                                      'scalars.json')))
    if not found:
        raise InvalidInputError(
            f'no training log under {path}: looked for '
            f'<timestamp>/vis_data/scalars.json (mmengine\'s '
            f'LocalVisBackend writes it)')
    return found[-1]


class TrainingCurve:
    """The series of one run.

    Attributes:
        train (dict): ``name -> [(step, value), ...]`` of the training
            records' losses and accuracies (``loss`` always).
        val (dict): ``name -> [(step, value), ...]`` of the validation
            metrics.
    """

    def __init__(self, train: Dict[str, Series],
                 val: Dict[str, Series]) -> None:
        self.train, self.val = train, val

    def skips_unpredicted(self) -> bool:
        """Whether the log's ``mFscore`` differs from its ``mDice`` (the
        same per class): mmseg's ``IoUMetric`` wrote it, which leaves the
        classes never predicted out of ``mFscore`` and ``mPrecision``."""
        dice = dict(self.val.get('mDice', []))
        return any(abs(dice[step] - value) > 0.01
                   for step, value in self.val.get('mFscore', [])
                   if step in dice)

    def best(self, metric: str) -> Optional[Tuple[int, float]]:
        """``(step, value)`` of the highest value of a validation metric."""
        series = self.val.get(metric)
        return max(series, key=lambda p: p[1]) if series else None

    def summary(self) -> List[str]:
        loss = self.train['loss']
        lines = [f'{len(loss)} training records, steps {loss[0][0]} to '
                 f'{loss[-1][0]}: loss {loss[0][1]:.4f} -> {loss[-1][1]:.4f}']
        evaluations = max((len(s) for s in self.val.values()), default=0)
        lines.append(f'{evaluations} evaluations')
        for metric in sorted(self.val):
            step, value = self.best(metric)
            last = self.val[metric][-1]
            lines.append(f'{metric}: best {value:.2f} at step {step}, last '
                         f'{last[1]:.2f} at step {last[0]}')
        if self.skips_unpredicted():
            lines.append(
                'note: mFscore differs from mDice (equal per class): this '
                'log\'s mFscore and mPrecision leave out the classes never '
                'predicted (mmseg\'s IoUMetric) and overrate such a model; '
                'mmseg_plugins.ClassMeanIoUMetric (in the configs '
                'prepare_dataset.py writes) counts them as 0')
        return lines


def read_scalars(path: str) -> TrainingCurve:
    """Read a ``scalars.json``.

    Raises:
        InvalidInputError: a line that is not a JSON record, or no
            training record with a ``loss``.
    """
    train: Dict[str, Series] = {}
    val: Dict[str, Series] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or 'step' not in record:
                raise InvalidInputError(
                    f'{path}, line {number}: not a JSON record with a '
                    f'"step" (is this mmengine\'s scalars.json?)')
            target = train if 'loss' in record else val
            for key, value in record.items():
                if key in _BOOKKEEPING or isinstance(value, bool) or \
                        not isinstance(value, (int, float)):
                    continue
                target.setdefault(key, []).append(
                    (int(record['step']), float(value)))
    if 'loss' not in train:
        raise InvalidInputError(f'{path} holds no training record with a '
                                f'loss')
    return TrainingCurve(train, val)


def plot_training_curve(curve: TrainingCurve, out: str,
                        metrics: Optional[Sequence[str]] = None,
                        title: str = '') -> None:
    """Draw the loss (left) and the validation ``metrics`` (right; default:
    the mean metrics present, ``mIoU`` first) by step into the PNG ``out``,
    atomically.

    Raises:
        InvalidInputError: a metric the log does not hold.
    """
    if metrics is None:
        metrics = sorted((m for m in curve.val if m.startswith('m')),
                         key=lambda m: (m != 'mIoU', m))
    missing = [m for m in metrics if m not in curve.val]
    if missing:
        have = ', '.join(sorted(curve.val)) or 'none'
        raise InvalidInputError(f'the log holds no {", ".join(missing)} '
                                f'(validation metrics: {have})')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = 2 if metrics else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8),
                             squeeze=False)
    loss_ax = axes[0][0]
    steps, values = zip(*curve.train['loss'])
    loss_ax.plot(steps, values, color='tab:blue', linewidth=1)
    loss_ax.set(xlabel='iteration', ylabel='training loss',
                title='training loss')
    loss_ax.grid(alpha=0.3)
    if metrics:
        ax = axes[0][1]
        skipping = curve.skips_unpredicted()
        drawn = {}
        for i, metric in enumerate(metrics):
            series = curve.val[metric]
            label = metric
            same = drawn.get(tuple(series))
            if same:
                label += f' (= {same})'
            elif skipping and metric in SKIPPING_MEANS:
                label += ' (never-predicted classes left out)'
            drawn.setdefault(tuple(series), metric)
            steps, values = zip(*series)
            style, marker = STYLES[i % len(STYLES)]
            ax.plot(steps, values, linestyle=style, marker=marker,
                    markersize=4 + 1.5 * (i % 3), fillstyle='none',
                    linewidth=1.2, label=label)
        ax.set(xlabel='iteration', ylabel='%', title='validation')
        ax.grid(alpha=0.3)
        # beside the axes, so that no curve is covered
        ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches='tight')
    plt.close(fig)
