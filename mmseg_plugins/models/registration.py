"""The models in the ``mmseg_plugins`` scope of mmseg's registry
(``type='mmseg_plugins.MiT'``): the three backbones, the official AFFormer
configs' type names ``afformer_tiny``/``_small``/``_base``, the decode heads
(:mod:`.heads`) and the CPU model wrapper. ``import mmseg_plugins`` imports
this module (and the registry's ``locations`` name it)."""
from ..registry import MODELS
from .afformer import AFFORMER_ARCHS, AFFormer, official_variant
from .heads import AFFormerHead, SegformerHead
from .mpvit import MPViT
from .segformer import MiT
from .wrappers import CPUDistributedDataParallel

__all__ = ['MiT', 'AFFormer', 'MPViT', 'SegformerHead', 'AFFormerHead',
           'CPUDistributedDataParallel']

for _backbone in (MiT, AFFormer, MPViT):
    MODELS.register_module(module=_backbone)
for _variant in AFFORMER_ARCHS:
    MODELS.register_module(name=f'afformer_{_variant}',
                           module=official_variant(_variant))
