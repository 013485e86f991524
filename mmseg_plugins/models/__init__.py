"""The model families (one file each) and what they share: the backbone
base (``backbone_base``), building blocks (``blocks``), low-level tensor
operations (``ops``), argument checks (``validation``) and the inference
transform (``fuse``).

The backbones import only torch. The decode heads (``heads``, on mmseg's
``BaseDecodeHead``), the CPU model wrapper (``wrappers``) and the
registration in mmseg's registry (``registration``) need the OpenMMLab
stack; they are imported on first use of their names here, and by
``import mmseg_plugins`` when the stack is installed.
"""
import importlib

from .afformer import AFFORMER_ARCHS, AFFormer
from .backbone_base import ConvStemBackbone, StagedBackbone
from .fuse import Fusable, fuse
from .mpvit import MPVIT_ARCHS, MPViT
from .segformer import MIT_ARCHS, MiT

#: Names of the modules that need mmseg, imported when first used.
_OPENMMLAB_NAMES = {
    'SegformerHead': 'heads',
    'AFFormerHead': 'heads',
    'CPUDistributedDataParallel': 'wrappers'
}

__all__ = [
    'StagedBackbone', 'ConvStemBackbone', 'MiT', 'SegformerHead',
    'MIT_ARCHS', 'AFFormer', 'AFFormerHead', 'AFFORMER_ARCHS', 'MPViT',
    'MPVIT_ARCHS', 'CPUDistributedDataParallel', 'Fusable', 'fuse'
]


def __getattr__(name: str):
    if name in _OPENMMLAB_NAMES:
        module = importlib.import_module(f'.{_OPENMMLAB_NAMES[name]}',
                                         __name__)
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
