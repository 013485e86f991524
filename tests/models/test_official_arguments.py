"""The official MPViT and AFFormer configs' backbone arguments on our
classes (mmseg_plugins/models/mpvit.py, afformer.py): they build the named
variants; contradictions and unsupported values are refused."""
import pytest
import torch
from mmengine.registry import init_default_scope

from mmseg_plugins.errors import ConflictingArgumentsError, InvalidInputError
from mmseg_plugins.models import AFFORMER_ARCHS, MPVIT_ARCHS, AFFormer, MPViT

SYNC_BN = dict(type='SyncBN', requires_grad=True)
#: The official MPViT segmentation configs' backbone dicts (small, base:
#: ``configs/mpvit/upernet/upernet_mpvit_*_160k_ade20k.py`` merged with
#: their ``_base_/models/upernet_mpvit.py``), and the official factory
#: functions' arguments for tiny/xsmall, which have no config.
MPVIT_OFFICIAL = {
    'tiny': dict(num_path=[2, 3, 3, 3], num_layers=[1, 2, 4, 1],
                 embed_dims=[64, 96, 176, 216], mlp_ratios=[2, 2, 2, 2],
                 num_heads=[8, 8, 8, 8]),
    'xsmall': dict(num_path=[2, 3, 3, 3], num_layers=[1, 2, 4, 1],
                   embed_dims=[64, 128, 192, 256], mlp_ratios=[4, 4, 4, 4],
                   num_heads=[8, 8, 8, 8]),
    'small': dict(num_path=[2, 3, 3, 3], num_layers=[1, 3, 6, 3],
                  embed_dims=[64, 128, 216, 288], num_heads=[8, 8, 8, 8],
                  mlp_ratios=[4, 4, 4, 4], drop_path_rate=0.2,
                  norm_cfg=SYNC_BN, norm_eval=False),
    'base': dict(num_path=[2, 3, 3, 3], num_layers=[1, 3, 8, 3],
                 embed_dims=[128, 224, 368, 480], num_heads=[8, 8, 8, 8],
                 mlp_ratios=[4, 4, 4, 4], drop_path_rate=0.4,
                 norm_cfg=SYNC_BN, norm_eval=False),
}
#: Backbone parameters of the official segmentation backbone (its
#: classification model's documented totals minus the classifier).
MPVIT_PARAMS = dict(tiny=5_626_736, xsmall=10_316_448, small=22_603_400,
                    base=74_364_976)
#: Parameters of the official AFFormer backbones (de-duplicated, as
#: ``parameters()`` counts them).
AFFORMER_PARAMS = dict(tiny=2_032_948, small=2_228_748, base=2_843_548)


def _build(cfg):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    with torch.device('meta'):
        return MODELS.build(cfg)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('variant', list(MPVIT_ARCHS))
def test_mpvit_official_arguments_build_the_variant(variant):
    model = _build(dict(type='mmseg_plugins.MPViT', **MPVIT_OFFICIAL[variant]))
    assert type(model) is MPViT
    assert model.arch_settings == MPVIT_ARCHS[variant]
    assert _n_params(model) == MPVIT_PARAMS[variant]
    if 'norm_cfg' in MPVIT_OFFICIAL[variant]:
        norms = [m for m in model.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(type(m) is torch.nn.SyncBatchNorm
                             for m in norms)
    # the same network as arch=variant: same state-dict keys and shapes
    with torch.device('meta'):
        ours = MPViT(variant)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}


def test_mpvit_official_defaults_and_other_arguments():
    """Without ``arch`` the official signature's defaults complete the
    per-stage arguments; in_chans, num_classes, num_stages are taken."""
    model = _build(dict(type='mmseg_plugins.MPViT', num_layers=[1, 1, 1, 1],
                        in_chans=4, num_classes=80, num_stages=4,
                        norm_cfg=dict(type='BN', eps=1e-3,
                                      requires_grad=False)))
    assert model.arch_settings['num_paths'] == (4, 4, 4, 4)
    assert model.arch_settings['mlp_ratios'] == (8, 8, 4, 4)
    assert model.stem[0].conv.in_channels == 4
    bn = model.stem[0].bn
    assert type(bn) is torch.nn.BatchNorm2d and bn.eps == 1e-3
    assert not bn.weight.requires_grad


@pytest.mark.parametrize('variant', list(AFFORMER_ARCHS))
def test_afformer_official_config_types_build_the_variant(variant):
    # the official configs: type='afformer_<variant>', strides=[4, 2, 2, 2]
    model = _build(dict(type=f'mmseg_plugins.afformer_{variant}',
                        strides=[4, 2, 2, 2]))
    assert type(model) is AFFormer
    assert model.arch_settings == AFFORMER_ARCHS[variant]
    assert _n_params(model) == AFFORMER_PARAMS[variant]
    # the official class's arguments, spelled out
    arch = AFFORMER_ARCHS[variant]
    spelled = _build(
        dict(type='mmseg_plugins.AFFormer', img_size=224, num_stages=4,
             num_path=[1, 1, 1, 1], num_layers=list(arch['depths']),
             embed_dims=list(arch['embed_dims']),
             mlp_ratios=list(arch['mlp_ratios']),
             num_heads=list(arch['num_heads']), strides=[4, 2, 2, 2],
             in_chans=3, num_classes=150, drop_path_rate=0.))
    assert spelled.arch_settings == model.arch_settings


@pytest.mark.parametrize('build, names', [
    (lambda: MPViT('small', num_layers=[1, 3, 8, 3]),
     ('num_layers=[1, 3, 8, 3]', "arch='small'")),
    (lambda: MPViT(in_channels=3, in_chans=4), ('in_chans=4', 'in_channels')),
    (lambda: AFFormer('tiny', embed_dims=[32, 96, 176, 216]),
     ('embed_dims', "arch='tiny'")),
    (lambda: _build(dict(type='mmseg_plugins.afformer_tiny', arch='base')),
     ("arch='base'", 'afformer_tiny')),
    (lambda: _build(dict(type='mmseg_plugins.afformer_small',
                         num_layers=[1, 2, 6, 2])),
     ('num_layers', "arch='small'")),
])
def test_contradictions_refused_naming_both(build, names):
    with pytest.raises(ConflictingArgumentsError) as err:
        build()
    message = str(err.value)
    assert '\n' not in message and all(n in message for n in names), message


@pytest.mark.parametrize('build, words', [
    (lambda: AFFormer(strides=[4, 2, 2, 1]), 'strides'),
    (lambda: AFFormer(num_path=[4, 4, 4, 4]), 'num_path'),
    (lambda: AFFormer(num_stages=3), 'num_stages'),
    (lambda: MPViT(num_stages=5), 'num_stages'),
    (lambda: MPViT(norm_cfg=dict(type='GN', num_groups=8)), 'BatchNorm'),
    (lambda: MPViT(norm_cfg=dict(type='BN', affine=False)), 'affine'),
])
def test_unsupported_values_refused(build, words):
    with pytest.raises(InvalidInputError, match=words):
        build()
