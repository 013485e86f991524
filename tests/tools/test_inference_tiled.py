"""tools/inference.py --tile: the real demo model tiled equals its
slide_inference, GeoTIFF in -> georeferenced tiled labels out, 16-bit input,
bad tiling refused."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import tifffile
import torch

from helpers import ROOT

TOOL = osp.join(ROOT, 'tools', 'inference.py')
CONFIG = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')
GEO = [(33550, 12, 3, (2.0, 2.0, 0.0), True),
       (33922, 12, 6, (0.0, 0.0, 0.0, 300000.0, 5000000.0, 0.0), True),
       (34735, 3, 8, (1, 1, 0, 1, 3072, 0, 1, 32632), True),
       (42113, 2, 2, '0', True)]


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('inference_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import mhca_reference as ref
    from mmseg_plugins.builder import build_model
    model = ref.randomise(build_model(CONFIG, None, 'cpu'), seed=3)
    path = tmp_path_factory.mktemp('ckpt') / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def scene(h, w, dtype=np.uint8):
    rng = np.random.default_rng(0)
    top = 65535 if dtype == np.uint16 else 255
    img = rng.integers(1, top, (h, w, 3)).astype(dtype)
    img[h // 3:, : w // 2] //= 3
    return img


def test_tiled_logits_equal_slide_inference(checkpoint):
    from mmseg_plugins.forward import slide_logits
    from mmseg_plugins.inference import Segmenter, TileOptions
    seg = Segmenter(CONFIG, checkpoint, device='cpu',
                    tiling=TileOptions(64, 24))
    img = scene(100, 150).astype(np.float32)  # BGR
    bands = list(seg.tiler(batch_size=2).rows(
        lambda y1, y2, x1, x2: img[y1:y2, x1:x2], 100, 150))
    got = torch.cat([b for _, b in bands], dim=1)
    x = seg._prepare_windows(torch.from_numpy(img)[None])
    want = slide_logits(seg._network_logits, x, seg.num_classes, (64, 64),
                        (40, 40))[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    labels = seg([img.astype(np.uint8)])[0]
    np.testing.assert_array_equal(labels, want.argmax(0).numpy())


def test_geotiff_in_georeferenced_labels_out(tool, checkpoint, tmp_path):
    img = scene(90, 120, np.uint16)
    img[:4, :6] = 0  # nodata
    src = tmp_path / 'scene.tif'
    tifffile.imwrite(src, img, photometric='rgb', tile=(32, 32),
                     compression='zlib', extratags=GEO)
    out = tmp_path / 'out'
    tool.main([CONFIG, checkpoint, str(src), '--out-dir', str(out),
               '--device', 'cpu', '--tile', '64', '--overlap', '16',
               '--blend', 'smooth'])
    with tifffile.TiffFile(out / 'labels' / 'scene.tif') as tif:
        page = tif.pages.first
        labels = page.asarray()
        assert page.is_tiled and labels.shape == (90, 120)
        for code, _, _, value, _ in GEO[:3]:
            assert page.tags[code].value == value
        assert page.tags[42113].value == '255'
    assert (labels[:4, :6] == 255).all()
    assert labels[4:].max() < 255 and labels[:, 6:].max() < 255
    # the same labels as the API on the 8-bit image (16-bit / 257)
    from mmseg_plugins.inference import Segmenter, TileOptions
    seg = Segmenter(CONFIG, checkpoint, device='cpu',
                    tiling=TileOptions(64, 16, blend='smooth'))
    bgr = (img[..., ::-1].astype(np.float32) / 257)
    want = seg([bgr])[0]
    assert (labels[4:] == want[4:]).mean() > 0.999
    assert (out / 'color' / 'scene.png').is_file()
    assert (out / 'overlay' / 'scene.png').is_file()


@pytest.mark.parametrize('options,pattern', [
    (['--tile', '16'], r"--tile 16 is below the network's minimum"),
    (['--tile', '64', '--overlap', '64'], r'--overlap must be in \[0'),
    (['--tile', '64', '--scale', '0'], r'--scale must be positive'),
])
def test_bad_tiling_refused(tool, checkpoint, tmp_path, capsys, options,
                            pattern):
    import re
    src = tmp_path / 'a.tif'
    tifffile.imwrite(src, scene(40, 40))
    with pytest.raises(SystemExit) as exit_:
        from mmseg_plugins.cli import run_tool
        run_tool(tool.main, [CONFIG, checkpoint, str(src),
                             '--out-dir', str(tmp_path / 'o'),
                             '--device', 'cpu'] + options)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(pattern, err[0]), err
    assert not osp.exists(tmp_path / 'o' / 'labels')


def test_png_and_jpeg_labelled_row_by_row(tool, checkpoint, tmp_path):
    """PNG and JPEG inputs: the three PNGs, written row band by row band,
    hold what the API labels on the whole image (cv2.imread) and the
    colours and overlay drawn from them."""
    import cv2

    from mmseg_plugins.inference import (Segmenter, TileOptions, colorize,
                                         overlay)
    img = scene(100, 150)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'b.jpg'), img)
    out = tmp_path / 'out'
    tool.main([CONFIG, checkpoint, str(tmp_path / 'a.png'),
               str(tmp_path / 'b.jpg'), '--out-dir', str(out),
               '--device', 'cpu', '--tile', '64', '--overlap', '16'])
    seg = Segmenter(CONFIG, checkpoint, device='cpu',
                    tiling=TileOptions(64, 16))
    for name, source in (('a', 'a.png'), ('b', 'b.jpg')):
        bgr = cv2.imread(str(tmp_path / source))
        want = seg([bgr])[0]
        got = {kind: cv2.imread(str(out / kind / f'{name}.png'),
                                cv2.IMREAD_UNCHANGED)
               for kind in ('labels', 'color', 'overlay')}
        np.testing.assert_array_equal(got['labels'], want)
        np.testing.assert_array_equal(got['color'],
                                      colorize(want, seg.palette))
        np.testing.assert_array_equal(got['overlay'],
                                      overlay(bgr, want, seg.palette, 0.5))
    assert sorted(p.name for p in out.rglob('*')
                  if p.is_file()) == ['a.png', 'a.png', 'a.png',
                                      'b.png', 'b.png', 'b.png']
