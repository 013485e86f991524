"""Tests of mmseg_plugins/converters/segformer.py and the SegFormer
converter tools: NVlabs, mmseg, Hugging Face and smp weights in, a Hugging
Face folder out, each verified by logits."""
import os
import os.path as osp
import re

import pytest
import torch

import afformer_reference as ref
from helpers import ROOT, assert_refused, call
from official_files import nvlabs_segformer_keys
from mmseg_plugins.checkpoint import safe_load, unwrap_state_dict
from mmseg_plugins.converters.driver import convert_checkpoint
from mmseg_plugins.converters.hf import export_hf, read_hf_folder
from mmseg_plugins.converters.segformer import detect_source, segformer_spec
from mmseg_plugins.models import MIT_ARCHS, MiT, SegformerHead

transformers = pytest.importorskip('transformers')
TO_MMSEG = osp.join(ROOT, 'tools', 'model_converters', 'segformer2mmseg.py')
TO_HF = osp.join(ROOT, 'tools', 'model_converters', 'segformer2hf.py')
X = torch.randn(2, 3, 96, 128)


def _ours(arch='b0', num_classes=5, eps=1e-6, head_class=SegformerHead,
          seed=0, **mit_kwargs):
    """Our MiT and a head: ours (the official head) or, with
    ``head_class``, mmseg's own SegformerHead."""
    backbone = MiT(arch, norm_eps=eps, **mit_kwargs).eval()
    head = head_class(
        in_channels=list(MIT_ARCHS[arch]['embed_dims']),
        in_index=[0, 1, 2, 3], channels=64 if arch == 'b0' else 128,
        num_classes=num_classes, norm_cfg=dict(type='BN')).eval()
    ref.randomise(backbone, seed)
    ref.randomise(head, seed + 1)
    return backbone, head


def _load(sd, arch='b0', num_classes=5, eps=1e-6, head_class=SegformerHead,
          **mit_kwargs):
    backbone, head = _ours(arch, num_classes, eps, head_class, **mit_kwargs)
    backbone.load_state_dict({k[9:]: v for k, v in sd.items()
                              if k.startswith('backbone.')}, strict=True)
    head.load_state_dict({k[12:]: v for k, v in sd.items()
                          if k.startswith('decode_head.')}, strict=True)
    return backbone, head


def _logits(backbone, head):
    with torch.no_grad():
        return head(backbone(X))


def _convert(tmp_path, sd, source=None, arch=None, name='in.pth'):
    src = tmp_path / name
    torch.save(sd, src)
    dst = tmp_path / 'out.pth'
    convert_checkpoint(str(src), str(dst),
                       segformer_spec(source or detect_source(
                           unwrap_state_dict(sd))), arch)
    return safe_load(str(dst))['state_dict']


def test_nvlabs_segmentation_file(tmp_path):
    backbone, head = _ours()
    sd = nvlabs_segformer_keys(backbone, head)
    assert detect_source(sd) == 'nvlabs'
    conv = _convert(tmp_path, {'meta': {'config': '...'}, 'state_dict': sd},
                    source='nvlabs')
    torch.testing.assert_close(_logits(*_load(conv)),
                               _logits(backbone, head))


def test_nvlabs_imagenet_file_gives_bare_backbone(tmp_path):
    backbone, head = _ours('b1')
    sd = {k[9:]: v for k, v in nvlabs_segformer_keys(backbone, head).items()
          if k.startswith('backbone.')}
    sd['head.weight'] = torch.randn(1000, 512)
    sd['head.bias'] = torch.randn(1000)
    conv = _convert(tmp_path, sd)
    fresh = MiT('b1').eval()
    fresh.load_state_dict(conv, strict=True)
    for a, b in zip(fresh(X), backbone(X)):
        torch.testing.assert_close(a, b)


def test_smp_model(tmp_path):
    backbone, head = _ours()
    nv = nvlabs_segformer_keys(backbone, head)
    sd = {}
    for k, v in nv.items():
        if k.startswith('backbone.'):
            sd['encoder.' + k[9:]] = v
        elif 'linear_c' in k:
            i = int(re.search(r'linear_c(\d)', k).group(1))
            sd[f'decoder.mlp_stage.{4 - i}.linear.' + k.split('.')[-1]] = v
        elif 'linear_fuse.conv' in k:
            sd['decoder.fuse_stage.0.weight'] = v
        elif 'linear_fuse.bn' in k:
            sd['decoder.fuse_stage.1.' + k.split('.')[-1]] = v
        elif 'linear_pred' in k:
            sd['segmentation_head.0.' + k.split('.')[-1]] = v
    assert detect_source(sd) == 'smp'
    conv = _convert(tmp_path, sd)
    torch.testing.assert_close(_logits(*_load(conv)),
                               _logits(backbone, head))


def test_mmseg_model_equals_mmseg_segformer(tmp_path):
    from mmseg.models.backbones import MixVisionTransformer
    from mmseg.models.decode_heads import SegformerHead as MMSegHead
    mb = ref.randomise(MixVisionTransformer(
        embed_dims=32, num_heads=[1, 2, 5, 8], num_layers=[2, 2, 2, 2]
    ).eval(), 3)
    mh = ref.randomise(MMSegHead(
        in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3], channels=64,
        num_classes=5, norm_cfg=dict(type='BN')).eval(), 4)
    sd = {f'backbone.{k}': v for k, v in mb.state_dict().items()}
    sd.update({f'decode_head.{k}': v for k, v in mh.state_dict().items()})
    assert detect_source(sd) == 'mmseg'
    conv = _convert(tmp_path, {'state_dict': sd})
    # the head keys stay mmseg's: the file runs with mmseg's head class
    assert {k for k in conv if k.startswith('decode_head.')} == \
        {k for k in sd if k.startswith('decode_head.')}
    ours = _load(conv, head_class=MMSegHead, patch_norm_eps=1e-6,
                 sr_norm_eps=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(_logits(*ours), mh(mb(X)), atol=1e-5,
                                   rtol=1e-5)


def _random_hf(num_labels=5):
    cfg = transformers.SegformerConfig(num_labels=num_labels,
                                       decoder_hidden_size=64)
    model = transformers.SegformerForSemanticSegmentation(cfg).eval()
    return ref.randomise(model, 5)


def test_hugging_face_folder_through_the_tool(tmp_path):
    hf = _random_hf()
    folder = tmp_path / 'segformer-b0-hf'
    hf.save_pretrained(folder)
    dst = tmp_path / 'converted.pth'
    proc = call(TO_MMSEG, str(folder), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert 'source layout: hf' in proc.stdout
    assert 'segmentation checkpoint of variant b0' in proc.stdout
    conv = safe_load(str(dst))['state_dict']
    with torch.no_grad():
        expected = hf(pixel_values=X).logits
    # HF uses LayerNorm eps 1e-5 everywhere: with the same eps, same logits
    same_eps = _load(conv, eps=1e-5)
    torch.testing.assert_close(_logits(*same_eps), expected, atol=1e-4,
                               rtol=1e-4)
    # with the official eps (1e-6 in block/stage norms) they differ a little
    official = _load(conv)
    diff = (_logits(*official) - expected).abs().max().item()
    assert 0 < diff < 0.05 * expected.abs().max().item()


def test_export_to_hugging_face_and_back(tmp_path):
    backbone, head = _ours(eps=1e-5)
    ckpt = tmp_path / 'ours.pth'
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    sd.update({f'decode_head.{k}': v for k, v in head.state_dict().items()})
    torch.save({'state_dict': sd, 'meta': {}}, ckpt)
    folder = tmp_path / 'exported'
    proc = call(TO_HF, str(ckpt), str(folder))
    assert proc.returncode == 0, proc.stderr
    hf = transformers.SegformerForSemanticSegmentation.from_pretrained(
        str(folder)).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=X).logits,
                                   _logits(backbone, head), atol=1e-4,
                                   rtol=1e-4)
    back = tmp_path / 'back.pth'
    hf_sd = read_hf_folder(str(folder))
    convert_checkpoint(str(folder), str(back), segformer_spec('hf'),
                       state_dict=hf_sd)
    for k, v in safe_load(str(back))['state_dict'].items():
        torch.testing.assert_close(v, sd[k], msg=k)


def test_export_refuses_existing_folder_and_mmseg_head(tmp_path):
    from mmseg.models.decode_heads import SegformerHead as MMSegHead

    from mmseg_plugins.converters.rules import ConversionError
    backbone, head = _ours(head_class=MMSegHead)
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    sd.update({f'decode_head.{k}': v for k, v in head.state_dict().items()})
    ckpt = tmp_path / 'mmseg_form.pth'
    torch.save({'state_dict': sd}, ckpt)
    with pytest.raises(ConversionError, match="mmseg's SegformerHead"):
        export_hf(str(ckpt), str(tmp_path / 'o'))
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'x').write_text('x')
    with pytest.raises(ConversionError, match='not empty'):
        export_hf(str(ckpt), str(tmp_path / 'full'))
    assert not (tmp_path / 'o').exists()


def test_bad_inputs_are_refused(tmp_path):
    from mmseg_plugins.models import AFFormer
    other = tmp_path / 'afformer.pth'
    torch.save(AFFormer('tiny').state_dict(), other)
    assert_refused(call(TO_MMSEG, str(other),
                        str(tmp_path / 'o1.pth')),
                   'not a SegFormer checkpoint')
    b2 = tmp_path / 'mit_b2.pth'
    backbone, head = _ours('b2')
    nvlabs = nvlabs_segformer_keys(backbone, head)
    torch.save({k[9:]: v for k, v in nvlabs.items()
                if k.startswith('backbone.')}, b2)
    assert_refused(call(TO_MMSEG, str(b2), str(tmp_path / 'o2.pth'),
                        '--arch', 'b0'),
                   r"SegFormer \(nvlabs\)-b0: first offending key "
                   r"'stages\.0\.patch_embed\.proj\.weight': shape "
                   r"\(64, 3, 7, 7\) in the file, \(32, 3, 7, 7\)")
    empty = tmp_path / 'hf-no-weights'
    empty.mkdir()
    (empty / 'config.json').write_text('{}')
    assert_refused(call(TO_MMSEG, str(empty),
                        str(tmp_path / 'o3.pth')),
                   'holds no weights: expected model.safetensors')
    assert not any(n.startswith('o') for n in os.listdir(tmp_path))
