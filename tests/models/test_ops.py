"""Tests of mmseg_plugins/models/ops.py."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmseg_plugins.models.ops import (DropPath, adaptive_avg_pools,
                                      adaptive_pooling_matrix,
                                      exportable_adaptive_avg_pool2d,
                                      exporting, nchw_to_nlc, nlc_to_nchw)


def test_drop_path_zeroes_whole_samples_and_rescales_the_rest():
    drop = DropPath(0.5).train()
    x = torch.ones(64, 3, 4)
    out = drop(x)
    per_sample = out.reshape(64, -1)
    # each sample is either dropped (0) or kept and scaled by 1 / 0.5
    assert set(per_sample.unique().tolist()) <= {0., 2.}
    assert (per_sample == per_sample[:, :1]).all()
    assert 0 < int((per_sample[:, 0] == 0).sum()) < 64
    assert drop.eval()(x) is x  # identity in eval mode
    assert DropPath(0.).train()(x) is x


def test_drop_path_draws_like_timm_and_mmcv():
    """The same uniform draw per sample as timm's and mmcv's DropPath, so a
    seeded run drops the same samples."""
    x = torch.randn(8, 5)
    torch.manual_seed(3)
    out = DropPath(0.3).train()(x)
    torch.manual_seed(3)
    mask = (0.7 + torch.rand(8, 1)).floor()
    torch.testing.assert_close(out, x / 0.7 * mask)


def test_token_and_map_layouts_are_views():
    x = torch.randn(2, 12, 5)  # (B, H*W, C)
    img = nlc_to_nchw(x, (3, 4))
    assert img.shape == (2, 5, 3, 4)
    assert img.data_ptr() == x.data_ptr()
    assert img.is_contiguous(memory_format=torch.channels_last)
    back = nchw_to_nlc(img)
    assert back.data_ptr() == x.data_ptr() and torch.equal(back, x)
    with pytest.raises(AssertionError, match='does not match 4x4'):
        nlc_to_nchw(x, (4, 4))


# sizes 1 to 7 (smaller than the 6 bins, equal, larger), primes, powers of
# two and their neighbours
POOL_SIZES = [1, 2, 3, 5, 6, 7, 11, 13, 17, 31, 32, 33, 64, 97]


@pytest.mark.parametrize('bins', [1, 2, 3, 6, (2, 3), (None, 3), (6, None)])
def test_exportable_adaptive_pool_equals_pytorch_on_size_grid(bins):
    g = torch.Generator().manual_seed(0)
    for h in POOL_SIZES:
        for w in POOL_SIZES:
            x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=g)
            torch.testing.assert_close(
                exportable_adaptive_avg_pool2d(x, bins),
                F.adaptive_avg_pool2d(x, bins), rtol=0, atol=1e-12,
                msg=f'{h}x{w} -> {bins}')


def test_adaptive_pooling_matrix_rows_are_the_bins():
    # 5 positions into 3 bins: [0, 2), [1, 4), [3, 5) (overlapping)
    m = adaptive_pooling_matrix(5, 3, torch.empty(0, dtype=torch.float64))
    expected = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0],
                             [0, 0, 0, 1, 1]], dtype=torch.float64)
    torch.testing.assert_close(m, expected / expected.sum(1, keepdim=True))
    # 2 positions into 6 bins: every position repeated three times
    m = adaptive_pooling_matrix(2, 6, torch.empty(0))
    assert m.tolist() == [[1., 0.]] * 3 + [[0., 1.]] * 3


def test_stacked_pooling_matrix_is_the_single_ones():
    """Several bin counts: each count's matrix, stacked in order."""
    like = torch.empty(0, dtype=torch.float64)
    for size in POOL_SIZES:
        stacked = adaptive_pooling_matrix(size, (1, 2, 3, 6), like)
        expected = torch.cat([adaptive_pooling_matrix(size, n, like)
                              for n in (1, 2, 3, 6)])
        assert stacked.shape == (12, size)
        assert torch.equal(stacked, expected)


def test_adaptive_avg_pools_while_exporting_equal_pytorch(monkeypatch):
    """The export form (stacked matrices) gives each map's own bins."""
    import mmseg_plugins.models.ops as ops
    monkeypatch.setattr(ops, 'exporting', lambda: True)
    g = torch.Generator().manual_seed(0)
    for h, w in [(1, 1), (5, 7), (6, 6), (17, 64), (97, 13)]:
        maps = [torch.randn(2, c, h, w, dtype=torch.float64, generator=g)
                for c in (1, 2, 3, 4)]
        for ours, m, s in zip(adaptive_avg_pools(maps, (1, 2, 3, 6)), maps,
                              (1, 2, 3, 6)):
            torch.testing.assert_close(ours, F.adaptive_avg_pool2d(m, s),
                                       rtol=0, atol=1e-12,
                                       msg=f'{h}x{w} -> {s}')


class _Pyramid(nn.Module):
    """The pooling pyramid of AFFormer and UPerHead, through the
    dispatching :func:`adaptive_avg_pools`."""

    def forward(self, x):
        sizes = (1, 2, 3, 6)
        return torch.cat([p.flatten(1) for p in adaptive_avg_pools(
            [x] * len(sizes), sizes)], dim=1)


@pytest.mark.parametrize('dynamo', [True, False], ids=['dynamo',
                                                       'torchscript'])
def test_adaptive_pool_stays_size_generic_through_both_exporters(
        tmp_path, dynamo):
    """Exported at 64x64, the pools give PyTorch's bins at other sizes,
    including sizes no bin count divides and sizes below 6 (where
    ``F.adaptive_avg_pool2d``'s own export freezes the traced bins)."""
    ort = pytest.importorskip('onnxruntime')
    assert not exporting()
    path = str(tmp_path / 'pool.onnx')
    x = torch.randn(2, 4, 64, 64)
    if dynamo:
        dim = torch.export.Dim.DYNAMIC
        torch.onnx.export(_Pyramid().eval(), (x, ), path, dynamo=True,
                          dynamic_shapes=({0: dim, 2: dim, 3: dim}, ),
                          input_names=['x'], verbose=False)
    else:
        torch.onnx.export(_Pyramid().eval(), (x, ), path, dynamo=False,
                          input_names=['x'],
                          dynamic_axes={'x': {0: 'b', 2: 'h', 3: 'w'}})
    session = ort.InferenceSession(path)
    for shape in [(1, 4, 64, 64), (3, 4, 17, 5), (1, 4, 2, 100),
                  (2, 4, 97, 61), (1, 4, 384, 640)]:
        xi = torch.randn(*shape)
        ours = session.run(None, {'x': xi.numpy()})[0]
        expected = torch.cat([F.adaptive_avg_pool2d(xi, s).flatten(1)
                              for s in (1, 2, 3, 6)], dim=1)
        torch.testing.assert_close(torch.from_numpy(ours), expected,
                                   rtol=1e-5, atol=1e-5, msg=str(shape))


def test_linear_of_activation_keeps_the_activation_once():
    """Same values and gradients as linear(act(h)) in float64; the
    activation's output is freed after the forward (recomputed in
    backward), and both modules are called as modules."""
    import gc
    import weakref

    from mmseg_plugins.models.ops import linear_of_activation
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(6, 3).double()
    h0 = torch.randn(2, 5, 6, dtype=torch.float64, generator=g)
    outputs, calls = [], []

    class Recorded(nn.GELU):
        def forward(self, x):
            out = super().forward(x)
            outputs.append(weakref.ref(out))
            return out

    act = Recorded()
    lin.register_forward_hook(lambda *a: calls.append('linear'))
    h = h0.clone().requires_grad_()
    out = linear_of_activation(lin, act, h)
    gc.collect()
    assert outputs[0]() is None  # not kept by autograd
    out.pow(2).sum().backward()
    grads = [h.grad] + [p.grad.clone() for p in lin.parameters()]
    lin.zero_grad()
    ref_h = h0.clone().requires_grad_()
    expected = lin(F.gelu(ref_h))
    expected.pow(2).sum().backward()
    torch.testing.assert_close(out, expected)
    theirs_grads = [ref_h.grad] + [p.grad for p in lin.parameters()]
    for ours, theirs in zip(grads, theirs_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert calls == ['linear', 'linear']
