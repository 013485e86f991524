"""Backbone ``pretrained``/``init_cfg`` and whole-model loading from files
in the authors' layouts, converted in memory, strictly."""
from types import SimpleNamespace

import pytest
import torch
from mmseg.models.decode_heads import FCNHead

import afformer_reference as afformer_ref
import mpvit_reference as mpvit_ref
from official_files import BUILD, official_files
from mmseg_plugins.converters.afformer import convert_afformer
from mmseg_plugins.converters.mpvit import convert_mpvit
from mmseg_plugins.errors import CheckpointError
from mmseg_plugins.models import AFFormer, MiT
from mmseg_plugins.weights import load_model_weights

X = torch.randn(1, 3, 64, 64)


def _outputs(model):
    with torch.no_grad():
        return model.eval()(X)


def _assert_same(a, b):
    for x, y in zip(_outputs(a), _outputs(b)):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """Official-layout ImageNet files of the three families and the models
    they were made from."""
    return official_files(tmp_path_factory.mktemp('official'))


@pytest.mark.parametrize('family', list(BUILD))
@pytest.mark.parametrize('how', ['pretrained', 'init_cfg'])
def test_raw_official_file_initialises_backbone(official, family, how,
                                                caplog):
    model, path = official[family]
    kw = dict(pretrained=path) if how == 'pretrained' else \
        dict(init_cfg=dict(type='Pretrained', checkpoint=path))
    fresh = BUILD[family](**kw)
    fresh.init_weights()
    _assert_same(fresh, model)


def test_same_as_the_converted_file(official, tmp_path):
    for family, convert in (('AFFormer', convert_afformer),
                            ('MPViT', convert_mpvit)):
        model, path = official[family]
        dst = tmp_path / f'{family}.pth'
        info = convert(path, str(dst))
        assert info['kind'] == 'backbone'
        raw = BUILD[family](pretrained=path)
        converted = BUILD[family](pretrained=str(dst))
        raw.init_weights()
        converted.init_weights()
        _assert_same(raw, converted)


def test_prefix_takes_the_backbone_of_a_segmentation_file(official,
                                                          tmp_path):
    model, _ = official['AFFormer']
    seg = tmp_path / 'seg.pth'
    sd = {f'backbone.{k}': v for k, v in
          afformer_ref.official_state_dict(model).items()}
    torch.save(dict(state_dict=sd), seg)
    for prefix in ('backbone.', None):
        fresh = AFFormer('tiny', init_cfg=dict(
            type='Pretrained', checkpoint=str(seg), prefix=prefix))
        fresh.init_weights()
        _assert_same(fresh, model)


def _refusal(build, path):
    with pytest.raises(CheckpointError) as err:
        build().init_weights()
    return str(err.value)


def test_other_family_variant_and_truncated_files_are_refused(official,
                                                              tmp_path):
    _, mpvit_file = official['MPViT']
    msg = _refusal(lambda: AFFormer('tiny', pretrained=mpvit_file),
                   mpvit_file)
    assert 'does not fit AFFormer' in msg and 'MPViT-tiny' in msg
    assert 'missing' in msg
    _, afformer_file = official['AFFormer']
    msg = _refusal(lambda: AFFormer('small', pretrained=afformer_file),
                   afformer_file)
    assert 'mis-shaped' in msg and 'AFFormer-tiny' in msg
    # truncated: the last stage's keys are gone
    sd = torch.load(afformer_file)
    cut = {k: v for k, v in sd.items() if not k.startswith('mhca_stages.3')}
    short = tmp_path / 'short.pth'
    torch.save(cut, short)
    msg = _refusal(lambda: AFFormer('tiny', pretrained=str(short)), short)
    assert 'missing (stages.3.' in msg
    # unknown layout
    odd = tmp_path / 'odd.pth'
    torch.save({'foo.weight': torch.zeros(3)}, odd)
    msg = _refusal(lambda: MiT('b0', pretrained=str(odd)), odd)
    assert 'in no known layout' in msg and '1 unexpected (foo.weight)' in msg
    # partial loading only when asked for, and logged
    part = AFFormer('tiny', init_cfg=dict(
        type='Pretrained', checkpoint=str(short), partial=True))
    part.init_weights()
    torch.testing.assert_close(part.stem[0].conv.weight if hasattr(
        part.stem[0], 'conv') else next(part.stem.parameters()),
        next(official['AFFormer'][0].stem.parameters()))


def test_unknown_init_cfg_key_is_refused(official):
    _, path = official['MiT']
    with pytest.raises(ValueError, match='unknown keys'):
        MiT('b0', init_cfg=dict(type='Pretrained', checkpoint=path,
                                strict=False)).init_weights()


def _mpvit_segmentor(num_classes):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    bn = dict(type='BN', requires_grad=True)
    return MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='mmseg_plugins.MPViT', arch='tiny'),
        decode_head=dict(type='FCNHead', in_channels=216, in_index=3,
                         channels=32, num_convs=1, num_classes=num_classes,
                         norm_cfg=bn),
        auxiliary_head=dict(type='FCNHead', in_channels=216, in_index=2,
                            channels=16, num_convs=1,
                            num_classes=num_classes, norm_cfg=bn))).eval()


def test_whole_model_class_count_fine_tuning(official, tmp_path,
                                             monkeypatch):
    from mmseg_plugins.weights import loading
    messages = []
    monkeypatch.setattr(loading, '_log', messages.append)
    model150 = _mpvit_segmentor(150)
    mpvit, _ = official['MPViT']
    sd = {f'backbone.{k}': v for k, v in
          mpvit_ref.official_state_dict(mpvit).items()}
    sd.update({k: v for k, v in model150.state_dict().items()
               if not k.startswith('backbone.')})
    src = tmp_path / 'upernet_mpvit_tiny.pth'
    torch.save(dict(meta=dict(CLASSES=None), state_dict=sd), src)
    assert isinstance(model150.decode_head, FCNHead)
    # the same class count: everything loads, converted in memory
    same = _mpvit_segmentor(150)
    load_model_weights(same, str(src), 'test')
    torch.testing.assert_close(same.backbone(X), mpvit.eval()(X))
    # 150 -> 5 classes refused unless asked for, then only conv_seg
    five = _mpvit_segmentor(5)
    with pytest.raises(CheckpointError, match='4 mis-shaped'):
        load_model_weights(five, str(src), 'test')
    before = five.decode_head.conv_seg.weight.clone()
    messages.clear()
    load_model_weights(five, str(src), 'test', reinit_class_layers=True)
    (reinit, ) = [m for m in messages if 're-initialised' in m]
    assert reinit.endswith(': decode_head.conv_seg.weight, '
                           'decode_head.conv_seg.bias, '
                           'auxiliary_head.conv_seg.weight, '
                           'auxiliary_head.conv_seg.bias'), reinit
    assert torch.equal(five.decode_head.conv_seg.weight, before)
    torch.testing.assert_close(five.decode_head.convs[0].conv.weight,
                               model150.decode_head.convs[0].conv.weight)
    torch.testing.assert_close(five.backbone(X), mpvit.eval()(X))


def test_load_from_goes_through_the_strict_hook(official, tmp_path):
    from mmengine.config import Config

    from mmseg_plugins.weights.hook import StrictLoadHook, route_load_from
    cfg = Config(dict(model=dict(), load_from='x.pth', resume=False,
                      load_from_partial=True))
    route_load_from(cfg, reinit_class_layers=True)
    assert cfg.load_from is None and 'load_from_partial' not in cfg
    hook = cfg.custom_hooks[-1]
    assert hook == dict(type='mmseg_plugins.StrictLoadHook',
                        checkpoint='x.pth', reinit_class_layers=True,
                        partial=True)
    # the runtime config's entry without a checkpoint is filled in
    cfg = Config(dict(model=dict(), load_from='x.pth', custom_hooks=[
        dict(type='mmseg_plugins.StrictLoadHook'),
        dict(type='mmseg_plugins.RNGStateHook')]))
    route_load_from(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'mmseg_plugins.StrictLoadHook', 'mmseg_plugins.RNGStateHook']
    assert cfg.custom_hooks[0]['checkpoint'] == 'x.pth'
    # the hook refuses a file that does not fit the runner's model
    _, mit_file = official['MiT']

    class Runner:
        model = _mpvit_segmentor(3)
        experiment_name = 'mpvit_20261206_191135'  # not in the messages
        cfg = SimpleNamespace(filename='configs/my_mpvit.py')
    # the refusal names the config, what the file holds and what the
    # config builds
    with pytest.raises(CheckpointError, match=(
            r'does not fit the model of my_mpvit\.py: the file holds a '
            r'MiT-b0 backbone checkpoint \(NVlabs layout\), my_mpvit\.py '
            r'builds EncoderDecoder: MPViT-tiny \+ FCNHead \+ FCNHead; '
            r'577 missing')):
        StrictLoadHook(mit_file).before_train(Runner)


def test_hook_without_checkpoint_takes_the_runners_load_from_over(official):
    """The runtime config's StrictLoadHook (no checkpoint) takes mmengine's
    ``load_from`` over in before_run (mmengine would load it non-strictly
    after before_run) and loads it strictly; resuming stays mmengine's."""
    from mmengine.logging import MMLogger

    from mmseg_plugins.weights.hook import StrictLoadHook
    _, mit_file = official['MiT']

    class Runner:
        model = _mpvit_segmentor(3)
        experiment_name = 'run'
        cfg = dict(load_from_partial=False)
        logger = MMLogger.get_current_instance()
        _load_from, _resume = mit_file, False
    hook = StrictLoadHook()
    hook.before_run(Runner)
    assert Runner._load_from is None and hook.checkpoint == mit_file
    with pytest.raises(CheckpointError, match='does not fit the model of '
                       'the config'):
        hook.before_test(Runner)
    Runner._load_from, Runner._resume = mit_file, True
    hook = StrictLoadHook()
    hook.before_run(Runner)
    assert Runner._load_from == mit_file and hook.checkpoint is None
    hook.before_train(Runner)  # nothing of its own to load


@pytest.mark.parametrize('family', list(BUILD))
def test_rgb_file_initialises_a_backbone_of_other_band_counts(official,
                                                              family,
                                                              monkeypatch):
    """Grayscale and multi-band backbones from the RGB ImageNet file: the
    input filters are adapted (one channel: their sum; six: repeated and
    scaled by 3/6) and named in the log, every other weight loads as it is,
    and equal bands give the RGB model's outputs on the same grey image."""
    from mmseg_plugins.weights import loading
    messages = []
    monkeypatch.setattr(loading, '_log', messages.append)
    model, path = official[family]
    grey = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for channels in (1, 4, 6):
        fresh = BUILD[family](in_channels=channels, pretrained=path)
        messages.clear()
        fresh.init_weights()
        adapted = [m for m in messages if 'RGB input filters' in m]
        assert len(adapted) == 1 and \
            f'(3 -> {channels} channels)' in adapted[0]
        ours, rgb = fresh.state_dict(), model.state_dict()
        changed = [k for k in ours if ours[k].shape != rgb[k].shape]
        assert len(changed) == 1  # the input convolution only
        assert all(torch.equal(ours[k], rgb[k]) for k in ours
                   if k not in changed)
        if channels == 4:  # not a multiple of 3: shapes only
            continue
        with torch.no_grad():
            for a, b in zip(fresh.eval()(grey.expand(-1, channels, -1, -1)),
                            model(grey.expand(-1, 3, -1, -1))):
                # float rounding of sums in another order
                torch.testing.assert_close(
                    a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_adapted_filters():
    from mmseg_plugins.weights import adapt_input_filters
    w = torch.randn(8, 3, 3, 3)
    assert torch.equal(adapt_input_filters(w, 1), w.sum(1, keepdim=True))
    five = adapt_input_filters(w, 5)
    torch.testing.assert_close(five, torch.cat([w, w[:, :2]], 1) * 0.6)
    with pytest.raises(ValueError, match=r'expected RGB filters'):
        adapt_input_filters(torch.randn(8, 4, 3, 3), 1)


def test_rgb_segmentor_file_loads_into_a_one_band_model(tmp_path):
    """``load_from`` / test-time loading adapts the backbone's input filters
    the same way (keys under ``backbone.``)."""
    import torch.nn as nn
    rgb = afformer_ref.randomise(MiT('b0').eval(), seed=3)
    src = tmp_path / 'rgb_segmentor.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               rgb.state_dict().items()}}, src)

    class Segmentor(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = MiT('b0', in_channels=1)

    model = Segmentor()
    load_model_weights(model, str(src), 'test')
    grey = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(model.backbone.eval()(grey),
                        rgb(grey.expand(-1, 3, -1, -1))):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
