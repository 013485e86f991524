"""MPViT-base + UperNet: ADE20K, the recipe of
``mpvit_small_upernet_ade20k.py`` (AdamW 6e-5, wd 0.01, 1500 warmup + poly
over 160k, total batch 16, 512x512, whole-image test) with drop path 0.4.
Official (``upernet_mpvit_base_160k_ade20k.py``): drop path 0.4; published
50.3 mIoU (single scale), 105M parameters with the auxiliary head.
"""
_base_ = ['./mpvit_small_upernet_ade20k.py']
model = dict(
    pretrained='./pretrained/mpvit_base.pth',
    backbone=dict(arch='base', drop_path_rate=0.4),
    decode_head=dict(in_channels=[224, 368, 480, 480]),
    auxiliary_head=dict(in_channels=480))
