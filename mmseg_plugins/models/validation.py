"""Checks of model arguments and inputs, each with a message that says
what is wrong and what would be right."""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..errors import ConflictingArgumentsError, InvalidInputError

__all__ = [
    'resolve_arch', 'check_out_indices', 'check_min_input_size',
    'check_in_channels', 'conflict', 'stage_arguments',
    'check_frozen_stages', 'pick_argument', 'MMSEG_MIT_DEFAULTS',
    'mmseg_mit_arch', 'mmseg_mit_arguments'
]


def resolve_arch(family: str,
                 arch,
                 table: Mapping[str, Dict],
                 required: Sequence[str],
                 num_stages: Optional[int] = None) -> Dict:
    """Look up a variant by name in ``table`` or validate a custom dict.

    Every setting is a per-stage sequence; all must have as many entries as
    ``depths`` (and ``num_stages`` entries when it is given).

    Args:
        family (str): Model family, used in error messages.
        arch (str | dict): Variant name or a dict with every ``required``
            key.
        table (Mapping): ``{name: settings}``.
        required (Sequence[str]): Keys a custom dict must provide.
        num_stages (int, optional): Fixed number of stages of the family.

    Returns:
        dict: A copy of the settings.

    Raises:
        InvalidInputError: unknown name, incomplete dict or inconsistent
            lengths (the message lists the valid choices / missing keys /
            the bad entry).
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in table:
            raise InvalidInputError(f'Unknown {family} arch {arch!r}; '
                                    f'valid choices: {", ".join(table)}')
        settings = dict(table[key])
    elif isinstance(arch, Mapping):
        missing = [k for k in required if k not in arch]
        if missing:
            raise InvalidInputError(f'Custom {family} arch is missing '
                                    f'keys {missing}; it needs '
                                    f'{list(required)}')
        settings = dict(arch)
    else:
        raise TypeError(f'{family} arch must be a name ({", ".join(table)}) '
                        f'or a dict, got {type(arch).__name__}')
    n = len(settings['depths']) if num_stages is None else num_stages
    for key, value in settings.items():
        if len(value) != n:
            raise InvalidInputError(
                f'{family} arch: {key}={list(value)} has {len(value)} '
                f'entries but depths has {n}' if num_stages is None else
                f'{family} arch: {key}={list(value)} must have {n} entries '
                f'(one per stage)')
    return settings


def check_out_indices(family: str, out_indices: Sequence[int],
                      num_stages: int) -> Tuple[int, ...]:
    """Validate ``out_indices`` against the number of stages."""
    if isinstance(out_indices, int):  # mmseg's backbones take one index
        out_indices = (out_indices, )
    out_indices = tuple(out_indices)
    if not out_indices or any(i < 0 or i >= num_stages for i in out_indices):
        raise InvalidInputError(f'{family} out_indices {list(out_indices)} '
                                f'must lie in [0, {num_stages - 1}]')
    return out_indices


def check_min_input_size(x: torch.Tensor, min_size: int, family: str) -> None:
    """Raise a clear error for inputs smaller than ``min_size`` on a side.

    Skipped while the TorchScript tracer runs: a traced graph cannot raise
    (the check would only be a warning about a recorded constant); ONNX
    files of this package store the minimum and their runner checks it.
    Under dynamo export the check bounds the exported dimensions.
    """
    if torch.jit.is_tracing():
        return
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise InvalidInputError(f'{family} needs inputs of at least '
                                f'{min_size}x{min_size} pixels, got '
                                f'{h}x{w}')


def check_in_channels(head: str, expected: Sequence[int],
                      inputs: Sequence[torch.Tensor]) -> None:
    """Raise a clear error when a head's ``in_channels`` does not match the
    feature maps it receives."""
    found = [int(x.shape[1]) for x in inputs]
    if found != list(expected):
        raise InvalidInputError(f'{head} in_channels={list(expected)} but '
                                f'the backbone gives {found}; set '
                                f'in_channels to {found}')


def _shown(value) -> Any:
    """A value as messages show it (sequences as lists)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def conflict(family: str, first: str, first_value, second: str,
             second_value, why: str = '') -> ConflictingArgumentsError:
    """The error for two contradicting arguments, naming both:
    ``MiT embed_dims=64 contradicts arch='b0' (whose embed_dims is 32)``."""
    return ConflictingArgumentsError(
        f'{family} {first}={_shown(first_value)!r} contradicts '
        f'{second}={_shown(second_value)!r}' + (f' ({why})' if why else ''))


def pick_argument(family: str, name: str, value, alias: str, alias_value,
                  default):
    """One setting that two argument names can give (ours and the official
    code's, e.g. ``in_channels`` and ``in_chans``): the one given (both
    only when equal), else ``default``."""
    if value is not None and alias_value is not None and \
            _shown(value) != _shown(alias_value):
        raise conflict(family, alias, alias_value, name, value)
    for v in (value, alias_value):
        if v is not None:
            return v
    return default


def stage_arguments(family: str, arch: Union[str, Mapping, None],
                    table: Mapping[str, Dict], default_arch: str,
                    given: Mapping[str, Tuple[str, Any]],
                    defaults: Mapping[str, Any]
                    ) -> Tuple[Union[str, Dict], bool]:
    """Reconcile ``arch`` with per-stage arguments in another codebase's
    names (the official configs', mmseg's).

    Args:
        family (str): Model family, used in messages.
        arch (str | Mapping | None): The ``arch`` argument.
        table (Mapping): The family's variants.
        default_arch (str): The variant without ``arch`` or per-stage
            arguments.
        given (Mapping): ``{argument name: (arch key, value)}``; ``None``
            values were not given.
        defaults (Mapping): ``{arch key: value}``: the other codebase's
            constructor defaults, used for the keys not given when no
            ``arch`` is.

    Returns:
        tuple: (the ``arch`` to build, whether the per-stage arguments
        defined it). With an ``arch``, every given argument must equal its
        setting; without one, the arguments (completed by ``defaults``)
        build what the other codebase builds from them.

    Raises:
        ConflictingArgumentsError: an argument contradicts ``arch``.
    """
    present = {
        name: (key, tuple(v) if isinstance(v, (list, tuple)) else v)
        for name, (key, v) in given.items() if v is not None
    }
    if not present:
        return (default_arch if arch is None else arch), False
    if arch is None:
        settings = {k: tuple(v) for k, v in defaults.items()}
        settings.update({key: v for key, v in present.values()})
        return settings, True
    required = list(next(iter(table.values())))
    settings = resolve_arch(family, arch, table, required)
    for name, (key, value) in present.items():
        if _shown(value) != _shown(settings[key]):
            raise conflict(family, name, value, 'arch',
                           arch if isinstance(arch, str) else dict(arch),
                           f'whose {key} is {_shown(settings[key])}')
    return arch, False


def check_frozen_stages(family: str, frozen_stages: int,
                        num_stages: int) -> int:
    """Validate ``frozen_stages``: -1 (none), 0 (the stem) ... the number
    of stages (everything)."""
    if not isinstance(frozen_stages, int) or isinstance(frozen_stages, bool) \
            or not -1 <= frozen_stages <= num_stages:
        raise InvalidInputError(
            f'{family} frozen_stages={frozen_stages!r} must be an int in '
            f'[-1, {num_stages}] (-1: nothing frozen, 0: the stem, n: the '
            f'stem and the first n stages)')
    return frozen_stages


#: mmseg ``MixVisionTransformer``'s defaults of its per-stage arguments
#: (mmseg 1.x, ``mmseg/models/backbones/mit.py``).
MMSEG_MIT_DEFAULTS = dict(
    embed_dims=64,
    num_layers=(3, 4, 6, 3),
    num_heads=(1, 2, 4, 8),
    patch_sizes=(7, 3, 3, 3),
    strides=(4, 2, 2, 2),
    sr_ratios=(8, 4, 2, 1),
    mlp_ratio=4)
#: mmseg's per-stage arguments named as in :data:`MIT_ARCHS` entries.
_MMSEG_TO_ARCH_KEY = dict(num_layers='depths', num_heads='num_heads',
                          patch_sizes='patch_sizes', strides='strides',
                          sr_ratios='sr_ratios')


def mmseg_mit_arch(args: Dict) -> Dict:
    """An ``arch`` dict from mmseg ``MixVisionTransformer``'s per-stage
    arguments (all of :data:`MMSEG_MIT_DEFAULTS`, ``num_stages``
    optional): stage ``i`` has ``embed_dims * num_heads[i]`` channels and
    ``mlp_ratio`` is shared by all stages.

    Raises:
        ConflictingArgumentsError: lists of different lengths, or a
            ``num_stages`` that is not their length (mmseg asserts both).
        InvalidInputError: ``embed_dims`` is not an int.
    """
    layers = tuple(args['num_layers'])
    for name in ('num_heads', 'patch_sizes', 'strides', 'sr_ratios'):
        if len(args[name]) != len(layers):
            raise conflict('MiT', name, args[name], 'num_layers', layers,
                           'one entry per stage each')
    stages = args.get('num_stages')
    if stages is not None and stages != len(layers):
        raise conflict('MiT', 'num_stages', stages, 'num_layers', layers)
    base = args['embed_dims']
    if not isinstance(base, int) or isinstance(base, bool):
        raise InvalidInputError(
            f'MiT embed_dims={base!r}: mmseg\'s embed_dims is an int, the '
            f'channels per head (stage i has embed_dims * num_heads[i]); '
            f'per-stage widths go in arch=dict(embed_dims=[...], ...)')
    arch = {key: tuple(args[name]) for name, key in _MMSEG_TO_ARCH_KEY.items()}
    arch['embed_dims'] = tuple(base * h for h in arch['num_heads'])
    arch['mlp_ratios'] = (args['mlp_ratio'], ) * len(layers)
    return arch


def _mmseg_view(settings: Dict) -> Dict:
    """An ``arch``'s settings in mmseg's argument names (None where mmseg's
    arguments cannot express it: per-stage MLP ratios, widths that are not
    one multiple of the head counts)."""
    dims, heads = settings['embed_dims'], settings['num_heads']
    base = dims[0] // heads[0]
    ratios = settings['mlp_ratios']
    view = {name: tuple(settings[key])
            for name, key in _MMSEG_TO_ARCH_KEY.items()}
    view.update(
        embed_dims=base if all(d == base * h for d, h in zip(dims, heads))
        else None,
        num_stages=len(settings['depths']),
        mlp_ratio=ratios[0] if len(set(ratios)) == 1 else None)
    return view


def _layer_norm_eps(norm_cfg: dict) -> float:
    """The epsilon of mmcv's ``norm_cfg`` for the LayerNorms (its default
    is nn.LayerNorm's, 1e-5); refuses other norms."""
    if not isinstance(norm_cfg, dict) or norm_cfg.get('type') != 'LN':
        raise InvalidInputError(
            f'MiT norm_cfg={norm_cfg!r}: MiT\'s norms are LayerNorms; '
            f'norm_cfg must be dict(type=\'LN\', eps=...)')
    unknown = set(norm_cfg) - {'type', 'eps', 'requires_grad'}
    if unknown:
        raise InvalidInputError(
            f'MiT norm_cfg keys {sorted(unknown)} are not supported '
            f'(type, eps, requires_grad are)')
    return float(norm_cfg.get('eps', 1e-5))


def mmseg_mit_arguments(arch: Union[str, Mapping, None],
                        table: Mapping[str, Dict], given: Mapping,
                        norm_cfg: Optional[dict], epsilons: Mapping
                        ) -> Tuple[Union[str, Mapping], bool, Dict, bool]:
    """Reconcile MiT's ``arch`` with mmseg's arguments.

    Args:
        arch (str | Mapping | None): The ``arch`` argument.
        table (Mapping): The MiT variants.
        given (Mapping): mmseg's per-stage arguments (None: not given).
        norm_cfg (dict, optional): mmseg's ``norm_cfg``.
        epsilons (Mapping): ``norm_eps``, ``patch_norm_eps``,
            ``sr_norm_eps`` (None: not given).

    Returns:
        tuple: the ``arch`` to build; whether mmseg's arguments define it
        (no ``arch``: mmseg's defaults complete them, and the epsilons
        default to mmseg's 1e-6); the three epsilons; whether the
        LayerNorms train (``norm_cfg``'s ``requires_grad``).
    """
    given = {k: v for k, v in given.items() if v is not None}
    mmseg_form = bool(given) and arch is None
    if mmseg_form:
        arch = mmseg_mit_arch(dict(MMSEG_MIT_DEFAULTS, **given))
    elif given:
        view = _mmseg_view(resolve_arch('MiT', arch, table,
                                        list(next(iter(table.values())))))
        for name, value in given.items():
            if _shown(value) != _shown(view[name]):
                raise conflict('MiT', name, value, 'arch', arch,
                               f'whose {name} is {_shown(view[name])}')
    requires_grad = True
    if norm_cfg is not None:
        eps = _layer_norm_eps(norm_cfg)
        for name, value in epsilons.items():
            if value is not None and value != eps:
                raise conflict('MiT', name, value, 'norm_cfg', norm_cfg)
        epsilons = dict.fromkeys(epsilons, eps)
        requires_grad = bool(norm_cfg.get('requires_grad', True))
    # the official epsilons, or mmseg's default norm_cfg (eps 1e-6)
    defaults = dict(norm_eps=1e-6, patch_norm_eps=1e-5, sr_norm_eps=1e-5)
    if mmseg_form:
        defaults = dict.fromkeys(defaults, 1e-6)
    epsilons = {k: defaults[k] if v is None else v
                for k, v in epsilons.items()}
    return arch, mmseg_form, epsilons, requires_grad
