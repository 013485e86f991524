"""mmseg_plugins: SegFormer, AFFormer and MPViT for MMSegmentation 1.x.

Importing the package (configs do it through ``custom_imports``) applies the
compatibility layer (:mod:`mmseg_plugins.compat`) and registers every model,
hook and dataset in the ``mmseg_plugins`` scope.
"""
from .compat.stack import check_stack

check_stack()  # one clear error for a missing or mixed OpenMMLab stack

from . import compat  # noqa: E402
from .version import __version__  # noqa: E402

compat.apply()

from . import models  # noqa: E402,F401  (registers the models)
from .datasets import DemoShapesDataset  # noqa: E402  (registers datasets)
from .hooks import CompileHook, RNGStateHook  # noqa: E402  (the hooks)
from .registry import DATASETS, HOOKS, MODEL_WRAPPERS, MODELS  # noqa: E402
from .weights.hook import StrictLoadHook  # noqa: E402  (registers it)

__all__ = [
    '__version__', 'MODELS', 'MODEL_WRAPPERS', 'HOOKS', 'DATASETS',
    'RNGStateHook', 'CompileHook', 'StrictLoadHook', 'DemoShapesDataset',
    'compat'
]
