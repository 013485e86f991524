"""Tests of mmseg_plugins_mmcv_ops/ops.py: the pure-PyTorch mmcv.ops."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_plugins_mmcv_ops import (has_mmcv_ext,
                                    mmseg_imports_mmcv_ops_unguarded)
from mmseg_plugins_mmcv_ops.ops import (FALLBACK_FLAG, make_fallback_module,
                                        point_sample, sigmoid_focal_loss)


def test_fallback_module_holds_the_two_ops_and_names_full_mmcv():
    module = make_fallback_module()
    assert getattr(module, FALLBACK_FLAG)
    assert module.point_sample is point_sample
    assert module.sigmoid_focal_loss is sigmoid_focal_loss
    with pytest.raises(ModuleNotFoundError,
                       match=r'mmcv.ops.nms: .*full mmcv'):
        module.nms
    with pytest.raises(AttributeError):
        module.__file__


@pytest.mark.skipif(
    has_mmcv_ext() or not mmseg_imports_mmcv_ops_unguarded(),
    reason='no fallback: full mmcv, or an mmseg guarding its mmcv.ops imports')
def test_compiled_only_op_names_full_mmcv():
    with pytest.raises(ModuleNotFoundError, match=r'full mmcv'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    with pytest.raises(ModuleNotFoundError):  # submodules fail cleanly
        import mmcv.ops.multi_scale_deform_attn  # noqa: F401
    # mmseg's guarded imports degrade to None instead of failing
    from mmseg.models.decode_heads import cc_head
    assert cc_head.CrissCrossAttention is None


def test_point_sample_reads_pixel_centres():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    # centre of pixel (row 2, col 3) in [0, 1] coordinates (x, y)
    pts = torch.tensor([[[3.5 / 5, 2.5 / 4]]]).repeat(2, 1, 1)  # (N, P, 2)
    out = point_sample(x, pts)  # (N, C, P)
    assert out.shape == (2, 3, 1)
    torch.testing.assert_close(out[..., 0], x[:, :, 2, 3])
    grid = pts[:, :, None, :]  # (N, 1, 1, 2)
    assert point_sample(x, grid).shape == (2, 3, 1, 1)


def test_point_sample_matches_grid_sample_align_corners():
    x = torch.randn(1, 2, 6, 7)
    pts = torch.rand(1, 9, 2)
    ref = F.grid_sample(x, (pts * 2 - 1)[:, :, None], align_corners=True)
    torch.testing.assert_close(
        point_sample(x, pts, align_corners=True), ref[..., 0])


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5)])
def test_sigmoid_focal_loss_matches_mmseg_python_version(gamma, alpha):
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    logits = torch.randn(11, 5)
    target = torch.randint(0, 6, (11, ))  # 5 == background
    one_hot = F.one_hot(target, 6)[:, :5]
    ref = py_sigmoid_focal_loss(
        logits, one_hot, gamma=gamma, alpha=alpha, reduction='none')
    ours = sigmoid_focal_loss(logits, target, gamma, alpha, None, 'none')
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, target, gamma, alpha, None, 'sum'),
        ref.sum())
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, target, gamma, alpha, None, 'mean'),
        ref.sum() / 11)
