"""Tests of mmseg_plugins/smp_demo.py and tools/smp_demo.py: the smp
example runs on a tiny copy of the demo data and prints an mIoU, and its
recipe (metric, learning-rate schedule, weight-decay groups) is the demo
config's as mmseg and mmengine compute it."""
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch

from helpers import ROOT, call

pytest.importorskip('segmentation_models_pytorch')
from mmseg_plugins.errors import InvalidInputError  # noqa: E402
from mmseg_plugins.smp_demo import (SmpDemoSettings,  # noqa: E402
                                    build_smp_model, demo_lr_factor,
                                    iou_areas, miou_from_areas,
                                    optimizer_param_groups)

DEMO_RUNTIME = osp.join(ROOT, 'configs', '_base_', 'demo_runtime.py')


def tiny_copy(demo_root, dst, per_split=dict(training=8, validation=4)):
    """The first images of each split of the demo data, same layout."""
    for split, count in per_split.items():
        for sub in ('images', 'annotations'):
            src = osp.join(demo_root, sub, split)
            os.makedirs(osp.join(dst, sub, split))
            for name in sorted(os.listdir(src))[:count]:
                shutil.copy(osp.join(src, name), osp.join(dst, sub, split))
    return str(dst)


def test_tool_trains_and_prints_the_miou(tmp_path, demo_root):
    """... and leaves the caller's global torch random state as it was
    (the run seeds itself inside ``torch.random.fork_rng``)."""
    data = tiny_copy(demo_root, tmp_path / 'data')
    saved = tmp_path / 'model.pth'
    torch.manual_seed(123)
    state = torch.get_rng_state()
    proc = call('tools/smp_demo.py', '--data-root', data, '--iters', '3',
                '--batch-size', '2', '--log-interval', '1',
                '--save', str(saved))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.equal(torch.get_rng_state(), state)
    assert len(re.findall(r'^iter \d/3: loss', proc.stdout, re.M)) == 3
    found = re.search(r'Segformer\(tu-mit_b0\) mIoU (\d+\.\d\d) '
                      r'\(background \d', proc.stdout)
    assert found, proc.stdout
    assert 0 <= float(found.group(1)) <= 100
    # the saved weights are the smp model's
    model = build_smp_model(SmpDemoSettings(), 4)
    model.load_state_dict(torch.load(saved, weights_only=True))


def test_miou_is_mmseg_iou_metric():
    """Same areas and mean as mmseg's IoUMetric: label 255 left out, a
    class absent from labels and predictions (NaN) not averaged, a class
    in the labels but never predicted counted as 0."""
    from mmseg.evaluation.metrics import IoUMetric
    rng = np.random.default_rng(0)
    num_classes = 5
    areas, theirs = np.zeros((4, num_classes), np.int64), []
    for _ in range(3):
        label = rng.integers(0, 3, size=(16, 16))
        label[rng.random((16, 16)) < 0.2] = 255
        label[0, 0] = 3  # class 3: labelled, never predicted
        pred = rng.integers(0, 3, size=(16, 16))  # class 4: nowhere
        areas += iou_areas(pred, label, num_classes)
        theirs.append(IoUMetric.intersect_and_union(
            torch.from_numpy(pred), torch.from_numpy(label), num_classes,
            255))
    totals = [sum(t[i] for t in theirs).numpy() for i in range(4)]
    np.testing.assert_array_equal(areas, np.stack(totals))
    metrics = IoUMetric.total_area_to_metrics(*map(torch.from_numpy, totals),
                                              ['mIoU'])
    miou, iou = miou_from_areas(areas)
    np.testing.assert_allclose(iou, 100 * metrics['IoU'], rtol=1e-6)  # f32
    assert iou[3] == 0 and np.isnan(iou[4])
    assert miou == pytest.approx(100 * np.nanmean(metrics['IoU']), rel=1e-6)


def test_schedule_is_the_demo_configs():
    """demo_lr_factor gives, at every iteration, the lr mmengine's
    schedulers from configs/_base_/demo_runtime.py give."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.optim.scheduler import LinearLR, PolyLR
    cfg = Config.fromfile(DEMO_RUNTIME)
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    kinds = dict(LinearLR=LinearLR, PolyLR=PolyLR)
    schedulers = [kinds[s.pop('type')](wrapper, **s)
                  for s in map(dict, cfg.param_scheduler)]
    settings = SmpDemoSettings()
    peak = cfg.optim_wrapper.optimizer.lr
    assert settings.lr == peak and settings.iters == cfg.max_iters
    for it in range(cfg.max_iters):
        expected = demo_lr_factor(it, settings.warmup_iters, settings.iters)
        assert wrapper.get_lr()['lr'][0] == pytest.approx(
            peak * expected, rel=1e-6, abs=1e-12), it
        # the wrapper's step, which mmengine's schedulers count (no
        # gradients: changes nothing)
        wrapper.step()
        for scheduler in schedulers:
            scheduler.step()


def test_weight_decay_groups_are_the_demo_configs():
    """No decay exactly where mmengine's constructor with the config's
    paramwise_cfg puts none, on the smp model itself."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(DEMO_RUNTIME)
    model = build_smp_model(SmpDemoSettings(), 4)
    theirs = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay_of = {id(p): g['weight_decay'] for g in theirs.param_groups
                for p in g['params']}
    ours = optimizer_param_groups(model,
                                  cfg.optim_wrapper.optimizer.weight_decay)
    mine = {id(p): g['weight_decay'] for g in ours for p in g['params']}
    assert mine == decay_of
    assert sorted(set(mine.values())) == [0.0, 0.01]


def test_bad_settings_are_refused():
    with pytest.raises(InvalidInputError, match="'Linknet': use one of"):
        SmpDemoSettings(decoder='Linknet')
    with pytest.raises(InvalidInputError, match='iters=0'):
        SmpDemoSettings(iters=0)
    with pytest.raises(InvalidInputError, match="'mit_b9': use one of "
                       'mit_b0'):
        SmpDemoSettings(encoder='mit_b9')
    with pytest.raises(InvalidInputError, match="'afformer_tiny': its last "
                       'three stages all run at 1/8'):
        SmpDemoSettings(encoder='afformer_tiny')
