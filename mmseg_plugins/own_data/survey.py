"""Read every image header and every mask of a scanned dataset once: sizes,
channels, bit depths, stored mask values, unreadable files."""
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..errors import DatasetError
from .jpeg_masks import (SnapCheck, estimate_snap_error, far_flat_pixels,
                         find_label_values, flat_histogram,
                         missed_histogram_peaks, snap_codes)
from .masks import (IGNORE_INDEX, RawMask, LabelPlan, load_mask, mask_codes,
                    plan_labels, unpack_colour)
from .scan import DatasetScan, Pair

__all__ = ['ImageInfo', 'Survey', 'image_info', 'survey_dataset',
           'label_histograms']

#: Pillow mode -> (channels, bits per channel)
_MODES = {'1': (1, 1), 'L': (1, 8), 'P': (1, 8), 'LA': (2, 8),
          'RGB': (3, 8), 'RGBA': (4, 8), 'CMYK': (4, 8), 'I;16': (1, 16),
          'I;16B': (1, 16), 'I': (1, 32), 'F': (1, 32), 'YCbCr': (3, 8)}


@dataclass
class ImageInfo:
    """An image's header: ``size`` is (width, height)."""
    size: Tuple[int, int]
    channels: int
    bits: int
    mode: str


def image_info(path: str) -> ImageInfo:
    """Size, channels and bit depth from an image's header (TIFFs through
    ``tifffile`` where installed: multi-band, planar).

    Raises:
        DatasetError: unreadable.
    """
    if path.lower().endswith(('.tif', '.tiff')):
        info = _tiff_info(path)
        if info is not None:
            return info
    try:
        with Image.open(path) as img:
            channels, bits = _MODES.get(img.mode, (len(img.getbands()), 8))
            img.verify()
            return ImageInfo(img.size, channels, bits, img.mode)
    except Exception as err:  # Pillow raises many types on bad files
        raise DatasetError(f'cannot read image {path}: '
                           f'{" ".join(str(err).split())}') from None


def _tiff_info(path: str) -> Optional[ImageInfo]:
    """A TIFF's header through ``tifffile`` (multi-band, planar), None
    without tifffile."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = series.shape, series.dtype
    except Exception as err:  # tifffile raises many types
        raise DatasetError(f'cannot read image {path}: '
                           f'{" ".join(str(err).split())}') from None
    if len(shape) == 3 and shape[0] < min(shape[1:]) and shape[0] <= 32:
        shape = shape[1:] + shape[:1]  # planar: bands first
    channels = shape[2] if len(shape) == 3 else 1
    return ImageInfo((shape[1], shape[0]), channels, dtype.itemsize * 8,
                     f'tiff {dtype}')


@dataclass
class Survey:
    """Per split: the pairs kept, their image headers and each mask's stored
    value histogram; the plan that maps stored values to classes."""
    pairs: Dict[str, List[Pair]] = field(default_factory=dict)
    images: Dict[str, List[ImageInfo]] = field(default_factory=dict)
    codes: Dict[str, List[Counter]] = field(default_factory=dict)
    unreadable: List[str] = field(default_factory=list)
    size_mismatch: List[str] = field(default_factory=list)
    snap: Optional[SnapCheck] = None
    mask_kind: str = 'index'
    mask_bits: int = 8
    jpeg: bool = False
    plan: Optional[LabelPlan] = None


def _read_pair(pair: Pair, survey: Survey) -> Optional[Tuple]:
    try:
        info = image_info(pair.img_path)
        mask = load_mask(pair.mask_path)
    except DatasetError as err:
        survey.unreadable.append(str(err))
        return None
    h, w = mask.codes.shape[:2]
    if (w, h) != info.size:
        survey.size_mismatch.append(
            f'{pair.mask_path} is {w}x{h}, its image {pair.img_path} is '
            f'{info.size[0]}x{info.size[1]}')
    return info, mask


def survey_dataset(scan: DatasetScan,
                   classes: Optional[Sequence[str]] = None,
                   class_colours: Optional[Sequence] = None,
                   zero_is_ignore: bool = False,
                   snap_jpeg: bool = False) -> Survey:
    """Read the dataset and plan its labels.

    Raises:
        DatasetError: JPEG masks without ``snap_jpeg``, masks of mixed
            kinds, an RGB mask with too many colours, masks of another size
            than their images, a class list that disagrees (see
            :func:`~mmseg_plugins.own_data.masks.plan_labels`).
    """
    survey = Survey()
    raw: Dict[str, List[RawMask]] = {}
    for split, files in scan.splits.items():
        survey.pairs[split], survey.images[split], raw[split] = [], [], []
        for pair in files.pairs:
            read = _read_pair(pair, survey)
            if read is None:
                continue
            survey.pairs[split].append(pair)
            survey.images[split].append(read[0])
            raw[split].append(read[1])
    if survey.size_mismatch:
        raise DatasetError(
            f'{len(survey.size_mismatch)} mask(s) of another size than '
            f'their image: {survey.size_mismatch[0]}')
    masks = [(p, m) for s in raw for p, m in zip(survey.pairs[s], raw[s])]
    if not masks:
        raise DatasetError(f'no readable image/mask pairs under {scan.root}')
    kinds = Counter(m.kind for _, m in masks)
    if len(kinds) > 1:
        minor = min(kinds, key=kinds.get)
        path = next(p.mask_path for p, m in masks if m.kind == minor)
        raise DatasetError(
            f'masks of mixed kinds ({dict(kinds)}): e.g. {path} is '
            f'{minor}; convert them to one format')
    survey.mask_kind = next(iter(kinds))
    survey.mask_bits = max(m.bits for _, m in masks)
    jpegs = [p.mask_path for p, m in masks if m.jpeg]
    survey.jpeg = bool(jpegs)
    if jpegs and not snap_jpeg:
        raise DatasetError(
            f'{len(jpegs)} mask(s) are JPEG (lossy: their edges hold colours '
            f'of no class), e.g. {jpegs[0]}; save them as PNG, or pass '
            '--snap-jpeg to snap each pixel to the nearest label colour')
    if survey.mask_kind == 'colour' and not jpegs:
        for pair, mask in masks:
            n = len(np.unique(mask.codes))
            if n > 256:
                raise DatasetError(
                    f'{pair.mask_path} holds {n} colours (more than 256): '
                    'a photo, not a mask')
    if jpegs:
        survey.snap = _snap_jpeg_masks(raw, survey.mask_kind, classes,
                                       class_colours, zero_is_ignore)
    where = {}
    for split in raw:
        survey.codes[split] = []
        for pair, mask in zip(survey.pairs[split], raw[split]):
            codes = mask_codes(mask)
            survey.codes[split].append(codes)
            for v in codes:
                where.setdefault(v, pair.mask_path)
    histogram = sum((c for s in survey.codes.values() for c in s), Counter())
    palette = next((m.palette for _, m in masks if m.palette is not None),
                   None)
    survey.plan = plan_labels(survey.mask_kind, histogram, where, classes,
                              class_colours, palette, zero_is_ignore,
                              survey.mask_bits)
    if jpegs:
        survey.plan.convert = True
        snap = survey.snap
        survey.plan.reasons.append(
            f'JPEG masks snapped to {len(snap.targets)} label '
            f'values/colours: {snap.changed_share:.2%} of the pixels '
            f'changed label, about {snap.error:.2%} estimated wrong')
    return survey


def _snap_jpeg_masks(raw: Dict[str, List[RawMask]], kind: str,
                     classes: Optional[Sequence[str]],
                     class_colours: Optional[Sequence],
                     zero_is_ignore: bool) -> SnapCheck:
    """Find the label values of JPEG masks, snap the masks in ``raw`` in
    place and check the result (see
    :mod:`~mmseg_plugins.own_data.jpeg_masks`).

    Raises:
        DatasetError: fewer label values than the classes file names, a
            colour of no class, or snapped masks that cannot be trusted.
    """
    masks = [m for split in raw.values() for m in split]
    flat = sum((flat_histogram(m.codes, kind) for m in masks), Counter())
    found = find_label_values(flat, kind)

    def describe(code):
        return describe_value(kind, code)
    targets = found
    if kind == 'colour' and class_colours:
        targets = _match_class_colours(found, class_colours)
    labels = [v for v in found if v != IGNORE_INDEX]  # 255: ignore
    if kind == 'index' and classes is not None:
        want = len(classes) + (1 if zero_is_ignore else 0)
        if len(labels) < want:
            raise DatasetError(
                f'JPEG masks: {len(labels)} label values found '
                f'({", ".join(map(str, labels))}), but the classes file '
                f'names {len(classes)} classes: the compression merged or '
                'hid some; save the masks as PNG')
    if not targets:
        raise DatasetError('JPEG masks: no label value found (no flat '
                           'region in any mask)')
    missed = missed_histogram_peaks(
        sum((mask_codes(m) for m in masks), Counter()), kind, targets)
    if missed:
        raise DatasetError(
            f'JPEG masks: the histogram of their values peaks at '
            f'{", ".join(describe(v) for v in missed[:5])}, far from every '
            f'label value found in their flat regions '
            f'({", ".join(describe(v) for v in targets[:12])}): a class '
            'would be lost; save the masks as PNG')
    check = SnapCheck(list(targets), flat=sum(flat.values()),
                      far_flat=far_flat_pixels(flat, kind, targets))
    for mask in masks:
        snapped, changed = snap_codes(mask.codes, kind, targets)
        check.pixels += snapped.size
        check.changed += changed
        wrong, compared = estimate_snap_error(
            snapped, kind, targets, mask.qtables, mask.subsampling)
        check.wrong += wrong
        check.compared += compared
    check.verify(describe)
    if kind == 'index' and labels != list(range(len(labels))) and \
            set(targets) != {0, IGNORE_INDEX}:
        # grey levels such as 0, 36, 72 ... (255 too): classes 0, 1, 2 ...
        check.labels = list(range(len(targets)))
    for split_masks in raw.values():
        for i, mask in enumerate(split_masks):
            split_masks[i] = RawMask(mask.kind, check.snap(mask.codes, kind),
                                     False, mask.bits, mask.palette)
    return check


def _match_class_colours(found: List[int],
                         class_colours: Sequence) -> List[int]:
    """The classes file's colours, each matched by one colour found in
    the JPEG masks (within a third of the way to the next class colour).

    Raises:
        DatasetError: a class colour without a match (the class is absent
            or merged), or a colour found that is no class colour.
    """
    given = np.array([list(map(int, c)) for c in class_colours], float)
    codes = [int(r) << 16 | int(g) << 8 | int(b)
             for r, g, b in given.astype(int)]
    gaps = np.linalg.norm(given[:, None] - given[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    matched = set()
    for code in found:
        rgb = np.array(unpack_colour(code), float)
        dist = np.linalg.norm(given - rgb, axis=1)
        i = int(dist.argmin())
        if dist[i] > gaps[i].min() / 3:
            raise DatasetError(
                f'JPEG masks hold the colour {unpack_colour(code)} over '
                'flat regions, which is no class colour of the classes '
                f'file (nearest: {tuple(int(v) for v in given[i])})')
        matched.add(i)
    missing = [tuple(int(v) for v in given[i]) for i in range(len(given))
               if i not in matched]
    if missing:
        raise DatasetError(
            f'JPEG masks: {len(given) - len(missing)} of the '
            f'{len(given)} class colours found; none near '
            f'{", ".join(map(str, missing[:5]))}: the compression merged '
            'or hid them (or the class is absent); save the masks as PNG')
    return codes


def label_histograms(survey: Survey) -> Dict[str, Tuple[np.ndarray,
                                                        np.ndarray, int]]:
    """Per split: (pixels per class, images per class, ignored pixels),
    after the plan (and mmseg's ``reduce_zero_label``)."""
    plan = survey.plan
    n = len(plan.classes)
    out = {}
    for split, per_mask in survey.codes.items():
        pixels = np.zeros(n, np.int64)
        images = np.zeros(n, np.int64)
        ignored = 0
        for codes in per_mask:
            seen = set()
            for v, count in codes.items():
                label = plan.lut.get(int(v), 255)
                if plan.reduce_zero_label:
                    label = 255 if label in (0, 255) else label - 1
                if label >= n:
                    ignored += count
                    continue
                pixels[label] += count
                seen.add(label)
            for label in seen:
                images[label] += 1
        out[split] = (pixels, images, ignored)
    return out


def describe_value(kind: str, v: int) -> str:
    return str(unpack_colour(v)) if kind == 'colour' else str(v)
