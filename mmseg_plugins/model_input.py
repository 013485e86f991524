"""The images a model takes, stated once from its config, for every path
that feeds it outside mmseg's data loaders: :class:`~mmseg_plugins.
inference.Segmenter` (plain, batched, tiled, video frames), the ONNX export
and its verification, the benchmark's inputs.

A config loads images in one of two conventions (its test pipeline's
loader, which is also its training loader):

- **OpenCV colour** (mmseg's ``LoadImageFromFile``; every 8-bit RGB
  model): (H, W, 3) uint8 in OpenCV's BGR order; the data preprocessor
  swaps to RGB (``bgr_to_rgb``) and normalises.
- **Stored bands** (``mmseg_plugins.LoadImageAnyBands``, written by
  ``tools/prepare_dataset.py`` for grey, 16-bit and multi-band images):
  (H, W, C) float32 holding the stored values in the stored band order
  (RGB for colour files), normalised by the dataset's per-band mean and
  std; ``dtype`` (when the config records it) is the sample type the model
  was trained on.

The channel count is the backbone's ``in_channels``. An image with another
band count is converted where that is exact or is what training did, and
refused otherwise (:class:`~mmseg_plugins.errors.InvalidInputError` naming
both counts; the tools print it as one ``error:`` line):

- 1 band -> 3-channel model: repeated (as OpenCV's colour decoding does);
- 3 equal channels -> 1-channel model: their mean (the image is grey,
  stored as colour: a grey picture saved as RGB, a video frame); 8-bit
  channels may differ by up to :data:`GREY_TOLERANCE` levels, the rounding
  of lossy colour codecs (a grey video decodes with differences of 3);
  colour images are refused;
- 4 channels -> 3-channel model, for formats whose 4th channel is alpha
  (PNG, WebP, arrays; not TIFF, whose 4th band may be data): alpha dropped,
  as mmseg's loader does; 2 channels (grey + alpha) -> 1 or 3 likewise;
- anything else (an N-band image for an M-band model): refused.

A band model refuses images of another sample type than its ``dtype``
(float32 arrays, what its loader gives, are taken as read): their values
are on another scale than its normalisation.

:meth:`ModelInput.display` renders any input as an 8-bit BGR picture for
overlays: grey repeated to three channels; of N bands the first three, as
RGB (two bands: the first, grey); samples that are not 8-bit stretched
linearly from the image's 1st to its 99th percentile (over the bands
shown) to 0..255.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from .errors import ConfigError, DatasetError, InvalidInputError

__all__ = ['ModelInput', 'BAND_LOADER']

#: The registered name of the band loader (own_data/transforms.py).
BAND_LOADER = 'LoadImageAnyBands'
#: Formats whose 4th channel (2nd of two) is alpha.
_TIFF = ('.tif', '.tiff')
#: Largest difference (of 255) between the channels of an 8-bit colour
#: image taken as grey for a 1-channel model.
GREY_TOLERANCE = 4
#: Percentiles stretched to 0..255 by :meth:`ModelInput.display`.
DISPLAY_PERCENTILES = (1, 99)


def _count(channels: int) -> str:
    return f'{channels} channel' + ('s' if channels != 1 else '')


def _loader_of(cfg) -> Optional[dict]:
    """The config's test-time image loader step (a dict) or None."""
    steps = cfg.get('test_pipeline') or \
        (((cfg.get('test_dataloader') or {}).get('dataset') or {})
         .get('pipeline')) or []
    for step in steps:
        kind = str(step.get('type', ''))
        if kind.split('.')[-1].startswith('LoadImage'):
            return step
    return None


@dataclass(frozen=True)
class ModelInput:
    """What a model's input is (see the module).

    Args:
        channels (int): The backbone's ``in_channels``.
        bands (bool): Stored-band convention (``LoadImageAnyBands``), else
            OpenCV colour.
        dtype (str, optional): The sample type a band model was trained on
            (None: not recorded, not checked).
        mean, std (list[float]): The data preprocessor's normalisation
            (None: none).
        bgr_to_rgb (bool): Its channel swap.
    """
    channels: int = 3
    bands: bool = False
    dtype: Optional[str] = None
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None
    bgr_to_rgb: bool = False

    @classmethod
    def from_config(cls, cfg) -> 'ModelInput':
        """The input of the model of ``cfg`` (an mmengine Config).

        Raises:
            ConfigError: the loader, the backbone and the normaliser
                disagree on the channel count.
        """
        model = cfg.get('model') or {}
        channels = int((model.get('backbone') or {}).get('in_channels', 3))
        pre = model.get('data_preprocessor') or {}
        mean, std = pre.get('mean'), pre.get('std')
        loader = _loader_of(cfg) or {}
        bands = str(loader.get('type', '')).split('.')[-1] == BAND_LOADER
        where = getattr(cfg, 'filename', None) or 'the config'
        if bands and int(loader.get('channels', channels)) != channels:
            raise ConfigError(
                f'{where}: {BAND_LOADER} loads {loader["channels"]} bands, '
                f'the backbone takes in_channels={channels}')
        if not bands and channels != 3:
            raise ConfigError(
                f'{where}: the backbone takes in_channels={channels}, but '
                f'the test pipeline loads 3-channel colour images (use '
                f'mmseg_plugins.{BAND_LOADER}, as tools/prepare_dataset.py '
                'writes)')
        for name, value in (('mean', mean), ('std', std)):
            if value is not None and len(value) != channels:
                raise ConfigError(
                    f'{where}: data_preprocessor.{name} has {len(value)} '
                    f'values, the backbone takes {channels} channels')
        return cls(channels, bands, loader.get('dtype'),
                   None if mean is None else [float(v) for v in mean],
                   None if std is None else [float(v) for v in std],
                   bool(pre.get('bgr_to_rgb', False)))

    # ------------------------------------------------------------ rules
    def describe(self) -> str:
        """The input in words, e.g. ``1-band uint16 images``."""
        if not self.bands:
            return '3-channel colour images'
        return f'{self.channels}-band {self.dtype or ""} images'.replace(
            '  ', ' ')

    def adapter(self, count: int, source: str, alpha: bool = True
                ) -> Callable[[np.ndarray], np.ndarray]:
        """How an (H, W, ``count``) image of ``source`` becomes the model's
        channel count (see the module); ``alpha``: whether a 4th (or 2nd of
        two) channel is alpha.

        Raises:
            InvalidInputError: no such conversion.
        """
        want = self.channels
        if count == want:
            return lambda image: image
        if alpha and count in (2, 4):
            drop = self.adapter(count - 1, source, alpha=False)
            return lambda image: drop(image[..., :count - 1])
        if count == 1 and want == 3:
            return lambda image: np.repeat(image, 3, axis=2)
        if count == 3 and want == 1:
            def grey(image: np.ndarray) -> np.ndarray:
                tolerance = GREY_TOLERANCE if image.dtype == np.uint8 else 0
                wide = image.astype(np.float64)
                spread = np.abs(wide - wide[..., :1]).max() if \
                    image.size else 0
                if spread > tolerance:
                    raise InvalidInputError(
                        f'{source} is a colour image (3 channels differing '
                        f'by up to {spread:g}), the model takes 1-channel '
                        '(grey) images: convert it to grey as its training '
                        'images were')
                mean = wide.mean(axis=2, keepdims=True)
                if np.issubdtype(image.dtype, np.integer):
                    mean = np.round(mean)
                return mean.astype(image.dtype)
            return grey
        raise InvalidInputError(
            f'{source} has {_count(count)}, the model takes {want} '
            f'({self.describe()})')

    def check_channels(self, count: int, source: str,
                       alpha: bool = True) -> None:
        """Refuse an image of ``count`` channels (from its header) that
        cannot be converted (:class:`InvalidInputError`)."""
        self.adapter(count, source, alpha)

    def check_dtype(self, dtype, source: str) -> None:
        """Refuse samples of another type than the band model's (float32
        is what its loader gives: taken as read)."""
        if self.bands and self.dtype and np.dtype(dtype) not in (
                np.dtype(self.dtype), np.dtype(np.float32)):
            raise InvalidInputError(
                f'{source} has {np.dtype(dtype)} samples, the model was '
                f'trained on {self.dtype} images (its normalisation expects '
                'their value range)')

    def conform(self, image: np.ndarray, source: str = 'the image',
                alpha: bool = True) -> np.ndarray:
        """An (H, W[, C]) array in the model's convention with C bands ->
        (H, W, channels) (converted or refused, see the module)."""
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise InvalidInputError(f'{source}: expected an (H, W[, C]) '
                                    f'image, got shape {tuple(image.shape)}')
        self.check_dtype(image.dtype, source)
        image = self.adapter(image.shape[2], source, alpha)(image)
        return np.ascontiguousarray(image)

    # ---------------------------------------------------------- reading
    def read(self, path: str) -> np.ndarray:
        """An image file as the model's loader reads it, conformed:
        (H, W, 3) uint8 BGR (OpenCV colour) or (H, W, C) float32 stored
        bands.

        Raises:
            DatasetError: unreadable.
            InvalidInputError: refused (see the module).
        """
        tiff = path.lower().endswith(_TIFF)
        if not self.bands and not tiff:
            import cv2
            # what LoadImageFromFile does (grey repeated, alpha dropped)
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f'cannot read image {path}')
            return image
        from .own_data.transforms import read_image_bands
        image = read_image_bands(path)  # stored order (RGB)
        if self.bands:
            return self.conform(image, path, alpha=not tiff).astype(
                np.float32)
        return self.from_stored(image, path, alpha=False)

    def from_stored(self, image: np.ndarray, source: str,
                    alpha: bool = True) -> np.ndarray:
        """Stored bands (RGB order, any dtype) -> the model's convention:
        conformed float32 bands, or for an OpenCV-colour model (H, W, 3)
        BGR 0..255 (uint16 / 257, floats up to 1 times 255)."""
        if self.bands:
            return self.conform(image, source, alpha).astype(np.float32)
        image = np.ascontiguousarray(
            self.conform(image, source, alpha)[..., ::-1])
        if image.dtype == np.uint8:
            return image
        scale = 1. / 257 if image.dtype == np.uint16 else 1.
        if np.issubdtype(image.dtype, np.floating) and \
                np.nanmax(image) <= 1:
            scale = 255.
        return image.astype(np.float32) * scale

    def from_opencv(self, image: np.ndarray, source: str) -> np.ndarray:
        """An OpenCV colour image (BGR, a video frame) -> the model's
        convention (a band model: RGB order, conformed, float32)."""
        if not self.bands:
            return self.conform(image, source)
        if image.ndim == 3 and image.shape[2] >= 3:
            image = image[..., [2, 1, 0]]
        return self.conform(image, source).astype(np.float32)

    def tile_reader(self, raster) -> Callable:
        """A reader ``(y1, y2, x1, x2) -> (h, w, channels) float32`` of a
        :class:`~mmseg_plugins.inference.rasters.Raster` in the model's
        convention (refuses its band count or dtype at once)."""
        alpha = not raster.path.lower().endswith(_TIFF)
        adapt = self.adapter(raster.bands, raster.path, alpha)
        if not self.bands:
            return raster.read  # (h, w, 3) float32 BGR 0..255
        self.check_dtype(raster.dtype, raster.path)

        def read(y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
            window = raster.read_bands(y1, y2, x1, x2)
            return adapt(window).astype(np.float32)
        return read

    # ---------------------------------------------------------- showing
    def display(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR picture of an input in the model's
        convention (see the module)."""
        if image.ndim == 2:
            image = image[..., None]
        if not self.bands:  # BGR 0..255 already
            picture = image
        else:
            shown = image[..., :3] if image.shape[2] >= 3 else image[..., :1]
            picture = shown[..., ::-1]  # RGB -> BGR
            if image.dtype != np.uint8 and (
                    not self.dtype or self.dtype != 'uint8'):
                lo, hi = np.nanpercentile(picture, DISPLAY_PERCENTILES)
                picture = (picture.astype(np.float32) - lo) * (
                    255. / max(float(hi - lo), 1e-12))
        if picture.shape[2] == 1:
            picture = np.repeat(picture, 3, axis=2)
        return np.ascontiguousarray(
            np.clip(np.nan_to_num(picture), 0, 255).astype(np.uint8))

    # -------------------------------------------------------- examples
    def example(self, batch: int, height: int, width: int, raw: bool,
                seed: int = 0) -> torch.Tensor:
        """A random (B, channels, H, W) float32 input: ``raw`` images
        (before normalisation: 0..255 colour, or each band drawn around its
        mean with its std) or normalised ones (standard normal)."""
        g = torch.Generator().manual_seed(seed)
        shape = (batch, self.channels, height, width)
        if not raw:
            return torch.randn(*shape, generator=g)
        if self.bands and self.mean is not None:
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std or [1.] * self.channels).view(
                1, -1, 1, 1)
            return mean + std * torch.randn(*shape, generator=g)
        return torch.rand(*shape, generator=g) * 255

    def pad_value(self, normalised: bool) -> List[float]:
        """Per-channel value that normalisation maps to 0 (the mean, in the
        input's channel order), or zeros for normalised inputs."""
        if normalised or self.mean is None:
            return [0.] * self.channels
        mean = list(self.mean)
        return mean[::-1] if self.bgr_to_rgb else mean
