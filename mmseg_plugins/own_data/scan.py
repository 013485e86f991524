"""Find a user's dataset layout and pair its images with their masks.

Layouts recognised under ``DATA_ROOT`` (``IMG`` is one of ``img_dir``,
``images``, ``imgs``, ``image``; ``MASK`` one of ``ann_dir``, ``masks``,
``labels``, ``annotations``, ``mask``, ``label``; a split folder is
``train``/``training`` or ``val``/``validation``/``valid``):

- split inside: ``IMG/{train,val}`` + ``MASK/{train,val}`` (mmseg's);
- split outside: ``{train,val}/IMG`` + ``{train,val}/MASK``;
- flat: ``IMG/`` + ``MASK/``, split by ``train.txt``/``val.txt`` (in
  ``DATA_ROOT`` or ``DATA_ROOT/splits``, one name per line, with or without
  suffix) or at random (seeded, ``val_fraction``).

An image and a mask pair when their paths relative to their folders are the
same once the suffixes are taken off. mmseg's ``BaseSegDataset`` pairs by
one image suffix and one mask suffix per dataset, so the most common pair of
suffixes is chosen; files left over are named and counted as unpaired.
"""
import os
import os.path as osp
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import DatasetError

__all__ = [
    'IMAGE_EXTS', 'Pair', 'SplitFiles', 'DatasetScan', 'scan_dataset',
    'pair_files'
]

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
IMG_DIRS = ('img_dir', 'images', 'imgs', 'image', 'img')
MASK_DIRS = ('ann_dir', 'masks', 'labels', 'annotations', 'mask', 'label',
             'gt')
SPLIT_NAMES = {'train': ('train', 'training'),
               'val': ('val', 'validation', 'valid')}
#: name endings that mark a mask beside its image (``cat_mask.png``)
MASK_TAGS = ('', '_mask', '_label', '_labels', '_gt', '-mask', '_seg',
             '_labelIds', '_anno')


@dataclass
class Pair:
    """One image and its mask; ``name`` is the path relative to the image
    folder without the image suffix (mmseg's ``ann_file`` line)."""
    name: str
    img_path: str
    mask_path: str


@dataclass
class SplitFiles:
    """The pairs of one split and the folders mmseg reads them from."""
    img_dir: str
    mask_dir: str
    pairs: List[Pair] = field(default_factory=list)
    unpaired_images: List[str] = field(default_factory=list)
    unpaired_masks: List[str] = field(default_factory=list)
    duplicates: List[str] = field(default_factory=list)


@dataclass
class DatasetScan:
    """What :func:`scan_dataset` found."""
    root: str
    layout: str
    img_suffix: str
    mask_suffix: str
    splits: Dict[str, SplitFiles]
    split_rule: str = ''


def _list_files(folder: str) -> List[str]:
    """Paths relative to ``folder`` of its image-like files, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in files:
            if osp.splitext(name)[1].lower() in IMAGE_EXTS and \
                    not name.startswith('.'):
                found.append(osp.relpath(osp.join(root, name), folder))
    return sorted(found)


def _find_child(folder: str, names: Sequence[str]) -> Optional[str]:
    if not osp.isdir(folder):
        return None
    children = {c.lower(): c for c in os.listdir(folder)
                if osp.isdir(osp.join(folder, c))}
    for name in names:
        if name in children:
            return osp.join(folder, children[name])
    return None


def _suffix_options(rel: str, exts=IMAGE_EXTS, tags=('',)):
    """(stem, suffix) for each way to cut a file name into a stem and a
    suffix (a tag such as ``_mask`` plus the extension)."""
    stem, ext = osp.splitext(rel)
    if ext.lower() not in exts:
        return []
    out = []
    for tag in tags:
        if tag and not stem.endswith(tag):
            continue
        out.append((stem[:len(stem) - len(tag)] if tag else stem, tag + ext))
    return out


def pair_files(img_dir: str,
               mask_dir: str,
               img_suffix: Optional[str] = None,
               mask_suffix: Optional[str] = None
               ) -> Tuple[SplitFiles, str, str]:
    """Pair the files of two folders (they may be the same folder when the
    masks carry a tag, ``--mask-suffix _mask.png``).

    Returns:
        tuple: (:class:`SplitFiles`, image suffix, mask suffix).
    """
    images = _list_files(img_dir)
    masks = _list_files(mask_dir)
    same = osp.abspath(img_dir) == osp.abspath(mask_dir)
    img_opts = {r: [o for o in _suffix_options(r)
                    if img_suffix is None or o[1] == img_suffix]
                for r in images}
    tags = MASK_TAGS if mask_suffix is None else ('', )
    mask_opts = {r: [o for o in _suffix_options(r, tags=tags)
                     if mask_suffix is None or
                     (r.endswith(mask_suffix) and
                      o == (r[:-len(mask_suffix)], mask_suffix))]
                 for r in masks}
    if mask_suffix is not None:
        mask_opts = {r: ([(r[:-len(mask_suffix)], mask_suffix)]
                         if r.endswith(mask_suffix) else [])
                     for r in masks}
    if same:  # a file is a mask if it carries the mask suffix
        mask_opts = {r: [o for o in v if o[1] != osp.splitext(r)[1] or
                         mask_suffix is not None] for r, v in
                     mask_opts.items()}
    mask_stems = {}
    for rel, opts in mask_opts.items():
        for stem, suf in opts:
            mask_stems.setdefault(stem, []).append((suf, rel))
    votes = Counter()
    for rel, opts in img_opts.items():
        for stem, suf in opts:
            for msuf, mrel in mask_stems.get(stem, []):
                if not (same and mrel == rel):
                    votes[(suf, msuf)] += 1
    if not votes:
        raise DatasetError(
            f'no image/mask pairs found between {img_dir} ({len(images)} '
            f'files) and {mask_dir} ({len(masks)} files): names must match '
            'once the suffixes are taken off (set --img-suffix and '
            '--mask-suffix, e.g. --mask-suffix _mask.png)')
    (isuf, msuf), _ = votes.most_common(1)[0]
    split = SplitFiles(img_dir=img_dir, mask_dir=mask_dir)
    used_masks = set()
    stems = Counter(osp.splitext(r)[0] for r in images)
    split.duplicates = sorted(s for s, n in stems.items() if n > 1)
    for rel in images:
        if same and rel in mask_opts and any(
                s == msuf for _, s in mask_opts[rel]) and rel.endswith(msuf):
            continue  # the mask itself
        if not rel.endswith(isuf):
            split.unpaired_images.append(rel)
            continue
        stem = rel[:-len(isuf)]
        mrel = stem + msuf
        if mrel in mask_opts and not (same and mrel == rel):
            split.pairs.append(Pair(stem, osp.join(img_dir, rel),
                                    osp.join(mask_dir, mrel)))
            used_masks.add(mrel)
        else:
            split.unpaired_images.append(rel)
    split.unpaired_masks = [m for m in masks if m not in used_masks and
                            not (same and m not in used_masks and
                                 not m.endswith(msuf))]
    return split, isuf, msuf


def _read_split_list(root: str) -> Optional[Dict[str, List[str]]]:
    for folder in (root, osp.join(root, 'splits')):
        lists = {}
        for split, names in SPLIT_NAMES.items():
            for name in names:
                path = osp.join(folder, name + '.txt')
                if osp.isfile(path):
                    with open(path) as f:
                        lists[split] = [ln.strip() for ln in f
                                        if ln.strip()]
                    break
        if 'train' in lists and 'val' in lists:
            return lists
    return None


def _split_flat(flat: SplitFiles, root: str, val_fraction: float,
                seed: int) -> Tuple[Dict[str, SplitFiles], str]:
    lists = _read_split_list(root)
    by_name = {p.name: p for p in flat.pairs}
    splits = {}
    if lists:
        for split, names in lists.items():
            sf = SplitFiles(flat.img_dir, flat.mask_dir)
            for name in names:
                stem = osp.splitext(name)[0] \
                    if osp.splitext(name)[1].lower() in IMAGE_EXTS else name
                if stem not in by_name:
                    raise DatasetError(
                        f'{split}.txt names {name!r}, which has no image '
                        f'and mask pair under {flat.img_dir}')
                sf.pairs.append(by_name[stem])
            splits[split] = sf
        rule = 'split files train.txt/val.txt'
    else:
        if not 0 < val_fraction < 1:
            raise DatasetError(f'--val-fraction must be in (0, 1), got '
                               f'{val_fraction}')
        pairs = list(flat.pairs)
        random.Random(seed).shuffle(pairs)
        n_val = max(1, round(len(pairs) * val_fraction))
        if len(pairs) < 2:
            raise DatasetError(f'only {len(pairs)} image/mask pair under '
                               f'{flat.img_dir}: too few to split')
        splits = {
            'train': SplitFiles(flat.img_dir, flat.mask_dir,
                                sorted(pairs[n_val:], key=lambda p: p.name)),
            'val': SplitFiles(flat.img_dir, flat.mask_dir,
                              sorted(pairs[:n_val], key=lambda p: p.name))}
        rule = f'random, seed {seed}, val fraction {val_fraction}'
    splits['train'].unpaired_images = flat.unpaired_images
    splits['train'].unpaired_masks = flat.unpaired_masks
    splits['train'].duplicates = flat.duplicates
    return splits, rule


def scan_dataset(root: str,
                 img_suffix: Optional[str] = None,
                 mask_suffix: Optional[str] = None,
                 val_fraction: float = 0.2,
                 seed: int = 0) -> DatasetScan:
    """Find the layout of ``root`` and pair its files (see the module
    docstring).

    Raises:
        DatasetError: no known layout, or no pairs.
    """
    root = osp.abspath(root)
    if not osp.isdir(root):
        raise DatasetError(f'data root {root} is not a folder')
    img_root = _find_child(root, IMG_DIRS)
    mask_root = _find_child(root, MASK_DIRS)
    if img_root and mask_root:
        inside = {s: (_find_child(img_root, n), _find_child(mask_root, n))
                  for s, n in SPLIT_NAMES.items()}
        if all(a and b for a, b in inside.values()):
            return _scan_splits(root, 'split inside (IMG/train, MASK/train)',
                                inside, img_suffix, mask_suffix)
        flat, isuf, msuf = pair_files(img_root, mask_root, img_suffix,
                                      mask_suffix)
        splits, rule = _split_flat(flat, root, val_fraction, seed)
        return DatasetScan(root, 'flat (IMG/ + MASK/)', isuf, msuf, splits,
                           rule)
    outside = {}
    for split, names in SPLIT_NAMES.items():
        folder = _find_child(root, names)
        if folder is None:
            break
        img = _find_child(folder, IMG_DIRS)
        mask = _find_child(folder, MASK_DIRS)
        if (img is None) != (mask is None):
            break
        outside[split] = (img or folder, mask or folder)
    if len(outside) == 2:
        return _scan_splits(root, 'split outside (train/IMG, train/MASK)',
                            outside, img_suffix, mask_suffix)
    raise DatasetError(
        f'no known dataset layout under {root}: expected images/ + masks/ '
        '(or img_dir/{train,val} + ann_dir/{train,val}, or train/ and val/ '
        'each holding images/ and masks/)')


def _scan_splits(root, layout, folders, img_suffix, mask_suffix):
    splits, suffixes = {}, set()
    for split, (img_dir, mask_dir) in folders.items():
        sf, isuf, msuf = pair_files(img_dir, mask_dir, img_suffix,
                                    mask_suffix)
        img_suffix, mask_suffix = isuf, msuf  # one pair for all splits
        splits[split] = sf
        suffixes.add((isuf, msuf))
    return DatasetScan(root, layout, img_suffix, mask_suffix, splits,
                       'given by the folders')
