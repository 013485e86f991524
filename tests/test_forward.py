"""Tests of mmseg_plugins/forward.py that depend on the OpenMMLab stack."""
import types

from mmseg_plugins.forward import SegmentorForward, swaps_bgr_to_rgb


def test_bgr_to_rgb_is_read_from_either_stacks_preprocessor(
        demo_segmentor):
    """Upstream mmseg's preprocessor has ``channel_conversion``, OneDL's
    mmengine's ``_channel_conversion``: the export and its metadata swap
    the channels as the config says on both."""
    cfg, model = demo_segmentor('segformer')
    assert cfg.model.data_preprocessor.bgr_to_rgb is True
    assert swaps_bgr_to_rgb(model.data_preprocessor) is True
    assert SegmentorForward(model).bgr_to_rgb is True
    assert swaps_bgr_to_rgb(types.SimpleNamespace(
        _channel_conversion=False, channel_conversion=True)) is True
    assert swaps_bgr_to_rgb(types.SimpleNamespace(
        _channel_conversion=True)) is True
    assert swaps_bgr_to_rgb(object()) is False
