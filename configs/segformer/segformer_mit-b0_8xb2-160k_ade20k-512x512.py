"""SegFormer MiT-B0: ADE20K, 512x512 crops, total batch 16 (8 GPUs x 2),
160k iterations, whole-image test.

Official recipe (paper, NVlabs configs): AdamW lr 6e-5, wd 0.01, head lr x10,
no decay on norms, 1500-iter warmup + poly. Decoder width 256 (official).
ImageNet weights: mmseg's MiT file, downloaded once into torch's hub
cache with its SHA-256 prefix checked, converted at load time (see
docs/weights.md); ``--cfg-options model.pretrained=None`` trains from
scratch.
"""
_base_ = [
    '../_base_/models/segformer_mit-b0.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/segformer_adamw_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
train_dataloader = dict(batch_size=2, num_workers=2)  # 8 GPUs x 2 = 16
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader
model = dict(
    pretrained=('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/'
                'segformer/mit_b0_20220624-7e0fe6dd.pth'),
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='b0'),
    decode_head=dict(
        in_channels=[32, 64, 160, 256], channels=256, num_classes=150))
