"""Tests of mmseg_plugins/benchmark/references.py: the installed reference
builders compute the same function as our models."""
import pytest
import torch

from helpers import DEMO_CONFIG
from mmseg_plugins.benchmark import max_abs_diff
from mmseg_plugins.benchmark.references import (hf_segformer,
                                                mmseg_mix_vision_transformer)
from mmseg_plugins.builder import build_model
from mmseg_plugins.forward import SegmentorForward
from mmseg_plugins.models import MiT


def test_mmseg_mit_reference_computes_the_same_function():
    ours = MiT('b0').eval()
    ref = mmseg_mix_vision_transformer(ours)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert max_abs_diff(ours(x), ref(x)) < 1e-4


def test_hf_segformer_reference_gives_our_logits():
    pytest.importorskip('transformers')
    model = build_model(DEMO_CONFIG, None, 'cpu')
    ref = hf_segformer(model)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = SegmentorForward(model)(x), ref(x)
    assert ours.shape == theirs.shape == (2, 4, 64, 96)  # resized to x
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match='drop --backbone-only'):
        hf_segformer(model.backbone)
