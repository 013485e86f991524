# MPViT-small + UPerHead (channels 512) + FCN auxiliary head on stage 2 (loss
# weight 0.4), the official MPViT UperNet model; SyncBN in the backbone and
# heads under DDP (reverted to BN on one process).
custom_imports = dict(imports=['mmseg_plugins'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
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
        type='mmseg_plugins.MPViT',
        arch='small',
        drop_path_rate=0.2,
        norm_eval=False,
        init_cfg=None),
    decode_head=dict(
        type='UPerHead',
        in_channels=[128, 216, 288, 288],  # MPViT-small stage outputs
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=288,  # stage 2 (stride 16)
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
# the official backbone builds its BatchNorms from norm_cfg=SyncBN
sync_bn = 'torch'
