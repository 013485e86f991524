"""Snapping JPEG masks back to label values, and checking that it worked.

JPEG stores 8x8 blocks of cosine coefficients, quantised: a mask saved as
JPEG comes back with its flat regions (nearly) intact and every edge
blurred, ringing and, where the quantisation zeroed a block's detail, moved.
What can be recovered depends on how far apart the label values are
compared with that noise: black/white or well-separated colours survive,
index masks holding 0, 1, 2 ... (one grey level apart) do not.

- The label values (index masks) or colours (colour masks) are found where
  the masks are flat: pixels whose 5x5 neighbourhood holds one value (grey,
  which JPEG keeps exact in flat blocks) or colours within
  :data:`FLAT_RANGE` per channel (colour, which the chroma rounding moves a
  little); such values, merged within :data:`MERGE_RADIUS`, that cover at
  least :data:`MIN_LABEL_SHARE` of the flat pixels are label values.
  Ringing and blends hardly ever form flat patches.
- Every pixel is snapped to the nearest label value or colour.
- The result is checked: a peak of the whole histogram far from every label
  value found, flat pixels far from every label value (more than
  :data:`FAR_FRACTION` of the way to the next label: a class that was not
  found) over :data:`MAX_FAR_FLAT_SHARE`, pixels changing label over
  :data:`MAX_CHANGED_SHARE` or an estimated label error above
  :data:`MAX_LABEL_ERROR` refuse. The error is estimated by re-compressing
  the snapped masks, shifted by a few pixels so that their edges fall
  elsewhere in the 8x8 blocks, with the masks' own quantisation tables,
  snapping them again and counting the pixels whose label differs (on
  generated masks with 2, 8 and 20 classes, index and colour, at JPEG
  quality 75 and 95, this estimate lay within 0.5x to 1.5x of the true
  error).
"""
import io
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from ..errors import DatasetError

__all__ = [
    'FLAT_RANGE', 'MERGE_RADIUS', 'MIN_LABEL_SHARE', 'MAX_LABEL_ERROR',
    'MAX_FAR_FLAT_SHARE', 'MAX_CHANGED_SHARE', 'FAR_FRACTION', 'SnapCheck',
    'code_space', 'flat_histogram', 'find_label_values', 'snap_codes',
    'estimate_snap_error', 'far_flat_pixels', 'missed_histogram_peaks'
]

#: a neighbourhood is flat when each channel spans at most this much
#: (grey: 0, JPEG keeps flat grey blocks exact; colour: the chroma rounding)
FLAT_RANGE = {'index': 0, 'colour': 6}
#: flat values (colours) closer than this (Euclidean, RGB) are one label
MERGE_RADIUS = {'index': 0.0, 'colour': 12.0}
#: the side of the square neighbourhood that must be flat
FLAT_WINDOW = 5
#: a label value covers at least this share of the flat pixels ...
MIN_LABEL_SHARE = 2e-4
#: ... and at least this many of them
MIN_LABEL_PIXELS = 16
#: a value starts a label only with at least 1/this of a label's pixels
SEED_FRACTION_INVERSE = 20
#: largest estimated share of wrong labels accepted: the estimate lay
#: within 0.5x to 1.5x of the true error, so this keeps that below 1%
MAX_LABEL_ERROR = 0.005
#: a value is "far" from its label beyond this fraction of the way to the
#: next label (the pixel changed label when snapped)
FAR_FRACTION = 1 / 3
#: more than this share of the flat pixels far from every label refuses
MAX_FAR_FLAT_SHARE = 0.005
#: a peak of the whole histogram (all pixels) holds at least this share;
#: one far from every label value found refuses
HISTOGRAM_PEAK_SHARE = 0.01
#: more than this share of all pixels changing label refuses
MAX_CHANGED_SHARE = 0.1
#: shifts (rows, columns cropped) of the re-compression estimate
ESTIMATE_SHIFTS = ((3, 5), (5, 2))
TRANSPARENT = -1


def code_space(codes: np.ndarray, kind: str) -> np.ndarray:
    """(...) value or packed ``R << 16 | G << 8 | B`` codes -> (..., C)
    coordinates (C = 1 grey, 3 RGB)."""
    if kind == 'colour':
        return np.stack([(codes >> s) & 255 for s in (16, 8, 0)], -1)
    return codes[..., None]


def flat_histogram(codes: np.ndarray, kind: str) -> Counter:
    """Pixel count of each value (colour code) at the flat pixels of one
    mask: those whose :data:`FLAT_WINDOW` neighbourhood spans at most
    :data:`FLAT_RANGE` in every channel."""
    space = code_space(np.where(codes < 0, 0, codes), kind)  # (H, W, C)
    kernel = np.ones((FLAT_WINDOW, FLAT_WINDOW), np.uint8)
    flat = codes >= 0
    for c in range(space.shape[-1]):
        band = space[..., c].astype(np.uint8)
        spread = cv2.dilate(band, kernel).astype(int) - cv2.erode(
            band, kernel)
        flat &= spread <= FLAT_RANGE[kind]
    values, counts = np.unique(codes[flat], return_counts=True)
    return Counter(dict(zip(values.tolist(), counts.tolist())))


def find_label_values(flat: Counter, kind: str,
                      min_share: float = MIN_LABEL_SHARE) -> List[int]:
    """The label values (colour codes) of JPEG masks from their flat
    pixels (:func:`flat_histogram` summed over the masks): from the most
    frequent value down, each value not within :data:`MERGE_RADIUS` of a
    label started before starts one (if it holds 1/
    :data:`SEED_FRACTION_INVERSE` of the least a label needs); every value
    joins its nearest label within the radius; a label is kept when it
    covers
    ``min_share`` of the flat pixels and at least
    :data:`MIN_LABEL_PIXELS`. Its value is its most frequent member."""
    total = sum(flat.values())
    radius = MERGE_RADIUS[kind]
    least = max(MIN_LABEL_PIXELS, min_share * total)
    ranked = flat.most_common()
    if not ranked:
        return []
    codes = np.array([c for c, _ in ranked], np.int64)
    counts = np.array([n for _, n in ranked], np.int64)
    points = code_space(codes, kind).astype(float)  # (N, C)
    # the values frequent enough to start a label, most frequent first
    seeds = int((counts * SEED_FRACTION_INVERSE >= least).sum())
    centres: List[int] = []  # indices into codes
    for i in range(seeds):
        if centres:
            dist = np.linalg.norm(points[centres] - points[i], axis=1)
            if dist.min() <= radius:
                continue
        centres.append(i)
    if not centres:
        return []
    # every value joins its nearest label within the radius
    dist = np.linalg.norm(points[:, None] - points[centres][None], axis=-1)
    nearest = dist.argmin(1)
    joined = dist[np.arange(len(codes)), nearest] <= radius
    mass = np.bincount(nearest[joined], weights=counts[joined],
                       minlength=len(centres))
    labels = [(int(codes[c]), m) for c, m in zip(centres, mass)]
    return sorted(code for code, count in labels if count >= least)


def _nearest(codes: np.ndarray, kind: str, targets: Sequence[int]):
    """Per distinct value of ``codes``: the values, the inverse map
    (``codes.shape``), the index of the nearest target, and whether the
    value lies more than :data:`FAR_FRACTION` of the way from that target
    to the target next to it."""
    values, inverse = np.unique(codes, return_inverse=True)
    space = code_space(values, kind).astype(np.float64)
    tspace = code_space(np.array(targets, np.int64), kind).astype(
        np.float64)
    dist = np.sqrt(((space[:, None, :] - tspace[None]) ** 2).sum(-1))
    nearest = dist.argmin(1)
    gaps = np.linalg.norm(tspace[:, None] - tspace[None], axis=-1)
    # a mask of one label has no edges to blur: any value beyond JPEG's
    # rounding of a flat region is another class
    np.fill_diagonal(gaps, MERGE_RADIUS[kind] / FAR_FRACTION
                     if len(targets) == 1 else np.inf)
    far = dist[np.arange(len(values)), nearest] > \
        FAR_FRACTION * gaps.min(1)[nearest]
    far &= values != TRANSPARENT
    return values, inverse.reshape(codes.shape), nearest, far


def snap_codes(codes: np.ndarray, kind: str,
               targets: Sequence[int]) -> Tuple[np.ndarray, int]:
    """Each pixel set to the nearest target value or colour (Euclidean in
    RGB); transparent pixels (-1) kept.

    Returns:
        tuple: (the snapped (H, W) codes, how many pixels changed label:
        those whose stored value lay more than :data:`FAR_FRACTION` of the
        way to another label, e.g. edge pixels between two classes; the
        small shifts JPEG gives every value do not count).
    """
    values, inverse, nearest, far = _nearest(codes, kind, targets)
    snapped = np.array(targets, np.int64)[nearest]
    keep = values == TRANSPARENT
    snapped[keep] = values[keep]
    counts = np.bincount(inverse.ravel(), minlength=len(values))
    return snapped[inverse], int(counts[far].sum())


def far_flat_pixels(flat: Counter, kind: str,
                    targets: Sequence[int]) -> int:
    """Flat pixels (:func:`flat_histogram`) more than :data:`FAR_FRACTION`
    of the way from their nearest label value to the next one: only
    classes make flat regions, so these are a class that was not found."""
    if not flat:
        return 0
    codes = np.array(list(flat), np.int64)
    values, inverse, _, far = _nearest(codes, kind, targets)
    counts = np.array([flat[int(v)] for v in values])
    return int(counts[far].sum())


def missed_histogram_peaks(histogram: Counter, kind: str,
                           targets: Sequence[int]) -> List[int]:
    """Peaks of the un-snapped histogram of all pixels that are no label
    value found: clusters as in :func:`find_label_values` holding
    :data:`HISTOGRAM_PEAK_SHARE` of the pixels, grey values only where the
    histogram has a local maximum (not the tail of a label's ringing),
    that are no label value (grey) or lie far from every label value
    (colour: see :func:`snap_codes`): classes the flat regions did not
    show."""
    histogram = Counter({c: n for c, n in histogram.items()
                         if c != TRANSPARENT})
    peaks = find_label_values(histogram, kind, HISTOGRAM_PEAK_SHARE)
    if kind == 'index':
        return [v for v in peaks if v not in targets and histogram[v] > max(
            histogram.get(v - 1, 0), histogram.get(v + 1, 0))]
    if not peaks:
        return []
    values, _, _, far = _nearest(np.array(peaks, np.int64), kind, targets)
    return [int(v) for v in values[far]]


def _render(codes: np.ndarray, kind: str) -> Image.Image:
    if kind == 'colour':
        return Image.fromarray(
            code_space(np.maximum(codes, 0), kind).astype(np.uint8), 'RGB')
    return Image.fromarray(codes.astype(np.uint8), 'L')


def _decode(image: Image.Image, kind: str) -> np.ndarray:
    array = np.array(image).astype(np.int64)
    if kind == 'colour':
        return (array[..., 0] << 16) | (array[..., 1] << 8) | array[..., 2]
    return array


def estimate_snap_error(snapped: np.ndarray, kind: str,
                        targets: Sequence[int],
                        qtables: Optional[dict],
                        subsampling: int = -1) -> Tuple[int, int]:
    """Estimate how many labels snapping got wrong in one mask: the snapped
    mask, shifted by each of :data:`ESTIMATE_SHIFTS`, is compressed with
    the mask's own quantisation tables, decoded, snapped again and compared
    (see the module docstring).

    Returns:
        tuple: (pixels whose label differs, pixels compared).
    """
    wrong = total = 0
    options = dict(quality=90) if not qtables else dict(qtables=qtables)
    if kind == 'colour' and subsampling >= 0:
        options['subsampling'] = subsampling
    for dy, dx in ESTIMATE_SHIFTS:
        moved = snapped[dy:, dx:]  # edges elsewhere in the 8x8 blocks
        buf = io.BytesIO()
        _render(moved, kind).save(buf, 'JPEG', **options)
        buf.seek(0)
        with Image.open(buf) as img:
            again = _decode(img, kind)
        again, _ = snap_codes(again, kind, targets)
        valid = moved != TRANSPARENT
        wrong += int((again != moved)[valid].sum())
        total += int(valid.sum())
    return wrong, total


@dataclass
class SnapCheck:
    """What snapping JPEG masks did: the label values (``targets``) and
    the value each becomes (``labels``, default the same), the pixels that
    changed label (of ``pixels``), the flat pixels far from every label
    (of ``flat``) and the estimated wrong labels (of ``compared``)."""
    targets: List[int]
    labels: Optional[List[int]] = None
    pixels: int = 0
    changed: int = 0
    flat: int = 0
    far_flat: int = 0
    wrong: int = 0
    compared: int = 0

    def snap(self, codes: np.ndarray, kind: str) -> np.ndarray:
        """A mask's codes snapped to the targets, renumbered as
        ``labels``."""
        snapped = snap_codes(codes, kind, self.targets)[0]
        if self.labels is None:
            return snapped
        values, inverse = np.unique(snapped, return_inverse=True)
        lut = dict(zip(self.targets, self.labels))
        return np.array([lut.get(int(v), int(v)) for v in values],
                        np.int64)[inverse].reshape(snapped.shape)

    @property
    def error(self) -> float:
        """The estimated share of wrong labels."""
        return self.wrong / max(1, self.compared)

    @property
    def changed_share(self) -> float:
        return self.changed / max(1, self.pixels)

    def verify(self, describe) -> None:
        """Refuse (:class:`DatasetError`) when the snapped masks cannot be
        trusted; ``describe(code)`` names a label value for messages."""
        values = ', '.join(describe(t) for t in self.targets[:12]) + (
            ' ...' if len(self.targets) > 12 else '')
        if self.far_flat > MAX_FAR_FLAT_SHARE * self.flat:
            raise DatasetError(
                f'JPEG masks: {self.far_flat / self.flat:.1%} of the flat '
                'regions hold values far from every label value found '
                f'({values}): a class was not found; save the masks as PNG')
        if self.changed_share > MAX_CHANGED_SHARE:
            raise DatasetError(
                f'JPEG masks: {self.changed_share:.1%} of the pixels lie '
                f'between the label values found ({values}); snapping would '
                'relabel them by guesswork; save the masks as PNG')
        if self.error > MAX_LABEL_ERROR:
            raise DatasetError(
                f'JPEG masks: snapping to the label values {values} would '
                f'get about {self.error:.1%} of the labels wrong (estimated '
                'by re-compressing the snapped masks; at most '
                f'{MAX_LABEL_ERROR:.1%} accepted): the compression blurred '
                'labels this close together beyond recovery; save the '
                'masks as PNG')
