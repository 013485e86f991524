"""End-to-end tests of tools/model_converters/afformer2mmseg.py."""
import os
import os.path as osp

import pytest
import torch

import afformer_reference as ref
from helpers import call, logged_miou
from helpers import ROOT, Exploit, assert_refused, demo_overrides
from mmseg_plugins.checkpoint import safe_load
from mmseg_plugins.models import AFFormer, AFFormerHead

CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'afformer2mmseg.py')
DEMO = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')
# the official AFFormer head: the last stage (216 channels for every variant)
OFFICIAL_HEAD = {'model.decode_head.in_channels': [216],
                 'model.decode_head.in_index': [3]}


def _official_files(tmp_path, arch='tiny', num_classes=4):
    model = ref.randomise(AFFormer(arch).eval(), seed=7)
    head = ref.randomise(AFFormerHead(
        in_channels=[216], in_index=[3], channels=256,
        num_classes=num_classes,
        norm_cfg=dict(type='GN', num_groups=32)).eval(), seed=8)
    seg = tmp_path / f'AFFormer_{arch}_seg.pth'
    # an mmcv-1.x runner file: meta, state_dict, optimizer
    torch.save(dict(meta=dict(config='...', CLASSES=None),
                    state_dict=ref.official_state_dict(model, head),
                    optimizer=dict(state={}, param_groups=[])), seg)
    imnet = tmp_path / f'AFFormer_{arch}_ImageNet1k.pth'
    torch.save(ref.official_state_dict(model), imnet)
    return model, head, seg, imnet


def test_segmentation_file_to_test_tool(tmp_path, demo_root):
    model, head, seg, _ = _official_files(tmp_path)
    dst = tmp_path / 'converted.pth'
    proc = call(CONVERTER, str(seg), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert 'segmentation checkpoint of variant tiny' in proc.stdout
    assert 'align block' in proc.stdout and 'alias of a shared' in proc.stdout
    # loads strictly into the model the demo config builds once its head
    # reads the last stage only, as the official head does (the demo's own
    # head also reads stage 1, so the official head would not fit it)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(OFFICIAL_HEAD)
    built = MODELS.build(cfg.model)
    missing, unexpected = built.load_state_dict(
        safe_load(str(dst))['state_dict'], strict=True)
    assert not missing and not unexpected
    # and mmseg-style testing with it works, without key warnings
    proc = call(osp.join(ROOT, 'tools', 'test.py'), DEMO, str(dst),
                '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                *demo_overrides(demo_root, 2),
                *[f'{k}={v}'.replace(' ', '')
                  for k, v in OFFICIAL_HEAD.items()])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'mIoU' in proc.stdout
    assert 'missing keys' not in proc.stdout + proc.stderr
    assert 'unexpected key' not in proc.stdout + proc.stderr
    # the official file as it is: converted in memory by test.py, same mIoU
    raw = call(osp.join(ROOT, 'tools', 'test.py'), DEMO, str(seg),
               '--work-dir', str(tmp_path / 'raw'), '--cfg-options',
               *demo_overrides(demo_root, 2),
               *[f'{k}={v}'.replace(' ', '')
                 for k, v in OFFICIAL_HEAD.items()])
    assert raw.returncode == 0, raw.stderr[-2000:]
    assert 'segmentation checkpoint, official layout' in raw.stdout
    assert logged_miou(raw.stdout) == logged_miou(proc.stdout)


def test_imagenet_file_to_pretrained_init(tmp_path):
    model, _, _, imnet = _official_files(tmp_path, arch='small')
    dst = tmp_path / 'imnet_converted.pth'
    proc = call(CONVERTER, str(imnet), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert 'backbone checkpoint of variant small' in proc.stdout
    fresh = AFFormer('small', init_cfg=dict(type='Pretrained',
                                            checkpoint=str(dst)))
    fresh.init_weights()
    for (k, a), b in zip(model.state_dict().items(),
                         fresh.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_wrong_variant_names_first_key_and_shapes(tmp_path):
    _, _, seg, _ = _official_files(tmp_path)
    dst = tmp_path / 'out.pth'
    proc = call(CONVERTER, str(seg), str(dst), '--arch', 'base')
    assert_refused(proc, r"AFFormer-base: first offending key "
                   r"'backbone\.stages\.0\.aggregate\.conv\.weight': shape "
                   r"\(64, 32, 1, 1\) in the file, \(96, 32, 1, 1\)")
    # nothing written, not even a temporary file
    assert sorted(os.listdir(tmp_path)) == sorted(
        [seg.name, 'AFFormer_tiny_ImageNet1k.pth'])


def test_unknown_arch_option(tmp_path):
    _, _, seg, _ = _official_files(tmp_path)
    proc = call(CONVERTER, str(seg), str(tmp_path / 'o.pth'),
                '--arch', 'huge')
    assert_refused(proc, 'valid choices: tiny, small, base')


def test_modified_alias_is_refused(tmp_path):
    _, _, seg, _ = _official_files(tmp_path)
    ckpt = torch.load(seg, weights_only=False)
    key = ('backbone.mhca_stages.2.mhca_blks.0.MHCA_layers.1.factoratt_crpe.'
           'crpe.conv_list.0.weight')
    ckpt['state_dict'][key] = ckpt['state_dict'][key] + 1
    torch.save(ckpt, seg)
    proc = call(CONVERTER, str(seg), str(tmp_path / 'o.pth'))
    assert_refused(proc, 'should duplicate .*different values')
    assert not (tmp_path / 'o.pth').exists()


def test_other_family_is_refused(tmp_path):
    from mmseg_plugins.models import MiT
    src = tmp_path / 'mit.pth'
    torch.save(MiT('b0').state_dict(), src)
    proc = call(CONVERTER, str(src), str(tmp_path / 'o.pth'))
    assert_refused(proc, 'is not an official AFFormer checkpoint: no '
                   "conversion rule for key 'stages.0.patch_embed")


@pytest.mark.parametrize('kind', ['malicious', 'garbage', 'missing'])
def test_bad_files_are_refused(tmp_path, kind):
    src, marker = tmp_path / 'src.pth', tmp_path / 'pwned'
    if kind == 'malicious':
        torch.save({'state_dict': {'x': Exploit(marker)}}, src)
        pattern = 'refusing to load'
    elif kind == 'garbage':
        src.write_bytes(b'PK\x03\x04 definitely not a zip' * 20)
        pattern = 'not a readable PyTorch checkpoint'
    else:
        pattern = 'not found'
    proc = call(CONVERTER, str(src), str(tmp_path / 'o.pth'))
    assert_refused(proc, pattern)
    assert not marker.exists() and not (tmp_path / 'o.pth').exists()
