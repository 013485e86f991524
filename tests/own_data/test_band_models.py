"""Grey and multi-band models prepared by ``prepare_dataset.py`` through
every path that feeds them (``mmseg_plugins.model_input``): tools/
inference.py plain, tiled and from their ONNX export (verified), and the
refusal of images with other channel counts."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest

from own_data_helpers import (convert_images, initial_checkpoint, load_tool,
                              make_dataset, printed_config, run_tool_main)

tifffile = pytest.importorskip('tifffile')
pytest.importorskip('onnxruntime')


def _grey_png(stem, rgb):
    cv2.imwrite(stem + '.png', rgb[..., 1])
    return stem + '.png'


def _four_band_tiff(stem, rgb):
    """16-bit RGB and a fourth band (planar, as satellite images are)."""
    bands = rgb.astype(np.uint16) * 257
    nir = 65535 - bands[..., :1] // 2
    tifffile.imwrite(stem + '.tif', np.moveaxis(
        np.concatenate([bands, nir], axis=2), 2, 0),
        photometric='minisblack', planarconfig='separate')
    return stem + '.tif'


def _labels(out_dir):
    """{name: labels} of an inference output folder (PNG or TIFF)."""
    out = {}
    for path in sorted(glob.glob(osp.join(out_dir, 'labels', '*'))):
        name = osp.splitext(osp.basename(path))[0]
        out[name] = tifffile.imread(path) if path.endswith('.tif') else \
            cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return out


@pytest.mark.parametrize('kind,convert,channels,other', [
    ('grey', _grey_png, 1, _four_band_tiff),
    ('4-band', _four_band_tiff, 4, _grey_png)])
def test_prepared_band_model_labels_tiles_and_exports(
        kind, convert, channels, other, tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_dataset(root, layout='flat', n=(3, 2), size=64)
    convert_images(root, convert)
    code, report, err = run_tool_main(load_tool('prepare_dataset.py'), [
        root, '--model', 'demo/segformer_mit-b0_shapes-128x128', '--out',
        str(tmp_path / 'prepared'), '--iters', '2', '--num-workers', '0'],
        capsys)
    assert code == 0, err
    assert f'in_channels={channels}' in report
    config = printed_config(report)
    ckpt = initial_checkpoint(config, tmp_path / 'init.pth')
    images = osp.join(root, 'images')
    inference = load_tool('inference.py')

    def label(checkpoint, out, *options):
        code, text, err = run_tool_main(inference, [
            config, checkpoint, images, '--out-dir', str(tmp_path / out),
            *options], capsys)
        assert code == 0, err
        return _labels(tmp_path / out), text

    plain, text = label(ckpt, 'plain')
    assert len(plain) == 5 and 'labelled 5 images' in text
    # overlays are 8-bit colour pictures of the grey / 4-band inputs
    overlay = cv2.imread(str(tmp_path / 'plain' / 'overlay' /
                             'val_00.png'), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (64, 64, 3) and overlay.std() > 10
    # one tile the size of the image: the plain path's labels exactly
    whole, _ = label(ckpt, 'tile64', '--tile', '64')
    assert all(np.array_equal(whole[n], plain[n]) for n in plain)
    tiled, _ = label(ckpt, 'tiled', '--tile', '32', '--overlap', '8')
    assert all(tiled[n].shape == (64, 64) for n in plain)
    # ONNX: exported, verified against PyTorch, labels as PyTorch's
    onnx = str(tmp_path / 'model.onnx')
    code, text, err = run_tool_main(
        load_tool(osp.join('deployment', 'pytorch2onnx.py')),
        [config, ckpt, onnx, '--shape', '64', '64', '--dynamic',
         '--exporter', 'torchscript'], capsys)
    assert code == 0, err
    assert text.count('max abs diff') == 3, text
    from mmseg_plugins.deploy.onnx_runtime import OnnxSegmentor
    runner = OnnxSegmentor(onnx)
    assert runner.in_channels == channels and runner.band_input
    from_onnx, _ = label(onnx, 'onnx')
    for name in plain:  # random weights: near-ties may flip a few pixels
        assert (from_onnx[name] == plain[name]).mean() > 0.999
    onnx_tiled, _ = label(onnx, 'onnx_tiled', '--tile', '32', '--overlap',
                          '8')
    for name in plain:
        assert (onnx_tiled[name] == tiled[name]).mean() > 0.999
    if channels == 1:  # a grey video (decoded as BGR): every frame
        video = str(tmp_path / 'clip.mp4')
        writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5,
                                 (64, 64))
        for path in sorted(glob.glob(osp.join(images, '*.png')))[:3]:
            writer.write(cv2.cvtColor(cv2.imread(path, 0),
                                      cv2.COLOR_GRAY2BGR))
        writer.release()
        code, text, err = run_tool_main(inference, [
            config, ckpt, video, '--out-dir', str(tmp_path / 'video')],
            capsys)
        assert code == 0 and 'labelled 3 images' in text, err
    # an image of another channel count: one error line, nothing written
    wrong = str(tmp_path / 'wrong')
    path = other(wrong, np.zeros((64, 64, 3), np.uint8))
    for options in ([], ['--tile', '32']):
        code, _, err = run_tool_main(inference, [
            config, ckpt, path, '--out-dir', str(tmp_path / 'refused'),
            *options], capsys)
        other_channels = 5 - channels
        assert code == 2
        assert err.strip().splitlines()[-1] == (
            f'error: {path} has {other_channels} channel'
            f'{"s" if other_channels > 1 else ""}, the model takes '
            f'{channels} ({channels}-band '
            f'{"uint8" if channels == 1 else "uint16"} images)')
        assert not osp.exists(tmp_path / 'refused')
