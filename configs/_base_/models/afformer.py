# AFFormer-base with the official head (1x1 conv + GN(32) + ReLU on the last
# stage, dropout 0.1, classifier); SyncBN for the backbone under DDP.
custom_imports = dict(imports=['mmseg_plugins'], allow_failed_imports=False)
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='mmseg_plugins.AFFormer',
        arch='base',
        drop_path_rate=0.,
        init_cfg=None),
    decode_head=dict(
        type='mmseg_plugins.AFFormerHead',
        in_channels=[216],
        in_index=[3],
        channels=256,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
# the official train.py converts every BatchNorm to SyncBN
sync_bn = 'torch'
