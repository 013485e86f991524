"""MPViT-tiny + UperNet: ADE20K, the recipe of
``mpvit_small_upernet_ade20k.py`` (AdamW 6e-5, wd 0.01, 1500 warmup + poly
over 160k, total batch 16, 512x512, whole-image test) with drop path 0.1.
The authors released no tiny segmentation config or result; drop path 0.1 is
their detectron2 setting for tiny/xsmall.
"""
_base_ = ['./mpvit_small_upernet_ade20k.py']
model = dict(
    pretrained='./pretrained/mpvit_tiny.pth',
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    decode_head=dict(in_channels=[96, 176, 216, 216]),
    auxiliary_head=dict(in_channels=216))
