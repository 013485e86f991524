"""Key rules between SegFormer checkpoint layouts and this project's MiT +
SegformerHead, and the SegFormer family spec for the converter driver.

Source layouts (see the project's reference notes, section 7):

* ``nvlabs``: the official release (``mit_bX.pth``: bare keys +
  ``head.*``; ``segformer.bX.*.pth``: ``backbone.``/``decode_head.``), stage
  indices 1-4, ``attn.q``/``attn.kv``, official head ``linear_c{1..4}``,
  ``linear_fuse``, ``linear_pred`` and an unused ``conv_seg``;
* ``mmseg``: mmseg 1.x ``MixVisionTransformer`` (``layers.i.{0,1,2}``, fused
  ``in_proj``, 1x1-conv FFN) and mmseg's head (``convs``, ``fusion_conv``);
* ``hf``: Hugging Face transformers (``segformer.encoder.*``, separate
  query/key/value, ``decode_head.linear_c.i``, ``linear_fuse``,
  ``batch_norm``, ``classifier``);
* ``smp``: segmentation_models.pytorch (``encoder.`` + NVlabs names,
  ``decoder.mlp_stage.k`` deepest first, ``fuse_stage``,
  ``segmentation_head.0``).

Our layout: ``backbone.stages.i.{patch_embed.{proj,norm}, blocks.j.{norm1,
attn.{q,kv,proj,sr,norm}, norm2, mlp.{fc1,dwconv,fc2}}, norm}`` and
``decode_head.{linear_c.i | convs.i}, fusion_conv.{conv,bn}, conv_seg``.
"""
from typing import Dict, Tuple

from .rules import Drop, Fuse, Rename, Split, with_prefix

__all__ = [
    'MMSEG_MIT_TO_MIT', 'SEGFORMER_RULES', 'OURS_TO_HF', 'segformer_spec',
    'detect_source'
]


def _linear_from_1x1(w):
    """(out, in, 1, 1) conv weight -> (out, in) Linear weight."""
    return w.reshape(w.shape[0], w.shape[1])


_B = r'layers\.(\d+)\.1\.(\d+)\.'  # a block in mmseg's layout
_T = r'stages.\1.blocks.\2.'

#: mmseg ``MixVisionTransformer`` (backbone keys, no prefix) -> ``MiT``.
MMSEG_MIT_TO_MIT = (
    Rename(r'layers\.(\d+)\.0\.projection\.(weight|bias)',
           r'stages.\1.patch_embed.proj.\2'),
    Rename(r'layers\.(\d+)\.0\.norm\.(weight|bias)',
           r'stages.\1.patch_embed.norm.\2'),
    Rename(_B + r'(norm1|norm2)\.(weight|bias)', _T + r'\3.\4'),
    Split(_B + r'attn\.attn\.in_proj_(weight|bias)',
          (_T + r'attn.q.\3', _T + r'attn.kv.\3'), (1, 2)),
    Rename(_B + r'attn\.attn\.out_proj\.(weight|bias)', _T + r'attn.proj.\3'),
    Rename(_B + r'attn\.(sr|norm)\.(weight|bias)', _T + r'attn.\3.\4'),
    Rename(_B + r'ffn\.layers\.0\.weight', _T + 'mlp.fc1.weight',
           _linear_from_1x1),
    Rename(_B + r'ffn\.layers\.0\.bias', _T + 'mlp.fc1.bias'),
    Rename(_B + r'ffn\.layers\.1\.(weight|bias)', _T + r'mlp.dwconv.\3'),
    Rename(_B + r'ffn\.layers\.4\.weight', _T + 'mlp.fc2.weight',
           _linear_from_1x1),
    Rename(_B + r'ffn\.layers\.4\.bias', _T + 'mlp.fc2.bias'),
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
            Rename(fr'{src}block{s}\.(\d+)\.(norm1|norm2|attn\.(?:q|kv|proj|sr|norm)'
                   fr'|mlp\.fc1|mlp\.fc2)\.(weight|bias)',
                   fr'{dst}stages.{i}.blocks.\1.\2.\3'),
            Rename(fr'{src}norm{s}\.(weight|bias)', fr'{dst}stages.{i}.norm.\1'),
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

_HF_B = r'((?:segformer\.)?)encoder\.block\.(\d+)\.(\d+)\.'
_HF_T = r'backbone.stages.\2.blocks.\3.'
_HF = (
    Rename(r'(?:segformer\.)?encoder\.patch_embeddings\.(\d+)\.proj\.(.+)',
           r'backbone.stages.\1.patch_embed.proj.\2'),
    Rename(r'(?:segformer\.)?encoder\.patch_embeddings\.(\d+)\.layer_norm\.'
           r'(.+)', r'backbone.stages.\1.patch_embed.norm.\2'),
    Rename(_HF_B + r'layer_norm_([12])\.(.+)', _HF_T + r'norm\4.\5'),
    Rename(_HF_B + r'attention\.self\.query\.(.+)', _HF_T + r'attn.q.\4'),
    Fuse(_HF_B + r'attention\.self\.key\.(.+)',
         (r'\1encoder.block.\2.\3.attention.self.value.\4', ),
         _HF_T + r'attn.kv.\4'),
    Rename(_HF_B + r'attention\.self\.sr\.(.+)', _HF_T + r'attn.sr.\4'),
    Rename(_HF_B + r'attention\.self\.layer_norm\.(.+)',
           _HF_T + r'attn.norm.\4'),
    Rename(_HF_B + r'attention\.output\.dense\.(.+)', _HF_T + r'attn.proj.\4'),
    Rename(_HF_B + r'mlp\.dense([12])\.(.+)', _HF_T + r'mlp.fc\4.\5'),
    Rename(_HF_B + r'mlp\.dwconv\.dwconv\.(.+)', _HF_T + r'mlp.dwconv.\4'),
    Rename(r'(?:segformer\.)?encoder\.layer_norm\.(\d+)\.(.+)',
           r'backbone.stages.\1.norm.\2'),
    Rename(r'decode_head\.linear_c\.(\d)\.proj\.(.+)',
           r'decode_head.linear_c.\1.\2'),
    Rename(r'decode_head\.linear_fuse\.weight',
           'decode_head.fusion_conv.conv.weight'),
    Rename(r'decode_head\.batch_norm\.(.+)', r'decode_head.fusion_conv.bn.\1'),
    Rename(r'decode_head\.classifier\.(.+)', r'decode_head.conv_seg.\1'),
    Drop(r'classifier\.(weight|bias)', 'ImageNet classifier'),
)

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
    hf=_HF,
    smp=_SMP,
)

#: Ours (official head form) -> Hugging Face's layout (the reverse of
#: ``hf``; kv is split back into key and value).
_O = r'backbone\.stages\.(\d)\.blocks\.(\d+)\.'
_HB = r'segformer.encoder.block.\1.\2.'
OURS_TO_HF = (
    Rename(r'backbone\.stages\.(\d)\.patch_embed\.proj\.(.+)',
           r'segformer.encoder.patch_embeddings.\1.proj.\2'),
    Rename(r'backbone\.stages\.(\d)\.patch_embed\.norm\.(.+)',
           r'segformer.encoder.patch_embeddings.\1.layer_norm.\2'),
    Rename(_O + r'norm([12])\.(.+)', _HB + r'layer_norm_\3.\4'),
    Rename(_O + r'attn\.q\.(.+)', _HB + r'attention.self.query.\3'),
    Split(_O + r'attn\.kv\.(.+)', (_HB + r'attention.self.key.\3',
                                   _HB + r'attention.self.value.\3'), (1, 1)),
    Rename(_O + r'attn\.sr\.(.+)', _HB + r'attention.self.sr.\3'),
    Rename(_O + r'attn\.norm\.(.+)', _HB + r'attention.self.layer_norm.\3'),
    Rename(_O + r'attn\.proj\.(.+)', _HB + r'attention.output.dense.\3'),
    Rename(_O + r'mlp\.fc([12])\.(.+)', _HB + r'mlp.dense\3.\4'),
    Rename(_O + r'mlp\.dwconv\.(.+)', _HB + r'mlp.dwconv.dwconv.\3'),
    Rename(r'backbone\.stages\.(\d)\.norm\.(.+)',
           r'segformer.encoder.layer_norm.\1.\2'),
    Rename(r'decode_head\.linear_c\.(\d)\.(.+)',
           r'decode_head.linear_c.\1.proj.\2'),
    Rename(r'decode_head\.fusion_conv\.conv\.weight',
           'decode_head.linear_fuse.weight'),
    Rename(r'decode_head\.fusion_conv\.bn\.(.+)', r'decode_head.batch_norm.\1'),
    Rename(r'decode_head\.conv_seg\.(.+)', r'decode_head.classifier.\1'),
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
    raise ValueError('not a SegFormer checkpoint: no NVlabs, mmseg, Hugging '
                     f'Face or smp key layout found (first key {first!r})')


def _build_backbone(arch: str):
    from ..models import MiT
    return MiT(arch)


def _build_head(arch: str, head_sd):
    from ..models import MIT_ARCHS, SegformerHead
    form = 'mmseg' if 'convs.0.conv.weight' in head_sd else 'official'
    return SegformerHead(
        head_form=form,
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
        raise ValueError(f'Unknown SegFormer source {source!r}; valid '
                         f'choices: {", ".join(SEGFORMER_RULES)}')
    return FamilySpec(f'SegFormer ({source})', SEGFORMER_RULES[source],
                      list(MIT_ARCHS), _build_backbone, _build_head)


def read_hf_folder(path: str) -> Dict:
    """Weights of a Hugging Face model folder (``model.safetensors``, read
    with the safetensors package, or ``pytorch_model.bin`` through the safe
    loader).

    Raises:
        ValueError: the folder has no config.json or no weights.
    """
    import os.path as osp

    from ..checkpoint import safe_load
    if not osp.isfile(osp.join(path, 'config.json')):
        raise ValueError(f'{path} is not a Hugging Face model folder: no '
                         'config.json')
    st = osp.join(path, 'model.safetensors')
    if osp.isfile(st):
        from safetensors.torch import load_file
        return load_file(st)
    binary = osp.join(path, 'pytorch_model.bin')
    if osp.isfile(binary):
        return safe_load(binary)
    raise ValueError(f'Hugging Face folder {path} holds no weights: expected '
                     'model.safetensors or pytorch_model.bin')


def hf_config(arch_settings: dict, decoder_channels: int,
              num_classes: int) -> dict:
    """A transformers ``SegformerConfig`` (as a dict) for our model."""
    return dict(
        architectures=['SegformerForSemanticSegmentation'],
        model_type='segformer',
        num_channels=3,
        num_encoder_blocks=len(arch_settings['depths']),
        depths=list(arch_settings['depths']),
        sr_ratios=list(arch_settings['sr_ratios']),
        hidden_sizes=list(arch_settings['embed_dims']),
        patch_sizes=list(arch_settings['patch_sizes']),
        strides=list(arch_settings['strides']),
        num_attention_heads=list(arch_settings['num_heads']),
        mlp_ratios=list(arch_settings['mlp_ratios']),
        hidden_act='gelu',
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.1,
        initializer_range=0.02,
        drop_path_rate=0.1,
        layer_norm_eps=1e-6,
        decoder_hidden_size=int(decoder_channels),
        semantic_loss_ignore_index=255,
        id2label={str(i): f'class_{i}' for i in range(num_classes)},
        label2id={f'class_{i}': i for i in range(num_classes)},
    )


def export_hf(src: str, dst_dir: str, arch: str = None) -> Dict:
    """Write our MiT + official-form SegformerHead checkpoint ``src`` as a
    Hugging Face folder (config.json + model.safetensors) that
    ``SegformerForSemanticSegmentation.from_pretrained`` loads.

    The folder is assembled next to ``dst_dir`` and renamed into place; an
    existing non-empty ``dst_dir`` is refused.
    """
    import json
    import os
    import os.path as osp
    import shutil
    import tempfile

    from safetensors.torch import save_file

    from ..checkpoint import safe_load, unwrap_state_dict
    from ..models import MIT_ARCHS
    from .driver import find_variant
    from .rules import ConversionError, convert_state_dict
    if osp.isdir(dst_dir) and os.listdir(dst_dir):
        raise ConversionError(f'{dst_dir} exists and is not empty; choose a '
                              'new folder')
    sd = unwrap_state_dict(safe_load(src))
    if 'decode_head.convs.0.conv.weight' in sd:
        raise ConversionError(f'{src} has the mmseg head form, which '
                              'Hugging Face cannot represent; only the '
                              "official head (head_form='official') exports")
    if not any(k.startswith('decode_head.') for k in sd):
        raise ConversionError(f'{src} has no decode_head: export needs a '
                              'whole segmentation model')
    spec = segformer_spec('mmseg')  # only its builders are used here
    head_sd = {k[12:]: v for k, v in sd.items()
               if k.startswith('decode_head.')}
    arch = find_variant(spec, sd, {'decode_head.': head_sd}, arch, src)
    out, _ = convert_state_dict(sd, OURS_TO_HF)
    config = hf_config(MIT_ARCHS[arch],
                       head_sd['fusion_conv.conv.weight'].shape[0],
                       head_sd['conv_seg.weight'].shape[0])
    parent = osp.dirname(osp.abspath(dst_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.hf-export-', dir=parent)
    try:
        save_file({k: v.contiguous() for k, v in out.items()},
                  osp.join(tmp, 'model.safetensors'),
                  metadata={'format': 'pt'})
        with open(osp.join(tmp, 'config.json'), 'w') as f:
            json.dump(config, f, indent=2)
        if osp.isdir(dst_dir):
            os.rmdir(dst_dir)  # empty, checked above
        os.replace(tmp, dst_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(arch=arch, num_keys=len(out))
