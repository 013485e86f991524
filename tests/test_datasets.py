"""Tests of mmseg_plugins/datasets.py."""
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope

from helpers import PYTHON, ROOT, run
from mmseg_plugins.datasets import DemoShapesDataset
from mmseg_plugins.demo_data import SHAPES_METAINFO


def test_mmseg_registry_builds_the_demo_dataset_by_scoped_name(demo_root):
    from mmseg.registry import DATASETS

    import mmseg_plugins
    assert mmseg_plugins.DATASETS.scope == 'mmseg_plugins'
    assert mmseg_plugins.DATASETS.parent is DATASETS
    assert 'DemoShapesDataset' not in DATASETS.module_dict  # no collision
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='mmseg_plugins.DemoShapesDataset', data_root=demo_root,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')]))
    assert type(dataset) is DemoShapesDataset
    assert len(dataset) == 16
    assert dataset.metainfo['classes'] == SHAPES_METAINFO['classes']
    assert dataset.metainfo['palette'] == SHAPES_METAINFO['palette']
    sample = dataset[0]
    assert sample['img'].shape == (128, 128, 3)
    assert set(sample['gt_seg_map'].ravel().tolist()) <= {0, 1, 2, 3}
    assert 0 in sample['gt_seg_map']  # background is a class, not ignored


def test_class_metainfo_is_what_mmseg_tools_read():
    """mmseg's misc/browse_dataset.py and confusion_matrix.py read the
    class attribute, not the config."""
    assert DemoShapesDataset.METAINFO is SHAPES_METAINFO
    assert len(DemoShapesDataset.METAINFO['palette']) == \
        len(DemoShapesDataset.METAINFO['classes'])


def test_scoped_name_resolves_in_a_fresh_interpreter():
    """Under mmseg's default scope the name alone is enough: mmengine
    imports mmseg_plugins.registry on meeting the scope."""
    code = ('from mmengine.registry import init_default_scope\n'
            'from mmseg.registry import DATASETS\n'
            "init_default_scope('mmseg')\n"
            "print(DATASETS.get('mmseg_plugins.DemoShapesDataset').METAINFO"
            "['classes'])\n")
    proc = run([PYTHON, '-c', code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(str(SHAPES_METAINFO['classes']))


def test_demo_configs_use_the_dataset_class_and_test_time_augmentation():
    for name in ('afformer_tiny', 'segformer_mit-b0', 'mpvit_tiny_upernet'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo',
                                       f'{name}_shapes-128x128.py'))
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[key].dataset.type == 'mmseg_plugins.DemoShapesDataset'
            assert 'metainfo' not in cfg[key].dataset
        assert cfg.tta_model.type == 'SegTTAModel'
        augs = cfg.tta_pipeline[1].transforms
        assert [t.scale_factor for t in augs[0]] == cfg.img_ratios
        assert [t.prob for t in augs[1]] == [0., 1.]  # without, with flip
