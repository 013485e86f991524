"""MPViT-xsmall + UperNet: ADE20K, the recipe of
``mpvit_small_upernet_ade20k.py`` (AdamW 6e-5, wd 0.01, 1500 warmup + poly
over 160k, total batch 16, 512x512, whole-image test) with drop path 0.1.
The authors released no xsmall segmentation config or result; drop path 0.1
is their detectron2 setting for tiny/xsmall.
"""
_base_ = ['./mpvit_small_upernet_ade20k.py']
model = dict(
    pretrained='./pretrained/mpvit_xsmall.pth',
    backbone=dict(arch='xsmall', drop_path_rate=0.1),
    decode_head=dict(in_channels=[128, 192, 256, 256]),
    auxiliary_head=dict(in_channels=256))
