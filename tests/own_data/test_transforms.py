"""Non-RGB images: the band loader, the statistics and the config."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmseg_plugins.own_data.transforms import (LoadImageAnyBands,
                                               channel_statistics,
                                               read_image_bands)

from own_data_helpers import (load_tool, make_dataset, prepared_config,
                              run_tool_main)

tifffile = pytest.importorskip('tifffile')


def test_planar_tiff_comes_bands_last(tmp_path):
    bands = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    path = str(tmp_path / 'a.tif')
    tifffile.imwrite(path, bands)
    img = read_image_bands(path)
    assert img.shape == (6, 7, 5) and img.dtype == np.uint16
    np.testing.assert_array_equal(img[..., 2], bands[2])
    out = LoadImageAnyBands(channels=5)(dict(img_path=path))
    assert out['img'].dtype == np.float32 and out['img_shape'] == (6, 7)
    with pytest.raises(ValueError, match='has 5 bands, the dataset 3'):
        LoadImageAnyBands(channels=3)(dict(img_path=path))


def test_colour_png_is_rgb_and_statistics(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[:2, :, 2] = 10
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, rgb[..., ::-1])
    assert read_image_bands(path)[0, 0].tolist() == [200, 0, 10]
    n, mean, std, dtype = channel_statistics([path])
    assert n == 3 and mean == [200.0, 0.0, 5.0]
    assert std == [1.0, 1.0, 5.0]  # zero std becomes 1
    gray = str(tmp_path / 'g.png')
    cv2.imwrite(gray, rgb[..., 0])
    with pytest.raises(ValueError, match='different band counts'):
        channel_statistics([path, gray])


def test_grayscale_16bit_dataset_config(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, layout='mmseg', n=(3, 2))
    for d, _, files in os.walk(osp.join(root, 'img_dir')):
        for f in files:
            p = osp.join(d, f)
            grey = cv2.imread(p)[..., 1].astype(np.uint16) * 257
            cv2.imwrite(p[:-4] + '.png', grey)
            os.remove(p)
    out = str(tmp_path / 'out')
    code, report, err = run_tool_main(load_tool('prepare_dataset.py'), [
        root, '--model', 'demo/segformer_mit-b0_shapes-128x128', '--out',
        out, '--iters', '2', '--num-workers', '0'], capsys)
    assert code == 0, err
    assert '1 channel(s), 16-bit' in report and 'in_channels=1' in report
    cfg = Config.fromfile(prepared_config(out))
    assert cfg.model.backbone.in_channels == 1
    pre = cfg.model.data_preprocessor
    assert len(pre.mean) == len(pre.std) == 1 and not pre.bgr_to_rgb
    assert pre.mean[0] > 255  # 16-bit statistics
    loader = cfg.train_dataloader.dataset.pipeline[0]
    assert loader.type == 'mmseg_plugins.LoadImageAnyBands'
    assert all(t.type != 'PhotoMetricDistortion'
               for t in cfg.train_dataloader.dataset.pipeline)
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    assert sample['inputs'].shape[0] == 1  # (1, H, W)
