"""``with_cp`` and ``frozen_stages`` of every backbone
(mmseg_plugins/models/backbone_base.py and the families' stages), on the
one-block-per-stage architectures in float64."""
import pytest
import torch
import torch.utils.checkpoint
from torch.nn.modules.batchnorm import _BatchNorm

from helpers import one_block_per_stage_arch
from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.models import AFFormer, MiT, MPViT

FAMILIES = {'MiT': (MiT, 'b0'), 'AFFormer': (AFFormer, 'tiny'),
            'MPViT': (MPViT, 'tiny')}


def _build(name, drop_path_rate=0., **kwargs):
    family, variant = FAMILIES[name]
    torch.manual_seed(0)
    model = family(one_block_per_stage_arch(family, variant),
                   drop_path_rate=drop_path_rate, **kwargs)
    return model.double()


def _randomise_norm_statistics(model):
    """Non-trivial running statistics, so that train/eval mode shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape,
                                             generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape,
                                           generator=g) + 0.5)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_with_cp_same_outputs_gradients_and_statistics(name, monkeypatch):
    # with stochastic depth: the recomputation must draw the same masks
    plain = _build(name, drop_path_rate=0.3)
    ckpt = _build(name, drop_path_rate=0.3, with_cp=True)
    _randomise_norm_statistics(plain)
    ckpt.load_state_dict(plain.state_dict())
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs.get('use_reentrant'))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', spy)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    outs = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(2)
        y = model(x)
        sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)
             ).sum() for o in y).backward()
        outs.append(y)
    # one checkpoint per block (MiT: one per stage here) or per stage, all
    # non-reentrant
    assert calls == [False] * 4
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    grads = {n: p.grad for n, p in plain.named_parameters()}
    for n, p in ckpt.named_parameters():
        assert p.grad is not None, n
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-10,
                                   atol=1e-12)
    # the recomputation does not update BatchNorm statistics a second time
    plain_buffers = dict(plain.named_buffers())
    for n, b in ckpt.named_buffers():
        torch.testing.assert_close(b, plain_buffers[n], rtol=0, atol=0)
    # without autograd (inference) nothing is checkpointed
    calls.clear()
    with torch.no_grad():
        ckpt.eval()(x)
    assert not calls


def _frozen_and_trainable(model, frozen_stages):
    stem = model.stem_modules()
    frozen = stem + list(model.stages[:frozen_stages])
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    return frozen, frozen_ids


@pytest.mark.parametrize('name', list(FAMILIES))
@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages(name, frozen_stages):
    model = _build(name, frozen_stages=frozen_stages)
    _randomise_norm_statistics(model)
    frozen, frozen_ids = _frozen_and_trainable(model, frozen_stages)
    assert frozen_ids
    for _ in range(2):  # train() re-applies it
        model.train()
        for module in frozen:
            assert all(not m.training for m in module.modules())
        for p in model.parameters():
            assert p.requires_grad == (id(p) not in frozen_ids)
        assert model.stages[-1].training
    before = {n: b.clone() for n, b in model.named_buffers()}
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    sum(o.sum() for o in model(x)).backward()
    for p in model.parameters():
        assert (p.grad is None) == (id(p) in frozen_ids)
    # frozen BatchNorms normalise with (and keep) their statistics; the
    # others update theirs
    frozen_norms = {id(m) for f in frozen for m in f.modules()
                    if isinstance(m, _BatchNorm)}
    for n, m in model.named_modules():
        if isinstance(m, _BatchNorm):
            same = torch.equal(m.running_mean,
                               before[f'{n}.running_mean'])
            assert same == (id(m) in frozen_norms), n


def test_frozen_stage_dropout_is_off():
    """MiT's frozen stages run in eval mode: their dropout is off."""
    model = MiT(one_block_per_stage_arch(MiT, 'b0'), drop_rate=0.5,
                attn_drop_rate=0.5, frozen_stages=1).train()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        first, second = model(x), model(x)
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)
    assert not torch.equal(first[1], second[1])  # stage 1 trains


def test_mit_frozen_stages_zero_is_the_first_patch_embedding():
    model = MiT(one_block_per_stage_arch(MiT, 'b0'), frozen_stages=0)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {f'stages.0.patch_embed.{k}' for k in (
        'proj.weight', 'proj.bias', 'norm.weight', 'norm.bias')}


@pytest.mark.parametrize('name', list(FAMILIES))
@pytest.mark.parametrize('bad', [-2, 5, 1.0, True])
def test_bad_frozen_stages_refused(name, bad):
    with pytest.raises(InvalidInputError, match='frozen_stages'):
        _build(name, frozen_stages=bad)
