"""The converter driver shared by every ``tools/model_converters/*2mmseg.py``.

``convert_checkpoint(src, dst, spec)``:

1. loads ``src`` with :func:`mmseg_plugins.checkpoint.safe_load`
   (``weights_only=True`` and an allow-list) and unwraps ``state_dict`` /
   ``model`` / DDP ``module.`` prefixes;
2. maps every key with the family's declarative rules (unknown keys are
   errors, dropped keys are reported with a reason, alias keys are verified
   identical);
3. finds the variant whose model has exactly these keys and shapes (or
   checks the one asked for), naming the first offending key otherwise;
4. writes ``dst`` atomically: ``{'state_dict': ..., 'meta': ...}`` with
   ``backbone.``/``decode_head.`` keys for a segmentation model, bare
   backbone keys for an ImageNet file (for ``init_cfg=dict(type=
   'Pretrained', checkpoint=dst)``).
"""
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..checkpoint import atomic_save, safe_load, unwrap_state_dict
from .rules import ConversionError, ConversionReport, convert_state_dict

__all__ = [
    'FamilySpec', 'convert_checkpoint', 'find_variant', 'first_mismatch',
    'map_to_ours', 'summary_lines'
]

StateDict = Mapping[str, torch.Tensor]


@dataclass
class FamilySpec:
    """What the driver needs to know about a model family.

    Args:
        name (str): Family name for messages, e.g. ``'AFFormer'``.
        rules (Sequence): Key rules (source layout -> ours), covering both
            bare backbone keys and ``backbone.``/``decode_head.`` keys.
        archs (Sequence[str]): Variant names, tried in this order.
        build_backbone (callable): ``arch -> nn.Module``.
        build_head (callable, optional): ``(arch, head_state_dict) ->
            nn.Module`` for ``decode_head`` (head hyper-parameters such as
            the number of classes are read from the weights).
        extra_heads (dict, optional): ``{prefix: builder}`` for further
            heads of a segmentation file, e.g. ``auxiliary_head``; a file
            may hold them or not.
    """
    name: str
    rules: Sequence
    archs: Sequence[str]
    build_backbone: Callable[[str], nn.Module]
    build_head: Optional[Callable[[str, StateDict], nn.Module]] = None
    extra_heads: Optional[Dict[str, Callable[[str, StateDict],
                                             nn.Module]]] = None

    @property
    def head_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of the heads (``decode_head.`` first)."""
        return ('decode_head.', ) + tuple(f'{p}.'
                                          for p in self.extra_heads or ())


def first_mismatch(found: StateDict,
                   expected: StateDict) -> Optional[Tuple[str, str]]:
    """The first key that is missing, unexpected or of the wrong shape, as
    ``(key, description)``; None when the two agree exactly."""
    for key, value in expected.items():
        if key not in found:
            return key, f'missing from the file (model expects shape ' \
                        f'{tuple(value.shape)})'
        if tuple(found[key].shape) != tuple(value.shape):
            return key, f'shape {tuple(found[key].shape)} in the file, ' \
                        f'{tuple(value.shape)} in the model'
    for key, value in found.items():
        if key not in expected:
            return key, f'not in the model (shape {tuple(value.shape)})'
    return None


def _split(sd: StateDict, prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _count_mismatches(found: StateDict, expected: StateDict) -> int:
    keys = set(found) | set(expected)
    return sum(1 for k in keys if k not in found or k not in expected or
               tuple(found[k].shape) != tuple(expected[k].shape))


def _expected(spec: FamilySpec, arch: str,
              head_sds: Optional[Dict[str, StateDict]]
              ) -> Dict[str, torch.Tensor]:
    """The keys and shapes of ``arch``'s model (with the heads of
    ``head_sds``), built on the meta device: shapes only, no memory and
    no initialisation, so trying every variant costs little."""
    with torch.device('meta'):
        exp = {f'backbone.{k}' if head_sds is not None else k: v
               for k, v in spec.build_backbone(arch).state_dict().items()}
        builders = dict(decode_head=spec.build_head,
                        **(spec.extra_heads or {}))
        for prefix, head_sd in (head_sds or {}).items():
            build = builders.get(prefix.rstrip('.'))
            if build is None:
                raise ConversionError(f'{spec.name} has no {prefix[:-1]} '
                                      'to convert')
            head = build(arch, head_sd)
            exp.update({f'{prefix}{k}': v
                        for k, v in head.state_dict().items()})
    return exp


def find_variant(spec: FamilySpec, sd: StateDict,
                 head_sds: Optional[Dict[str, StateDict]],
                 arch: Optional[str], src: str) -> str:
    """The variant whose model has exactly the keys and shapes of ``sd``
    (``arch`` only, if given).

    Raises:
        ConversionError: naming the first offending key of the closest
            variant.
    """
    candidates: List[str] = [arch] if arch else list(spec.archs)
    best = None
    for name in candidates:
        try:
            expected = _expected(spec, name, head_sds)
        except ConversionError:
            raise
        except (ValueError, KeyError, RuntimeError) as err:
            raise ConversionError(f'cannot build the {spec.name} head from '
                                  f'the weights in {src}: {err}') from None
        mismatch = first_mismatch(sd, expected)
        if mismatch is None:
            return name
        score = _count_mismatches(sd, expected)
        if best is None or score < best[0]:
            best = (score, name, mismatch)
    _, name, (key, desc) = best
    what = f'{spec.name}-{name}' if len(candidates) == 1 else \
        f'any {spec.name} variant ({", ".join(candidates)}); closest is ' \
        f'{name}'
    raise ConversionError(f'{src} does not match {what}: first offending '
                          f'key {key!r}: {desc}')


def map_to_ours(sd: StateDict, spec: FamilySpec, src: str
                ) -> Tuple[Dict[str, torch.Tensor], ConversionReport,
                           Optional[Dict[str, StateDict]]]:
    """Map an (unwrapped) official state dict into this project's layout:
    the one implementation behind file conversion
    (:func:`convert_checkpoint`) and in-memory conversion at load time
    (:mod:`mmseg_plugins.weights`).

    Returns:
        tuple: (our state dict: bare backbone keys for an ImageNet file,
        ``backbone.``/head keys for a segmentation file; the
        :class:`ConversionReport`; the head state dicts by prefix, or None
        for a backbone file).

    Raises:
        ConversionError: a key no rule knows, or a file that mixes layouts.
    """
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConversionError(f'{src} holds no state dict of tensors')
    sd = {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}
    try:
        out, report = convert_state_dict(sd, spec.rules)
    except ConversionError as err:
        raise ConversionError(f'{src} is not an official {spec.name} '
                              f'checkpoint: {err}') from None
    heads = spec.head_prefixes
    is_seg = any(k.startswith(heads) for k in out)
    if not is_seg and all(k.startswith('backbone.') for k in out):
        out = type(out)((k[len('backbone.'):], v) for k, v in out.items())
    head_sds = {p: _split(out, p) for p in heads
                if any(k.startswith(p) for k in out)} if is_seg else None
    if is_seg and 'decode_head.' not in head_sds:
        raise ConversionError(f'{src} has {", ".join(head_sds)} weights '
                              'but no decode_head')
    allowed = ('backbone.', ) + heads
    if is_seg and any(not k.startswith(allowed) for k in out):
        bad = next(k for k in out if not k.startswith(allowed))
        raise ConversionError(f'{src} mixes prefixed and bare keys ({bad})')
    return dict(out), report, head_sds


def convert_checkpoint(src: str,
                       dst: str,
                       spec: FamilySpec,
                       arch: Optional[str] = None,
                       state_dict: Optional[StateDict] = None) -> Dict:
    """Convert ``src`` into this project's layout and write ``dst``.

    Args:
        src (str): Official checkpoint file.
        dst (str): Output file (written atomically).
        spec (FamilySpec): The model family.
        arch (str, optional): Variant to check against; detected from the
            shapes when None.
        state_dict (Mapping, optional): Already loaded weights of ``src``
            (e.g. read from safetensors); ``src`` is then only named.

    Returns:
        dict: ``arch``, ``kind`` (``'segmentation'`` or ``'backbone'``),
        ``num_keys`` and the :class:`ConversionReport`.

    Raises:
        ConversionError: the file does not fit the family or the variant.
        CheckpointError: the file is not a (safe) checkpoint.
    """
    if arch is not None and arch not in spec.archs:
        raise ConversionError(f'Unknown {spec.name} arch {arch!r}; valid '
                              f'choices: {", ".join(spec.archs)}')
    sd = unwrap_state_dict(
        safe_load(src) if state_dict is None else dict(state_dict))
    out, report, head_sds = map_to_ours(sd, spec, src)
    arch = find_variant(spec, out, head_sds, arch, src)
    meta = dict(converted_from=osp.basename(src), family=spec.name, arch=arch,
                dropped=dict(report.dropped))
    atomic_save(dict(state_dict=out, meta=meta), dst)
    return dict(arch=arch, kind='backbone' if head_sds is None else
                'segmentation', num_keys=len(out), report=report)


def summary_lines(info: Dict, dst: str) -> List[str]:
    """Human-readable report of :func:`convert_checkpoint`."""
    report: ConversionReport = info['report']
    lines = [f'{info["kind"]} checkpoint of variant {info["arch"]}: '
             f'{info["num_keys"]} tensors written to {dst}']
    lines += report.summary().splitlines()
    return lines
