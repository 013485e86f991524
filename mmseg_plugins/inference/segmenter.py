"""Running a trained segmentor on one's own images.

:class:`Segmenter` labels images given as arrays with the model of a config
and either a PyTorch checkpoint or an ONNX file written by
``tools/deployment/pytorch2onnx.py`` (run by ONNX Runtime): the
:mod:`.backends`, which run the network alone. Everything else is the
same for both and follows mmseg's test-time steps:

1. the config's test pipeline (its ``Resize``/``ResizeToMultiple``; no
   annotations), on the image as the config's loader reads it
   (:class:`~mmseg_plugins.model_input.ModelInput`: OpenCV's BGR uint8 for
   colour models, the stored bands as float32 for the grey and multi-band
   models ``tools/prepare_dataset.py`` writes; other channel counts
   converted where that is exact, else refused);
2. the data preprocessor's normalisation (BGR -> RGB, mean, std);
3. the network on the whole image, or on overlapping windows averaged as
   mmseg's ``slide_inference`` does when the config's ``test_cfg`` says
   ``mode='slide'``; the logits are resized to the network's input;
4. the logits resized to the original image (bilinear, the model's
   ``align_corners``) and the arg-max over classes.

Images smaller than the backbone's minimum input are padded (with zeros
after normalisation, i.e. the mean colour) and the padding is cropped from
the logits, so any size works.
"""
import copy
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..accelerate import check_precision, resolve_device
from ..config import dataset_meta, load_config
from ..errors import CheckpointError, InvalidInputError
from ..forward import slide_logits
from ..model_input import ModelInput
from ..weights import checkpoint_found
from .backends import Backend, Normalisation, TorchOptions, load_backend
from .tiled import TiledSegmenter, TileOptions

__all__ = ['Segmenter', 'SlideWindows', 'segment']


class SlideWindows(NamedTuple):
    """The sliding windows of a config's ``test_cfg`` (``mode='slide'``):
    (h, w) window and (h, w) stride."""
    crop_size: Tuple[int, int]
    stride: Tuple[int, int]


class Segmenter:
    """Label images with a trained segmentor.

    Args:
        config (str | mmengine.Config): The model's config.
        checkpoint (str): A checkpoint of that model in any layout the
            loader knows (a ``.pth`` file, a Hugging Face folder or
            ``.safetensors``, an ``http(s)://`` URL or ``hf://``
            reference; converted in memory, loaded strictly), or an ONNX
            file exported from it (``.onnx``, needs ``onnxruntime``); see
            :func:`~.backends.load_backend`.
        device (str): ``'auto'`` (the GPU when there is one), ``'cpu'``,
            ``'cuda'``, ``'cuda:1'`` ... Default: ``'auto'``.
        cfg_options (dict, optional): Overrides of the config, e.g.
            ``{'model.test_cfg.mode': 'slide', ...}``.
        torch_options (TorchOptions, optional): Precision, channels-last
            and ``torch.compile`` of the PyTorch backend (an ONNX model
            takes only the defaults). Default: eager fp32.
        tiling (TileOptions, optional): Run tiled and streaming
            (:mod:`.tiled`): windows at the model's scale (no
            test-pipeline resize), blended, the image resampled on the
            fly. None (default): the config's test pipeline and
            ``test_cfg``.

    Raises:
        ConfigError: the config has no model or cannot be built.
        CheckpointError: the checkpoint is missing, unsafe, or does not fit
            the model.
        InvalidInputError: an option cannot be honoured here.
    """

    def __init__(self,
                 config,
                 checkpoint: str,
                 device: str = 'auto',
                 cfg_options: Optional[dict] = None,
                 torch_options: Optional[TorchOptions] = None,
                 tiling: Optional[TileOptions] = None) -> None:
        cfg = load_config(config, cfg_options)
        self.cfg = cfg
        self.device = resolve_device(device)
        torch_options = torch_options or TorchOptions()
        check_precision(torch_options.precision, self.device)
        if not checkpoint_found(checkpoint):
            raise CheckpointError(f'checkpoint not found: {checkpoint}')
        #: what the model takes (channels, convention, normalisation)
        self.input = ModelInput.from_config(cfg)
        #: the data preprocessor's normalisation of that input
        self.normalisation = Normalisation.from_input(self.input)
        test_cfg = cfg.model.get('test_cfg') or {}
        #: the config's sliding windows, None for whole-image inference
        self.slide = (SlideWindows(tuple(test_cfg['crop_size']),
                                   tuple(test_cfg['stride']))
                      if test_cfg.get('mode', 'whole') == 'slide' else None)
        self.align_corners = bool(
            (cfg.model.get('decode_head') or {}).get('align_corners', False))
        self.pipeline = self._test_pipeline(cfg)
        #: what runs the network (:class:`~.backends.Backend`)
        self.backend: Backend = load_backend(
            cfg, checkpoint, self.device, torch_options, self.normalisation,
            self.input.channels)
        self.num_classes = self.backend.num_classes
        self.min_input_size = self.backend.min_input_size
        self.meta = dataset_meta(cfg, self.backend.checkpoint_meta,
                                 self.num_classes)
        self.classes = self.meta['classes']
        self.palette = self.meta['palette']
        # the graph normalises raw images itself when it was exported so
        self.inputs_normalised = not self.backend.normalises_inputs
        self.tiling = tiling
        if tiling is not None:
            tiling.check(self.min_input_size)

    @staticmethod
    def _test_pipeline(cfg):
        """The config's test pipeline on arrays, without annotations."""
        from mmcv.transforms import Compose
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        steps = cfg.get('test_pipeline') or \
            cfg.test_dataloader.dataset.pipeline
        # the image comes as an array (ModelInput reads files as the
        # config's loader does)
        steps = [copy.deepcopy(s) for s in steps
                 if str(s['type']).split('.')[-1] not in (
                     'LoadAnnotations', 'LoadImageFromFile',
                     'LoadDepthAnnotation', 'LoadImageAnyBands')]
        return Compose([dict(type='LoadImageFromNDArray')] + steps)

    # ---------------------------------------------------------- running
    # ---------------------------------------------------------- images
    def read_image(self, path: str) -> np.ndarray:
        """An image file as the model's loader reads it (see
        :meth:`preprocess`; refused with :class:`InvalidInputError` when
        its channels cannot be converted)."""
        return self.input.read(path)

    def display(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR picture of an input image (for overlays)."""
        return self.input.display(image)

    def preprocess(self, image: np.ndarray) -> Tuple[torch.Tensor, dict]:
        """One image -> the network's (C, h, w) float input (normalised
        unless the ONNX graph normalises) and its metadata (``ori_shape``,
        ``img_shape``).

        The image is in the model's convention (:attr:`input`): (H, W, 3)
        BGR uint8 as OpenCV reads it for colour models; (H, W, C) bands in
        their stored order for band models (:meth:`read_image` gives
        both). Grey images are repeated for colour models, alpha dropped;
        other channel counts raise :class:`InvalidInputError`."""
        image = self.input.conform(image)
        if self.input.bands:
            image = image.astype(np.float32)
        data = self.pipeline(dict(img=image))
        x = data['inputs'].float()  # (C, h, w)
        meta = data['data_samples'].metainfo
        if self.inputs_normalised:
            x = self.normalisation(x[None])[0]
        return x, dict(ori_shape=tuple(meta['ori_shape']),
                       img_shape=tuple(x.shape[1:]))

    def _pad_value(self) -> torch.Tensor:
        """What padding becomes zero after normalisation: 0 for normalised
        inputs, the mean (in the input's channel order) for a graph that
        normalises; (C, 1, 1)."""
        return torch.tensor(self.input.pad_value(self.inputs_normalised),
                            dtype=torch.float32).view(-1, 1, 1)

    def _network_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at ``x``'s size, padding what is below the minimum input
        size (and cropping it off again)."""
        h, w = x.shape[2:]
        ph, pw = max(self.min_input_size - h, 0), max(
            self.min_input_size - w, 0)
        if ph or pw:
            pad = self._pad_value().to(x)[None]  # (1, C, 1, 1)
            big = pad.expand(x.shape[0], x.shape[1], h + ph,
                             w + pw).clone()
            big[:, :, :h, :w] = x
            return self._network_logits(big)[:, :, :h, :w]
        return self.backend.logits(x)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a preprocessed batch (B, C, h, w) at its size, whole or
        by sliding window (the config's ``test_cfg``)."""
        batch = batch.to(self.device)
        if self.slide is not None:
            return slide_logits(self._network_logits, batch,
                                self.num_classes, self.slide.crop_size,
                                self.slide.stride)
        return self._network_logits(batch)

    # ------------------------------------------------------------ tiled
    def _prepare_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, h, w, C) float windows in the model's convention -> the
        network's (B, C, h, w) input on the device (normalised unless the
        ONNX graph does)."""
        x = windows.permute(0, 3, 1, 2).to(self.device)
        if self.inputs_normalised:
            x = self.normalisation(x)
        return x

    def tiler(self, batch_size: int = 1,
              progress: bool = False) -> TiledSegmenter:
        """The :class:`~.tiled.TiledSegmenter` of this model with the
        ``tiling`` given at construction."""
        if self.tiling is None:
            raise InvalidInputError('this Segmenter was made without '
                                    'tiling=')
        return TiledSegmenter(self._network_logits, self._prepare_windows,
                              self.num_classes, self.tiling, batch_size,
                              progress)

    def label_rows(self, reader, height: int, width: int,
                   batch_size: int = 1, progress: bool = False):
        """``(y0, labels (h, width))`` rows of a large image read window by
        window by ``reader`` ((y1, y2, x1, x2) -> (h, w, C) in the model's
        convention: :meth:`ModelInput.tile_reader` of a raster), each
        yielded as soon as it is final (see :mod:`.tiled`)."""
        return self.tiler(batch_size, progress).label_rows(
            reader, height, width)

    def __call__(self, images: Sequence[np.ndarray],
                 batch_size: int = 1) -> List[np.ndarray]:
        """Label maps (H, W) of class indices (int64) of images (see
        :meth:`preprocess` for their convention).

        Consecutive images that the test pipeline brings to the same size
        are run together, up to ``batch_size`` at a time. With ``tiling``,
        each image runs tiled (windows batched ``batch_size`` at a time).
        """
        if self.tiling is not None:
            return [self._tiled_labels(image, batch_size)
                    for image in images]
        prepared = [self.preprocess(image) for image in images]
        labels: List[np.ndarray] = []
        start = 0
        while start < len(prepared):
            shape = prepared[start][1]['img_shape']
            end = start + 1
            while end < len(prepared) and end - start < batch_size and \
                    prepared[end][1]['img_shape'] == shape:
                end += 1
            chunk = prepared[start:end]
            logits = self.logits(torch.stack([x for x, _ in chunk]))
            for one, (_, meta) in zip(logits, chunk):
                labels.append(self.postprocess(one[None], meta))
            start = end
        return labels

    def _tiled_labels(self, image: np.ndarray,
                      batch_size: int) -> np.ndarray:
        """One image (H, W[, C]) labelled tile by tile."""
        image = self.input.conform(image)
        height, width = image.shape[:2]
        labels = np.empty((height, width), np.int64)
        for y0, rows in self.label_rows(
                lambda y1, y2, x1, x2: image[y1:y2, x1:x2], height, width,
                batch_size):
            labels[y0:y0 + rows.shape[0]] = rows
        return labels

    def postprocess(self, logits: torch.Tensor, meta: dict) -> np.ndarray:
        """(1, K, h, w) logits -> (H, W) labels at the original size."""
        logits = F.interpolate(logits, size=meta['ori_shape'][:2],
                               mode='bilinear',
                               align_corners=self.align_corners)
        return logits[0].argmax(0).cpu().numpy()


def segment(images: Union[np.ndarray, Sequence[np.ndarray]], config,
            checkpoint: str, **kwargs) -> Union[np.ndarray, List[np.ndarray]]:
    """One-shot: label one image (H, W[, C]) or a list of them with a
    config and checkpoint (see :class:`Segmenter` for ``kwargs`` and
    :meth:`Segmenter.preprocess` for the images' convention)."""
    single = isinstance(images, np.ndarray) and images.ndim in (2, 3)
    segmenter = Segmenter(config, checkpoint, **kwargs)
    labels = segmenter([images] if single else list(images))
    return labels[0] if single else labels
