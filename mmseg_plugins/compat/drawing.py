"""Fix 6, ``contiguous_draw``: mmseg's visualiser on images whose
channels are planes (:mod:`mmseg_plugins.compat`)."""
from .source import source_matches


# --------------------------------------------------------------------------
# 6. drawing on images that are not C-contiguous
# --------------------------------------------------------------------------
CONTIGUOUS_FLAG = '__mmseg_plugins_contiguous__'


def mmseg_draw_copies_image_layout() -> bool:
    """Whether mmseg's ``SegLocalVisualizer._draw_sem_seg`` draws into
    ``np.zeros_like(image)``, a buffer with the memory layout of the image
    it was given."""
    from mmseg.visualization import SegLocalVisualizer
    draw = SegLocalVisualizer._draw_sem_seg
    if getattr(draw, CONTIGUOUS_FLAG, False):
        return False  # ours is installed
    return source_matches(draw, lambda source: 'zeros_like(image' in source)


def install_contiguous_sem_seg_draw() -> None:
    """Make ``SegLocalVisualizer._draw_sem_seg`` work on a C-contiguous
    copy of images that are not C-contiguous."""
    import functools

    import numpy as np
    from mmseg.visualization import SegLocalVisualizer
    draw = SegLocalVisualizer._draw_sem_seg

    @functools.wraps(draw)  # also keeps mmseg's method as __wrapped__
    def draw_sem_seg(self, image, *args, **kwargs):
        return draw(self, np.ascontiguousarray(image), *args, **kwargs)

    setattr(draw_sem_seg, CONTIGUOUS_FLAG, True)
    SegLocalVisualizer._draw_sem_seg = draw_sem_seg
