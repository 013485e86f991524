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
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(patch_norm_eps=1e-6, sr_norm_eps=1e-6),
    decode_head=dict(
        _delete_=True,
        type='SegformerHead',  # mmseg's own head
        in_channels=[32, 64, 160, 256],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
load_from = 'pretrain/segformer-b0-ade-mmseg_mmseg_plugins.pth'
