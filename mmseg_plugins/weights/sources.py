"""Where the authors publish the ImageNet weights the paper configs read
(the file names are the authors' own, so a downloaded file works as it is;
see docs/weights.md)."""
import os.path as osp
import re

__all__ = ['PUBLISHERS', 'where_published']

#: ``file-name pattern -> where its authors publish it``.
PUBLISHERS = {
    r'AFFormer_(tiny|small|base)_ImageNet1k\.pth':
        'the AFFormer authors (github.com/dongbo811/AFFormer, README: '
        'ImageNet-1k pretrained weights)',
    r'mpvit_(tiny|xsmall|small|base)\.pth':
        'the MPViT authors (github.com/youngwanLEE/MPViT, README: '
        'ImageNet-1k release assets)',
    r'mit_b[0-5](_\d{8}-[0-9a-f]{8})?\.pth':
        'mmsegmentation (download.openmmlab.com/mmsegmentation/v0.5/'
        'pretrain/segformer/) or NVlabs (github.com/NVlabs/SegFormer, '
        'README: ImageNet-1K pretrained weights)',
}


def where_published(path: str) -> str:
    """``' (published by ...)'`` for a known file name, else ``''``."""
    name = osp.basename(str(path))
    for pattern, publisher in PUBLISHERS.items():
        if re.fullmatch(pattern, name):
            return f' (published by {publisher})'
    return ''
