"""Fix 6, ``contiguous_draw``: mmseg's visualiser on images whose
channels are planes (:mod:`mmseg_plugins.compat`)."""
from typing import Callable


# --------------------------------------------------------------------------
# 6. drawing on images that are not C-contiguous
# --------------------------------------------------------------------------
CONTIGUOUS_FLAG = '__mmseg_plugins_contiguous__'


def fails_on_planar_image(draw: Callable, visualizer_class: type) -> bool:
    """Whether ``draw`` (``SegLocalVisualizer._draw_sem_seg``) fails with
    OpenCV's error on a small image whose channels are planes (as mmseg's
    ``browse_dataset.py`` passes them), drawing one labelled class.

    It is called on an instance of ``visualizer_class`` made without
    ``__init__`` (no visualizer is created, named or made current) whose
    ``set_image`` keeps nothing. Where it fails otherwise (a visualiser
    that needs more of its instance), the answer is True: the fix, a
    C-contiguous copy of the image, changes nothing where it is not
    needed.

    Args:
        draw (callable): The function, taking the visualiser first.
        visualizer_class (type): The class it belongs to.
    """
    import numpy as np
    import torch
    from mmengine.structures import PixelData
    visualizer = object.__new__(visualizer_class)
    visualizer.alpha = 0.5
    visualizer.set_image = lambda image: None
    image = np.zeros((3, 32, 32), np.uint8).transpose(1, 2, 0)  # (H, W, 3)
    sem_seg = PixelData(data=torch.zeros((1, 32, 32), dtype=torch.long))
    try:
        draw(visualizer, image, sem_seg, ['probe'], [(255, 0, 0)],
             with_labels=True)
    except Exception:  # cv2.error from mmseg 1.2.2; otherwise see above
        return True
    return False


def mmseg_draw_copies_image_layout() -> bool:
    """Fix 6's condition: mmseg's ``SegLocalVisualizer._draw_sem_seg``
    draws into a buffer with the memory layout of the image it was given
    (``np.zeros_like(image)``), which OpenCV refuses for planar channels
    (:func:`fails_on_planar_image`)."""
    from mmseg.visualization import SegLocalVisualizer
    return fails_on_planar_image(SegLocalVisualizer._draw_sem_seg,
                                 SegLocalVisualizer)


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
