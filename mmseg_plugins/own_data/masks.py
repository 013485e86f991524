"""Mask formats: read, survey and convert a user's masks to mmseg's label
maps (single-channel 8-bit PNG, one class index per pixel, 255 ignored).

mmseg's ``LoadAnnotations`` reads a mask with Pillow ``unchanged`` and casts
it to ``uint8``. That is right for 8-bit index PNGs and for palette PNGs
(Pillow gives the palette indices), and silently wrong for:

- binary masks stored as 0/255: 255 is mmseg's ignore index, so the
  foreground never trains (converted: 255 becomes 1);
- RGB(A) colour masks: read as a three-channel image (converted: each
  colour becomes its class index, fully transparent pixels 255);
- 16-bit masks holding values above 255: the cast wraps them around
  (converted: 65535 becomes 255, other values must be classes);
- JPEG masks: the compression blurs every edge into colours that are no
  class (refused, or snapped to the label values and checked:
  :mod:`~mmseg_plugins.own_data.jpeg_masks`).
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from ..errors import DatasetError

__all__ = [
    'IGNORE_INDEX', 'MAX_MASK_COLOURS', 'RawMask', 'LabelPlan', 'load_mask',
    'mask_codes', 'plan_labels', 'apply_plan', 'unpack_colour',
    'default_palette'
]

IGNORE_INDEX = 255
#: an RGB mask with more colours than this is a photo, not a mask
MAX_MASK_COLOURS = 256
#: a colour code for fully transparent pixels of an RGBA mask
TRANSPARENT = -1


@dataclass
class RawMask:
    """A mask as stored: ``kind`` is 'index' (H, W) integer values,
    'palette' (H, W) palette indices with ``palette`` (256, 3), or 'colour'
    (H, W) packed ``R << 16 | G << 8 | B`` codes (-1 transparent). A JPEG
    keeps its quantisation tables and chroma subsampling (Pillow's)
    for the check of its snapping."""
    kind: str
    codes: np.ndarray
    jpeg: bool = False
    bits: int = 8
    palette: Optional[np.ndarray] = None
    qtables: Optional[dict] = None
    subsampling: int = -1


def pack_colours(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int64 ``R << 16 | G << 8 | B``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_colour(code: int) -> Tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def load_mask(path: str) -> RawMask:
    """Read a mask file as stored (no conversion).

    Raises:
        DatasetError: the file cannot be read as an image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            fmt, mode = img.format, img.mode
            tables = _jpeg_tables(img) if fmt == 'JPEG' else (None, -1)
            if mode == 'P':
                pal = np.array(img.getpalette() or [], np.uint8)
                pal = np.resize(pal, 768).reshape(256, 3) if pal.size else \
                    np.zeros((256, 3), np.uint8)
                return RawMask('palette', np.array(img).astype(np.int64),
                               fmt == 'JPEG', 8, pal)
            array = np.array(img)
    except (OSError, ValueError) as err:
        raise DatasetError(f'cannot read mask {path}: {err}') from None
    jpeg = fmt == 'JPEG'
    bits = 16 if array.dtype in (np.uint16, np.int32) and \
        mode.startswith('I') else 8
    if array.ndim == 3:
        if array.shape[2] in (3, 4):
            rgb = array[..., :3]
            if (rgb == rgb[..., :1]).all():  # grey saved as RGB
                codes = rgb[..., 0].astype(np.int64)
                kind = 'index'
            else:
                codes, kind = pack_colours(rgb), 'colour'
            if array.shape[2] == 4:
                codes[array[..., 3] == 0] = (
                    IGNORE_INDEX if kind == 'index' else TRANSPARENT)
            return RawMask(kind, codes, jpeg, bits, None, *tables)
        array = array[..., 0]  # LA: the grey band
    return RawMask('index', array.astype(np.int64), jpeg, bits, None,
                   *tables)


def _jpeg_tables(img) -> Tuple[Optional[dict], int]:
    """A JPEG's quantisation tables and chroma subsampling (Pillow's
    codes, -1 unknown)."""
    from PIL import JpegImagePlugin
    tables = getattr(img, 'quantization', None) or None
    try:
        sampling = int(JpegImagePlugin.get_sampling(img))
    except Exception:  # Pillow raises several types on odd headers
        sampling = -1
    return (dict(tables) if tables else None), sampling


def mask_codes(mask: RawMask) -> Counter:
    """Pixel count of each stored value (or colour code) of a mask."""
    values, counts = np.unique(mask.codes, return_counts=True)
    return Counter(dict(zip(values.tolist(), counts.tolist())))


@dataclass
class LabelPlan:
    """How stored values become class indices.

    Attributes:
        kind (str): 'index', 'binary255', 'palette' or 'colour'.
        lut (dict): stored value or colour code -> label (255 ignored).
        classes (list): class names.
        palette (list): RGB colour per class.
        convert (bool): whether masks must be rewritten for mmseg.
        reduce_zero_label (bool): mmseg's: label 0 ignored, others -1.
        reasons (list): why masks are converted, for the report.
    """
    kind: str
    lut: Dict[int, int]
    classes: List[str]
    palette: List[List[int]]
    convert: bool
    reduce_zero_label: bool = False
    reasons: List[str] = field(default_factory=list)


#: well-separated colours for classes without one (RGB): black for the
#: first class (background), then colours of Kelly's list of maximum
#: contrast (1965) and saturated primaries, each at least 60 apart from
#: every other and none near black, so that none is taken for the
#: background
DISTINCT_COLOURS = (
    (0, 0, 0), (255, 179, 0), (128, 62, 117), (255, 104, 0),
    (166, 189, 215), (193, 0, 32), (206, 162, 98), (0, 125, 52),
    (246, 118, 142), (0, 83, 138), (179, 40, 81), (127, 24, 13),
    (147, 170, 0), (0, 161, 194), (232, 232, 232), (255, 255, 0),
    (0, 255, 0), (255, 0, 255), (0, 255, 255), (110, 110, 255),
    (100, 200, 120), (255, 60, 60), (150, 0, 220))


def default_palette(n: int) -> List[List[int]]:
    """A deterministic palette of ``n`` classes: :data:`DISTINCT_COLOURS`,
    then (beyond 23 classes) colours spread over the hue circle at full
    saturation and value, none near black."""
    pal = [list(c) for c in DISTINCT_COLOURS[:n]]
    extra = n - len(pal)
    if extra > 0:
        hues = (np.arange(extra) * 0.618034 % 1.0 * 180).astype(np.uint8)
        hsv = np.stack([hues, np.full(extra, 200, np.uint8),
                        np.full(extra, 230, np.uint8)], -1)[None]
        pal += cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(int).tolist()
    return pal


def _names(classes: Optional[Sequence[str]], n: int, what: str,
           example: str) -> List[str]:
    if classes is None:
        return [f'class_{i}' for i in range(n)]
    if len(classes) != n:
        raise DatasetError(
            f'{len(classes)} class names given, but the masks hold {n} '
            f'classes ({what}; e.g. {example})')
    return list(classes)


def plan_labels(kind: str,
                histogram: Counter,
                where: Dict[int, str],
                classes: Optional[Sequence[str]] = None,
                class_colours: Optional[Sequence[Tuple[int, int, int]]] = None,
                palette: Optional[np.ndarray] = None,
                zero_is_ignore: bool = False,
                bits: int = 8) -> LabelPlan:
    """Decide the class of every stored value (see the module docstring).

    Args:
        kind (str): the masks' kind (:class:`RawMask`).
        histogram (Counter): pixel count of each stored value over all
            masks of all splits.
        where (dict): a file holding each value (for messages).
        classes (list[str], optional): class names (``--classes``).
        class_colours (list, optional): the RGB colour of each class.
        palette (ndarray, optional): a palette PNG's palette.
        zero_is_ignore (bool): label 0 means "ignore" (mmseg's
            ``reduce_zero_label``).
        bits (int): 8 or 16 (the largest bit depth seen).

    Raises:
        DatasetError: a class list that disagrees with the masks, or a
            value outside the classes.
    """
    values = sorted(histogram)
    reasons = []
    if kind == 'colour':
        colours = [v for v in values if v != TRANSPARENT]
        if class_colours:
            codes = [int(c[0]) << 16 | int(c[1]) << 8 | int(c[2])
                     for c in class_colours]
            for v in colours:
                if v not in codes:
                    raise DatasetError(
                        f'{where[v]} holds the colour {unpack_colour(v)}, '
                        'which is no class colour of the classes file')
        else:
            codes = colours
        lut = {c: i for i, c in enumerate(codes)}
        lut[TRANSPARENT] = IGNORE_INDEX
        names = _names(classes, len(codes), f'{len(codes)} colours',
                       where[colours[0]] if colours else '')
        reasons.append('RGB colour masks: each colour becomes its class '
                       'index')
        return LabelPlan('colour', lut, names,
                         [list(unpack_colour(c)) for c in codes], True,
                         False, reasons)
    labels = [v for v in values if v not in (IGNORE_INDEX, 65535)]
    ignore = {v: IGNORE_INDEX for v in values
              if v in (IGNORE_INDEX, 65535)}
    if kind == 'index' and set(values) <= {0, 255} and 255 in values and \
            (classes is None or len(classes) == 2) and not zero_is_ignore:
        reasons.append('binary masks stored as 0/255 (255 is mmseg\'s '
                       'ignore index): 255 becomes 1')
        names = list(classes) if classes else ['background', 'foreground']
        return LabelPlan('binary255', {0: 0, 255: 1}, names,
                         [[0, 0, 0], [255, 255, 255]], True, False, reasons)
    top = max(labels) if labels else 0
    n = top + 1 - (1 if zero_is_ignore else 0)
    if classes is not None and len(classes) < n:
        v = top
        raise DatasetError(
            f'{len(classes)} class names given, but {where[v]} holds the '
            f'label value {v}' + (' (with --zero-is-ignore, value v is class '
                                  'v-1)' if zero_is_ignore else ''))
    if top > 254:
        raise DatasetError(f'{where[top]} holds the label value {top}: '
                           'mmseg reads masks as 8-bit, 255 is ignore, so '
                           'at most 255 classes (0-254)')
    if classes is not None:
        n = len(classes)
    lut = {v: v for v in labels}
    lut.update(ignore)
    convert = 65535 in values or bits > 8 and top > 255
    if 65535 in values:
        reasons.append('16-bit masks: 65535 becomes 255 (ignore)')
    first = 1 if zero_is_ignore else 0
    if class_colours:
        pal = [list(map(int, c)) for c in class_colours][:n]
    elif palette is not None:
        pal = palette[first:first + n].astype(int).tolist()
    else:
        pal = default_palette(n)
    return LabelPlan(kind, lut, _names(classes, n, f'values {labels}', ''),
                     pal, convert, zero_is_ignore, reasons)


def apply_plan(mask: RawMask, plan: LabelPlan) -> np.ndarray:
    """The (H, W) uint8 label map mmseg should read for ``mask``."""
    values, inverse = np.unique(mask.codes, return_inverse=True)
    out = np.array([plan.lut.get(int(v), IGNORE_INDEX) for v in values],
                   np.uint8)
    return out[inverse].reshape(mask.codes.shape)
