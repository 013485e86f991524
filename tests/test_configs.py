"""Tests of configs/: every config parses, inherits mmseg's bases, carries
the published recipe and matches the variant table."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from helpers import ROOT, call
from mmseg_plugins.models import MIT_ARCHS

#: The paper's decoder width C per variant (256 for B0/B1, 768 for B2-B5).
SEGFORMER_DECODER_CHANNELS = dict(b0=256, b1=256, b2=768, b3=768, b4=768,
                                  b5=768)

SEGFORMER = sorted(glob.glob(osp.join(ROOT, 'configs', 'segformer', '*.py')))
ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))
    if osp.basename(osp.dirname(p)) != '_base_')


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=osp.basename)
def test_runtime_enables_exact_resume(path):
    """Every training config inherits the project's runtime base, which adds
    RNGStateHook and a fixed seed to mmseg's default runtime."""
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert dict(type='mmseg_plugins.RNGStateHook') in cfg.custom_hooks
    assert cfg.randomness.seed is not None


def test_all_variants_and_datasets_present():
    names = {osp.basename(p) for p in SEGFORMER}
    for v in MIT_ARCHS:
        assert f'segformer_mit-{v}_8xb2-160k_ade20k-512x512.py' in names
        assert f'segformer_mit-{v}_8xb1-160k_cityscapes-1024x1024.py' in names


@pytest.mark.parametrize('path', SEGFORMER, ids=osp.basename)
def test_segformer_recipe(path):
    cfg = Config.fromfile(path)
    arch = cfg.model.backbone.arch
    head = cfg.model.decode_head
    assert cfg.custom_imports['imports'] == ['mmseg_plugins']
    assert cfg.model.backbone.type == 'mmseg_plugins.MiT'
    assert list(head.in_channels) == list(MIT_ARCHS[arch]['embed_dims'])
    if path.endswith('_finetune-mmseg.py'):  # mmseg's own head, width 256
        assert (head.type, head.channels) == ('SegformerHead', 256)
    else:
        assert head.type == 'mmseg_plugins.SegformerHead'
        assert head.channels == SEGFORMER_DECODER_CHANNELS[arch]
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 6e-5
    assert opt.optimizer.weight_decay == 0.01
    keys = opt.paramwise_cfg.custom_keys
    assert keys['head'] == dict(lr_mult=10.)
    assert keys['norm'] == dict(decay_mult=0.)
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.end) == ('LinearLR', 1500)
    assert (poly.type, poly.power, poly.end) == ('PolyLR', 1.0, 160000)
    # mmcv-1.x poly + warmup, as in the official code: poly from iteration 0
    assert (warm.start_factor, poly.begin) == (1e-6, 0)
    assert 'pos_block' not in keys  # matches no module of MiT
    assert cfg.train_cfg.max_iters == 160000
    if 'ade20k' in path:
        assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
        assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
        assert head.num_classes == 150 and cfg.crop_size == (512, 512)
        assert cfg.model.test_cfg.mode == 'whole'
    else:
        assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
        assert cfg.train_dataloader.batch_size == 1  # x 8 GPUs = 8
        assert head.num_classes == 19 and cfg.crop_size == (1024, 1024)
        assert cfg.model.test_cfg.mode == 'slide'


def test_recipe_applies_no_decay_to_norms_and_x10_to_head():
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(SEGFORMER[0])  # b0 cityscapes
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    group = {names[id(p)]: g for g in wrapper.optimizer.param_groups
             for p in g['params']}
    # the stage-end norm is named "norm", as in the official code
    assert group['backbone.stages.0.norm.weight']['weight_decay'] == 0
    assert group['backbone.stages.0.blocks.0.attn.norm.weight'][
        'weight_decay'] == 0
    assert group['backbone.stages.0.blocks.0.attn.q.weight'][
        'weight_decay'] == 0.01
    assert group['decode_head.linear_c.0.weight']['lr'] == \
        pytest.approx(6e-4)
    assert group['backbone.stages.0.patch_embed.proj.weight']['lr'] == \
        pytest.approx(6e-5)


def test_b2_config_builds_official_width_model():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    path = [p for p in SEGFORMER if 'mit-b2' in p and 'ade20k' in p][0]
    cfg = Config.fromfile(path)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(cfg.model).eval()
    n = sum(p.numel() for p in model.parameters())
    # paper: 24.2M encoder + 3.3M decoder (150 classes) = 27.5M
    assert round(n / 1e6, 1) == 27.5
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert out.shape == (1, 150, 16, 16)


def test_mmseg_trained_segformer_runs_in_its_config(tmp_path):
    """A whole mmseg SegFormer (mmseg's MixVisionTransformer and
    SegformerHead), converted, loads strictly into the model of the
    ``_finetune-mmseg`` config and gives mmseg's logits."""
    from mmengine.model import revert_sync_batchnorm
    from mmseg.models.backbones import MixVisionTransformer
    from mmseg.models.decode_heads import SegformerHead as MMSegHead
    from mmseg.registry import MODELS

    import mhca_reference as ref
    from mmseg_plugins.checkpoint import safe_load
    from mmseg_plugins.converters.segformer import convert_segformer
    backbone = ref.randomise(MixVisionTransformer(
        embed_dims=32, num_heads=[1, 2, 5, 8], num_layers=[2, 2, 2, 2]),
        seed=1, scale=0.1).eval()
    head = ref.randomise(MMSegHead(
        in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3], channels=256,
        num_classes=150, norm_cfg=dict(type='BN')), seed=2).eval()
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    sd.update({f'decode_head.{k}': v for k, v in head.state_dict().items()})
    src, dst = tmp_path / 'mmseg.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': sd, 'meta': {}}, src)
    convert_segformer(str(src), str(dst))
    path = [p for p in SEGFORMER if p.endswith('_finetune-mmseg.py')][0]
    init_default_scope('mmseg')
    model = revert_sync_batchnorm(
        MODELS.build(Config.fromfile(path).model)).eval()
    model.load_state_dict(safe_load(str(dst))['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'),
                                   head(backbone(x)), atol=1e-5, rtol=1e-5)


AFFORMER = sorted(glob.glob(osp.join(ROOT, 'configs', 'afformer', '*.py')))


def test_all_afformer_configs_present():
    names = {osp.basename(p) for p in AFFORMER}
    assert names == {f'afformer_{a}_{d}.py' for a in ('tiny', 'small', 'base')
                     for d in ('ade20k', 'cityscapes', 'coco-stuff164k')}


@pytest.mark.parametrize('path', AFFORMER, ids=osp.basename)
def test_afformer_recipe(path):
    cfg = Config.fromfile(path)
    arch = osp.basename(path).split('_')[1]
    assert cfg.model.backbone.type == 'mmseg_plugins.AFFormer'
    assert cfg.model.backbone.arch == arch
    head = cfg.model.decode_head
    assert head.type == 'mmseg_plugins.AFFormerHead'
    assert (list(head.in_channels), list(head.in_index), head.channels) == \
        ([216], [3], 256)
    assert head.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    assert cfg.sync_bn == 'torch'
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.weight_decay == 0.01
    assert 'paramwise_cfg' not in opt  # decay on every parameter (official)
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.begin, poly.end) == \
        ('PolyLR', 1.0, 0, 160000)
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.model.test_cfg.mode == 'whole'
    test_types = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    if 'cityscapes' in path:
        assert opt.optimizer.lr == 4e-4
        assert cfg.train_dataloader.batch_size * 2 == 8
        assert head.num_classes == 19 and cfg.crop_size == (1024, 1024)
        assert 'ResizeToMultiple' not in test_types
    else:
        assert opt.optimizer.lr == 3e-4
        assert cfg.train_dataloader.batch_size * 2 == 16
        assert cfg.crop_size == (512, 512)
        assert head.num_classes == (150 if 'ade20k' in path else 171)
        assert test_types.index('ResizeToMultiple') == \
            test_types.index('Resize') + 1
        assert cfg.val_dataloader.dataset.pipeline == \
            cfg.test_dataloader.dataset.pipeline


def test_afformer_base_config_param_count():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile([p for p in AFFORMER if 'base_ade20k' in p][0])
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == 2_937_906


@pytest.mark.parametrize('suffix,key', [('pretrain-nvlabs', 'pretrained'),
                                        ('finetune-hf', 'load_from'),
                                        ('finetune-mmseg', 'load_from')])
def test_segformer_configs_from_converted_files(suffix, key, tmp_path):
    """The fine-tuning configs name the file as its authors publish it
    (converted at load time); the training tool names it when it is
    missing."""
    path = [p for p in SEGFORMER if p.endswith(f'_{suffix}.py')][0]
    cfg = Config.fromfile(path)
    target = cfg.model.pretrained if key == 'pretrained' else cfg.load_from
    assert target.startswith('pretrain/') and 'mmseg_plugins' not in target
    data = tmp_path / 'data' / 'ade' / 'ADEChallengeData2016'
    for sub in ('images', 'annotations'):
        for split in ('training', 'validation'):
            (data / sub / split).mkdir(parents=True)
    proc = call(osp.join(ROOT, 'tools', 'train.py'), path,
                cwd=str(tmp_path))
    assert proc.returncode == 2
    assert f"pretrained checkpoint '{target}'" in proc.stderr


MPVIT = sorted(glob.glob(osp.join(ROOT, 'configs', 'mpvit', '*.py')))
# backbone + UPerHead + FCN auxiliary head, 150 classes; the official
# README's 52M / 105M include the auxiliary head (without it: 50.9M / 104.2M)
MPVIT_PARAMS = dict(tiny=33_892_508, xsmall=38_985_676, small=51_588_020,
                    base=105_295_196)


def test_all_mpvit_configs_present():
    names = {osp.basename(p) for p in MPVIT}
    assert names == {f'mpvit_{a}_upernet_ade20k.py'
                     for a in ('tiny', 'xsmall', 'small', 'base')}


@pytest.mark.parametrize('path', MPVIT, ids=osp.basename)
def test_mpvit_recipe_and_size(path):
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg_plugins.models import MPViT
    cfg = Config.fromfile(path)
    arch = osp.basename(path).split('_')[1]
    backbone, head, aux = (cfg.model.backbone, cfg.model.decode_head,
                           cfg.model.auxiliary_head)
    assert backbone.type == 'mmseg_plugins.MPViT' and backbone.arch == arch
    assert backbone.drop_path_rate == dict(tiny=0.1, xsmall=0.1, small=0.2,
                                           base=0.4)[arch]
    assert backbone.norm_eval is False and cfg.sync_bn == 'torch'
    chans = MPViT(arch).out_channels
    assert (head.type, list(head.in_channels), head.channels) == \
        ('UPerHead', chans, 512)
    assert head.norm_cfg.type == 'SyncBN' and head.num_classes == 150
    assert (aux.type, aux.in_index, aux.in_channels, aux.channels) == \
        ('FCNHead', 2, chans[2], 256)
    assert aux.loss_decode.loss_weight == 0.4
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr,
            opt.optimizer.weight_decay) == ('AdamW', 6e-5, 0.01)
    assert 'paramwise_cfg' not in opt
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.begin, poly.end, poly.eta_min) == \
        ('PolyLR', 1.0, 0, 160000, 0.0)
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.crop_size == (512, 512) and cfg.model.test_cfg.mode == 'whole'
    init_default_scope('mmseg')
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert sum(p.numel() for p in model.parameters()) == MPVIT_PARAMS[arch]
