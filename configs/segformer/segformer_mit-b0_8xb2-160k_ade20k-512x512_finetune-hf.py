"""SegFormer MiT-B0 on ADE20K, starting from the whole Hugging Face model
``nvidia/segformer-b0-finetuned-ade-512-512`` (backbone and official head).
The downloaded folder is converted at load time (or use
``load_from='hf://nvidia/segformer-b0-finetuned-ade-512-512'`` with the
``hf`` extra).

The Hugging Face weights were converted from the official release, which
uses LayerNorm eps 1e-6 in the block and stage norms, as this config does.
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(pretrained=None)  # every weight comes from load_from
load_from = 'pretrain/segformer-b0-finetuned-ade-512-512'
