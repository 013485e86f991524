"""mmseg_plugins/converters/driver.py: the variant search."""
import dataclasses

import torch

from mmseg_plugins.converters.driver import find_variant
from mmseg_plugins.converters.segformer import segformer_spec
from mmseg_plugins.models import MiT


def test_variants_are_compared_on_the_meta_device():
    """Finding the variant of a MiT-B3 file compares it with B0..B3 built
    on the meta device (shapes only): no real model of a candidate."""
    spec = segformer_spec('nvlabs')
    built = []

    def build(arch):
        model = spec.build_backbone(arch)
        built.append((arch, {p.device.type for p in model.parameters()}))
        return model

    with torch.device('meta'):
        weights = MiT('b3').state_dict()
    found = find_variant(dataclasses.replace(spec, build_backbone=build),
                         weights, None, None, 'mit_b3.pth')
    assert found == 'b3'
    assert built == [(arch, {'meta'}) for arch in ('b0', 'b1', 'b2', 'b3')]
