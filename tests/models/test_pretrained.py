"""Every ``init_cfg`` form mmengine's ``BaseModule.init_weights`` accepts,
on the package's backbones and heads (mmseg_plugins/models/pretrained.py):
each loads through the strict loader (converted, every key) or is refused
with the package's error, never mmengine's non-strict path."""
import pickle

import pytest
import torch
from mmengine.model.weight_init import PretrainedInit

from official_files import nvlabs_segformer_keys
from mmseg_plugins.errors import (CheckpointError, CheckpointNotFoundError,
                                  CheckpointPrefixError, InitConfigError)
from mmseg_plugins.models import AFFormer, MiT, SegformerHead


def _mmseg_b0():
    """mmseg's own MixVisionTransformer with B0's settings: a file of it is
    in the mmseg layout (``layers.0.0.projection`` ...)."""
    from mmseg.models.backbones import MixVisionTransformer
    torch.manual_seed(3)
    model = MixVisionTransformer(embed_dims=32, num_layers=[2, 2, 2, 2],
                                 num_heads=[1, 2, 5, 8])
    for p in model.parameters():
        p.data.normal_()
    return model


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """An mmseg-layout MiT-B0 file, our own B0 backbone and segmentation
    files, and the own backbone file with one key missing."""
    root = tmp_path_factory.mktemp('pretrained')
    mmseg = _mmseg_b0()
    torch.save(dict(state_dict=mmseg.state_dict()), root / 'mmseg.pth')
    torch.manual_seed(4)
    ours = MiT('b0')
    for p in ours.parameters():
        p.data.normal_()
    head = SegformerHead(in_channels=[32, 64, 160, 256],
                         in_index=[0, 1, 2, 3], channels=32, num_classes=3)
    sd = ours.state_dict()
    torch.save(sd, root / 'ours.pth')
    seg = {f'backbone.{k}': v for k, v in sd.items()}
    seg.update({f'decode_head.{k}': v for k, v in head.state_dict().items()})
    torch.save(dict(state_dict=seg), root / 'seg.pth')
    short = dict(sd)
    short.pop('stages.3.norm.bias')
    torch.save(short, root / 'short.pth')
    return dict(mmseg_model=mmseg, ours_model=ours, head=head,
                **{name: str(root / f'{name}.pth')
                   for name in ('mmseg', 'ours', 'seg', 'short')})


def _same(model, reference):
    for (k, a), b in zip(model.state_dict().items(),
                         reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def _mit(init_cfg):
    model = MiT('b0', init_cfg=init_cfg)
    model.init_weights()
    return model


def test_the_issues_list_form_converts_an_mmseg_file(files):
    """``init_cfg=[dict(type='Pretrained', checkpoint=<mmseg file>)]``
    used to reach mmengine's non-strict loader and train from random
    weights; it is converted and loaded."""
    model = _mit([dict(type='Pretrained', checkpoint=files['mmseg'])])
    mmseg = files['mmseg_model']
    torch.testing.assert_close(model.stages[0].patch_embed.proj.weight,
                               mmseg.layers[0][0].projection.weight)
    torch.testing.assert_close(
        model.stages[3].blocks[1].mlp.fc2.weight.flatten(1),
        mmseg.layers[3][1][1].ffn.layers[4].weight.flatten(1))
    assert model.is_init


@pytest.mark.parametrize('form', [
    'dict', 'list', 'PretrainedInit class', 'scoped type',
    'after other initialisers',
    'prefix without dot', 'prefix with dot', 'segmentation file, no prefix',
    'map_location'])
def test_forms_that_load(files, form):
    ours, seg = files['ours'], files['seg']
    init_cfg = {
        'dict': dict(type='Pretrained', checkpoint=ours),
        'list': [dict(type='Pretrained', checkpoint=ours)],
        'PretrainedInit class': dict(type=PretrainedInit, checkpoint=ours),
        'scoped type': dict(type='mmengine.Pretrained', checkpoint=ours),
        'after other initialisers': [
            dict(type='Pretrained', checkpoint=ours),  # runs last anyway
            dict(type='Kaiming', layer='Conv2d'),
            dict(type='Constant', val=0., layer='LayerNorm')],
        'prefix without dot': dict(type='Pretrained', checkpoint=seg,
                                   prefix='backbone'),
        'prefix with dot': dict(type='Pretrained', checkpoint=seg,
                                prefix='backbone.'),
        'segmentation file, no prefix': dict(type='Pretrained',
                                             checkpoint=seg),
        'map_location': dict(type='Pretrained', checkpoint=ours,
                             map_location='cpu'),
    }[form]
    _same(_mit(init_cfg), files['ours_model'])


@pytest.mark.parametrize('form, error, also', [
    ('missing file', CheckpointNotFoundError, FileNotFoundError),
    ('prefix no key has', CheckpointPrefixError, AssertionError),
    ('unknown key', InitConfigError, TypeError),
    ('no checkpoint', InitConfigError, TypeError),
    ('not a dict or list', InitConfigError, TypeError),
    ('list of non-dicts', InitConfigError, TypeError),
    ('checkpoint in an override', InitConfigError, ValueError),
    ('another family', CheckpointError, RuntimeError),
    ('missing key without partial', CheckpointError, RuntimeError),
])
def test_forms_that_are_refused(files, tmp_path, form, error, also):
    ours = files['ours']
    init_cfg = {
        'missing file': dict(type='Pretrained',
                             checkpoint=str(tmp_path / 'none.pth')),
        'prefix no key has': dict(type='Pretrained', checkpoint=ours,
                                  prefix='encoder'),
        'unknown key': dict(type='Pretrained', checkpoint=ours,
                            strict=False),
        'no checkpoint': dict(type='Pretrained'),
        'not a dict or list': 123,
        'list of non-dicts': ['Pretrained'],
        'checkpoint in an override': dict(
            type='Kaiming', layer='Conv2d', override=dict(
                type='Pretrained', name='stages', checkpoint=ours)),
        'another family': None,
        'missing key without partial': dict(type='Pretrained',
                                            checkpoint=files['short']),
    }[form]
    if form == 'another family':
        build = lambda: AFFormer(  # noqa: E731
            'tiny', init_cfg=[dict(type='Pretrained', checkpoint=ours)])
    else:
        build = lambda: MiT('b0', init_cfg=init_cfg)  # noqa: E731
    with pytest.raises(error) as caught:
        build().init_weights()
    assert isinstance(caught.value, also)
    if form == 'another family':
        assert ('the file holds a MiT-b0 backbone checkpoint (mmseg_plugins '
                'layout), the model is AFFormer-tiny;') in str(caught.value)


def test_partial_own_layout_keeps_and_logs_the_missing_key(
        files, monkeypatch):
    from mmseg_plugins.weights import loading
    messages = []
    monkeypatch.setattr(loading, '_log', messages.append)
    model = _mit(dict(type='Pretrained', checkpoint=files['short'],
                      partial=True))
    (kept, ) = [m for m in messages if 'partial=True' in m]
    assert kept.endswith('keep their initialisation (partial=True): '
                         'stages.3.norm.bias')
    torch.testing.assert_close(model.stages[3].norm.bias,
                               torch.zeros(256))  # the official init
    torch.testing.assert_close(model.stages[3].norm.weight,
                               files['ours_model'].stages[3].norm.weight)


def test_partial_whole_model_in_own_layout(files, tmp_path, monkeypatch):
    """``load_model_weights(..., partial=True)`` of a file in our layout
    lacking ``decode_head.conv_seg.bias`` (refused before: the converters
    were tried first); a file giving none of the keys stays refused."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_plugins.weights import load_model_weights, loading
    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='EncoderDecoder', backbone=dict(type='mmseg_plugins.MiT'),
        decode_head=dict(type='mmseg_plugins.SegformerHead',
                         in_channels=[32, 64, 160, 256],
                         in_index=[0, 1, 2, 3], channels=32, num_classes=3)))
    sd = torch.load(files['seg'])['state_dict']
    sd.pop('decode_head.conv_seg.bias')
    path = tmp_path / 'no_bias.pth'
    torch.save(dict(state_dict=sd), path)
    with pytest.raises(CheckpointError, match=(
            r'the file holds a MiT-b0 segmentation checkpoint '
            r'\(mmseg_plugins layout\), cfg\.py builds EncoderDecoder: '
            r'MiT-b0 \+ SegformerHead; 1 missing '
            r'\(decode_head\.conv_seg\.bias\)')):
        load_model_weights(model, str(path), 'cfg.py')
    messages = []
    monkeypatch.setattr(loading, '_log', messages.append)
    detected = load_model_weights(model, str(path), 'cfg.py', partial=True)
    assert detected.source == 'ours'
    assert messages == [f'cfg.py: re-initialised (not loaded from {path}): '
                        'decode_head.conv_seg.bias']
    _same(model.backbone, files['ours_model'])
    with pytest.raises(TypeError):  # the result is immutable
        detected.state_dict['x'] = torch.zeros(1)
    nothing = tmp_path / 'nothing.pth'
    torch.save({'backbone.stages.9.x': torch.zeros(1)}, nothing)
    with pytest.raises(CheckpointError):
        load_model_weights(model, str(nothing), 'cfg.py', partial=True)


def test_head_pretrained_loads_strictly(files, tmp_path):
    kw = dict(in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3],
              channels=32, num_classes=3)
    head = SegformerHead(init_cfg=[dict(type='Pretrained',
                                        checkpoint=files['seg'],
                                        prefix='decode_head')], **kw)
    head.init_weights()
    _same(head, files['head'])
    # without a prefix the segmentation file's decode_head is taken
    head = SegformerHead(init_cfg=dict(type='Pretrained',
                                       checkpoint=files['seg']), **kw)
    head.init_weights()
    _same(head, files['head'])
    # an NVlabs segmentation file, converted; with the prefix too (its
    # head keys alone are in no layout: the whole file is converted)
    nvlabs = tmp_path / 'segformer.b0.nvlabs.pth'
    torch.save(dict(state_dict=nvlabs_segformer_keys(files['ours_model'],
                                                     files['head'])), nvlabs)
    for prefix in (None, 'decode_head.'):
        head = SegformerHead(init_cfg=dict(type='Pretrained', prefix=prefix,
                                           checkpoint=str(nvlabs)), **kw)
        head.init_weights()
        _same(head, files['head'])
    # another class count does not fit: refused, not half-loaded
    other = SegformerHead(init_cfg=dict(type='Pretrained',
                                        checkpoint=files['seg']),
                          **dict(kw, num_classes=4))
    with pytest.raises(CheckpointError, match='mis-shaped'):
        other.init_weights()
    # the default init_cfg (mmseg's normal init of conv_seg) is unchanged
    plain = SegformerHead(**kw)
    plain.init_weights()
    assert plain.is_init


def test_segmentor_init_weights_with_a_list_init_cfg(files):
    """The issue's case end to end: a segmentor whose backbone has a
    list-form ``init_cfg`` naming an mmseg-layout file."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='mmseg_plugins.MiT', arch='b0', init_cfg=[
            dict(type='Pretrained', checkpoint=files['mmseg'])]),
        decode_head=dict(type='mmseg_plugins.SegformerHead',
                         in_channels=[32, 64, 160, 256],
                         in_index=[0, 1, 2, 3], channels=32, num_classes=3)))
    model.init_weights()
    torch.testing.assert_close(
        model.backbone.stages[0].patch_embed.proj.weight,
        files['mmseg_model'].layers[0][0].projection.weight)


def test_unsafe_pickle_is_an_unpickling_error(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': PretrainedInit}, path)
    with pytest.raises(CheckpointError) as caught:
        _mit(dict(type='Pretrained', checkpoint=str(path)))
    assert isinstance(caught.value, pickle.UnpicklingError)
