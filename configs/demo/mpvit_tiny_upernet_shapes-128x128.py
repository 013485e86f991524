"""Demo: MPViT-tiny + UperNet (with the FCN auxiliary head) trained from
scratch on the generated shapes data (``data/demo_shapes``):

    python tools/demo.py --config configs/demo/mpvit_tiny_upernet_shapes-128x128.py
"""
_base_ = [
    '../_base_/models/upernet_mpvit.py',
    '../_base_/datasets/demo_shapes.py',
    '../_base_/demo_runtime.py'
]
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    decode_head=dict(in_channels=[96, 176, 216, 216], num_classes=4),
    auxiliary_head=dict(in_channels=216, num_classes=4))
