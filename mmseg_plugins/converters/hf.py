"""Hugging Face model folders: reading their weights for the SegFormer
converter, and exporting our SegFormer to a folder that
``transformers.SegformerForSemanticSegmentation.from_pretrained`` loads.

The key mapping is the two-way table of :mod:`.segformer`
(:data:`~.segformer.HF_KEY_TABLE`), read here in the export direction.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

from ..checkpoint import read_hf_folder, safe_load, unwrap_state_dict
from ..fileio import atomic_directory
from .rules import ConversionError, convert_state_dict, table_rules
from .segformer import (HF_KEY_FIELDS, HF_KEY_TABLE, is_mmseg_head,
                        segformer_spec)

__all__ = ['OURS_TO_HF', 'read_hf_folder', 'hf_config', 'export_hf']

#: Ours (official head) -> Hugging Face's layout: the table read backwards
#: (``kv`` split back into key and value, the ``segformer.`` prefix of the
#: task models added).
OURS_TO_HF = table_rules(HF_KEY_TABLE, HF_KEY_FIELDS, reverse=True,
                         defaults=dict(hf='segformer.'))


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


def export_hf(src: str, dst_dir: str, arch: Optional[str] = None) -> Dict:
    """Write our MiT + SegformerHead checkpoint ``src`` as a Hugging Face
    folder (config.json + model.safetensors) that
    ``SegformerForSemanticSegmentation.from_pretrained`` loads.

    The folder appears only when complete; an existing non-empty
    ``dst_dir`` is refused.

    Raises:
        ConversionError: ``dst_dir`` is not empty, the checkpoint has
            mmseg's head (which Hugging Face cannot represent) or no head,
            or it does not fit a MiT variant.
    """
    from safetensors.torch import save_file

    from ..models import MIT_ARCHS
    from .driver import find_variant
    if osp.isdir(dst_dir) and os.listdir(dst_dir):
        raise ConversionError(f'{dst_dir} exists and is not empty; choose a '
                              'new folder')
    sd = unwrap_state_dict(safe_load(src))
    head_sd = {k[len('decode_head.'):]: v for k, v in sd.items()
               if k.startswith('decode_head.')}
    if not head_sd:
        raise ConversionError(f'{src} has no decode_head: export needs a '
                              'whole segmentation model')
    if is_mmseg_head(head_sd):
        raise ConversionError(f"{src} has mmseg's SegformerHead, which "
                              'Hugging Face cannot represent; only the '
                              'official head (mmseg_plugins.SegformerHead) '
                              'exports')
    spec = segformer_spec('mmseg')  # only its builders are used here
    arch = find_variant(spec, sd, {'decode_head.': head_sd}, arch, src)
    out, _ = convert_state_dict(sd, OURS_TO_HF)
    config = hf_config(MIT_ARCHS[arch],
                       head_sd['fusion_conv.conv.weight'].shape[0],
                       head_sd['conv_seg.weight'].shape[0])
    with atomic_directory(dst_dir) as tmp:
        save_file({k: v.contiguous() for k, v in out.items()},
                  osp.join(tmp, 'model.safetensors'),
                  metadata={'format': 'pt'})
        with open(osp.join(tmp, 'config.json'), 'w') as f:
            json.dump(config, f, indent=2)
    return dict(arch=arch, num_keys=len(out))
