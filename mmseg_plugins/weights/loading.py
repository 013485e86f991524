"""Strict loading of checkpoints in any known layout.

:func:`load_backbone_weights` is what a backbone's ``init_weights()`` runs
for ``pretrained=...`` / ``init_cfg=dict(type='Pretrained', ...)``;
:func:`load_model_weights` loads a whole segmentor (``load_from``,
``tools/test.py``, inference). Both convert a file of a known layout in
memory (:mod:`.detect`), log one line saying what was detected and which
keys were dropped, and then require every parameter and buffer of the
module to come from the file: anything else raises
:class:`~mmseg_plugins.errors.CheckpointError` with the counts of missing,
unexpected and mis-shaped keys. Partial loading only when asked for
(``partial=True``), and then the keys left at their initialisation are
logged. RGB weights for a backbone with another number of input channels
(grayscale, multi-band images) have their input convolution adapted
(:func:`adapt_input_filters`) instead of re-initialised.
"""
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..models.backbone_base import set_pretrained_loader
from ..state_dicts import compare_keys
from .detect import Detected, convert_weights, read_weights

__all__ = [
    'CLASS_LAYER_PATTERN', 'adapt_input_filters', 'fit_weights',
    'load_backbone_weights', 'load_model_weights', 'read_checkpoint'
]

#: Keys whose shapes depend on the number of classes: the classifiers of
#: the decode and auxiliary heads.
CLASS_LAYER_PATTERN = r'(decode_head|auxiliary_head(\.\d+)?)\.conv_seg\..+'


def _log(message: str) -> None:
    from mmengine.logging import print_log
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


def fit_weights(module: nn.Module, sd: Mapping[str, torch.Tensor],
                src: str, target: str, want: str) -> Detected:
    """Bring ``sd`` into the layout of ``module`` (ours as it is, or
    converted from a known layout).

    Args:
        want (str): ``'backbone'`` (bare keys wanted: the backbone of a
            segmentation file is taken) or ``'segmentation'``.

    Raises:
        CheckpointError: no layout gives ``module``'s key names; the
            message counts the missing/unexpected/mis-shaped keys.
    """
    sd = {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}
    own = compare_keys(module, sd)
    if not own.missing and not own.unexpected:
        return Detected(dict(sd), None, 'ours', want)
    detected, reasons = convert_weights(sd, src, _family(module))
    if detected is None:
        raise CheckpointError(
            f'checkpoint {src} does not fit {target}: {own.describe()} '
            f'(and it is in no known layout; {reasons[0]})')
    if detected.kind == 'segmentation' and want == 'backbone':
        detected.state_dict = {k[9:]: v for k, v in
                               detected.state_dict.items()
                               if k.startswith('backbone.')}
        detected.kind = 'backbone (of a segmentation file; heads not used)'
    arch = _arch_name(module)
    if arch and detected.family == _family(module):
        detected.arch = detected.variant_check(arch)
    return detected


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
                       target: str, prefix: str = '') -> None:
    """Adapt, in ``detected.state_dict``, the mis-shaped keys under
    ``prefix`` (the backbone) that are RGB filters ``(O, 3, kh, kw)`` where
    the module's take another number of channels ``(O, N, kh, kw)``; one
    log line names them."""
    adapted = []
    for key, theirs, ours in compare_keys(module,
                                          detected.state_dict).mismatched:
        if (key.startswith(prefix) and len(theirs) == len(ours) == 4
                and theirs[1] == 3 and theirs[0] == ours[0]
                and theirs[2:] == ours[2:]):
            detected.state_dict[key] = adapt_input_filters(
                detected.state_dict[key], ours[1])
            adapted.append(f'{key} (3 -> {ours[1]} channels)')
    if adapted:
        _log(f'{target}: RGB input filters of {src} adapted to the input '
             f'channels (1 channel: the sum of the RGB filters; more: '
             f'repeated and scaled by 3/N): {", ".join(adapted)}')


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
        keep += report.missing
        report.missing = []
    if not report.fits:
        if detected.arch is None and detected.variant_check is not None:
            detected.arch = detected.variant_check(None)
        what = '' if detected.source == 'ours' else \
            f' (the file is: {detected.describe()})'
        raise CheckpointError(f'checkpoint {src} does not fit {target}: '
                              f'{report.describe()}{what}')
    return keep


def _load(module: nn.Module, sd: Mapping, keep: Sequence[str]) -> None:
    sd = {k: v for k, v in sd.items() if k not in set(keep)}
    module.load_state_dict(sd, strict=not keep)


def load_backbone_weights(backbone: nn.Module, checkpoint: str,
                          prefix: Optional[str] = None,
                          partial: bool = False) -> Detected:
    """Initialise ``backbone`` from ``checkpoint``, strictly.

    Args:
        backbone (nn.Module): The backbone.
        checkpoint (str): Local file/folder, ``http(s)://`` or ``hf://``.
        prefix (str, optional): Use only the file's keys under this prefix
            (stripped), as mmengine's ``PretrainedInit`` does.
        partial (bool): Allow keys of the backbone missing from the file
            (they keep their initialisation and are logged).

    Raises:
        CheckpointError: the file does not give every parameter and buffer.
    """
    name = type(backbone).__name__
    sd, _ = read_checkpoint(checkpoint)
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items()
              if k.startswith(prefix)}
        if not sd:
            raise CheckpointError(f'checkpoint {checkpoint} has no keys '
                                  f'under the prefix {prefix!r}')
    detected = fit_weights(backbone, sd, checkpoint, name, 'backbone')
    _adapt_input_convs(backbone, detected, checkpoint, name)
    keep = _check(backbone, detected, checkpoint, name, partial=partial)
    _load(backbone, detected.state_dict, keep)
    _log(f'{name} initialised from {checkpoint}: {detected.describe()}')
    if keep:
        _log(f'{name}: {len(keep)} keys not in {checkpoint} keep their '
             f'initialisation (partial=True): {", ".join(keep)}')
    return detected


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
        partial (bool): Allow missing keys (logged).

    Raises:
        CheckpointError: see :func:`fit_weights`.
    """
    sd, meta = read_checkpoint(checkpoint)
    where = f'the model of {target}'
    detected = fit_weights(model, sd, checkpoint, where, 'segmentation')
    detected.meta = meta
    _adapt_input_convs(model, detected, checkpoint, target, 'backbone.')
    allowed = (CLASS_LAYER_PATTERN, ) if reinit_class_layers else ()
    keep = _check(model, detected, checkpoint, where, allowed, partial)
    _load(model, detected.state_dict, keep)
    if detected.source != 'ours':
        _log(f'{target}: {checkpoint} converted: {detected.describe()}')
    if keep:
        _log(f'{target}: re-initialised (not loaded from {checkpoint}): '
             f'{", ".join(keep)}')
    return detected


# the models' Pretrained initialisation loads through this module
set_pretrained_loader(load_backbone_weights)
