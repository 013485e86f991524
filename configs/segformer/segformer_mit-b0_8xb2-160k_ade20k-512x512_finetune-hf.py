"""SegFormer MiT-B0 on ADE20K, starting from the whole Hugging Face model
``nvidia/segformer-b0-finetuned-ade-512-512`` (backbone and official head).
Convert the downloaded folder first::

    python tools/model_converters/segformer2mmseg.py \
        segformer-b0-finetuned-ade-512-512/ \
        pretrain/segformer-b0-ade-hf_mmseg_plugins.pth

The Hugging Face weights were converted from the official release, which
uses LayerNorm eps 1e-6 in the block and stage norms, as this config does.
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
load_from = 'pretrain/segformer-b0-ade-hf_mmseg_plugins.pth'
