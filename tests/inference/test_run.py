"""mmseg_plugins/inference/run.py: run_inference labels files, folders and
videos into an output folder (whole or tiled), reports what it skipped,
and refuses bad options before anything is written."""
import os

import cv2
import numpy as np
import pytest

from helpers import DEMO_CONFIG
from mmseg_plugins.errors import CheckpointError, InvalidInputError
from mmseg_plugins.inference import (InferenceOptions, Segmenter,
                                     TileOptions, run_inference)


def _scene(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 3:, :w // 2] //= 3
    return img


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_images_labelled_and_unreadable_ones_skipped(demo_checkpoint,
                                                     tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), _scene(40, 56))
    cv2.imwrite(str(src / 'b.png'), _scene(40, 56, 1))
    (src / 'broken.png').write_bytes(b'not an image')
    out = tmp_path / 'out'
    summary = run_inference(InferenceOptions(
        DEMO_CONFIG, demo_checkpoint, [str(src)], str(out), batch_size=2,
        device='cpu'))
    assert summary.labelled == 2 and not summary.tiled
    assert summary.skipped == [(str(src / 'broken.png'),
                                'not a readable image')]
    assert summary.message().startswith('labelled 2 images in ')
    assert summary.message().endswith(
        f'on cpu -> {out}/{{labels,color,overlay}}; skipped 1 input(s)')
    assert _files(out) == [f'{kind}/{name}.png' for kind in (
        'color', 'labels', 'overlay') for name in 'ab']
    want = Segmenter(DEMO_CONFIG, demo_checkpoint, device='cpu')(
        [cv2.imread(str(src / 'a.png'))])[0]
    np.testing.assert_array_equal(
        cv2.imread(str(out / 'labels' / 'a.png'), cv2.IMREAD_UNCHANGED),
        want)


def test_tiled_run_writes_by_rows_and_skips_videos(demo_checkpoint,
                                                   tmp_path):
    image = _scene(70, 90)
    cv2.imwrite(str(tmp_path / 'a.png'), image)
    (tmp_path / 'clip.mp4').write_bytes(b'')
    out = tmp_path / 'out'
    tiling = TileOptions(64, 16, blend='smooth')
    summary = run_inference(InferenceOptions(
        DEMO_CONFIG, demo_checkpoint, [str(tmp_path / 'a.png'),
                                       str(tmp_path / 'clip.mp4')],
        str(out), device='cpu', tiling=tiling))
    assert summary.tiled and summary.labelled == 1
    assert summary.skipped == [(str(tmp_path / 'clip.mp4'),
                                'a video; --tile labels images')]
    assert 'tile by tile' in summary.message()
    want = Segmenter(DEMO_CONFIG, demo_checkpoint, device='cpu',
                     tiling=tiling)([image])[0]
    np.testing.assert_array_equal(
        cv2.imread(str(out / 'labels' / 'a.png'), cv2.IMREAD_UNCHANGED),
        want)
    assert _files(out) == ['color/a.png', 'labels/a.png', 'overlay/a.png']


def test_bad_options_refused_before_anything_is_written(demo_checkpoint,
                                                        tmp_path):
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), _scene(40, 40))
    taken = tmp_path / 'taken'
    taken.write_text('x')
    empty = tmp_path / 'empty'
    empty.mkdir()

    def run(**changes):
        options = dict(config=DEMO_CONFIG, checkpoint=demo_checkpoint,
                       inputs=[str(image)], out_dir=str(tmp_path / 'out'),
                       device='cpu')
        options.update(changes)
        return run_inference(InferenceOptions(**options))

    with pytest.raises(InvalidInputError, match='taken is a file'):
        run(out_dir=str(taken))
    with pytest.raises(InvalidInputError, match='at least 1'):
        run(batch_size=0)
    with pytest.raises(InvalidInputError,
                       match='no images to label: .*a folder without'):
        run(inputs=[str(empty)])
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        run(checkpoint=str(tmp_path / 'none.pth'))
    with pytest.raises(InvalidInputError, match='below the network'):
        run(tiling=TileOptions(8))
    assert sorted(os.listdir(tmp_path)) == ['a.png', 'empty', 'taken']
