"""Demo (the default of ``tools/demo.py``): AFFormer-tiny trained from scratch
on the generated shapes data (``data/demo_shapes``). Runs on a 2-core CPU in
about a minute.
"""
_base_ = [
    '../_base_/models/afformer.py',
    '../_base_/datasets/demo_shapes.py',
    '../_base_/demo_runtime.py'
]
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny'),
    decode_head=dict(num_classes=4))
