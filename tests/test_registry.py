"""Tests of mmseg_plugins/registry.py and the package import."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from helpers import DEMO_CONFIG


def test_child_registry_scope_and_no_collision():
    from mmseg.models.backbones import MixVisionTransformer
    from mmseg.models.decode_heads import SegformerHead as MMSegHead
    from mmseg.registry import MODELS as MMSEG_MODELS

    import mmseg_plugins
    from mmseg_plugins.models import MiT, SegformerHead
    assert mmseg_plugins.MODELS.scope == 'mmseg_plugins'
    assert mmseg_plugins.MODELS.parent is MMSEG_MODELS
    assert MMSEG_MODELS.get('mmseg_plugins.MiT') is MiT
    assert MMSEG_MODELS.get('mmseg_plugins.SegformerHead') is SegformerHead
    # mmseg keeps its own classes under its own names
    assert MMSEG_MODELS.get('MixVisionTransformer') is MixVisionTransformer
    assert MMSEG_MODELS.get('SegformerHead') is MMSegHead
    assert 'MixVisionTransformer' not in mmseg_plugins.MODELS.module_dict
    # mmseg types resolve from inside our scope through the parent
    assert mmseg_plugins.MODELS.get('CrossEntropyLoss') is not None


def test_hook_registry_resolves_scoped_name_from_runner_scopes():
    """The Runner builds hooks with mmengine's root HOOKS switched to the
    default scope: mmseg's (our configs) finds the child registry; others
    fall back to the package attribute ``mmseg_plugins.RNGStateHook``."""
    from mmengine.registry import HOOKS as MMENGINE_HOOKS
    from mmseg.registry import HOOKS as MMSEG_HOOKS

    import mmseg_plugins
    from mmseg_plugins.hooks import RNGStateHook
    assert mmseg_plugins.HOOKS.scope == 'mmseg_plugins'
    assert mmseg_plugins.HOOKS.parent is MMSEG_HOOKS
    assert mmseg_plugins.HOOKS.get('RNGStateHook') is RNGStateHook
    assert 'RNGStateHook' not in MMSEG_HOOKS.module_dict  # no collision
    for scope in ('mmengine', 'mmseg'):  # ends in the usual scope
        init_default_scope(scope)
        hook = MMENGINE_HOOKS.build(dict(type='mmseg_plugins.RNGStateHook'))
        assert type(hook) is RNGStateHook


def test_demo_config_builds_and_trains_one_step():
    """The demo config's segmentor: its loss is the cross entropy of its
    logits (resized to the labels, mmseg's averaging over all pixels), and
    one optimiser step on the batch lowers it."""
    import torch.nn.functional as F
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile(DEMO_CONFIG)
    assert cfg.default_scope == 'mmseg'
    init_default_scope('mmseg')
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.decode_head.dropout_ratio = 0.
    cfg.model.backbone.drop_path_rate = 0.
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    labels = torch.randint(0, 4, (2, 1, 64, 64),
                           generator=torch.Generator().manual_seed(1))
    samples = []
    for label in labels:
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label)
        s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64),
                            ori_shape=(64, 64)))
        samples.append(s)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    loss = model(x, samples, mode='loss')['decode.loss_ce']
    # the same batch statistics: BatchNorm in training mode either way
    logits = F.interpolate(model(x, mode='tensor'), size=(64, 64),
                           mode='bilinear', align_corners=False)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels[:, 0]))
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    loss.backward()
    optim.step()
    after = model(x, samples, mode='loss')['decode.loss_ce']
    assert after < loss
