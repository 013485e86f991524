"""The image loader of datasets that are not 8-bit RGB (grayscale, RGBA,
16-bit, multi-band TIFF), registered as ``mmseg_plugins.LoadImageAnyBands``
in :data:`mmseg_plugins.registry.TRANSFORMS`, and the per-channel
statistics the config normalises with."""
import random
from typing import Dict, List, NamedTuple, Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from ..errors import DatasetError
from ..registry import TRANSFORMS

__all__ = [
    'read_image_bands', 'LoadImageAnyBands', 'BandStatistics',
    'channel_statistics',
    'needs_band_loader'
]

#: at most this many training images are read for the statistics
STATS_IMAGES = 500


def read_image_bands(path: str) -> np.ndarray:
    """An image as (H, W, C) in its stored band order (RGB, not OpenCV's
    BGR), its stored dtype: TIFFs through ``tifffile`` (planar band-first
    arrays moved to bands-last), other formats through OpenCV unchanged.

    Raises:
        DatasetError: unreadable.
    """
    array = None
    if path.lower().endswith(('.tif', '.tiff')):
        try:
            import tifffile
        except ImportError:
            tifffile = None
        if tifffile is not None:
            try:
                array = tifffile.imread(path)
            except Exception as err:  # tifffile raises many types
                raise DatasetError(f'cannot read image {path}: {err}') \
                    from None
            if array.ndim == 3 and array.shape[0] < min(array.shape[1:]) \
                    and array.shape[0] <= 32:
                array = np.moveaxis(array, 0, -1)  # planar: bands first
    if array is None:
        array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if array is None:
            raise DatasetError(f'cannot read image {path}')
        if array.ndim == 3 and array.shape[2] in (3, 4):
            order = [2, 1, 0, 3][:array.shape[2]]
            array = array[..., order]  # BGR(A) -> RGB(A)
    if array.ndim == 2:
        array = array[..., None]
    return array


@TRANSFORMS.register_module()
class LoadImageAnyBands(BaseTransform):
    """Load an image of any band count and bit depth as float32 (H, W, C)
    (8-bit RGB datasets use mmseg's ``LoadImageFromFile``).

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``.

    Args:
        channels (int): The band count every image must have.
        dtype (str, optional): The sample type every image must have (the
            per-band statistics the config normalises with are in its
            value range); None: not checked.
    """

    def __init__(self, channels: int, dtype: Optional[str] = None) -> None:
        self.channels = channels
        self.dtype = dtype

    def transform(self, results: dict) -> dict:
        path = results.get('img_path')
        if path is None:
            raise DatasetError(
                'LoadImageAnyBands reads files (img_path); to label arrays '
                'use mmseg_plugins.inference.Segmenter, which feeds them as '
                'this loader would')
        img = read_image_bands(path)
        if img.shape[2] != self.channels:
            raise DatasetError(
                f'{path} has {img.shape[2]} bands, the '
                f'dataset {self.channels}')
        if self.dtype and img.dtype != np.dtype(self.dtype):
            raise DatasetError(f'{path} has {img.dtype} samples, the '
                               f'dataset {self.dtype}')
        img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channels={self.channels}, '
                f'dtype={self.dtype!r})')


class BandStatistics(NamedTuple):
    """Images that are not 8-bit RGB, as a prepared config reads and
    normalises them: ``channels`` bands of ``dtype`` (a numpy dtype name),
    with the training images' per-channel ``mean`` and ``std``."""
    channels: int
    mean: List[float]
    std: List[float]
    dtype: str

    def loading(self) -> dict:
        """The image loading transform (:class:`LoadImageAnyBands`)."""
        return dict(type='mmseg_plugins.LoadImageAnyBands',
                    channels=self.channels, dtype=self.dtype)

    def preprocessor(self) -> dict:
        """The data preprocessor's normalisation (no channel swap)."""
        return dict(mean=self.mean, std=self.std, bgr_to_rgb=False)


def channel_statistics(paths: Sequence[str], seed: int = 0
                       ) -> BandStatistics:
    """Per-channel mean and std over (a seeded sample of at most
    :data:`STATS_IMAGES`) training images, read as the loader reads them.

    Raises:
        DatasetError: images with different band counts.
    """
    paths = list(paths)
    if len(paths) > STATS_IMAGES:
        paths = random.Random(seed).sample(paths, STATS_IMAGES)
    total = total_sq = None
    count = 0
    bands: Dict[int, str] = {}
    dtype = ''
    for path in paths:
        img = read_image_bands(path)
        bands.setdefault(img.shape[2], path)
        if len(bands) > 1:
            (a, pa), (b, pb) = list(bands.items())[:2]
            raise DatasetError(f'images with different band counts: {pa} '
                               f'has {a}, {pb} has {b}')
        flat = img.reshape(-1, img.shape[2]).astype(np.float64)
        total = flat.sum(0) if total is None else total + flat.sum(0)
        sq = (flat ** 2).sum(0)
        total_sq = sq if total_sq is None else total_sq + sq
        count += flat.shape[0]
        dtype = str(img.dtype)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0))
    std[std == 0] = 1.0
    return BandStatistics(len(mean), [round(float(v), 4) for v in mean],
                          [round(float(v), 4) for v in std], dtype)


def needs_band_loader(channels: Sequence[int], bits: Sequence[int]
                      ) -> bool:
    """Whether mmseg's ``LoadImageFromFile`` (OpenCV colour: 8-bit, three
    channels, grey replicated, alpha dropped) would change the images."""
    return any(c != 3 for c in channels) or any(b != 8 for b in bits)
