from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mmseg_plugins.errors import DatasetError
from mmseg_plugins.own_data.jpeg_masks import snap_codes
from mmseg_plugins.own_data.masks import (apply_plan, default_palette,
                                          load_mask, mask_codes, plan_labels)

from own_data_helpers import COLOURS, write_mask


def _label():
    label = np.zeros((8, 8), np.uint8)
    label[2:5, 2:5] = 1
    label[6:, :3] = 2
    label[0, 7] = 3
    return label


def _plan(paths, **kw):
    masks = [load_mask(p) for p in paths]
    hist, where = Counter(), {}
    for p, m in zip(paths, masks):
        c = mask_codes(m)
        hist += c
        for v in c:
            where.setdefault(v, p)
    pal = masks[0].palette
    return masks, plan_labels(masks[0].kind, hist, where, palette=pal,
                              bits=max(m.bits for m in masks), **kw)


@pytest.mark.parametrize('fmt', ['index', 'colour', 'palette', 'index16'])
def test_formats_map_back_to_the_labels(tmp_path, fmt):
    label = _label()
    path = str(tmp_path / 'm.png')
    write_mask(path, label, fmt)
    masks, plan = _plan([path])
    out = apply_plan(masks[0], plan)
    assert len(plan.classes) == 4
    assert plan.convert == (fmt == 'colour')
    if fmt == 'colour':  # colours in code order, kept as the palette
        np.testing.assert_array_equal(np.array(plan.palette)[out],
                                      COLOURS[label])
        assert plan.palette[0] == [0, 0, 0]
    else:
        np.testing.assert_array_equal(out, label)
    if fmt == 'palette':
        assert plan.palette == COLOURS.tolist()


def test_classes_file_colours_set_the_order(tmp_path):
    path = str(tmp_path / 'm.png')
    write_mask(path, _label(), 'colour')
    masks, plan = _plan([path], class_colours=COLOURS.tolist(),
                        classes=list('abcd'))
    np.testing.assert_array_equal(apply_plan(masks[0], plan), _label())
    with pytest.raises(DatasetError, match='no class colour'):
        _plan([path], class_colours=COLOURS[:3].tolist())


def test_photo_is_not_a_mask(tmp_path):
    from mmseg_plugins.own_data.scan import scan_dataset
    from mmseg_plugins.own_data.survey import survey_dataset
    rng = np.random.default_rng(0)
    for sub in ('images', 'masks'):
        for i in range(2):
            p = tmp_path / 'd' / sub / f'{i}.png'
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)
                            ).save(p)
    with pytest.raises(DatasetError, match=r'masks/\d\.png holds .* '
                       'colours.*a photo'):
        survey_dataset(scan_dataset(str(tmp_path / 'd')))


def test_binary_255_becomes_1(tmp_path):
    path = str(tmp_path / 'm.png')
    write_mask(path, _label(), 'binary255')
    masks, plan = _plan([path])
    assert plan.kind == 'binary255' and plan.convert
    out = apply_plan(masks[0], plan)
    assert set(np.unique(out)) == {0, 1}
    assert plan.classes == ['background', 'foreground']


def test_16bit_65535_is_ignore(tmp_path):
    label = _label().astype(np.uint16)
    label[0, 0] = 65535
    path = str(tmp_path / 'm.png')
    Image.fromarray(label).save(path)
    masks, plan = _plan([path])
    assert masks[0].bits == 16 and plan.convert
    assert apply_plan(masks[0], plan)[0, 0] == 255


def test_rgba_transparent_is_ignore(tmp_path):
    rgba = np.concatenate([COLOURS[_label()],
                           np.full((8, 8, 1), 255, np.uint8)], -1)
    rgba[0, 0, 3] = 0
    path = str(tmp_path / 'm.png')
    Image.fromarray(rgba, 'RGBA').save(path)
    masks, plan = _plan([path])
    out = apply_plan(masks[0], plan)
    assert out[0, 0] == 255
    assert plan.palette[out[3, 3]] == COLOURS[1].tolist()


def test_class_list_length_must_agree(tmp_path):
    path = str(tmp_path / 'm.png')
    write_mask(path, _label(), 'index')
    with pytest.raises(DatasetError, match=r'3 class names.*m\.png.*3'):
        _plan([path], classes=['a', 'b', 'c'])
    with pytest.raises(DatasetError, match='2 class names'):
        write_mask(path, _label(), 'colour')
        _plan([path], classes=['a', 'b'])


def test_zero_is_ignore_counts_classes_from_one(tmp_path):
    path = str(tmp_path / 'm.png')
    write_mask(path, _label(), 'index')
    _, plan = _plan([path], zero_is_ignore=True)
    assert plan.reduce_zero_label and len(plan.classes) == 3


def test_jpeg_snap_counts_label_changes_not_value_changes(tmp_path):
    label = np.zeros((32, 32), np.uint8)
    label[8:24, 8:24] = 1
    path = str(tmp_path / 'm.jpg')
    write_mask(path, label, 'jpeg')
    mask = load_mask(path)
    assert mask.jpeg and mask.qtables
    targets = [int(c[0]) << 16 | int(c[1]) << 8 | int(c[2])
               for c in COLOURS[:2]]
    snapped, changed = snap_codes(mask.codes, mask.kind, targets)
    assert set(np.unique(snapped)) == set(targets)
    # JPEG shifts most stored colours a little; only the pixels a third of
    # the way or more to the other colour changed label
    assert changed < int((~np.isin(mask.codes, targets)).sum())
    assert ((snapped == targets[1]) == label.astype(bool)).mean() > 0.98


def test_default_palette_is_fixed_and_distinct():
    pal = np.array(default_palette(30))
    assert pal[0].tolist() == [0, 0, 0]
    assert (default_palette(30) == pal).all()  # deterministic
    # no colour but the background's near black, all well apart
    assert (pal[1:].sum(1) > 120).all()
    first = pal[:23]  # the fixed list: well apart
    dist = np.linalg.norm(first[:, None] - first[None], axis=-1)
    np.fill_diagonal(dist, 999)
    assert dist.min() >= 60 and len({tuple(c) for c in pal}) == 30
