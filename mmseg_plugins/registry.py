"""Child registries of mmseg's, with scope ``mmseg_plugins``.

Configs refer to the models as ``type='mmseg_plugins.MiT'``. mmengine
imports this module when it meets the ``mmseg_plugins`` scope, and the
``locations`` import the model code on first use.
"""
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import Registry
from mmseg.registry import MODELS as MMSEG_MODELS

MODELS = Registry(
    'model',
    parent=MMSEG_MODELS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.models'])

# mmengine's Runner looks wrappers up in its root registry without switching
# scope, and the root only resolves ``scope.Name`` in its direct children.
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.models'])
