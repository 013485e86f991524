"""The one model builder (mmseg_plugins/builder.py)."""
import torch

from helpers import DEMO_CONFIG


def test_building_a_model_does_not_reseed_the_global_generator():
    """The caller's global RNG goes on from where the build left it: two
    builds after different seeds leave different states (a reseed inside
    the builder would make them equal)."""
    from mmseg_plugins.builder import build_model
    after = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        build_model(DEMO_CONFIG)
        after.append(torch.rand(4))
    assert not torch.equal(after[0], after[1])
