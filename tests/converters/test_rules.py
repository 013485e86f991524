"""Tests of mmseg_plugins/converters/rules.py."""
import pytest
import torch

from mmseg_plugins.converters.rules import (ConversionError, Drop, Rename,
                                            Split, convert_state_dict)


def test_rename_split_drop_and_report():
    sd = {
        'blk.0.in_proj': torch.arange(6.).reshape(6, 1),
        'blk.0.w': torch.ones(2, 3, 1, 1),
        'head.weight': torch.zeros(1),
    }
    rules = [
        Split(r'blk\.(\d+)\.in_proj', (r'b\1.q', r'b\1.kv'), (1, 2)),
        Rename(r'blk\.(\d+)\.w', r'b\1.fc.weight',
               lambda t: t.reshape(t.shape[0], -1)),
        Drop(r'head\..*', 'ImageNet classifier'),
    ]
    out, report = convert_state_dict(sd, rules)
    assert list(out) == ['b0.q', 'b0.kv', 'b0.fc.weight']
    assert out['b0.q'].flatten().tolist() == [0., 1.]
    assert out['b0.kv'].flatten().tolist() == [2., 3., 4., 5.]
    assert out['b0.fc.weight'].shape == (2, 3)
    assert report.converted == 2
    assert report.dropped == {'head.weight': 'ImageNet classifier'}
    assert 'dropped 1 keys (ImageNet classifier)' in report.summary()


def test_unmatched_key_is_an_error():
    with pytest.raises(ConversionError,
                       match="no conversion rule for key 'x'"):
        convert_state_dict({'x': torch.zeros(1)}, [Rename('y', 'z')])


def test_rules_match_whole_keys_only():
    with pytest.raises(ConversionError):
        convert_state_dict({'a.weight.extra': torch.zeros(1)},
                           [Rename(r'a\.weight', 'b')])


def test_duplicate_target_is_an_error():
    rules = [Rename(r'(a|b)', 'c')]
    with pytest.raises(ConversionError, match="map to 'c'"):
        convert_state_dict({'a': torch.zeros(1), 'b': torch.zeros(1)}, rules)


def test_indivisible_split_is_an_error():
    with pytest.raises(ConversionError, match='not divisible'):
        convert_state_dict({'a': torch.zeros(4)},
                           [Split('a', ('q', 'kv'), (1, 2))])


def test_table_rules_convert_both_ways():
    """One two-way table gives the rules of both directions: renames,
    a fused pair (theirs) <-> one concatenated tensor (ours), and a
    placeholder that only one side has (an optional prefix)."""
    from mmseg_plugins.converters.rules import Fuse, table_rules
    table = (
        ('{p}enc.{s}.norm_{n}.{t}', 'stages.{s}.norm{n}.{t}'),
        (('{p}enc.{s}.key.{t}', '{p}enc.{s}.value.{t}'), 'stages.{s}.kv.{t}'),
    )
    fields = dict(p=r'(?:model\.)?', s=r'\d', n=r'[12]', t=r'.+')
    forward = table_rules(table, fields)
    assert isinstance(forward[1], Fuse)
    theirs = {
        'model.enc.0.norm_1.weight': torch.ones(2),
        'model.enc.0.key.weight': torch.zeros(2, 3),
        'model.enc.0.value.weight': torch.ones(2, 3),
    }
    ours, report = convert_state_dict(theirs, forward)
    assert list(ours) == ['stages.0.norm1.weight', 'stages.0.kv.weight']
    assert ours['stages.0.kv.weight'].shape == (4, 3)
    assert report.converted == 3
    # without the optional prefix too
    bare, _ = convert_state_dict(
        {k[len('model.'):]: v for k, v in theirs.items()}, forward)
    assert list(bare) == list(ours)
    backward = table_rules(table, fields, reverse=True,
                           defaults=dict(p='model.'))
    back, _ = convert_state_dict(ours, backward)
    assert sorted(back) == sorted(theirs)
    for k, v in theirs.items():
        assert torch.equal(back[k], v), k
    with pytest.raises(ValueError, match=r'placeholder \{p\}.*no default'):
        table_rules(table, fields, reverse=True)
