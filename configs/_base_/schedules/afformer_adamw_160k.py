# mmseg's 160k schedule with the official AFFormer optimiser: AdamW (lr set by
# the dataset config: 3e-4 ADE20K/COCO-Stuff, 4e-4 Cityscapes), weight decay
# 0.01 on every parameter (no paramwise rules), poly (power 1) over the whole
# 160k iterations multiplied by a 1500-iteration linear warmup from 1e-6 --
# the exact equivalent of mmcv-1.x `poly` + linear warmup.
_base_ = ['mmseg::_base_/schedules/schedule_160k.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.0003, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=0,
        end=160000,
        by_epoch=False)
]
