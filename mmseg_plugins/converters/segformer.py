"""Key rules between SegFormer checkpoint layouts and this project's MiT +
SegformerHead, and the SegFormer family spec for the converter driver.

Source layouts:

* ``nvlabs``: the official release (``mit_bX.pth``: bare keys +
  ``head.*``; ``segformer.bX.*.pth``: ``backbone.``/``decode_head.``), stage
  indices 1-4, ``attn.q``/``attn.kv``, official head ``linear_c{1..4}``,
  ``linear_fuse``, ``linear_pred`` and an unused ``conv_seg``;
* ``mmseg``: mmseg 1.x ``MixVisionTransformer`` (``layers.i.{0,1,2}``, fused
  ``in_proj``, 1x1-conv FFN) and mmseg's own ``SegformerHead``
  (``convs``, ``fusion_conv``), whose keys stay as they are: such files
  run with mmseg's head class;
* ``hf``: Hugging Face transformers (``segformer.encoder.*``, separate
  query/key/value, ``decode_head.linear_c.i``, ``linear_fuse``,
  ``batch_norm``, ``classifier``), stated once as a two-way table
  (:data:`HF_KEY_TABLE`) that also gives the export rules;
* ``smp``: segmentation_models.pytorch (``encoder.`` + NVlabs names,
  ``decoder.mlp_stage.k`` deepest first, ``fuse_stage``,
  ``segmentation_head.0``).

Our layout: ``backbone.stages.i.{patch_embed.{proj,norm}, blocks.j.{norm1,
attn.{q,kv,proj,sr,norm}, norm2, mlp.{fc1,dwconv,fc2}}, norm}`` and
``decode_head.{linear_c.i, fusion_conv.{conv,bn}, conv_seg}`` (mmseg's head:
``decode_head.{convs.i.{conv,bn}, fusion_conv.{conv,bn}, conv_seg}``).
"""
from typing import Dict, Optional, Tuple

from .rules import (ConversionError, Drop, Rename, Split, table_rules,
                    with_prefix)

__all__ = [
    'MMSEG_MIT_TO_MIT', 'HF_KEY_TABLE', 'HF_KEY_FIELDS', 'SEGFORMER_RULES',
    'segformer_spec', 'detect_source', 'is_mmseg_head', 'convert_segformer'
]


def _linear_from_1x1(w):
    """(out, in, 1, 1) conv weight -> (out, in) Linear weight."""
    return w.reshape(w.shape[0], w.shape[1])


#: A block in mmseg's layout (groups: stage, block) and ours.
_MMSEG_BLOCK = r'layers\.(\d+)\.1\.(\d+)\.'
_OUR_BLOCK = r'stages.\1.blocks.\2.'

#: mmseg ``MixVisionTransformer`` (backbone keys, no prefix) -> ``MiT``.
MMSEG_MIT_TO_MIT = (
    Rename(r'layers\.(\d+)\.0\.projection\.(weight|bias)',
           r'stages.\1.patch_embed.proj.\2'),
    Rename(r'layers\.(\d+)\.0\.norm\.(weight|bias)',
           r'stages.\1.patch_embed.norm.\2'),
    Rename(_MMSEG_BLOCK + r'(norm1|norm2)\.(weight|bias)',
           _OUR_BLOCK + r'\3.\4'),
    Split(_MMSEG_BLOCK + r'attn\.attn\.in_proj_(weight|bias)',
          (_OUR_BLOCK + r'attn.q.\3', _OUR_BLOCK + r'attn.kv.\3'), (1, 2)),
    Rename(_MMSEG_BLOCK + r'attn\.attn\.out_proj\.(weight|bias)',
           _OUR_BLOCK + r'attn.proj.\3'),
    Rename(_MMSEG_BLOCK + r'attn\.(sr|norm)\.(weight|bias)',
           _OUR_BLOCK + r'attn.\3.\4'),
    Rename(_MMSEG_BLOCK + r'ffn\.layers\.0\.weight',
           _OUR_BLOCK + 'mlp.fc1.weight', _linear_from_1x1),
    Rename(_MMSEG_BLOCK + r'ffn\.layers\.0\.bias',
           _OUR_BLOCK + 'mlp.fc1.bias'),
    Rename(_MMSEG_BLOCK + r'ffn\.layers\.1\.(weight|bias)',
           _OUR_BLOCK + r'mlp.dwconv.\3'),
    Rename(_MMSEG_BLOCK + r'ffn\.layers\.4\.weight',
           _OUR_BLOCK + 'mlp.fc2.weight', _linear_from_1x1),
    Rename(_MMSEG_BLOCK + r'ffn\.layers\.4\.bias',
           _OUR_BLOCK + 'mlp.fc2.bias'),
    Rename(r'layers\.(\d+)\.2\.(weight|bias)', r'stages.\1.norm.\2'),
)

_MMSEG_HEAD = (
    Rename(r'decode_head\.(convs\.\d\.(?:conv|bn)|fusion_conv\.(?:conv|bn)|'
           r'conv_seg)\.(.+)', r'decode_head.\1.\2'),
)


def _nvlabs_backbone(src: str, dst: str) -> Tuple:
    """Official MiT names (stage numbers 1-4) under the literal prefix
    ``src`` (a regex without groups) -> ours under ``dst``; one rule per
    stage, since the index shifts by one."""
    rules = []
    for s in range(1, 5):
        i = s - 1
        rules += [
            Rename(fr'{src}patch_embed{s}\.(proj|norm)\.(weight|bias)',
                   fr'{dst}stages.{i}.patch_embed.\1.\2'),
            Rename(fr'{src}block{s}\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)',
                   fr'{dst}stages.{i}.blocks.\1.mlp.dwconv.\2'),
            Rename(fr'{src}block{s}\.(\d+)\.(norm1|norm2|'
                   fr'attn\.(?:q|kv|proj|sr|norm)'
                   fr'|mlp\.fc1|mlp\.fc2)\.(weight|bias)',
                   fr'{dst}stages.{i}.blocks.\1.\2.\3'),
            Rename(fr'{src}norm{s}\.(weight|bias)',
                   fr'{dst}stages.{i}.norm.\1'),
        ]
    return tuple(rules)


_NVLABS = with_prefix('backbone.', _nvlabs_backbone('', '')) + tuple(
    Rename(fr'decode_head\.linear_c{s}\.proj\.(weight|bias)',
           fr'decode_head.linear_c.{s - 1}.\1') for s in range(1, 5)) + (
    Rename(r'decode_head\.linear_fuse\.(conv|bn)\.(.+)',
           r'decode_head.fusion_conv.\1.\2'),
    Rename(r'decode_head\.linear_pred\.(weight|bias)',
           r'decode_head.conv_seg.\1'),
    Drop(r'decode_head\.conv_seg\..+', 'the unused 128-channel classifier '
         'of the official head (linear_pred is the real one)'),
    Drop(r'head\.(weight|bias)', 'ImageNet classifier'),
)

#: Hugging Face transformers <-> ours, one row per tensor group: (theirs,
#: ours). HF keeps key and value apart (our ``kv`` is their concatenation);
#: ``{hf}`` is the ``segformer.`` prefix of HF's task models (absent in a
#: bare ``SegformerModel``).
_HF_ENCODER = '{hf}encoder.'
_HF_BLOCK = '{hf}encoder.block.{s}.{b}.'
_OUR_HF_BLOCK = 'backbone.stages.{s}.blocks.{b}.'
HF_KEY_TABLE = (
    (_HF_ENCODER + 'patch_embeddings.{s}.proj.{t}',
     'backbone.stages.{s}.patch_embed.proj.{t}'),
    (_HF_ENCODER + 'patch_embeddings.{s}.layer_norm.{t}',
     'backbone.stages.{s}.patch_embed.norm.{t}'),
    (_HF_BLOCK + 'layer_norm_{n}.{t}', _OUR_HF_BLOCK + 'norm{n}.{t}'),
    (_HF_BLOCK + 'attention.self.query.{t}', _OUR_HF_BLOCK + 'attn.q.{t}'),
    ((_HF_BLOCK + 'attention.self.key.{t}',
      _HF_BLOCK + 'attention.self.value.{t}'), _OUR_HF_BLOCK + 'attn.kv.{t}'),
    (_HF_BLOCK + 'attention.self.sr.{t}', _OUR_HF_BLOCK + 'attn.sr.{t}'),
    (_HF_BLOCK + 'attention.self.layer_norm.{t}',
     _OUR_HF_BLOCK + 'attn.norm.{t}'),
    (_HF_BLOCK + 'attention.output.dense.{t}',
     _OUR_HF_BLOCK + 'attn.proj.{t}'),
    (_HF_BLOCK + 'mlp.dense{n}.{t}', _OUR_HF_BLOCK + 'mlp.fc{n}.{t}'),
    (_HF_BLOCK + 'mlp.dwconv.dwconv.{t}', _OUR_HF_BLOCK + 'mlp.dwconv.{t}'),
    (_HF_ENCODER + 'layer_norm.{s}.{t}', 'backbone.stages.{s}.norm.{t}'),
    ('decode_head.linear_c.{s}.proj.{t}', 'decode_head.linear_c.{s}.{t}'),
    ('decode_head.linear_fuse.weight', 'decode_head.fusion_conv.conv.weight'),
    ('decode_head.batch_norm.{t}', 'decode_head.fusion_conv.bn.{t}'),
    ('decode_head.classifier.{t}', 'decode_head.conv_seg.{t}'),
)
#: What each placeholder of :data:`HF_KEY_TABLE` matches.
HF_KEY_FIELDS = dict(hf=r'(?:segformer\.)?', s=r'\d', b=r'\d+', n=r'[12]',
                     t=r'.+')

_SMP = _nvlabs_backbone(r'encoder\.', 'backbone.') + tuple(
    Rename(fr'decoder\.mlp_stage\.{k}\.linear\.(weight|bias)',
           fr'decode_head.linear_c.{3 - k}.\1') for k in range(4)) + (
    Rename(r'decoder\.fuse_stage\.0\.weight',
           'decode_head.fusion_conv.conv.weight'),
    Rename(r'decoder\.fuse_stage\.1\.(.+)', r'decode_head.fusion_conv.bn.\1'),
    Rename(r'segmentation_head\.0\.(weight|bias)', r'decode_head.conv_seg.\1'),
    Drop(r'encoder\.head\.(weight|bias)', 'ImageNet classifier'),
)

#: Rules per source layout (our keys keep a ``backbone.`` prefix when the
#: source had one or a head; bare backbone files stay bare).
SEGFORMER_RULES: Dict[str, Tuple] = dict(
    nvlabs=_NVLABS,
    mmseg=with_prefix('backbone.', MMSEG_MIT_TO_MIT) + _MMSEG_HEAD,
    hf=table_rules(HF_KEY_TABLE, HF_KEY_FIELDS) + (
        Drop(r'classifier\.(weight|bias)', 'ImageNet classifier'), ),
    smp=_SMP,
)


def detect_source(keys) -> str:
    """Name the layout (``nvlabs``, ``mmseg``, ``hf``, ``smp``) of a state
    dict from its keys.

    Raises:
        ValueError: no SegFormer layout recognised.
    """
    import re
    keys = list(keys)
    checks = (
        ('hf', r'(segformer\.)?encoder\.(patch_embeddings|block)\..*'),
        ('smp', r'encoder\.(patch_embed1|block1)\..*'),
        ('nvlabs', r'(backbone\.)?(patch_embed1|block1)\..*'),
        ('mmseg', r'(backbone\.)?layers\.0\.0\.projection\..*'),
    )
    for name, pattern in checks:
        if any(re.fullmatch(pattern, k) for k in keys):
            return name
    first = keys[0] if keys else '<empty>'
    raise ConversionError('not a SegFormer checkpoint: no NVlabs, mmseg, '
                          'Hugging Face or smp key layout found (first key '
                          f'{first!r})')


def _build_backbone(arch: str):
    from ..models import MiT
    return MiT(arch)


def is_mmseg_head(head_sd) -> bool:
    """Whether head weights (without the ``decode_head.`` prefix) are those
    of mmseg's own ``SegformerHead`` (a ConvModule per scale) rather than
    the official head (a Linear per scale)."""
    return 'convs.0.conv.weight' in head_sd


def _build_head(arch: str, head_sd):
    from mmseg.models.decode_heads import SegformerHead as MMSegSegformerHead

    from ..models import MIT_ARCHS, SegformerHead
    head_class = MMSegSegformerHead if is_mmseg_head(head_sd) else \
        SegformerHead
    return head_class(
        in_channels=list(MIT_ARCHS[arch]['embed_dims']),
        in_index=[0, 1, 2, 3],
        channels=int(head_sd['fusion_conv.conv.weight'].shape[0]),
        num_classes=int(head_sd['conv_seg.weight'].shape[0]),
        norm_cfg=dict(type='BN', requires_grad=True))


def segformer_spec(source: str):
    """The converter-driver spec for one SegFormer source layout."""
    from ..models import MIT_ARCHS
    from .driver import FamilySpec
    if source not in SEGFORMER_RULES:
        raise ConversionError(f'Unknown SegFormer source {source!r}; valid '
                              f'choices: {", ".join(SEGFORMER_RULES)}')
    return FamilySpec(f'SegFormer ({source})', SEGFORMER_RULES[source],
                      list(MIT_ARCHS), _build_backbone, _build_head)


def convert_segformer(src: str,
                      dst: str,
                      arch: Optional[str] = None,
                      source: Optional[str] = None) -> Dict:
    """Convert a SegFormer file or Hugging Face folder ``src`` into ``dst``
    (see :func:`~mmseg_plugins.converters.driver.convert_checkpoint`); the
    layout is detected from the keys unless ``source`` is given.

    Returns:
        dict: The driver's info, plus ``source``.
    """
    import os.path as osp

    from ..checkpoint import read_hf_folder, safe_load, unwrap_state_dict
    from .driver import convert_checkpoint
    sd = read_hf_folder(src) if osp.isdir(src) else \
        unwrap_state_dict(safe_load(src))
    source = source or detect_source(sd)
    info = convert_checkpoint(src, dst, segformer_spec(source), arch,
                              state_dict=sd)
    return dict(info, source=source)
