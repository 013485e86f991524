"""Tests of mmseg_plugins/deploy/onnx_runtime.py: the ONNX Runtime runner
reads what the export stored and gives mmseg's predictions."""
import pytest
import torch
import torch.nn as nn

from mmseg_plugins.deploy.onnx_runtime import (OnnxSegmentor, is_onnx_model,
                                               onnxruntime_providers)

pytest.importorskip('onnxruntime')


def test_metadata_of_the_config_is_exposed(demo_export):
    path, _ = demo_export('afformer', dynamic=True)
    session = OnnxSegmentor(path)
    assert session.classes == ['background', 'disk', 'square', 'triangle']
    assert session.palette[1] == [220, 60, 60]
    assert session.test_cfg == {'mode': 'whole'}
    assert (session.output, session.normalize, session.bgr_to_rgb) == \
        ('logits', True, True)
    assert session.mean == pytest.approx([123.675, 116.28, 103.53])
    assert session.std == pytest.approx([58.395, 57.12, 57.375])
    assert (session.num_classes, session.align_corners,
            session.min_input_size) == (4, False, 32)
    assert (session.exporter, session.dynamic, session.shape) == \
        ('torchscript', True, [64, 64])
    assert session.quantization is None
    with pytest.raises(AttributeError):
        session.no_such_field


def test_masks_equal_mmseg_predictions_on_raw_images(demo_export,
                                                     demo_segmentor):
    """A raw BGR image through the file (normalisation inside) gives the
    mask of mmseg's own predict path (its data preprocessor, whole-image
    inference, argmax)."""
    from mmseg.structures import SegDataSample
    path, _ = demo_export('segformer', dynamic=True, output='mask')
    _, model = demo_segmentor('segformer')
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 72, 104), generator=g,
                          dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(img_shape=(72, 104),
                                         ori_shape=(72, 104)))
    with torch.no_grad():
        expected = model.test_step(dict(inputs=[image],
                                        data_samples=[sample]))[0]
    session = OnnxSegmentor(path)
    mask = session(session.prepare(image))
    assert mask.shape == (1, 72, 104) and mask.dtype == torch.int64
    agree = (mask[0] == expected.pred_sem_seg.data[0]).float().mean()
    assert agree > 0.999  # pixels may differ only at near-ties


def test_prepare_normalises_for_graphs_without_normalisation(demo_export):
    inside, _ = demo_export('afformer', dynamic=True)
    outside, _ = demo_export('afformer', dynamic=True, normalize=False)
    with_norm, without = OnnxSegmentor(inside), OnnxSegmentor(outside)
    assert not without.normalize
    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8)
    assert torch.equal(with_norm.prepare(image), image[None].float())
    prepared = without.prepare(image)
    expected = (image[[2, 1, 0]].float()[None] -
                torch.tensor(without.mean).view(1, 3, 1, 1)) / \
        torch.tensor(without.std).view(1, 3, 1, 1)
    torch.testing.assert_close(prepared, expected)
    torch.testing.assert_close(without(prepared),
                               with_norm(with_norm.prepare(image)),
                               rtol=1e-4, atol=1e-5)


def test_refuses_files_that_are_not_its_models(tmp_path):
    with pytest.raises(ValueError, match='ONNX file not found'):
        OnnxSegmentor(str(tmp_path / 'missing.onnx'))
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}}, checkpoint)
    assert not is_onnx_model(str(checkpoint))
    with pytest.raises(ValueError, match='not a loadable ONNX model'):
        OnnxSegmentor(str(checkpoint))
    foreign = tmp_path / 'conv.onnx'
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8), ),
                      str(foreign), dynamo=False)
    assert is_onnx_model(str(foreign))
    with pytest.raises(ValueError, match='not one exported by mmseg_plugins'):
        OnnxSegmentor(str(foreign))


def test_refuses_inputs_the_model_cannot_take(demo_export):
    session = OnnxSegmentor(demo_export('afformer', dynamic=True)[0])
    with pytest.raises(ValueError, match='at least 32x32'):
        session(torch.rand(1, 3, 16, 64))
    with pytest.raises(ValueError, match=r'takes a \(B, 3, H, W\) batch, '
                       r'got \(3, 64, 64\)'):
        session(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match=r'got \(1, 1, 64, 64\)'):
        session(torch.rand(1, 1, 64, 64))  # a grey image, 3-channel model


def test_providers_fall_back_to_the_cpu():
    import onnxruntime as ort
    assert onnxruntime_providers('cpu') == ['CPUExecutionProvider']
    cuda = onnxruntime_providers('cuda:1')
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        assert cuda[0] == ('CUDAExecutionProvider', dict(device_id=1))
    else:
        assert cuda == ['CPUExecutionProvider']
