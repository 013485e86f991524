"""Tests of mmseg_plugins/deploy/metadata.py."""
import os.path as osp

import pytest

from helpers import ROOT
from mmseg_plugins.deploy.metadata import (FORMAT_KEY, ExportMetadata,
                                           dataset_classes)
from mmseg_plugins.cli import load_config


def _metadata(**changes):
    fields = dict(output='mask', normalize=False, mean=[1., 2., 3.],
                  std=[4., 5., 6.], bgr_to_rgb=True, num_classes=3,
                  align_corners=False, test_cfg=dict(
                      mode='slide', crop_size=(512, 512), stride=(341, 341)),
                  min_input_size=32, classes=['a', 'b', 'c'],
                  palette=[[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    fields.update(changes)
    return ExportMetadata(**fields)


def test_round_trip_through_onnx_metadata_props():
    import onnx
    model = onnx.ModelProto()
    model.metadata_props.add(key='author', value='kept')
    _metadata().write_to(model)
    _metadata(num_classes=5).write_to(model)  # replaces, no duplicates
    props = {p.key: p.value for p in model.metadata_props}
    assert len(model.metadata_props) == len(props)
    assert props['author'] == 'kept' and props[FORMAT_KEY] == '1'
    back = ExportMetadata.from_props(props, 'x.onnx')
    assert back == _metadata(num_classes=5, test_cfg=dict(
        mode='slide', crop_size=[512, 512], stride=[341, 341]))


def test_refuses_foreign_or_other_version_metadata():
    props = _metadata().to_props()
    with pytest.raises(ValueError, match='not one exported by'):
        ExportMetadata.from_props({'a': '1'}, 'x.onnx')
    with pytest.raises(ValueError, match="version '0'"):
        ExportMetadata.from_props(dict(props, **{FORMAT_KEY: '0'}), 'x')
    with pytest.raises(ValueError, match='unreadable'):
        ExportMetadata.from_props(dict(props, output='{'), 'x')


def test_classes_from_checkpoint_config_or_dataset_class():
    demo = load_config(osp.join(ROOT, 'configs', 'demo',
                                'afformer_tiny_shapes-128x128.py'))
    classes, palette = dataset_classes(demo, {})
    assert classes == ['background', 'disk', 'square', 'triangle']
    assert palette[3] == [65, 105, 225]
    stored = dict(dataset_meta=dict(classes=('x', 'y'), palette=[[1, 1, 1],
                                                                 [2, 2, 2]]))
    assert dataset_classes(demo, stored) == (['x', 'y'],
                                             [[1, 1, 1], [2, 2, 2]])
    ade = load_config(osp.join(ROOT, 'configs', 'afformer',
                               'afformer_tiny_ade20k.py'))
    classes, palette = dataset_classes(ade, {})  # ADE20KDataset.METAINFO
    assert len(classes) == len(palette) == 150 and classes[0] == 'wall'
