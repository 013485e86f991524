"""End-to-end tests of tools/model_converters/mpvit2mmseg.py."""
import os
import os.path as osp

import pytest
import torch
from mmseg.models.decode_heads import FCNHead, UPerHead

import mpvit_reference as ref
from helpers import call, logged_miou
from helpers import ROOT, Exploit, assert_refused, demo_overrides
from mmseg_plugins.checkpoint import safe_load
from mmseg_plugins.models import MPViT

CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'mpvit2mmseg.py')
DEMO = osp.join(ROOT, 'configs', 'demo',
                'mpvit_tiny_upernet_shapes-128x128.py')
BN = dict(type='BN', requires_grad=True)


def _official_files(tmp_path, arch='tiny', num_classes=4):
    """An official ImageNet file and an official (mmcv 1.x) UperNet file,
    in the official key layout, from random weights."""
    model = ref.randomise(MPViT(arch).eval(), seed=7)
    chans = model.out_channels
    decode = ref.randomise(UPerHead(in_channels=chans, in_index=[0, 1, 2, 3],
                                    channels=512, num_classes=num_classes,
                                    norm_cfg=BN).eval(), seed=8)
    aux = ref.randomise(FCNHead(in_channels=chans[2], in_index=2, channels=256,
                                num_convs=1, concat_input=False,
                                num_classes=num_classes,
                                norm_cfg=BN).eval(), seed=9)
    sd = {f'backbone.{k}': v for k, v in ref.official_state_dict(
        model).items()}
    sd.update({f'decode_head.{k}': v for k, v in decode.state_dict().items()})
    sd.update({f'auxiliary_head.{k}': v for k, v in aux.state_dict().items()})
    seg = tmp_path / f'upernet_mpvit_{arch}.pth'
    torch.save(dict(meta=dict(config='...', CLASSES=None), state_dict=sd,
                    optimizer=dict(state={}, param_groups=[])), seg)
    imnet = tmp_path / f'mpvit_{arch}.pth'
    torch.save({'model': ref.official_state_dict(model, num_classes=1000)},
               imnet)
    return model, (decode, aux), seg, imnet


def test_upernet_file_to_test_tool(tmp_path, demo_root):
    model, (decode, aux), seg, _ = _official_files(tmp_path)
    dst = tmp_path / 'converted.pth'
    proc = call(CONVERTER, str(seg), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert 'segmentation checkpoint of variant tiny' in proc.stdout
    assert 'dropped 322 keys (alias of a shared module' in proc.stdout
    # loads strictly into the model the demo config builds, same outputs
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    built = revert_sync_batchnorm(
        MODELS.build(Config.fromfile(DEMO).model)).eval()
    missing, unexpected = built.load_state_dict(
        safe_load(str(dst))['state_dict'], strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = model(x)
        torch.testing.assert_close(built.decode_head(built.backbone(x)),
                                   decode(feats))
        torch.testing.assert_close(built.auxiliary_head(built.backbone(x)),
                                   aux(feats))
    # and mmseg-style testing with it works, without key warnings (on the
    # first 4 validation images: UperNet's 512 channels are the slow part)
    options = [*demo_overrides(demo_root, 2),
               'test_dataloader.dataset.indices=4']
    proc = call(osp.join(ROOT, 'tools', 'test.py'), DEMO, str(dst),
                '--work-dir', str(tmp_path / 'w'), '--cfg-options', *options)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'mIoU' in proc.stdout and 'Iter(test) [4/4]' in proc.stdout
    # the official file as it is: converted in memory by test.py, same mIoU
    raw = call(osp.join(ROOT, 'tools', 'test.py'), DEMO, str(seg),
               '--work-dir', str(tmp_path / 'raw'), '--cfg-options', *options)
    assert raw.returncode == 0, raw.stderr[-2000:]
    assert 'segmentation checkpoint, official layout' in raw.stdout
    assert logged_miou(raw.stdout) == logged_miou(proc.stdout)
    assert 'missing keys' not in proc.stdout + proc.stderr
    assert 'unexpected key' not in proc.stdout + proc.stderr


def test_imagenet_file_to_pretrained_init(tmp_path):
    model, _, _, imnet = _official_files(tmp_path)
    dst = tmp_path / 'imnet_converted.pth'
    proc = call(CONVERTER, str(imnet), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert 'backbone checkpoint of variant tiny' in proc.stdout
    assert 'dropped 2 keys (ImageNet classifier' in proc.stdout
    fresh = MPViT('tiny', init_cfg=dict(type='Pretrained',
                                        checkpoint=str(dst)))
    fresh.init_weights()
    for (k, a), b in zip(model.state_dict().items(),
                         fresh.state_dict().values()):
        assert torch.equal(a, b), k


def test_wrong_variant_names_first_key_and_shapes(tmp_path):
    _, _, _, imnet = _official_files(tmp_path)
    dst = tmp_path / 'out.pth'
    proc = call(CONVERTER, str(imnet), str(dst), '--arch', 'xsmall')
    # tiny and xsmall differ first in the MLP width of stage 0 (ratio 2 / 4)
    assert_refused(proc, r"MPViT-xsmall: first offending key "
                   r"'stages\.0\.encoders\.0\.blocks\.0\.mlp\.fc1\.weight': "
                   r'shape \(128, 64\) in the file, \(256, 64\) in the model')
    assert not dst.exists()
    proc = call(CONVERTER, str(imnet), str(dst), '--arch', 'huge')
    assert_refused(proc, 'valid choices: tiny, xsmall, small, base')


def test_auxiliary_head_without_decode_head_is_refused(tmp_path):
    _, _, seg, _ = _official_files(tmp_path)
    ckpt = torch.load(seg, weights_only=False)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.startswith('decode_head.')}
    torch.save(ckpt, seg)
    proc = call(CONVERTER, str(seg), str(tmp_path / 'o.pth'))
    assert_refused(proc, 'auxiliary_head. weights but no decode_head')


@pytest.mark.parametrize('kind', ['afformer', 'malicious', 'garbage'])
def test_bad_files_are_refused(tmp_path, kind):
    src, marker = tmp_path / 'src.pth', tmp_path / 'pwned'
    if kind == 'afformer':
        from mmseg_plugins.models import AFFormer
        torch.save(AFFormer('tiny').state_dict(), src)
        pattern = ("not an official MPViT checkpoint: no conversion rule "
                   "for key 'stages.0.patch_embeds")
    elif kind == 'malicious':
        torch.save({'state_dict': {'x': Exploit(marker)}}, src)
        pattern = 'refusing to load'
    else:
        src.write_bytes(b'PK\x03\x04 definitely not a zip' * 20)
        pattern = 'not a readable PyTorch checkpoint'
    proc = call(CONVERTER, str(src), str(tmp_path / 'o.pth'))
    assert_refused(proc, pattern)
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ['src.pth']
