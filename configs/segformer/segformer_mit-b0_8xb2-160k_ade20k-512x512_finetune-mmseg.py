"""SegFormer MiT-B0 on ADE20K, starting from mmseg's own trained model
(``segformer_mit-b0_512x512_160k_ade20k_*.pth``), whose head is mmseg's
``SegformerHead`` (a Conv-BN-ReLU per scale, width 256) rather than the
official one: that head runs here with mmseg's class, on our MiT with mmseg's
LayerNorm epsilons (1e-6 everywhere). Convert the file first::

    python tools/model_converters/segformer2mmseg.py \
        segformer_mit-b0_512x512_160k_ade20k_20210726_101530-8ffa8fda.pth \
        pretrain/segformer-b0-ade-mmseg_mmseg_plugins.pth
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(patch_norm_eps=1e-6, sr_norm_eps=1e-6),
    # mmseg's own head (the same arguments as ours), mmseg's width
    decode_head=dict(type='SegformerHead', channels=256))
load_from = 'pretrain/segformer-b0-ade-mmseg_mmseg_plugins.pth'
