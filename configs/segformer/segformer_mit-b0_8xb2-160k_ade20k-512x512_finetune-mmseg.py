"""SegFormer MiT-B0 on ADE20K, starting from mmseg's own trained model
(``segformer_mit-b0_512x512_160k_ade20k_*.pth``), whose head is mmseg's
``SegformerHead`` (a Conv-BN-ReLU per scale, width 256) rather than the
official one: that head runs here with mmseg's class, on our MiT with mmseg's
LayerNorm epsilons (1e-6 everywhere). The file is converted at load time.
"""
_base_ = ['./segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(
    pretrained=None,  # every weight comes from load_from
    backbone=dict(patch_norm_eps=1e-6, sr_norm_eps=1e-6),
    # mmseg's own head (the same arguments as ours), mmseg's width
    decode_head=dict(type='SegformerHead', channels=256))
load_from = ('pretrain/segformer_mit-b0_512x512_160k_ade20k_'
             '20210726_101530-8ffa8fda.pth')
