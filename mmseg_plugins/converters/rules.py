"""Declarative state-dict key mapping, shared by every converter.

A converter is a list of rules; each source key is handled by the first
rule whose regular expression matches the *whole* key:

* :class:`Rename` maps it to one target key (``re`` replacement template),
  optionally transforming the tensor (e.g. Linear -> 1x1 conv reshape);
* :class:`Split` maps it to several target keys by cutting the tensor
  along dim 0 (e.g. a fused ``in_proj`` into ``q`` and ``kv``);
* :class:`Fuse` concatenates it with partner keys along dim 0 into one
  target (e.g. separate ``key`` and ``value`` into ``kv``); the partners are
  consumed;
* :class:`Drop` discards it, with a reason that ends up in the report;
* :class:`Alias` discards it after checking that it holds exactly the same
  tensor as the canonical key it duplicates (shared modules registered
  under several names).

A key that no rule matches is an error (never silently copied), as is a
target key produced twice.

A layout that is converted in both directions is stated once, as a table
of key templates (:func:`table_rules`), and its rules are generated for
either direction.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import torch

from ..errors import CheckpointError

__all__ = [
    'ConversionError', 'Rename', 'Split', 'Fuse', 'Drop', 'Alias',
    'ConversionReport', 'convert_state_dict', 'with_prefix', 'table_rules'
]

Tensor = torch.Tensor


class ConversionError(CheckpointError, ValueError):
    """The source state dict does not fit the rules (a checkpoint of
    another layout, family or variant)."""


@dataclass(frozen=True)
class Rename:
    """``pattern`` -> ``target`` (a ``re.sub`` template), with an optional
    tensor ``transform``."""
    pattern: str
    target: str
    transform: Optional[Callable[[Tensor], Tensor]] = None


@dataclass(frozen=True)
class Split:
    """``pattern`` -> several ``targets``; ``fractions`` gives each part's
    share of dim 0 (e.g. ``(1, 2)`` for q and kv out of a 3C in_proj)."""
    pattern: str
    targets: Tuple[str, ...]
    fractions: Tuple[int, ...]


@dataclass(frozen=True)
class Fuse:
    """``pattern`` plus the ``partners`` (``re`` templates of the same
    match) -> ``target``, concatenated along dim 0 in that order."""
    pattern: str
    partners: Tuple[str, ...]
    target: str


@dataclass(frozen=True)
class Drop:
    """Discard keys matching ``pattern``; ``reason`` is reported."""
    pattern: str
    reason: str


@dataclass(frozen=True)
class Alias:
    """Keys matching ``pattern`` duplicate the (converted) key ``canonical``
    (a ``re`` template); they are dropped once shown to be identical."""
    pattern: str
    canonical: str


def with_prefix(prefix: str, rules: Sequence) -> tuple:
    """The same rules for keys that carry an optional ``prefix`` (e.g.
    ``'backbone.'``), which is kept in the target."""
    import dataclasses

    def shift(template: str) -> str:
        # group N of the rule becomes group N + 1 after the prefix group
        return re.sub(r'\\(\d+)', lambda m: f'\\g<{int(m.group(1)) + 1}>',
                      template)

    group = '((?:' + re.escape(prefix) + ')?)'
    out = []
    for rule in rules:
        changes = dict(pattern=group + rule.pattern)
        if isinstance(rule, Rename):
            changes['target'] = r'\g<1>' + shift(rule.target)
        elif isinstance(rule, Split):
            changes['targets'] = tuple(r'\g<1>' + shift(t)
                                       for t in rule.targets)
        elif isinstance(rule, Fuse):
            changes['partners'] = tuple(r'\g<1>' + shift(t)
                                        for t in rule.partners)
            changes['target'] = r'\g<1>' + shift(rule.target)
        elif isinstance(rule, Alias):
            changes['canonical'] = r'\g<1>' + shift(rule.canonical)
        out.append(dataclasses.replace(rule, **changes))
    return tuple(out)


#: One row of a two-way key table: (their key, our key). Each side is a
#: template with ``{name}`` placeholders or, for tensors that the other
#: layout concatenates along dim 0 (e.g. separate key and value -> kv), a
#: tuple of templates.
KeyPair = Tuple[Union[str, Tuple[str, ...]], Union[str, Tuple[str, ...]]]


def _template_pattern(template: str, fields: Mapping[str, str]) -> str:
    r"""``'a.{s}.b'`` -> ``r'a\.(?P<s>\d)\.b'`` (each placeholder a named
    group; the rest literal)."""
    parts = re.split(r'\{(\w+)\}', template)
    return ''.join(
        re.escape(p) if i % 2 == 0 else f'(?P<{p}>{fields[p]})'
        for i, p in enumerate(parts))


def _template_target(template: str, captured: Sequence[str],
                     defaults: Mapping[str, str]) -> str:
    r"""``'a.{s}.b'`` -> ``r'a.\g<s>.b'``; a placeholder that the source
    side does not capture takes its literal from ``defaults``."""
    parts = re.split(r'\{(\w+)\}', template)
    out = []
    for i, p in enumerate(parts):
        if i % 2 == 0:
            out.append(p.replace('\\', '\\\\'))
        elif p in captured:
            out.append(f'\\g<{p}>')
        elif p in defaults:
            out.append(defaults[p])
        else:
            raise ValueError(f'placeholder {{{p}}} of {template!r} is not '
                             'captured by the source side and has no '
                             'default')
    return ''.join(out)


def table_rules(table: Sequence[KeyPair],
                fields: Mapping[str, str],
                reverse: bool = False,
                defaults: Optional[Mapping[str, str]] = None) -> tuple:
    r"""The rules that map one side of a two-way key table to the other.

    Args:
        table (Sequence[KeyPair]): ``(theirs, ours)`` template pairs.
        fields (Mapping[str, str]): The regular expression each placeholder
            matches, e.g. ``{'s': r'\d', 't': r'.+'}``.
        reverse (bool): False: theirs -> ours; True: ours -> theirs.
        defaults (Mapping[str, str], optional): Literal values of
            placeholders that appear on the target side only (e.g. an
            optional prefix that the source side does not have).

    Returns:
        tuple: :class:`Rename`, :class:`Fuse` (a tuple on the source side)
        and :class:`Split` (a tuple on the target side) rules.
    """
    defaults = defaults or {}
    rules = []
    for theirs, ours in table:
        src, dst = (ours, theirs) if reverse else (theirs, ours)
        first = src[0] if isinstance(src, tuple) else src
        captured = re.findall(r'\{(\w+)\}', first)

        def target(t: str) -> str:
            return _template_target(t, captured, defaults)

        pattern = _template_pattern(first, fields)
        if isinstance(src, tuple):
            rules.append(Fuse(pattern, tuple(target(t) for t in src[1:]),
                              target(dst)))
        elif isinstance(dst, tuple):
            rules.append(Split(pattern, tuple(target(t) for t in dst),
                               (1, ) * len(dst)))
        else:
            rules.append(Rename(pattern, target(dst)))
    return tuple(rules)


@dataclass
class ConversionReport:
    """What a conversion did."""
    converted: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f'converted {self.converted} tensors']
        by_reason: Dict[str, List[str]] = {}
        for key, reason in self.dropped.items():
            by_reason.setdefault(reason, []).append(key)
        for reason, keys in by_reason.items():
            lines.append(f'dropped {len(keys)} keys ({reason}), e.g. '
                         f'{keys[0]}')
        return '\n'.join(lines)


def _match(rules: Sequence, key: str):
    for rule in rules:
        m = re.fullmatch(rule.pattern, key)
        if m is not None:
            return rule, m
    return None, None


def convert_state_dict(
        state_dict: Mapping[str, Tensor],
        rules: Sequence
) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Apply ``rules`` to every key of ``state_dict``.

    Args:
        state_dict (Mapping[str, Tensor]): Source weights.
        rules (Sequence[Rename | Split | Drop]): First match wins.

    Returns:
        tuple: (converted state dict, :class:`ConversionReport`).

    Raises:
        ConversionError: a key matches no rule, a split does not divide
            the tensor, or two source keys map to the same target.
    """
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    report = ConversionReport()
    aliases: List[Tuple[str, str]] = []

    def put(key: str, value: Tensor, src: str) -> None:
        if key in out:
            raise ConversionError(f'two source keys map to {key!r} '
                                  f'(second: {src!r})')
        out[key] = value

    consumed = set()
    for key in state_dict:  # partners of Fuse rules are used up front
        rule, m = _match(rules, key)
        if isinstance(rule, Fuse):
            for template in rule.partners:
                partner = m.expand(template)
                if partner not in state_dict:
                    raise ConversionError(f'{key!r} needs its partner '
                                          f'{partner!r}, which is missing')
                consumed.add(partner)
    for key, value in state_dict.items():
        if key in consumed:
            continue
        rule, m = _match(rules, key)
        if rule is None:
            raise ConversionError(f'no conversion rule for key {key!r}')
        if isinstance(rule, Drop):
            report.dropped[key] = rule.reason
            continue
        if isinstance(rule, Alias):
            aliases.append((key, m.expand(rule.canonical)))
            continue
        if isinstance(rule, Rename):
            new = m.expand(rule.target)
            put(new, rule.transform(value) if rule.transform else value, key)
        elif isinstance(rule, Fuse):
            parts = [value] + [state_dict[m.expand(t)] for t in rule.partners]
            put(m.expand(rule.target), torch.cat(parts, dim=0), key)
        else:  # Split
            total = sum(rule.fractions)
            if value.shape[0] % total:
                raise ConversionError(
                    f'{key!r} has {value.shape[0]} rows, not divisible into '
                    f'parts {rule.fractions}')
            unit = value.shape[0] // total
            parts = torch.split(value, [f * unit for f in rule.fractions])
            for target, part in zip(rule.targets, parts):
                put(m.expand(target), part.clone(), key)
        report.converted += 1 + (len(rule.partners)
                                 if isinstance(rule, Fuse) else 0)
    for key, canonical in aliases:
        if canonical not in out:
            raise ConversionError(f'{key!r} is an alias of {canonical!r}, '
                                  'which the file does not contain')
        if not torch.equal(state_dict[key], out[canonical]):
            raise ConversionError(f'{key!r} should duplicate {canonical!r} '
                                  '(a shared module) but holds different '
                                  'values')
        report.dropped[key] = 'alias of a shared module, verified identical'
    return out, report
