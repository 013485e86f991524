"""Strict loading of checkpoints in any known layout: the one path every
checkpoint of this package takes, resolve -> convert -> load.

1. **resolve** (:func:`read_checkpoint`): a local file/folder, an
   ``http(s)://`` URL or an ``hf://`` reference to its state dict;
2. **convert** (:func:`fit_weights`): the layout is ours (as it is, or the
   part of our segmentation file the module is) or a known one, converted
   in memory (:mod:`.detect`); the result, a
   :class:`~.detect.Detected`, is immutable (a read-only state dict;
   adapting RGB input filters derives a new one);
3. **load** (``_check`` then ``load_state_dict``): every parameter and
   buffer of the module must come from the file, or
   :class:`~mmseg_plugins.errors.CheckpointError` counts the missing,
   unexpected and mis-shaped keys and says what the file holds (family,
   variant, layout) and what the model is.

:func:`load_pretrained` is what the backbones' and heads'
``init_weights()`` run for ``pretrained=...`` / ``Pretrained`` entries of
``init_cfg`` (:mod:`mmseg_plugins.models.pretrained`);
:func:`load_model_weights` loads a whole segmentor (``load_from``,
``tools/test.py``, inference). One log line says what was detected and
which keys were dropped. Partial loading only when asked for
(``partial=True``, in any layout), and then the keys left at their
initialisation are logged. RGB weights for a backbone with another number
of input channels (grayscale, multi-band images) have their input
convolution adapted (:func:`adapt_input_filters`) instead of
re-initialised.
"""
import logging
import re
from dataclasses import replace
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import CheckpointError, CheckpointPrefixError
from ..state_dicts import compare_keys
from .detect import Detected, convert_weights, read_weights

__all__ = [
    'CLASS_LAYER_PATTERN', 'adapt_input_filters', 'fit_weights',
    'identify_ours', 'model_name', 'load_part_weights',
    'load_part_state_dict',
    'load_backbone_weights', 'load_pretrained', 'load_model_weights',
    'read_checkpoint'
]

StateDict = Dict[str, torch.Tensor]

#: Keys whose shapes depend on the number of classes: the classifiers of
#: the decode and auxiliary heads.
CLASS_LAYER_PATTERN = r'(decode_head|auxiliary_head(\.\d+)?)\.conv_seg\..+'


def _log(message: str) -> None:
    """mmengine's current logger; Python's ``mmseg_plugins`` logger where
    mmengine is not installed (timm users)."""
    try:
        from mmengine.logging import print_log
    except ImportError:
        logging.getLogger('mmseg_plugins').info(message)
    else:
        print_log(message, logger='current')


def read_checkpoint(checkpoint: str
                    ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The state dict and meta of a local path, an ``http(s)://`` URL or an
    ``hf://`` reference (downloaded once, see :mod:`.download`)."""
    from .download import resolve
    return read_weights(resolve(checkpoint))


def _family(module: nn.Module) -> Optional[str]:
    backbone = getattr(module, 'backbone', module)
    return getattr(backbone, 'family', None)


def _arch_name(module: nn.Module) -> Optional[str]:
    """The variant name of a module's backbone (its settings equal a row
    of the family's table), or None for a custom one."""
    backbone = getattr(module, 'backbone', module)
    table = getattr(backbone, 'arch_table', {})
    settings = getattr(backbone, 'arch_settings', None)
    return next((name for name, row in table.items()
                 if {k: list(v) for k, v in row.items()} ==
                 {k: list(v) for k, v in (settings or {}).items()}), None)


def _under(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The keys under ``prefix``, with it stripped."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def fit_weights(module: nn.Module, sd: Mapping[str, torch.Tensor],
                src: str, target: str, want: str, partial: bool = False,
                whole: Optional[Mapping[str, torch.Tensor]] = None
                ) -> Detected:
    """Bring ``sd`` into the layout of ``module``: resolve the layout
    (ours, as it is or the ``want`` part of our segmentation file, or a
    known one, converted) and return the weights meant for ``module``.

    Args:
        want (str): ``'segmentation'`` (a whole segmentor) or the part of a
            segmentation file ``module`` is: ``'backbone'``,
            ``'decode_head'``.
        partial (bool): A file in our layout may lack keys of ``module``.
        whole (Mapping, optional): The file's keys before a ``prefix``
            selected ``sd``; converted when ``sd`` is in no known layout
            (a head's keys of an official segmentation file).

    Raises:
        CheckpointError: no layout gives ``module``'s key names; the
            message counts the missing/unexpected/mis-shaped keys and says
            what the file holds and what the model is.
    """
    sd = {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}
    candidates = [(sd, want if want != 'segmentation' else 'segmentation')]
    if want != 'segmentation':
        candidates.append((_under(sd, f'{want}.'),
                           f'{want} (of a segmentation file; the rest '
                           'not used)'))
    for weights, kind in candidates:
        report = compare_keys(module, weights)
        if weights and not report.unexpected and (partial
                                                  or not report.missing):
            return Detected(MappingProxyType(dict(weights)), None, 'ours',
                            kind)
    detected, reasons = convert_weights(sd, src, _family(module))
    if detected is None and whole is not None:
        detected, _ = convert_weights(whole, src, _family(module))
    if detected is None:
        raise CheckpointError(_refusal(
            src, target, module, identify_ours(sd, reasons[0]),
            compare_keys(module, sd).describe()))
    if detected.kind == 'segmentation' and want != 'segmentation':
        part = _under(detected.state_dict, f'{want}.')
        if not part:
            raise CheckpointError(
                f'checkpoint {src} has no {want} for {target}: the file '
                f'holds {detected.describe()}')
        detected = replace(detected, state_dict=MappingProxyType(part),
                           kind=f'{want} (of a segmentation file; the rest '
                           'not used)')
    arch = _arch_name(module)
    if arch and detected.family == _family(module):
        detected = replace(detected, arch=detected.variant_check(arch))
    return detected


def identify_ours(sd: Mapping[str, torch.Tensor],
                  why: Optional[str] = None) -> str:
    """What a state dict in this project's layout holds, in words: ``'an
    AFFormer-tiny segmentation checkpoint (mmseg_plugins layout)'``; a
    backbone that is no variant's keys and shapes exactly but a part of
    one is ``'an incomplete ...'``; anything else is in no known layout
    (``why`` appended). The candidate models are built on the
    meta device (shapes only, no memory, no initialisation)."""
    from ..models import AFFormer, MiT, MPViT
    backbone = _under(sd, 'backbone.')
    kind = 'segmentation' if backbone else 'backbone'
    backbone = backbone or dict(sd)
    shapes = {k: tuple(v.shape) for k, v in backbone.items()}
    for cls in (MiT, AFFormer, MPViT):
        for arch in cls.arch_table:
            with torch.device('meta'):
                own = {k: tuple(v.shape)
                       for k, v in cls(arch=arch).state_dict().items()}
            if shapes == own:
                return (f'{_article(cls.family)} {cls.family}-{arch} '
                        f'{kind} checkpoint (mmseg_plugins layout)')
            if shapes and shapes.items() <= own.items():
                lacking = len(own) - len(shapes)
                return (f'an incomplete {cls.family}-{arch} {kind} '
                        f'checkpoint (mmseg_plugins layout, {lacking} '
                        'backbone keys missing)')
    return 'a checkpoint in no known layout' + (f' ({why})' if why else '')


def _article(word: str) -> str:
    return 'an' if word[:1].upper() in 'AEIOU' else 'a'


def model_name(module: nn.Module) -> str:
    """What ``module`` is, in a user's words: ``'MPViT-tiny'``,
    ``'MiT (custom arch)'``, a segmentor as ``'EncoderDecoder: MPViT-tiny
    + UPerHead'``."""
    backbone = getattr(module, 'backbone', module)
    family = getattr(backbone, 'family', None)
    arch = _arch_name(module)
    name = type(backbone).__name__ if not family else \
        f'{family}-{arch}' if arch else f'{family} (custom arch)'
    if backbone is module:
        return name
    heads = [type(getattr(module, h)).__name__
             for h in ('decode_head', 'auxiliary_head')
             if isinstance(getattr(module, h, None), nn.Module)]
    return f'{type(module).__name__}: ' + ' + '.join([name] + heads)


def adapt_input_filters(weight: torch.Tensor,
                        channels: int) -> torch.Tensor:
    """RGB filters ``(O, 3, kh, kw)`` for ``channels`` input channels.

    One channel gets the sum of the RGB filters (a grey image gives the
    response the RGB filters give to the same grey in colour); more
    channels get the RGB filters repeated in turn and scaled by
    ``3 / channels`` (timm's ``adapt_input_conv`` rule), so that for a
    multiple of three the filters' sum over the input channels, and the
    response to equal bands, stay those of the RGB filters. Re-initialising
    the stem instead loses the pretrained low-level filters.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f'expected RGB filters (O, 3, kh, kw), got '
                         f'{tuple(weight.shape)}')
    if channels == 1:
        return weight.sum(1, keepdim=True)
    repeats = -(-channels // 3)
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (3 / channels)


def _adapt_input_convs(module: nn.Module, detected: Detected, src: str,
                       target: str, prefix: str = '') -> Detected:
    """``detected`` with the mis-shaped keys under ``prefix`` (the
    backbone) that are RGB filters ``(O, 3, kh, kw)`` where the module's
    take another number of channels ``(O, N, kh, kw)`` adapted; one log
    line names them."""
    adapted, sd = [], dict(detected.state_dict)
    for key, theirs, ours in compare_keys(module, sd).mismatched:
        if (key.startswith(prefix) and len(theirs) == len(ours) == 4
                and theirs[1] == 3 and theirs[0] == ours[0]
                and theirs[2:] == ours[2:]):
            sd[key] = adapt_input_filters(sd[key], ours[1])
            adapted.append(f'{key} (3 -> {ours[1]} channels)')
    if not adapted:
        return detected
    _log(f'{target}: RGB input filters of {src} adapted to the input '
         f'channels (1 channel: the sum of the RGB filters; more: '
         f'repeated and scaled by 3/N): {", ".join(adapted)}')
    return replace(detected, state_dict=MappingProxyType(sd))


def _check(module: nn.Module, detected: Detected, src: str, target: str,
           allowed: Sequence[str] = (), partial: bool = False) -> list:
    """Raise unless ``detected`` fits ``module`` (but for the keys matching
    ``allowed`` and, with ``partial``, missing ones); returns the keys the
    module keeps from its own initialisation."""
    report = compare_keys(module, detected.state_dict)
    keep = [k for k, _, _ in report.mismatched
            if any(re.fullmatch(p, k) for p in allowed)]
    report.mismatched = [m for m in report.mismatched if m[0] not in keep]
    if partial:
        if len(report.missing) == len(module.state_dict()):
            raise CheckpointError(_refusal(
                src, target, module, _holds(detected),
                f'none of its keys is in the file (partial=True loads a '
                f'part, not nothing): {report.describe()}'))
        keep += report.missing
        report.missing = []
    if not report.fits:
        raise CheckpointError(_refusal(src, target, module,
                                       _holds(detected), report.describe()))
    return keep


def _holds(detected: Detected) -> str:
    """What the file of ``detected`` holds, in words."""
    if detected.source == 'ours':
        return identify_ours(detected.state_dict)
    if detected.arch is None and detected.variant_check is not None:
        detected = replace(detected, arch=detected.variant_check(None))
    return detected.what()


def _refusal(src: str, target: str, module: nn.Module, holds: str,
             keys: str) -> str:
    """``checkpoint <src> does not fit <target>: the file holds <what>,
    <target> is <model>; <the key counts>``."""
    if target.startswith('the model of '):
        config = target[len('the model of '):]
        builds = f'{config} builds {model_name(module)}'
    else:
        builds = f'the model is {model_name(module)}'
    return (f'checkpoint {src} does not fit {target}: the file holds '
            f'{holds}, {builds}; {keys}')


def _load(module: nn.Module, sd: Mapping, keep: Sequence[str]) -> None:
    sd = {k: v for k, v in sd.items() if k not in set(keep)}
    module.load_state_dict(sd, strict=not keep)


def load_part_weights(module: nn.Module, checkpoint: str, part: str,
                      prefix: Optional[str] = None,
                      partial: bool = False) -> Detected:
    """Initialise ``module``, the ``part`` (``'backbone'``,
    ``'decode_head'``) of a segmentor, from ``checkpoint``, strictly: a
    file of the part's own keys, or a segmentation file whose ``part``
    is taken, in our layout or a known one (converted).

    Args:
        module (nn.Module): The backbone or head.
        checkpoint (str): Local file/folder, ``http(s)://`` or ``hf://``.
        part (str): Which part of a segmentation file ``module`` is.
        prefix (str, optional): Use only the file's keys under this prefix
            (stripped; a ``.`` is appended if missing), as mmengine's
            ``PretrainedInit`` does.
        partial (bool): Allow keys of ``module`` missing from the file
            (they keep their initialisation and are logged).

    Raises:
        CheckpointPrefixError: no key of the file is under ``prefix``.
        CheckpointError: the file does not give every parameter and buffer.
    """
    sd, _ = read_checkpoint(checkpoint)
    return load_part_state_dict(module, sd, checkpoint, part, prefix,
                                partial)


def load_part_state_dict(module: nn.Module, sd: Mapping[str, torch.Tensor],
                         checkpoint: str, part: str,
                         prefix: Optional[str] = None,
                         partial: bool = False) -> Detected:
    """:func:`load_part_weights` from the state dict ``sd`` already read
    from ``checkpoint`` (which messages name), for a caller that reads
    more of the file."""
    name = type(module).__name__
    whole = None
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        whole, sd = sd, _under(sd, prefix)
        if not sd:
            raise CheckpointPrefixError(f'checkpoint {checkpoint} has no '
                                        f'keys under the prefix {prefix!r}')
    detected = fit_weights(module, sd, checkpoint, name, part, partial,
                           whole)
    detected = _adapt_input_convs(module, detected, checkpoint, name)
    keep = _check(module, detected, checkpoint, name, partial=partial)
    _load(module, detected.state_dict, keep)
    _log(f'{name} initialised from {checkpoint}: {detected.describe()}')
    if keep:
        _log(f'{name}: {len(keep)} keys not in {checkpoint} keep their '
             f'initialisation (partial=True): {", ".join(keep)}')
    return detected


def load_backbone_weights(backbone: nn.Module, checkpoint: str,
                          prefix: Optional[str] = None,
                          partial: bool = False) -> Detected:
    """Initialise ``backbone`` from ``checkpoint``, strictly (see
    :func:`load_part_weights`)."""
    return load_part_weights(backbone, checkpoint, 'backbone', prefix,
                             partial)


def load_pretrained(module: nn.Module, checkpoint: str,
                    prefix: Optional[str] = None,
                    partial: bool = False) -> Detected:
    """The loader of ``init_cfg=dict(type='Pretrained', ...)`` for this
    package's backbones (the ``backbone`` of a segmentation file) and
    decode heads (its ``decode_head``), see :func:`load_part_weights`."""
    part = 'backbone' if hasattr(module, 'arch_table') else 'decode_head'
    return load_part_weights(module, checkpoint, part, prefix, partial)


def load_model_weights(model: nn.Module, checkpoint: str, target: str,
                       reinit_class_layers: bool = False,
                       partial: bool = False) -> Detected:
    """Load a whole-segmentor checkpoint into ``model``, strictly.

    Args:
        model (nn.Module): The segmentor.
        checkpoint (str): Local file/folder, ``http(s)://`` or ``hf://``.
        target (str): What the model is, for messages (a config's name).
        reinit_class_layers (bool): Fine-tuning to another class count:
            classifier layers (:data:`CLASS_LAYER_PATTERN`) whose shapes
            differ keep their initialisation (named in one log line);
            every other key must load.
        partial (bool): Allow missing keys (logged), in any layout.

    Raises:
        CheckpointError: see :func:`fit_weights`.
    """
    sd, meta = read_checkpoint(checkpoint)
    where = f'the model of {target}'
    detected = fit_weights(model, sd, checkpoint, where, 'segmentation',
                           partial)
    detected = replace(detected, meta=MappingProxyType(dict(meta)))
    detected = _adapt_input_convs(model, detected, checkpoint, target,
                                  'backbone.')
    allowed = (CLASS_LAYER_PATTERN, ) if reinit_class_layers else ()
    keep = _check(model, detected, checkpoint, where, allowed, partial)
    _load(model, detected.state_dict, keep)
    if detected.source != 'ours':
        _log(f'{target}: {checkpoint} converted: {detected.describe()}')
    if keep:
        _log(f'{target}: re-initialised (not loaded from {checkpoint}): '
             f'{", ".join(keep)}')
    return detected
