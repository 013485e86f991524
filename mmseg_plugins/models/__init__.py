from .afformer import AFFORMER_ARCHS, AFFormer, AFFormerHead
from .mpvit import MPVIT_ARCHS, MPViT
from .segformer import MIT_ARCHS, MiT, SegformerHead
from .wrappers import CPUDistributedDataParallel

__all__ = [
    'MiT', 'SegformerHead', 'MIT_ARCHS', 'AFFormer', 'AFFormerHead',
    'AFFORMER_ARCHS', 'MPViT', 'MPVIT_ARCHS', 'CPUDistributedDataParallel'
]
