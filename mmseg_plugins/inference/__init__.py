"""Running a trained segmentor on one's own images.

- :class:`Segmenter` / :func:`segment` (:mod:`.segmenter`): label images
  with the model of a config and a PyTorch checkpoint or an ONNX file;
  ``tools/inference.py`` is its command line.
- :func:`colorize` / :func:`overlay` (:mod:`.visualize`): pictures of the
  labels.

The computation itself (normalisation, the network's forward, sliding
windows) is :mod:`mmseg_plugins.forward`; its names are re-exported here.
"""
from ..config import dataset_meta
from ..forward import SegmentorForward, normalize_images, slide_logits
from .segmenter import Segmenter, segment
from .visualize import colorize, overlay

#: The inference computation under the name this module has always used.
InferenceForward = SegmentorForward

__all__ = [
    'InferenceForward', 'Segmenter', 'segment', 'normalize_images',
    'slide_logits', 'dataset_meta', 'colorize', 'overlay'
]
