"""Datasets, registered in :data:`mmseg_plugins.registry.DATASETS`.

:class:`DemoShapesDataset` reads the demo data that
:func:`mmseg_plugins.demo_data.generate_shapes_dataset` writes. Its classes
and palette are the class attribute ``METAINFO``, as in mmseg's datasets,
because mmseg's dataset tools (``misc/browse_dataset.py``,
``analysis_tools/confusion_matrix.py``) read them from there rather than
from the config.
"""
from mmseg.datasets import BaseSegDataset

from .demo_data import SHAPES_METAINFO
from .registry import DATASETS

__all__ = ['DemoShapesDataset']


@DATASETS.register_module()
class DemoShapesDataset(BaseSegDataset):
    """The generated shapes data: ``images/{training,validation}/*.png``
    with label maps of the same names under ``annotations/``; four classes
    (background, disk, square, triangle), label 0 is a class.

    Args:
        img_suffix (str): Image file suffix. Default: '.png'.
        seg_map_suffix (str): Label map file suffix. Default: '.png'.
        **kwargs: Passed to ``BaseSegDataset`` (``data_root``,
            ``data_prefix``, ``pipeline``, ...).
    """
    METAINFO = SHAPES_METAINFO

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
