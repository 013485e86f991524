"""Files in the authors' ImageNet layouts (AFFormer, MPViT's
``{'model': ...}``, NVlabs MiT), written from randomised models of ours by
the reference key layouts, for the weight-loading tests."""
import torch

import afformer_reference as afformer_ref
import mpvit_reference as mpvit_ref
from mmseg_plugins.models import AFFormer, MiT, MPViT

#: A fresh backbone of each family's variant used by the files.
BUILD = dict(AFFormer=lambda **kw: AFFormer('tiny', **kw),
             MPViT=lambda **kw: MPViT('tiny', **kw),
             MiT=lambda **kw: MiT('b0', **kw))

#: The file name each family's authors publish.
NAMES = dict(AFFormer='AFFormer_tiny_ImageNet1k.pth', MPViT='mpvit_tiny.pth',
             MiT='mit_b0.pth')


def nvlabs_mit_keys(model) -> dict:
    """Our MiT's weights under the NVlabs key names (stage numbers 1-4,
    ``patch_embed{s}``/``block{s}``/``norm{s}``), written independently of
    the converters' rules."""
    import re
    out = {}
    for k, v in model.state_dict().items():
        s, rest = re.fullmatch(r'stages\.(\d)\.(.+)', k).groups()
        s = int(s) + 1
        if rest.startswith('patch_embed.'):
            key = f'patch_embed{s}.' + rest[len('patch_embed.'):]
        elif rest.startswith('blocks.'):
            key = f'block{s}.' + rest[len('blocks.'):].replace(
                'mlp.dwconv.', 'mlp.dwconv.dwconv.')
        else:
            key = f'norm{s}.' + rest[len('norm.'):]
        out[key] = v
    return out


def nvlabs_segformer_keys(backbone, head) -> dict:
    """Our MiT and SegFormer head under the NVlabs segmentation file's key
    names (the official head with its unused 128-channel ``conv_seg``),
    written independently of the converters' rules."""
    import re
    out = {'backbone.' + k: v for k, v in nvlabs_mit_keys(backbone).items()}
    for k, v in head.state_dict().items():
        k = re.sub(r'linear_c\.(\d)\.',
                   lambda m: f'linear_c{int(m.group(1)) + 1}.proj.', k)
        k = k.replace('fusion_conv.', 'linear_fuse.').replace(
            'conv_seg.', 'linear_pred.')
        out['decode_head.' + k] = v
    classes = head.conv_seg.out_channels
    out['decode_head.conv_seg.weight'] = torch.randn(classes, 128, 1, 1)
    out['decode_head.conv_seg.bias'] = torch.randn(classes)
    return out


def _nvlabs_mit(model):
    """Our MiT's weights as NVlabs' ImageNet file: the NVlabs keys and the
    1000-class ``head``."""
    out = nvlabs_mit_keys(model)
    out['head.weight'] = torch.randn(1000, model.stage_channels[-1])
    out['head.bias'] = torch.randn(1000)
    return out


def official_files(directory) -> dict:
    """``{family: (model, path)}``: a randomised model of each family and
    its weights saved in the authors' layout under ``directory``."""
    afformer = afformer_ref.randomise(BUILD['AFFormer']().eval(), seed=7)
    mpvit = mpvit_ref.randomise(BUILD['MPViT']().eval(), seed=7)
    mit = afformer_ref.randomise(BUILD['MiT']().eval(), seed=7)
    contents = dict(
        AFFormer=afformer_ref.official_state_dict(afformer),
        MPViT={'model': mpvit_ref.official_state_dict(mpvit, 1000)},
        MiT=_nvlabs_mit(mit))
    models = dict(AFFormer=afformer, MPViT=mpvit, MiT=mit)
    files = {}
    for family, content in contents.items():
        path = directory / NAMES[family]
        torch.save(content, path)
        files[family] = (models[family], str(path))
    return files
