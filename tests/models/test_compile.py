"""torch.compile compatibility: every backbone's training graph and every
segmentor's inference graph are captured by TorchDynamo as one graph (no
graph breaks), and the compiled backbone computes the same features and
gradients (``aot_eager`` backend: graph capture and AOT autograd without
code generation, so no compiler is needed on the test machine)."""
import pytest
import torch
from torch import _dynamo

from helpers import one_block_per_stage_arch
from mmseg_plugins.models import AFFormer, MiT, MPViT


def _one_block_per_stage(family, variant, **kwargs):
    return family(one_block_per_stage_arch(family, variant), **kwargs)


@pytest.mark.parametrize('build', [
    lambda: _one_block_per_stage(MiT, 'b0', drop_path_rate=0.),
    lambda: _one_block_per_stage(AFFormer, 'tiny'),
    lambda: _one_block_per_stage(MPViT, 'tiny')],
    ids=['mit-b0', 'afformer-tiny', 'mpvit-tiny'])
def test_backbone_compiles_without_graph_breaks(build):
    """The training graph (the harder one: autograd, GELU recomputation)
    compiles whole and gives the eager features and gradients; the
    inference graph is checked whole by the segmentor test below."""
    _dynamo.reset()
    model = build().train()  # no dropout or drop path: deterministic
    x = torch.randn(2, 3, 64, 96)
    expected = model(x)
    sum(f.mean() for f in expected).backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()
                   if p.requires_grad}
    model.zero_grad(set_to_none=True)
    # fullgraph=True: a graph break raises (with its reason) instead of
    # splitting the module into several graphs
    compiled = torch.compile(model, backend='aot_eager', dynamic=False,
                             fullgraph=True)
    features = compiled(x)
    for a, b in zip(features, expected):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
    sum(f.mean() for f in features).backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.requires_grad}
    assert grads.keys() == eager_grads.keys()
    assert all(g is not None for g in grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-5,
                                   rtol=1e-4, msg=name)


@pytest.mark.parametrize('name', ['segformer_mit-b0_shapes-128x128',
                                  'afformer_tiny_shapes-128x128',
                                  'mpvit_tiny_upernet_shapes-128x128'])
def test_segmentor_inference_is_one_graph(name):
    """The whole inference computation (backbone, decode head -- SegFormer's
    folded head, UPerHead's pyramid pooling -- and the segmentor's
    plumbing) is one graph: nothing in it needs the host mid-call, which is
    what CUDA graph capture (``--compile reduce-overhead``) requires. The
    demo segmentors with one block per stage: a graph break in any kind of
    block still shows."""

    from helpers import ROOT
    from mmseg_plugins.builder import build_model
    from mmseg_plugins.config import load_config
    _dynamo.reset()
    cfg = load_config(f'{ROOT}/configs/demo/{name}.py')
    # the demo's modules, one block per stage (every kind of block traced)
    family = {'MiT': MiT, 'AFFormer': AFFormer, 'MPViT': MPViT}[
        cfg.model.backbone.type.split('.')[-1]]
    cfg.model.backbone.arch = one_block_per_stage_arch(
        family, cfg.model.backbone.get('arch', 'b0'))
    model = build_model(cfg, None, 'cpu')
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        explanation = _dynamo.explain(
            lambda t: model(t, mode='tensor'))(x)
    assert explanation.graph_count == 1
    assert explanation.graph_break_count == 0, explanation.break_reasons
