# mmseg's default runtime plus exact resume. RNGStateHook stores the states of
# the random number generators (Python, NumPy, torch CPU and CUDA; every rank)
# in each checkpoint and restores them on --resume, so that a resumed run ends
# with the same weights as an uninterrupted one. (mmengine imports
# mmseg_plugins.registry, hence the hook, on meeting the scope.) That needs a
# fixed seed: mmengine seeds the sampler and the data workers from it before
# the checkpoint is loaded, and mmseg's runtime leaves it random.
# StrictLoadHook (no checkpoint of its own) takes the runner's load_from (and
# test.py's CHECKPOINT) over before mmengine loads it non-strictly, and loads
# it strictly, converting any known layout, before the first step; with
# mmseg's unmodified tools too. A config that sets custom_hooks replaces this
# list: keep both entries.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_hooks = [
    dict(type='mmseg_plugins.RNGStateHook'),
    dict(type='mmseg_plugins.StrictLoadHook')
]
randomness = dict(seed=0)
