"""SegFormer MiT-B0 on ADE20K, initialised from the official ImageNet MiT-B0
as NVlabs publish it (``mit_b0.pth``, github.com/NVlabs/SegFormer), as in the
published recipe; the file is converted at load time (no conversion step).
The base config reads mmseg's copy of the same weights by URL instead.
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(pretrained='pretrain/mit_b0.pth')
