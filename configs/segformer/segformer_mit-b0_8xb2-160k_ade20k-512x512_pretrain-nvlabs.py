"""SegFormer MiT-B0 on ADE20K, initialised from the official ImageNet MiT-B0
(NVlabs ``mit_b0.pth``, or mmseg's ``mit_b0_20220624-7e0fe6dd.pth``), as in
the published recipe. Convert the file first::

    python tools/model_converters/segformer2mmseg.py mit_b0.pth \
        pretrain/mit_b0_mmseg_plugins.pth
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(pretrained='pretrain/mit_b0_mmseg_plugins.pth')
