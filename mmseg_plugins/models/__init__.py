"""The model families (one file each) and what they share: the backbone
base (``backbone_base``), building blocks (``blocks``), low-level tensor
operations (``ops``) and argument checks (``validation``)."""
from .afformer import AFFORMER_ARCHS, AFFormer, AFFormerHead
from .backbone_base import ConvStemBackbone, StagedBackbone
from .mpvit import MPVIT_ARCHS, MPViT
from .segformer import MIT_ARCHS, MiT, SegformerHead
from .wrappers import CPUDistributedDataParallel

__all__ = [
    'StagedBackbone', 'ConvStemBackbone', 'MiT', 'SegformerHead',
    'MIT_ARCHS', 'AFFormer', 'AFFormerHead', 'AFFORMER_ARCHS', 'MPViT',
    'MPVIT_ARCHS', 'CPUDistributedDataParallel'
]
