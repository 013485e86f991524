import os

import pytest

from mmseg_plugins.errors import DatasetError
from mmseg_plugins.own_data.scan import scan_dataset

from own_data_helpers import make_dataset


@pytest.mark.parametrize('layout,name', [
    ('mmseg', 'split inside'), ('outside', 'split outside'),
    ('flat', 'flat')])
def test_layouts(tmp_path, layout, name):
    make_dataset(str(tmp_path), layout=layout, n=(4, 2))
    scan = scan_dataset(str(tmp_path))
    assert scan.layout.startswith(name)
    assert (scan.img_suffix, scan.mask_suffix) == ('.jpg', '.png')
    assert sum(len(s.pairs) for s in scan.splits.values()) == 6
    if layout != 'flat':  # the folders give the split
        assert [p.name for p in scan.splits['val'].pairs] == \
            ['val_00', 'val_01']


def test_flat_split_is_seeded_and_files_win(tmp_path):
    make_dataset(str(tmp_path), n=(8, 2))
    a = scan_dataset(str(tmp_path), val_fraction=0.3, seed=1)
    b = scan_dataset(str(tmp_path), val_fraction=0.3, seed=1)
    assert [p.name for p in a.splits['val'].pairs] == \
        [p.name for p in b.splits['val'].pairs]
    assert len(a.splits['val'].pairs) == 3
    (tmp_path / 'train.txt').write_text('train_00\ntrain_01.jpg\n')
    (tmp_path / 'val.txt').write_text('val_00\n')
    c = scan_dataset(str(tmp_path))
    assert [p.name for p in c.splits['train'].pairs] == \
        ['train_00', 'train_01']
    assert c.split_rule.startswith('split files')
    (tmp_path / 'val.txt').write_text('nope\n')
    with pytest.raises(DatasetError, match="'nope'"):
        scan_dataset(str(tmp_path))


def test_unpaired_files_are_named(tmp_path):
    make_dataset(str(tmp_path), n=(4, 2))
    os.remove(tmp_path / 'masks' / 'train_00.png')
    (tmp_path / 'masks' / 'stray.png').write_bytes(b'')
    scan = scan_dataset(str(tmp_path))
    train = scan.splits['train']
    assert train.unpaired_images == ['train_00.jpg']
    assert train.unpaired_masks == ['stray.png']
    assert sum(len(s.pairs) for s in scan.splits.values()) == 5


def test_mask_suffix_tag(tmp_path):
    make_dataset(str(tmp_path), n=(3, 2), mask_ext='_mask.png')
    scan = scan_dataset(str(tmp_path))
    assert scan.mask_suffix == '_mask.png'
    scan = scan_dataset(str(tmp_path), mask_suffix='_mask.png')
    assert sum(len(s.pairs) for s in scan.splits.values()) == 5


def test_no_pairs(tmp_path):
    make_dataset(str(tmp_path), n=(3, 2))
    with pytest.raises(DatasetError, match='no image/mask pairs.*images'):
        scan_dataset(str(tmp_path), img_suffix='.png')
    with pytest.raises(DatasetError, match='no known dataset layout'):
        scan_dataset(str(tmp_path / 'images'))


def test_train_val_folders_holding_images_and_tagged_masks(tmp_path):
    make_dataset(str(tmp_path), layout='outside', n=(3, 2),
                 mask_ext='_mask.png')
    for split in ('train', 'val'):  # one folder per split
        for sub in ('images', 'masks'):
            d = tmp_path / split / sub
            for f in os.listdir(d):
                os.rename(d / f, tmp_path / split / f)
            os.rmdir(d)
    scan = scan_dataset(str(tmp_path))
    assert (scan.img_suffix, scan.mask_suffix) == ('.jpg', '_mask.png')
    assert [p.name for p in scan.splits['val'].pairs] == \
        ['val_00', 'val_01']
    assert not scan.splits['train'].unpaired_images
    assert not scan.splits['train'].unpaired_masks
