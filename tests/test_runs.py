"""Tests of mmseg_plugins/runs.py: the configs of training and test runs,
checked and prepared in-process (the runs themselves: tests/tools/ and
tests/own_data/test_end_to_end.py)."""
import os.path as osp

import pytest
import torch

from helpers import DEMO_CONFIG
from mmseg_plugins.demo_data import data_root_options
from mmseg_plugins.errors import (CheckpointError, InvalidInputError,
                                  MMSegPluginsError)
from mmseg_plugins.runs import (EvaluationOptions, TrainOptions,
                                evaluation_config, train_config)


def test_train_config_is_checked_and_prepared(demo_root, tmp_path,
                                              monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    options = dict(data_root_options(demo_root),
                   **{'compile.backend': 'aot_eager'})
    cfg = train_config(TrainOptions(DEMO_CONFIG, cfg_options=options,
                                    resume=True))
    assert cfg.work_dir == osp.join(
        './work_dirs', osp.splitext(osp.basename(DEMO_CONFIG))[0])
    assert cfg.resume and cfg.launcher == 'none' and 'compile' not in cfg
    assert cfg.custom_hooks[-1] == dict(type='mmseg_plugins.CompileHook',
                                        mode=None, backend='aot_eager')
    work = str(tmp_path / 'work')
    assert train_config(TrainOptions(
        DEMO_CONFIG, work, data_root_options(demo_root))).work_dir == work
    with pytest.raises(InvalidInputError, match='needs a CUDA device'):
        train_config(TrainOptions(DEMO_CONFIG, work,
                                  data_root_options(demo_root), amp='fp16'))
    with pytest.raises(MMSegPluginsError, match='no_such_folder'):
        train_config(TrainOptions(DEMO_CONFIG, work, data_root_options(
            str(tmp_path / 'no_such_folder'))))
    assert not osp.exists(work)


def test_evaluation_config_is_checked_and_prepared(demo_root,
                                                   demo_checkpoint,
                                                   tmp_path):
    def config(**changes):
        options = dict(config=DEMO_CONFIG, checkpoint=demo_checkpoint,
                       work_dir=str(tmp_path / 'work'),
                       cfg_options=data_root_options(demo_root))
        options.update(changes)
        return evaluation_config(EvaluationOptions(**options))

    cfg = config(out=str(tmp_path / 'pred'), show_dir=str(tmp_path / 'vis'))
    assert cfg.test_evaluator.type == 'mmseg_plugins.ClassMeanIoUMetric'
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'pred')
    assert cfg.test_evaluator.keep_results
    assert cfg.default_hooks.visualization.draw
    assert cfg.visualizer.save_dir == str(tmp_path / 'vis')
    # loaded strictly by the package's hook, not by mmengine's load_from
    assert cfg.load_from is None
    assert [h for h in cfg.custom_hooks
            if h.type == 'mmseg_plugins.StrictLoadHook'][0].checkpoint == \
        demo_checkpoint
    # fused for inference after loading, unless asked not to
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks.index('mmseg_plugins.FuseHook') > hooks.index(
        'mmseg_plugins.StrictLoadHook')
    assert 'mmseg_plugins.FuseHook' not in [
        h.type for h in config(fuse=False).custom_hooks]
    tta = config(tta=True)
    assert tta.model.module.type == cfg.model.type
    assert tta.test_dataloader.dataset.pipeline == tta.tta_pipeline
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        config(checkpoint=str(tmp_path / 'none.pth'))
    plain = tmp_path / 'no_tta.py'
    plain.write_text("model = dict(type='EncoderDecoder')\n")
    with pytest.raises(InvalidInputError, match='--tta needs tta_pipeline '
                       'and tta_model in the config'):
        config(config=str(plain), tta=True)
    assert not osp.exists(tmp_path / 'work')
