# The published SegFormer optimiser on the shared 160k schedule: AdamW 6e-5,
# weight decay 0.01, head lr x10, no weight decay on norms, 1500-iteration
# linear warmup from 1e-6 times poly (power 1) over the whole 160k
# iterations -- the exact equivalent of the official mmcv-1.x `poly` + linear
# warmup, as for AFFormer and MPViT. (mmseg's own SegFormer config starts
# its PolyLR at iteration 1500 instead; the official paramwise rules also
# name 'pos_block', which matches no module of MiT and is left out.)
_base_ = ['./adamw_warmup-poly_160k.py']
optim_wrapper = dict(
    optimizer=dict(lr=0.00006),
    paramwise_cfg=dict(custom_keys={
        'norm': dict(decay_mult=0.),
        'head': dict(lr_mult=10.)
    }))
