"""Child registries of mmseg's, with scope ``mmseg_plugins``.

Configs refer to the models as ``type='mmseg_plugins.MiT'``, to the hooks
as ``type='mmseg_plugins.RNGStateHook'``, to the datasets as
``type='mmseg_plugins.DemoShapesDataset'`` and to the metric as
``type='mmseg_plugins.ClassMeanIoUMetric'``. mmengine imports this module when
it meets the ``mmseg_plugins`` scope, and the ``locations`` import the code
on first use.
"""
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import Registry
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS

MODELS = Registry(
    'model',
    parent=MMSEG_MODELS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.models.registration'])

# mmengine's Runner looks wrappers up in its root registry without switching
# scope, and the root only resolves ``scope.Name`` in its direct children.
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.models.registration'])

# The Runner builds hooks through mmengine's root HOOKS switched to the
# default scope ('mmseg' in mmseg's runtime configs), and mmseg's HOOKS finds
# ``mmseg_plugins.X`` among its children. (Under another default scope the
# root falls back to importing ``mmseg_plugins.X`` as a dotted path, which
# the package's top-level ``RNGStateHook`` satisfies.)
HOOKS = Registry(
    'hook',
    parent=MMSEG_HOOKS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.hooks'])

# mmseg's dataset tools build ``cfg.*_dataloader.dataset`` through mmseg's
# DATASETS under scope 'mmseg', which finds ``mmseg_plugins.X`` here.
DATASETS = Registry(
    'dataset',
    parent=MMSEG_DATASETS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.datasets'])

# mmseg's datasets build their pipelines through mmseg's TRANSFORMS, which
# finds ``mmseg_plugins.X`` here (the image loader of non-RGB datasets).
TRANSFORMS = Registry(
    'transform',
    parent=MMSEG_TRANSFORMS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.own_data.transforms'])

# mmengine's Evaluator builds metrics through mmengine's root METRICS under
# the default scope ('mmseg'), and mmseg's METRICS finds
# ``mmseg_plugins.X`` here (the metric with one rule for every class mean).
METRICS = Registry(
    'metric',
    parent=MMSEG_METRICS,
    scope='mmseg_plugins',
    locations=['mmseg_plugins.evaluation'])
