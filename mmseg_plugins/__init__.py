"""mmseg_plugins: SegFormer, AFFormer and MPViT for MMSegmentation 1.x.

Importing the package (configs do it through ``custom_imports``) applies the
compatibility layer (:mod:`mmseg_plugins.compat`) and registers every model,
hook, dataset and metric in the ``mmseg_plugins`` scope.

Where no OpenMMLab stack is installed at all (a torch + timm environment),
it imports the networks only (:mod:`mmseg_plugins.models` backbones,
:func:`fuse`); the mmseg integration's names then raise the stack error on
use. A partial or mixed stack is refused here with one message. Where timm
is installed, the backbones are registered as timm models
(:mod:`mmseg_plugins.timm`).
"""
from importlib.util import find_spec as _find_spec

from .compat.stack import (StackError, check_stack, installed_stack,
                           stack_absent)
from .models.fuse import fuse
from .version import __version__

#: The names that need the OpenMMLab stack.
_OPENMMLAB_NAMES = ('MODELS', 'MODEL_WRAPPERS', 'HOOKS', 'DATASETS',
                    'RNGStateHook', 'CompileHook', 'StrictLoadHook',
                    'DemoShapesDataset', 'compat')

_installed = installed_stack()  # read once: distribution metadata

if stack_absent(_installed):

    def __getattr__(name: str):
        if name in _OPENMMLAB_NAMES:
            check_stack()  # raises the StackError naming what to install
        raise AttributeError(
            f'module {__name__!r} has no attribute {name!r}')

else:
    # one clear error for a missing or mixed OpenMMLab stack
    check_stack(_installed)

    from . import compat

    compat.apply()

    from .datasets import DemoShapesDataset  # noqa: F401  (registers it)
    from .hooks import CompileHook, RNGStateHook  # noqa: F401
    from .models import registration  # noqa: F401  (registers the models)
    from .registry import DATASETS, HOOKS, MODEL_WRAPPERS, MODELS  # noqa
    from .weights.hook import StrictLoadHook  # noqa: F401  (registers it)

if _find_spec('timm') is not None:  # mmseg imports timm itself
    from . import timm  # noqa: F401  (registers the timm models)

__all__ = [
    '__version__', 'MODELS', 'MODEL_WRAPPERS', 'HOOKS', 'DATASETS',
    'RNGStateHook', 'CompileHook', 'StrictLoadHook', 'DemoShapesDataset',
    'compat', 'fuse', 'StackError'
]
