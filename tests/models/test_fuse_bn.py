"""BatchNorm folding for inference (``tools/benchmark.py --fuse-bn``, mmcv's
``fuse_conv_bn``) keeps the logits of every family to 1e-5."""
import copy

import pytest
import torch
from mmcv.cnn import fuse_conv_bn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

import mhca_reference as ref
from helpers import ROOT


@pytest.mark.parametrize('config', [
    'configs/demo/afformer_tiny_shapes-128x128.py',
    'configs/demo/segformer_mit-b0_shapes-128x128.py',
    'configs/demo/mpvit_tiny_upernet_shapes-128x128.py'
])
def test_fused_model_gives_same_logits(config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(f'{ROOT}/{config}')
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True) \
        if 'segformer' in config else cfg.model.decode_head.norm_cfg
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    model = ref.randomise(model, seed=11, scale=0.1)
    fused = fuse_conv_bn(copy.deepcopy(model))
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    n_left = sum(isinstance(m, torch.nn.BatchNorm2d)
                 for m in fused.modules())
    assert n_bn > 0 and n_left == 0
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, mode='tensor'),
                                   model(x, mode='tensor'), atol=1e-5,
                                   rtol=1e-5)
