"""mmseg_plugins/own_data/config_writer.py and prepare.py through the
library API: render_config from its dataclasses, prepare_dataset from a
PrepareOptions."""
import os.path as osp
import re

import pytest
from mmengine.config import Config

from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.own_data import PrepareOptions, prepare_dataset
from mmseg_plugins.own_data.config_writer import (DatasetConfig, SplitFiles,
                                                  TrainingSettings,
                                                  render_config,
                                                  resolve_model_config)
from mmseg_plugins.own_data.transforms import BandStatistics

from own_data_helpers import make_dataset, tree_digest

MODEL = 'demo/segformer_mit-b0_shapes-128x128'


def _spec(tmp_path, **settings):
    base = resolve_model_config(MODEL)
    splits = {split: SplitFiles(str(tmp_path / 'img' / split),
                                str(tmp_path / 'ann' / split),
                                str(tmp_path / f'{split}.txt'), '.jpg',
                                '.png') for split in ('train', 'val')}
    values = dict(crop_size=(64, 96), max_iters=40, epochs=2.,
                  iters_option='--epochs', n_train=20, batch_size=1,
                  val_interval=4)
    values.update(settings)
    return DatasetConfig(base, Config.fromfile(base), splits, ['a', 'b'],
                         [(1, 2, 3), (4, 5, 6)], TrainingSettings(**values),
                         test_scale=None, num_workers=0,
                         reduce_zero_label=True, header='# header')


def _load(text, tmp_path):
    path = tmp_path / 'written.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def test_rgb_config_from_settings(tmp_path):
    cfg = _load(render_config(_spec(tmp_path, class_weight=[0.5, 2.])),
                tmp_path)
    dataset = cfg.train_dataloader.dataset
    assert dataset.data_prefix == dict(
        img_path=str(tmp_path / 'img' / 'train'),
        seg_map_path=str(tmp_path / 'ann' / 'train'))
    assert dataset.reduce_zero_label and dataset.seg_map_suffix == '.png'
    assert cfg.val_dataloader.dataset.ann_file == str(tmp_path / 'val.txt')
    assert cfg.crop_size == (64, 96) and cfg.train_cfg.max_iters == 40
    assert cfg.model.decode_head.num_classes == 2
    assert cfg.model.decode_head.loss_decode.class_weight == [0.5, 2.]
    types = [step['type'] for step in cfg.train_pipeline]
    assert types[0] == 'LoadImageFromFile'
    assert 'PhotoMetricDistortion' in types
    assert 'in_channels' not in cfg.model.backbone  # the base config's


def test_band_config_reads_and_normalises_the_bands(tmp_path):
    bands = BandStatistics(4, [1., 2., 3., 4.], [5., 6., 7., 8.], 'uint16')
    cfg = _load(render_config(_spec(tmp_path, bands=bands)), tmp_path)
    assert cfg.train_pipeline[0] == dict(
        type='mmseg_plugins.LoadImageAnyBands', channels=4, dtype='uint16')
    assert cfg.test_pipeline[0] == cfg.train_pipeline[0]
    assert 'PhotoMetricDistortion' not in [
        step['type'] for step in cfg.train_pipeline]
    assert cfg.model.backbone.in_channels == 4
    preprocessor = cfg.model.data_preprocessor
    assert (preprocessor.mean, preprocessor.std, preprocessor.bgr_to_rgb) \
        == ([1., 2., 3., 4.], [5., 6., 7., 8.], False)


def test_class_weight_needs_one_loss(tmp_path):
    spec = _spec(tmp_path, class_weight=[1., 1.])
    spec.base_cfg.model.decode_head.loss_decode = [
        dict(type='CrossEntropyLoss'), dict(type='DiceLoss')]
    with pytest.raises(InvalidInputError, match='is not one loss'):
        render_config(spec)


def test_prepare_dataset_from_options(tmp_path):
    root = str(tmp_path / 'data')
    make_dataset(root, layout='flat', n=(4, 2), size=32)
    before = tree_digest(root)
    result = prepare_dataset(PrepareOptions(
        root, MODEL, str(tmp_path / 'out'), max_iters=3, batch_size=2,
        num_workers=0))
    assert result.config == str(tmp_path / 'out' /
                                'data_segformer_mit-b0_shapes-128x128.py')
    assert result.skipped == 0 and result.converted == 0
    assert re.search(r'max_iters=3: [\d.]+ epochs of \d+ images at batch 2 '
                     r'\(--iters;', result.report)
    cfg = Config.fromfile(result.config)
    assert cfg.train_cfg.max_iters == 3
    assert cfg.train_dataloader.batch_size == 2
    assert osp.isfile(tmp_path / 'out' / 'splits' / 'train.txt')
    assert tree_digest(root) == before
    with pytest.raises(InvalidInputError, match='inside the data folder'):
        prepare_dataset(PrepareOptions(root, MODEL, osp.join(root, 'o')))
