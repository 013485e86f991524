"""Key rules: official MPViT checkpoints -> this project's MPViT.

Official layout (github youngwanLEE/MPViT ``mpvit.py`` and
``semantic_segmentation/backbone/mpvit.py``): ``stem``,
``patch_embed_stages.i.patch_embeds.p.patch_conv``,
``mhca_stages.i.{InvRes,aggregate,mhca_blks.p}``; each path's shared
``cpe``/``crpe`` appear again under every block (``MHCA_layers.l.cpe``,
``.crpe``, ``.factoratt_crpe.crpe``). ImageNet files are ``{'model': ...}``
with ``cls_head.cls``; UperNet files (mmcv 1.x) prefix the backbone with
``backbone.`` and hold ``decode_head.*`` (UPerHead) and ``auxiliary_head.*``
(FCNHead), whose keys mmseg 1.x kept unchanged.

AFFormer grew out of MPViT and its checkpoints share this layout (one path,
a ``Restore`` branch instead of ``InvRes``): :func:`mhca_backbone_rules`
states it once for both converters.
"""
import re
from typing import Mapping, Optional

from .rules import Alias, Drop, Rename, with_prefix

__all__ = [
    'mhca_backbone_rules', 'MPVIT_BACKBONE_RULES', 'MPVIT_HEAD_RULES',
    'MPVIT_RULES', 'mpvit_spec', 'convert_mpvit'
]


def mhca_backbone_rules(path_src: str, path_dst: str, local_src: str,
                        mlp_layers: Optional[Mapping[str, str]] = None
                        ) -> tuple:
    """Rules for the official MPViT-style backbone layout.

    Args:
        path_src (str): Pattern of one path's encoder after
            ``mhca_stages.<s>.``; may capture the path as ``(?P<p>...)``.
        path_dst (str): Our encoder after ``stages.<s>.`` (template).
        local_src (str): Official name of the residual conv branch.
        mlp_layers (Mapping[str, str], optional): ``{official: ours}`` names
            of the block MLP's layers. Default: fc1 and fc2 unchanged.
    """
    mlp_layers = mlp_layers or {'fc1': 'fc1', 'fc2': 'fc2'}
    s = r'mhca_stages\.(?P<s>\d)\.'
    enc = s + path_src
    layer = enc + r'MHCA_layers\.(?P<l>\d+)\.'
    dst = r'stages.\g<s>.' + path_dst
    block = dst + r'blocks.\g<l>.'
    return (
        Rename(r'stem\.(?P<i>\d)\.(?P<m>conv|bn)\.(?P<t>.+)',
               r'stem.\g<i>.\g<m>.\g<t>'),
        Rename(r'patch_embed_stages\.(?P<s>\d)\.patch_embeds\.(?P<p>\d)\.'
               r'patch_conv\.(?P<m>dwconv|pwconv|bn)\.(?P<t>.+)',
               r'stages.\g<s>.patch_embeds.\g<p>.\g<m>.\g<t>'),
        Rename(s + local_src + r'\.(?P<t>.+)', r'stages.\g<s>.local.\g<t>'),
        Rename(s + r'aggregate\.(?P<t>.+)', r'stages.\g<s>.aggregate.\g<t>'),
        Rename(enc + r'(?P<m>cpe|crpe)\.(?P<t>.+)', dst + r'\g<m>.\g<t>'),
        Alias(layer + r'cpe\.(?P<t>.+)', dst + r'cpe.\g<t>'),
        Alias(layer + r'(?:factoratt_crpe\.)?crpe\.(?P<t>.+)',
              dst + r'crpe.\g<t>'),
        Rename(layer + r'factoratt_crpe\.(?P<m>qkv|proj)\.(?P<t>.+)',
               block + r'attn.\g<m>.\g<t>'),
        *(Rename(layer + r'mlp\.' + re.escape(src) + r'\.(?P<t>.+)',
                 block + f'mlp.{dst}.' + r'\g<t>')
          for src, dst in mlp_layers.items()),
        Rename(layer + r'(?P<m>norm1|norm2)\.(?P<t>.+)',
               block + r'\g<m>.\g<t>'),
        Drop(r'(cls_head|head)\..+', 'ImageNet classifier, not part of the '
             'segmentation backbone'),
    )


MPVIT_BACKBONE_RULES = mhca_backbone_rules(r'mhca_blks\.(?P<p>\d)\.',
                                           r'encoders.\g<p>.', 'InvRes')

#: mmseg 1.x kept the UPerHead and FCNHead keys of mmseg 0.x.
MPVIT_HEAD_RULES = (
    Rename(r'(?P<h>decode_head|auxiliary_head)\.(?P<t>.+)',
           r'\g<h>.\g<t>'),
)

#: Rules for ImageNet (bare keys) and UperNet (``backbone.``) files.
MPVIT_RULES = with_prefix('backbone.', MPVIT_BACKBONE_RULES) + \
    MPVIT_HEAD_RULES


def _build_backbone(arch: str):
    from ..models import MPViT
    return MPViT(arch)


def _build_decode_head(arch: str, head_sd):
    """UPerHead with the hyper-parameters read from its weights."""
    from mmseg.models.decode_heads import UPerHead

    from ..models import MPVIT_ARCHS
    dims = list(MPVIT_ARCHS[arch]['embed_dims'])
    return UPerHead(
        in_channels=dims[1:] + dims[-1:],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=int(head_sd['conv_seg.weight'].shape[1]),
        num_classes=int(head_sd['conv_seg.weight'].shape[0]),
        norm_cfg=dict(type='BN', requires_grad=True))


def _build_auxiliary_head(arch: str, head_sd):
    """FCNHead on stage 2 with the hyper-parameters read from its
    weights."""
    from mmseg.models.decode_heads import FCNHead
    conv = head_sd['convs.0.conv.weight']  # (channels, in, k, k)
    return FCNHead(
        in_channels=int(conv.shape[1]),
        in_index=2,
        channels=int(conv.shape[0]),
        num_convs=sum(1 for k in head_sd
                      if k.startswith('convs.') and k.endswith('conv.weight')),
        kernel_size=int(conv.shape[-1]),
        concat_input='conv_cat.conv.weight' in head_sd,
        num_classes=int(head_sd['conv_seg.weight'].shape[0]),
        norm_cfg=dict(type='BN', requires_grad=True))


def mpvit_spec():
    """The :class:`~mmseg_plugins.converters.driver.FamilySpec` of MPViT."""
    from ..models import MPVIT_ARCHS
    from .driver import FamilySpec
    return FamilySpec('MPViT', MPVIT_RULES, list(MPVIT_ARCHS),
                      _build_backbone, _build_decode_head,
                      dict(auxiliary_head=_build_auxiliary_head))


def convert_mpvit(src: str, dst: str, arch: Optional[str] = None) -> dict:
    """Convert an official MPViT checkpoint ``src`` into ``dst`` (see
    :func:`~mmseg_plugins.converters.driver.convert_checkpoint`)."""
    from .driver import convert_checkpoint
    return convert_checkpoint(src, dst, mpvit_spec(), arch)
