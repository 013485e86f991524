"""The one image-loading rule of a model (mmseg_plugins.model_input):
what each config takes, the conversions it allows and refuses, the
rendering for overlays and the example inputs."""
import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmseg_plugins.errors import ConfigError, InvalidInputError
from mmseg_plugins.model_input import ModelInput


def _config(channels=3, loader='LoadImageFromFile', **pre):
    step = dict(type=loader)
    if 'AnyBands' in loader:
        step.update(channels=channels, dtype='uint16')
    return Config(dict(
        model=dict(backbone=dict(in_channels=channels),
                   data_preprocessor=dict(**pre)),
        test_pipeline=[step, dict(type='PackSegInputs')]))


def test_from_config_reads_channels_convention_and_normalisation():
    colour = ModelInput.from_config(_config(
        mean=[1, 2, 3], std=[4, 5, 6], bgr_to_rgb=True))
    assert colour.channels == 3 and not colour.bands
    assert colour.bgr_to_rgb
    assert colour.pad_value(normalised=False) == [3., 2., 1.]  # BGR order
    bands = ModelInput.from_config(_config(
        4, 'mmseg_plugins.LoadImageAnyBands', mean=[0] * 4, std=[1] * 4))
    assert (bands.channels, bands.bands, bands.dtype) == (4, True, 'uint16')
    with pytest.raises(ConfigError, match='in_channels=1, but the test '
                       'pipeline loads 3-channel colour'):
        ModelInput.from_config(_config(1))
    with pytest.raises(ConfigError, match='mean has 3 values, the '
                       'backbone takes 4'):
        ModelInput.from_config(_config(4, 'LoadImageAnyBands',
                                       mean=[0] * 3, std=[1] * 3))


def test_conversions_that_are_exact_and_refusals():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (5, 6), np.uint8)
    colour = ModelInput(3)
    np.testing.assert_array_equal(colour.conform(grey),
                                  np.repeat(grey[..., None], 3, axis=2))
    rgba = rng.integers(0, 255, (5, 6, 4), np.uint8)
    np.testing.assert_array_equal(colour.conform(rgba), rgba[..., :3])
    with pytest.raises(InvalidInputError, match=r'a.tif has 4 channels, the '
                       r'model takes 3 \(3-channel colour images\)'):
        colour.conform(rgba, 'a.tif', alpha=False)  # TIFF band 4 is data
    one = ModelInput(1, bands=True, dtype='uint8')
    as_rgb = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(one.conform(as_rgb), grey[..., None])
    with pytest.raises(InvalidInputError, match='is a colour image'):
        one.conform(rgba[..., :3])
    # a grey video frame decodes with channels 3 levels apart: its mean
    noisy = as_rgb.astype(np.int16) + np.array([0, 3, -3])
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    got = one.conform(noisy)[..., 0].astype(int)
    assert np.abs(got - grey).max() <= 1
    with pytest.raises(InvalidInputError, match='differing by up to 10'):
        one.conform(np.full((2, 2, 3), [100, 100, 110], np.uint8))
    with pytest.raises(InvalidInputError, match='has uint16 samples, the '
                       'model was trained on uint8'):
        one.conform(grey.astype(np.uint16))
    four = ModelInput(4, bands=True)
    with pytest.raises(InvalidInputError,
                       match='has 5 channels, the model takes 4'):
        four.conform(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(InvalidInputError,
                       match='has 1 channel, the model takes 4'):
        four.conform(grey)


def test_files_read_as_the_loader_reads_them(tmp_path):
    tifffile = pytest.importorskip('tifffile')
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    png = str(tmp_path / 'a.png')
    cv2.imwrite(png, rgb[..., ::-1])
    assert ModelInput(3).read(png)[0, 0].tolist() == [0, 0, 200]  # BGR
    bands = ModelInput(3, bands=True, dtype='uint8').read(png)
    assert bands.dtype == np.float32 and bands[0, 0].tolist() == [200, 0, 0]
    tif = str(tmp_path / 'b.tif')
    tifffile.imwrite(tif, np.zeros((4, 5, 4), np.uint16))
    with pytest.raises(InvalidInputError, match='has 4 channels'):
        ModelInput(3).read(tif)
    frame = rgb[..., ::-1]  # a video frame: BGR
    assert ModelInput(3, bands=True).from_opencv(frame, 'f')[0, 0].tolist(
    ) == [200, 0, 0]


def test_display_is_8bit_colour():
    bands = np.zeros((10, 10, 4), np.float32)
    bands[..., 0] = np.linspace(0, 60000, 100).reshape(10, 10)
    picture = ModelInput(4, bands=True, dtype='uint16').display(bands)
    assert picture.shape == (10, 10, 3) and picture.dtype == np.uint8
    assert picture[..., 2].max() == 255 and picture[..., 2].min() == 0
    assert picture[..., :2].max() == 0  # band 1 is red: BGR's last
    grey = ModelInput(1, bands=True, dtype='uint8').display(
        np.full((3, 3, 1), 7, np.float32))
    assert grey.shape == (3, 3, 3) and (grey == 7).all()


def test_examples_have_the_models_channels_and_scale():
    model = ModelInput(2, bands=True, mean=[1000., 5.], std=[10., 1.])
    raw = model.example(2, 8, 9, raw=True)
    assert raw.shape == (2, 2, 8, 9)
    assert abs(raw[:, 0].mean().item() - 1000) < 5
    assert model.example(1, 4, 4, raw=False).shape == (1, 2, 4, 4)
