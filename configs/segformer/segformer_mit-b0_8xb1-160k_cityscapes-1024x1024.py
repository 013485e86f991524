"""SegFormer MiT-B0: Cityscapes, 1024x1024 crops, total batch 8 (8 GPUs x 1),
160k iterations, 1024x1024 sliding-window test (stride 768).

Official recipe (paper, NVlabs configs): AdamW lr 6e-5, wd 0.01, head lr x10,
no decay on norms, 1500-iter warmup + poly. Decoder width 256 (official).
ImageNet weights: mmseg's MiT file, downloaded once into torch's hub
cache with its SHA-256 prefix checked, converted at load time (see
docs/weights.md); ``--cfg-options model.pretrained=None`` trains from
scratch.
"""
_base_ = [
    '../_base_/models/segformer_mit-b0.py',
    'mmseg::_base_/datasets/cityscapes_1024x1024.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/segformer_adamw_160k.py'
]
crop_size = (1024, 1024)
data_preprocessor = dict(size=crop_size)
train_dataloader = dict(batch_size=1, num_workers=4)  # 8 GPUs x 1 = 8
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader
model = dict(
    pretrained=('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/'
                'segformer/mit_b0_20220624-7e0fe6dd.pth'),
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='b0'),
    decode_head=dict(
        in_channels=[32, 64, 160, 256], channels=256, num_classes=19),
    test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
