"""Pictures of label maps: the palette's colours (:func:`colorize`) and
those colours blended over the image (:func:`overlay`)."""
from typing import Sequence

import numpy as np

__all__ = ['colorize', 'overlay']


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]
             ) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) BGR image of the palette (RGB)."""
    lut = np.zeros((max(len(palette), int(label.max()) + 1), 3), np.uint8)
    lut[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return lut[label]


def overlay(image: np.ndarray, label: np.ndarray,
            palette: Sequence[Sequence[int]], alpha: float = 0.5
            ) -> np.ndarray:
    """The BGR image blended with the colours of its labels."""
    color = colorize(label, palette).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) +
            color * alpha).round().astype(np.uint8)
