"""Reduced precision: every family's segmentor under bfloat16 autocast on
the CPU gives finite logits close to float32 (the GPU paths, float16 and
bfloat16 training, are exercised on a GPU only)."""
import pytest
import torch

from helpers import ROOT
from mmseg_plugins.builder import build_model

CONFIGS = ['segformer_mit-b0_shapes-128x128', 'afformer_tiny_shapes-128x128',
           'mpvit_tiny_upernet_shapes-128x128']


@pytest.mark.parametrize('name', CONFIGS)
def test_bfloat16_autocast_logits_close_to_float32(name):
    model = build_model(f'{ROOT}/configs/demo/{name}.py', None, 'cpu')
    # small: bfloat16 is emulated (slow) on CPUs without bf16 instructions
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x, mode='tensor')
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits = model(x, mode='tensor')
    assert torch.isfinite(logits).all()
    err = (logits.float() - expected).abs().max() / expected.abs().max()
    assert err < 5e-2, float(err)
