"""Demo: SegFormer MiT-B0 trained from scratch on the generated shapes data
(``data/demo_shapes``, written by ``python tools/demo.py``). Runs on a 2-core
CPU in one to two minutes.
"""
_base_ = [
    '../_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/demo_shapes.py',
    '../_base_/demo_runtime.py'
]
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor, decode_head=dict(num_classes=4))
