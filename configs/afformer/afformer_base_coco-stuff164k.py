"""AFFormer-base: COCO-Stuff-164k, 512x512 crops, total batch 16, 160k
iterations.

The official release has no COCO-Stuff config or checkpoint: this config uses
the official ADE20K recipe unchanged (AdamW 3e-4, batch 16, 160k, whole-image
test with ResizeToMultiple(32)).

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
_base_ = ['./afformer_tiny_coco-stuff164k.py']
model = dict(
    pretrained='./pretained_weight/AFFormer_base_ImageNet1k.pth',
    backbone=dict(arch='base'))
