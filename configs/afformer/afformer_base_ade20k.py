"""AFFormer-base: ADE20K, 512x512 crops, total batch 16 (official: 2 GPUs x 8),
160k iterations, whole-image test at short side 512 rounded up to a multiple
of 32 (the official test pipeline adds ResizeToMultiple).

Official recipe (github dongbo811/AFFormer configs): AdamW lr 0.0003, weight
decay 0.01 on all parameters, 1500-iteration linear warmup from 1e-6 + poly
(power 1), SyncBN in the backbone, GN in the head. Batch sizes are per GPU for
2 GPUs; with N GPUs set ``train_dataloader.batch_size`` so that N x batch keeps
the total.

ImageNet initialisation (as the official configs): the authors'
``AFFormer_base_ImageNet1k.pth`` as they publish it, read from
``./pretained_weight/AFFormer_base_ImageNet1k.pth`` (the official configs'
folder name, sic; see docs/weights.md); ``--cfg-options
model.pretrained=None`` trains from scratch.
"""
_base_ = ['./afformer_tiny_ade20k.py']
model = dict(
    pretrained='./pretained_weight/AFFormer_base_ImageNet1k.pth',
    backbone=dict(arch='base'))
