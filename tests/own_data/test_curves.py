"""The training curve (mmseg_plugins/own_data/curves.py and
tools/analysis_tools/plot_training.py): read from mmengine's scalars.json,
drawn atomically, bad input refused."""
import json
import os.path as osp

import pytest

from helpers import ROOT, assert_refused, call
from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.own_data.curves import (find_scalars, plot_training_curve,
                                           read_scalars)

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'plot_training.py')


def _log(work_dir, run='20261204_030000'):
    """A scalars.json as mmengine writes it: training records every 2
    iterations, validation at 4 and 8."""
    folder = work_dir / run / 'vis_data'
    folder.mkdir(parents=True)
    lines = []
    for step in range(2, 9, 2):
        lines.append(dict(lr=1e-3, data_time=0.01, loss=2.0 / step,
                          **{'decode.loss_ce': 2.0 / step,
                             'decode.acc_seg': 10.0 * step},
                          time=0.5, iter=step, memory=0, step=step))
        if step % 4 == 0:
            lines.append(dict(aAcc=80.0 + step, mIoU=40.0 + step,
                              mAcc=50.0 + step, data_time=0.01, time=0.1,
                              step=step))
    path = folder / 'scalars.json'
    path.write_text(''.join(json.dumps(r) + '\n' for r in lines))
    return path


def test_reads_training_and_validation_series(tmp_path):
    path = _log(tmp_path)
    assert find_scalars(str(tmp_path)) == str(path)
    curve = read_scalars(str(path))
    assert curve.train['loss'] == [(2, 1.0), (4, 0.5), (6, 2 / 6),
                                   (8, 0.25)]
    assert sorted(curve.train) == ['decode.acc_seg', 'decode.loss_ce',
                                   'loss']
    assert sorted(curve.val) == ['aAcc', 'mAcc', 'mIoU']
    assert curve.best('mIoU') == (8, 48.0)
    assert curve.summary()[:2] == [
        '4 training records, steps 2 to 8: loss 1.0000 -> 0.2500',
        '2 evaluations']
    # the newest run of the work directory is read
    newer = _log(tmp_path, '20261204_040000')
    assert find_scalars(str(tmp_path)) == str(newer)


def test_tool_draws_the_png_and_prints_the_best(tmp_path):
    _log(tmp_path / 'work')
    out = tmp_path / 'curve.png'
    proc = call(TOOL, str(tmp_path / 'work'), '--out', str(out),
                '--title', 'demo')
    assert proc.returncode == 0, proc.stderr
    assert 'mIoU: best 48.00 at step 8, last 48.00 at step 8' in proc.stdout
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['curve.png',
                                                          'work']


@pytest.mark.parametrize('case,pattern', [
    ('missing', 'no such file or folder'),
    ('empty work dir', 'no training log under'),
    ('not json', r'line 1: not a JSON record with a "step"'),
    ('no loss', 'holds no training record with a loss'),
    ('unknown metric', r'holds no mDice \(validation metrics: aAcc, mAcc, '
                       r'mIoU\)'),
    ('no output dir', 'output directory .* does not exist'),
])
def test_tool_refuses_and_writes_nothing(tmp_path, case, pattern):
    work = tmp_path / 'work'
    work.mkdir()
    out = tmp_path / 'curve.png'
    extra = []
    if case == 'missing':
        work = tmp_path / 'nowhere'
    elif case == 'not json':
        (work / 'scalars.json').write_text('loss 0.5\n')
        work = work / 'scalars.json'
    elif case == 'no loss':
        (work / 'scalars.json').write_text('{"mIoU": 40.0, "step": 4}\n')
        work = work / 'scalars.json'
    elif case == 'unknown metric':
        _log(work)
        extra = ['--metrics', 'mIoU', 'mDice']
    elif case == 'no output dir':
        _log(work)
        out = tmp_path / 'no' / 'curve.png'
    assert_refused(call(TOOL, str(work), '--out', str(out), *extra),
                   pattern)
    assert not out.exists()
    assert not list(tmp_path.glob('*.png')) + list(tmp_path.glob('.*png*'))


def test_plot_refuses_unknown_metric_before_drawing(tmp_path):
    curve = read_scalars(str(_log(tmp_path)))
    with pytest.raises(InvalidInputError, match='no mFscore'):
        plot_training_curve(curve, str(tmp_path / 'x.png'), ['mFscore'])
    assert not (tmp_path / 'x.png').exists()


def test_each_metric_drawn_visibly_and_skipping_means_flagged(tmp_path):
    """mAcc and mRecall (the same numbers) get their own style; the legend
    lies beside the axes; a log whose mFscore differs from its mDice
    (mmseg's IoUMetric) is flagged."""
    from unittest import mock
    path = _log(tmp_path)
    curve = read_scalars(str(path))
    curve.val['mRecall'] = list(curve.val['mAcc'])
    curve.val['mDice'] = [(4, 20.0), (8, 24.0)]
    curve.val['mFscore'] = [(4, 40.0), (8, 48.0)]
    assert curve.skips_unpredicted()
    assert any('leave out the classes never predicted' in line
               for line in curve.summary())
    import matplotlib.axes
    calls = []
    legends = []
    plot, legend = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.legend
    with mock.patch.object(matplotlib.axes.Axes, 'plot', autospec=True,
                           side_effect=lambda ax, *a, **k: calls.append(k)
                           or plot(ax, *a, **k)), \
            mock.patch.object(matplotlib.axes.Axes, 'legend', autospec=True,
                              side_effect=lambda ax, *a, **k:
                              legends.append(k) or legend(ax, *a, **k)):
        plot_training_curve(curve, str(tmp_path / 'c.png'))
    metric_calls = [k for k in calls if 'label' in k]
    styles = {(str(k['linestyle']), k['marker']) for k in metric_calls}
    assert len(styles) == len(metric_calls) == 5
    labels = [k['label'] for k in metric_calls]
    assert 'mRecall (= mAcc)' in labels
    assert 'mFscore (never-predicted classes left out)' in labels
    assert legends[0]['bbox_to_anchor'][0] > 1  # outside the axes
    curve.val['mFscore'] = list(curve.val['mDice'])
    assert not curve.skips_unpredicted()
