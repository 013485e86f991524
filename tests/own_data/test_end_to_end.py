"""prepare -> train (2 iterations, 64x64 images) -> test -> confusion
matrix, with mmseg's flow through the repository's unchanged tools: the one
training run of the own-data tests."""
import csv
import glob
import os.path as osp
import re

import numpy as np

from own_data_helpers import (load_tool, make_dataset, prepared_config,
                              run_tool_main)


def _run_script(tool, argv, capsys, monkeypatch):
    """train.py/test.py through their ``main(argv)``."""
    return run_tool_main(tool, argv, capsys)


def test_colour_masks_prepare_train_test_confusion(tmp_path, capsys,
                                                   monkeypatch):
    root = str(tmp_path / 'data')
    make_dataset(root, layout='flat', fmt='colour', n=(4, 2), size=64)
    classes = tmp_path / 'classes.txt'
    classes.write_text('background 0 0 0\ndisk 220 60 60\n'
                       'square 60 180 75\ntriangle 65 105 225\n')
    out = str(tmp_path / 'out')
    code, report, err = run_tool_main(load_tool('prepare_dataset.py'), [
        root, '--model', 'demo/segformer_mit-b0_shapes-128x128', '--out',
        out, '--iters', '2', '--batch-size', '2', '--num-workers', '0',
        '--classes-file', str(classes)], capsys)
    assert code == 0, err
    assert 'disk' in report and 'RGB colour masks' in report
    # the passes over the training images that --iters 2 makes
    epochs, n_train = re.search(r'max_iters=2: ([\d.]+) epochs of (\d+) '
                                r'images at batch 2 \(--iters;',
                                report).groups()
    assert float(epochs) == round(2 * 2 / int(n_train), 1)
    config = prepared_config(out)
    assert osp.basename(config) == 'data_segformer_mit-b0_shapes-128x128.py'
    work = str(tmp_path / 'work')
    code, _, err = _run_script(load_tool('train.py'),
                               [config, '--work-dir', work], capsys,
                               monkeypatch)
    assert code == 0, err
    best = glob.glob(osp.join(work, 'best_mIoU_iter_*.pth'))
    assert best, 'no best-mIoU checkpoint'
    code, out_text, err = _run_script(
        load_tool('test.py'), [config, osp.join(work, 'iter_2.pth'),
                               '--work-dir', work], capsys, monkeypatch)
    assert code == 0, err
    # the table came from the plugin's metric: its rule ends the table
    logs = ''
    for path in glob.glob(osp.join(work, '*', '*.log')):
        with open(path) as f:
            logs += f.read()
    assert 'means over the classes present in the labels or the ' \
        'predictions' in logs
    cm_dir = str(tmp_path / 'cm')
    code, text, err = run_tool_main(
        load_tool(osp.join('analysis_tools', 'confusion_matrix.py')),
        [config, osp.join(work, 'iter_2.pth'), '--out', cm_dir], capsys)
    assert code == 0, err
    with open(osp.join(cm_dir, 'confusion_matrix.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == ['background', 'disk', 'square', 'triangle']
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    with open(osp.join(out, 'splits', 'val.txt')) as f:
        n_val = len(f.read().split())
    assert counts.sum() == n_val * 64 * 64  # every val pixel counted
    with open(osp.join(cm_dir, 'confusion_matrix.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # the recall printed equals the test's per-class Acc from the same
    # counts: diagonal over row
    recall = counts[1, 1] / counts[1].sum()
    assert f'disk: {counts[1].sum()} px, recall {recall:.1%}' in text
