"""Recognise a checkpoint's layout from its keys and convert it in memory.

The layouts are those of the converters in :mod:`mmseg_plugins.converters`
(the same rules and checks, through
:func:`~mmseg_plugins.converters.driver.map_to_ours`):

* AFFormer: the official ImageNet files (bare ``stem``/``mhca_stages``
  keys) and segmentation files (``backbone.``/``decode_head.``);
* MPViT: the official ImageNet files (``{'model': ...}`` with the
  ``cls_head`` classifier) and UperNet segmentation files;
* MiT / SegFormer: NVlabs (``patch_embed1``/``block1``), mmseg
  (``layers.0.0.projection``), Hugging Face (``encoder.block``, a folder or
  a ``.safetensors`` file) and smp (``encoder.patch_embed1``);
* this project's own layout, which needs no conversion.
"""
import os
import os.path as osp
from types import MappingProxyType
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

from ..checkpoint import safe_load, unwrap_state_dict
from ..converters.rules import ConversionError, ConversionReport
from ..errors import CheckpointError, CheckpointNotFoundError

__all__ = ['Detected', 'read_weights', 'convert_weights', 'FAMILIES']

StateDict = Dict[str, torch.Tensor]


#: The source layouts in words.
LAYOUT_NAMES = {'official': 'official', 'nvlabs': 'NVlabs', 'mmseg': 'mmseg',
                'hf': 'Hugging Face', 'smp': 'smp', 'ours': 'mmseg_plugins'}


@dataclass(frozen=True)
class Detected:
    """A state dict in this project's layout and where it came from
    (immutable: the loaders derive new ones with ``dataclasses.replace``).

    Attributes:
        state_dict (Mapping): The weights, in our key layout (read-only).
        family (str): ``'AFFormer'``, ``'MPViT'`` or ``'MiT'``; None for a
            file already in our layout.
        source (str): The source layout: ``'official'`` (AFFormer, MPViT),
            ``'nvlabs'``, ``'mmseg'``, ``'hf'``, ``'smp'``, or ``'ours'``.
        kind (str): ``'backbone'`` (bare backbone keys) or
            ``'segmentation'`` (``backbone.`` and head keys).
        arch (str, optional): The variant whose keys and shapes it has.
        report (ConversionReport, optional): The conversion's report.
        meta (Mapping): The file's ``meta`` (``{}`` if none).
        variant_check (callable, optional): ``arch -> arch`` if the
            weights have that variant's keys and shapes, ``None -> the
            variant they have``; None if none (computed on the meta
            device, only when asked for).
    """
    state_dict: Mapping[str, torch.Tensor]
    family: Optional[str]
    source: str
    kind: str
    arch: Optional[str] = None
    report: Optional[ConversionReport] = None
    meta: Mapping = field(default_factory=lambda: MappingProxyType({}))
    variant_check: Optional[Callable[[Optional[str]], Optional[str]]] = \
        field(default=None, repr=False)

    def what(self) -> str:
        """What the file holds, in a user's words: ``'an AFFormer-base
        backbone checkpoint (official layout)'``."""
        name = self.family + (f'-{self.arch}' if self.arch else
                              ' (no standard variant)')
        article = 'an' if name[0] in 'AEIOU' else 'a'
        return (f'{article} {name} {self.kind} checkpoint '
                f'({LAYOUT_NAMES.get(self.source, self.source)} layout)')

    def describe(self) -> str:
        """One line: family, variant, source layout, dropped keys."""
        if self.source == 'ours':
            return f'{self.kind} checkpoint in mmseg_plugins layout'
        name = self.family + (f'-{self.arch}' if self.arch else
                              ' (no standard variant)')
        line = f'{name} {self.kind} checkpoint, {self.source} layout'
        if self.report is not None:
            line += ': ' + '; '.join(self.report.summary().splitlines())
        return line


def _spec_for(family: str, source: str):
    from ..converters.afformer import afformer_spec
    from ..converters.mpvit import mpvit_spec
    from ..converters.segformer import segformer_spec
    if family == 'AFFormer':
        return afformer_spec()
    if family == 'MPViT':
        return mpvit_spec()
    return segformer_spec(source)


def _segformer_source(sd: Mapping) -> str:
    from ..converters.segformer import detect_source
    try:
        return detect_source(sd)
    except ValueError as err:
        raise ConversionError(str(err)) from None


#: ``family -> (state_dict -> source layout)``; the source is found from
#: the keys (AFFormer and MPViT have one official layout each).
FAMILIES: Dict[str, Callable[[Mapping], str]] = {
    'AFFormer': lambda sd: 'official',
    'MPViT': lambda sd: 'official',
    'MiT': _segformer_source,
}


def read_weights(path: str) -> Tuple[StateDict, dict]:
    """The state dict and ``meta`` of a local checkpoint: a ``.pth`` file
    (through :func:`~mmseg_plugins.checkpoint.safe_load`), a
    ``.safetensors`` file or a Hugging Face model folder.

    Raises:
        CheckpointError: missing, unreadable or unsafe file.
    """
    path = os.path.expanduser(path)
    if osp.isdir(path):
        from ..converters.hf import read_hf_folder
        try:
            return dict(read_hf_folder(path)), {}
        except ValueError as err:
            raise CheckpointError(str(err)) from None
    if path.endswith('.safetensors'):
        if not osp.isfile(path):
            raise CheckpointNotFoundError(f'checkpoint not found: {path}')
        from safetensors.torch import load_file
        try:
            return dict(load_file(path)), {}
        except Exception as err:  # safetensors raises its own types
            raise CheckpointError(f'{path} is not a readable safetensors '
                                  f'file ({err})') from None
    loaded = safe_load(path)
    sd = unwrap_state_dict(loaded)
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f'{path} holds no state dict of tensors')
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    return dict(sd), dict(meta) if isinstance(meta, dict) else {}


def _convert_as(family: str, sd: Mapping, src: str) -> Detected:
    from ..converters.driver import map_to_ours
    source = FAMILIES[family](sd)
    spec = _spec_for(family, source)
    out, report, head_sds = map_to_ours(dict(sd), spec, src)
    kind = 'backbone' if head_sds is None else 'segmentation'
    # the variant is that of the backbone's weights
    bare = out if head_sds is None else \
        {k[9:]: v for k, v in out.items() if k.startswith('backbone.')}
    return Detected(MappingProxyType(out), family, source, kind, None,
                    report, variant_check=lambda arch: _variant(
                        spec, bare, None, arch, src))


def _variant(spec, out, head_sds, arch, src) -> Optional[str]:
    """``arch`` if the converted weights have its keys and shapes; with
    ``arch=None`` the variant that has them; None if none has."""
    from ..converters.driver import find_variant
    try:
        return find_variant(spec, out, head_sds, arch, src)
    except ConversionError:
        return None


def convert_weights(sd: Mapping[str, torch.Tensor], src: str,
                    family: Optional[str] = None
                    ) -> Tuple[Optional[Detected], List[str]]:
    """Convert ``sd`` from the first layout that knows all its keys,
    trying ``family`` first.

    Args:
        sd (Mapping): An unwrapped state dict.
        src (str): Its file, for messages.
        family (str, optional): The family the caller's model is of.

    Returns:
        tuple: (the :class:`Detected` conversion, or None when no layout
        knows the keys; the reason each family refused them). Its
        ``variant_check(arch)`` names the variant (comparing with the
        candidate models built on the meta device, only when needed).
    """
    order = [family] if family in FAMILIES else []
    order += [f for f in FAMILIES if f not in order]
    reasons = []
    for name in order:
        try:
            return _convert_as(name, sd, src), reasons
        except (ConversionError, KeyError, ValueError) as err:
            reasons.append(f'{name}: {str(err).replace(src + " ", "")}')
    return None, reasons
