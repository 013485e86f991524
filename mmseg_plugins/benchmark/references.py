"""Reference implementations for ``tools/benchmark.py --compare``: loading
a builder named on the command line, and builders for the references that
are installed with the project: mmseg's own ``MixVisionTransformer`` and
Hugging Face transformers' SegFormer (the ``tests`` extra)."""
import importlib
import inspect
from typing import Callable

import torch.nn as nn

from ..errors import InvalidInputError

__all__ = [
    'load_builder', 'build_reference', 'mmseg_mix_vision_transformer',
    'hf_segformer'
]


def load_builder(path: str) -> Callable:
    """Resolve ``package.module:function`` (or ``package.module.function``)
    to a callable."""
    if ':' in path:
        module_name, attr = path.split(':', 1)
    else:
        module_name, _, attr = path.rpartition('.')
    if not module_name or not attr:
        raise InvalidInputError('--compare needs module.path:builder, got '
                                f'{path!r}')
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InvalidInputError(f'cannot import {module_name!r} for '
                                f'--compare: {err}') from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise InvalidInputError(f'{module_name!r} has no callable {attr!r}')
    return builder


def build_reference(builder: Callable, ours: nn.Module) -> nn.Module:
    """Call the builder; one that takes an argument receives our model (so
    it can share weights with it)."""
    params = [
        p for p in inspect.signature(builder).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                               p.POSITIONAL_OR_KEYWORD)
    ]
    ref = builder(ours) if params else builder()
    if not callable(ref):
        raise InvalidInputError('the --compare builder must return a module '
                                'or a callable')
    if isinstance(ref, nn.Module):
        ref.eval()
    return ref


def mmseg_mix_vision_transformer(ours: nn.Module) -> nn.Module:
    """A ``--compare`` builder: mmseg's own ``MixVisionTransformer`` of the
    variant of ``ours`` (our ``MiT`` backbone; use ``--backbone-only``),
    whose weights are loaded into ``ours`` through the converter rules. Our
    LayerNorm epsilons are set to mmseg's (1e-6 everywhere), so the two
    compute the same function."""
    from mmseg.models.backbones import MixVisionTransformer

    from ..converters.rules import convert_state_dict
    from ..converters.segformer import MMSEG_MIT_TO_MIT
    s = ours.arch_settings
    ref = MixVisionTransformer(
        embed_dims=s['embed_dims'][0], num_layers=list(s['depths']),
        num_heads=list(s['num_heads']), out_indices=ours.out_indices)
    ref.init_weights()
    mapped, _ = convert_state_dict(ref.state_dict(), MMSEG_MIT_TO_MIT)
    ours.load_state_dict(mapped, strict=True)
    for m in ours.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-6
    return ref.eval()


class _HFLogits(nn.Module):
    """Images -> the logits of a transformers segmentation model resized to
    the input (bilinear, ``align_corners=False``, as Hugging Face's own
    post-processing and SegFormer's head do): what our inference
    computation (:class:`mmseg_plugins.forward.SegmentorForward`)
    returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        import torch.nn.functional as F
        logits = self.model(pixel_values=x).logits  # (B, K, H/4, W/4)
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=False)


def hf_segformer(ours: nn.Module) -> nn.Module:
    """A ``--compare`` builder: Hugging Face transformers'
    ``SegformerForSemanticSegmentation`` with the weights of ``ours`` (a
    whole segmentor of MiT + ``mmseg_plugins.SegformerHead``; not with
    ``--backbone-only``), written to a Hugging Face folder by our exporter
    and loaded with ``from_pretrained``. Our LayerNorm epsilons are set to
    Hugging Face's (1e-5 in every norm) so that both compute the same
    function; both return the logits resized to the input."""
    import tempfile

    import torch
    from transformers import SegformerForSemanticSegmentation

    from ..converters.hf import export_hf
    if not hasattr(ours, 'decode_head'):
        raise InvalidInputError('hf_segformer compares whole segmentors; '
                                'drop --backbone-only')
    for m in ours.backbone.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-5
    sd = {f'backbone.{k}': v for k, v in ours.backbone.state_dict().items()}
    sd.update({f'decode_head.{k}': v
               for k, v in ours.decode_head.state_dict().items()})
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({'state_dict': sd}, f'{tmp}/ours.pth')
        export_hf(f'{tmp}/ours.pth', f'{tmp}/hf')
        model = SegformerForSemanticSegmentation.from_pretrained(f'{tmp}/hf')
    device = next(ours.parameters()).device
    return _HFLogits(model.to(device).eval())
