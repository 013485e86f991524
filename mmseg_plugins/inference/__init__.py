"""Running a trained segmentor on one's own images.

- :class:`Segmenter` / :func:`segment` (:mod:`.segmenter`): label images
  with the model of a config and a PyTorch checkpoint or an ONNX file
  (:mod:`.backends`: :class:`TorchBackend`, :class:`OnnxBackend`, chosen by
  :func:`load_backend`); :class:`TileOptions` (:mod:`.tiled`) labels large
  images tile by tile.
- :func:`run_inference` (:mod:`.run`): label files, folders and videos
  into an output folder (:mod:`.inputs`, :mod:`.outputs`);
  ``tools/inference.py`` is its command line.
- :func:`colorize` / :func:`overlay` (:mod:`.visualize`): pictures of the
  labels.

The computation itself (normalisation, the network's forward, sliding
windows) is :mod:`mmseg_plugins.forward`; its names are re-exported here.
"""
from ..config import dataset_meta
from ..forward import SegmentorForward, normalize_images, slide_logits
from .backends import (Backend, OnnxBackend, TorchBackend, TorchOptions,
                       load_backend)
from .run import InferenceOptions, InferenceSummary, run_inference
from .segmenter import Segmenter, segment
from .tiled import TileOptions
from .visualize import colorize, overlay

#: The inference computation under the name this module has always used.
InferenceForward = SegmentorForward

__all__ = [
    'InferenceForward', 'Segmenter', 'segment', 'Backend', 'TorchBackend',
    'OnnxBackend', 'TorchOptions', 'load_backend', 'TileOptions',
    'InferenceOptions', 'InferenceSummary', 'run_inference',
    'normalize_images', 'slide_logits', 'dataset_meta', 'colorize', 'overlay'
]
