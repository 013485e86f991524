"""MPViT-small + UperNet: ADE20K, 512x512 crops, total batch 16 (official:
8 GPUs x 2), 160k iterations, single-scale whole-image test (short side 512).

Official recipe (github youngwanLEE/MPViT ``semantic_segmentation/configs/
mpvit/upernet/upernet_mpvit_small_160k_ade20k.py``): drop path 0.2, SyncBN
with ``norm_eval=False``, UPerHead channels 512 + FCN auxiliary head on stage
2 (weight 0.4), AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 on all
parameters, 1500-iteration linear warmup from 1e-6 + poly (power 1) to 0.
Published: 48.3 mIoU (single scale), 52M parameters with the auxiliary head.
With N GPUs set ``train_dataloader.batch_size`` so that N x batch = 16.

ImageNet initialisation: the authors' release file
``mpvit_small.pth`` as published (an ImageNet ``{'model': ...}`` file,
converted at load time), read from ``./pretrained/``; see docs/weights.md.
``--cfg-options model.pretrained=None`` trains from scratch.
"""
_base_ = [
    '../_base_/models/upernet_mpvit.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/adamw_warmup-poly_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
train_dataloader = dict(batch_size=2, num_workers=4)  # 8 GPUs x 2 = 16
optim_wrapper = dict(optimizer=dict(lr=0.00006))
model = dict(
    pretrained='./pretrained/mpvit_small.pth',
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='small', drop_path_rate=0.2),
    decode_head=dict(in_channels=[128, 216, 288, 288], num_classes=150),
    auxiliary_head=dict(in_channels=288, num_classes=150))
