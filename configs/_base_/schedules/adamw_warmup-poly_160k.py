# mmseg's 160k schedule with the optimiser of the official AFFormer and MPViT
# configs: AdamW (lr set by each config: AFFormer 3e-4 ADE20K/COCO-Stuff, 4e-4
# Cityscapes; MPViT 6e-5), weight decay 0.01 on every parameter (no paramwise
# rules), poly (power 1) over the whole 160k iterations multiplied by a
# 1500-iteration linear warmup from 1e-6 -- the exact equivalent of mmcv-1.x
# `poly` + linear warmup (warmup_ratio 1e-6, min_lr 0).
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
