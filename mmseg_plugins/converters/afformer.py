"""Key rules: official AFFormer checkpoints -> this project's AFFormer.

Official layout (github dongbo811/AFFormer ``tools/afformer.py`` and the
``CLS`` head): ``stem``, ``patch_embed_stages.i.patch_embeds.j.patch_conv``,
``mhca_stages.i.{Restore,aggregate,mhca_blks.0}``; each stage's shared
``cpe``/``crpe`` appear again under every block (``MHCA_layers.j.cpe``,
``.crpe``, ``.factoratt_crpe.crpe``). Segmentation files prefix the
backbone with ``backbone.`` and hold ``decode_head.{squeeze,align,conv_seg}``.
"""
from typing import Optional

from .mpvit import mhca_backbone_rules
from .rules import Drop, Rename, with_prefix

__all__ = [
    'AFFORMER_BACKBONE_RULES', 'AFFORMER_HEAD_RULES', 'AFFORMER_RULES',
    'afformer_spec', 'convert_afformer'
]

AFFORMER_BACKBONE_RULES = mhca_backbone_rules(
    r'mhca_blks\.0\.', 'encoder.', 'Restore',
    {'fc1': 'fc1', 'fc2': 'fc2', 'dwconv.dwconv': 'dwconv'})

AFFORMER_HEAD_RULES = (
    Rename(r'decode_head\.(squeeze|conv_seg)\.(.+)', r'decode_head.\1.\2'),
    Drop(r'decode_head\.align\..+', "the official head's align block, "
         'never used in its forward'),
)

#: Rules for both ImageNet (bare keys) and segmentation (``backbone.``)
#: files.
AFFORMER_RULES = with_prefix('backbone.', AFFORMER_BACKBONE_RULES) + \
    AFFORMER_HEAD_RULES


def _build_backbone(arch: str):
    from ..models import AFFormer
    return AFFormer(arch)


def _build_head(arch: str, head_sd):
    from ..models import AFFormerHead
    squeeze = head_sd['squeeze.conv.weight']  # (channels, in, 1, 1)
    return AFFormerHead(
        in_channels=[int(squeeze.shape[1])],
        in_index=[3],
        channels=int(squeeze.shape[0]),
        num_classes=int(head_sd['conv_seg.weight'].shape[0]),
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True))


def afformer_spec():
    """The :class:`~mmseg_plugins.converters.driver.FamilySpec` of AFFormer."""
    from ..models import AFFORMER_ARCHS
    from .driver import FamilySpec
    return FamilySpec('AFFormer', AFFORMER_RULES, list(AFFORMER_ARCHS),
                      _build_backbone, _build_head)


def convert_afformer(src: str, dst: str, arch: Optional[str] = None) -> dict:
    """Convert an official AFFormer checkpoint ``src`` into ``dst`` (see
    :func:`~mmseg_plugins.converters.driver.convert_checkpoint`)."""
    from .driver import convert_checkpoint
    return convert_checkpoint(src, dst, afformer_spec(), arch)
