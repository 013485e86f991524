"""SegFormer MiT-B1: Cityscapes, 1024x1024 crops, total batch 8 (8 GPUs x 1),
160k iterations, 1024x1024 sliding-window test (stride 768).

Official recipe (paper, NVlabs configs): AdamW lr 6e-5, wd 0.01, head lr x10,
no decay on norms, 1500-iter warmup + poly. Decoder width 256 (official).
ImageNet weights: mmseg's MiT file, downloaded once into torch's hub
cache with its SHA-256 prefix checked, converted at load time (see
docs/weights.md); ``--cfg-options model.pretrained=None`` trains from
scratch.
"""
_base_ = ['./segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py']
model = dict(
    pretrained=('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/'
                'segformer/mit_b1_20220624-02e5a6a1.pth'),
    backbone=dict(arch='b1'),
    decode_head=dict(in_channels=[64, 128, 320, 512], channels=256))
