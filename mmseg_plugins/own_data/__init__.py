"""Your own dataset: scan a folder of images and masks, catch what would
train wrong, convert the masks mmseg would misread and write a config for
mmseg's ``tools/train.py`` and ``tools/test.py``
(``tools/prepare_dataset.py``); count a model's confusion matrix
(``tools/analysis_tools/confusion_matrix.py``)."""
from .prepare import (PrepareOptions, PrepareResult, prepare_dataset,
                      read_classes_file)
from .scan import DatasetScan, scan_dataset

__all__ = ['PrepareOptions', 'PrepareResult', 'prepare_dataset',
           'read_classes_file', 'DatasetScan', 'scan_dataset']
