"""AFFormer-small: Cityscapes, 1024x1024 crops, total batch 8 (official: 2 GPUs
x 4), 160k iterations, whole-image test at 1024x2048.

Official recipe (github dongbo811/AFFormer configs): AdamW lr 0.0004, weight
decay 0.01 on all parameters, 1500-iteration linear warmup from 1e-6 + poly
(power 1), SyncBN in the backbone, GN in the head. Batch sizes are per GPU for
2 GPUs; with N GPUs set ``train_dataloader.batch_size`` so that N x batch keeps
the total.

ImageNet initialisation (as the official configs): the authors'
``AFFormer_small_ImageNet1k.pth`` as they publish it, read from
``./pretained_weight/AFFormer_small_ImageNet1k.pth`` (the official configs'
folder name, sic; see docs/weights.md); ``--cfg-options
model.pretrained=None`` trains from scratch.
"""
_base_ = ['./afformer_tiny_cityscapes.py']
model = dict(
    pretrained='./pretained_weight/AFFormer_small_ImageNet1k.pth',
    backbone=dict(arch='small'))
