"""mmseg_plugins/inference/inputs.py: which files a labelling run reads,
under which output names, and what it skips."""
import os.path as osp

import cv2
import numpy as np
import pytest

from mmseg_plugins.errors import InvalidInputError
from mmseg_plugins.inference.inputs import InputItem, Inputs, SkippedInput
from mmseg_plugins.model_input import ModelInput


def _image(path, size=(12, 10)):
    cv2.imwrite(str(path), np.full(size + (3, ), 77, np.uint8))


def test_files_folders_and_videos_get_their_names(tmp_path):
    a = tmp_path / 'a'
    (a / 'sub').mkdir(parents=True)
    _image(a / 'x.png')
    _image(a / 'sub' / 'y.JPG')
    (a / 'notes.txt').write_text('not an image')
    b = tmp_path / 'b'
    b.mkdir()
    _image(b / 'x.png')
    single = tmp_path / 'one.bmp'
    _image(single)
    video = tmp_path / 'clip.mp4'
    video.write_bytes(b'')
    empty = tmp_path / 'empty'
    empty.mkdir()
    missing = tmp_path / 'missing.png'
    inputs = Inputs([str(a), str(b), str(single), str(video), str(empty),
                     str(missing)])
    assert inputs.items == [
        InputItem('image', str(a / 'sub' / 'y.JPG'), 'a/sub/y'),
        InputItem('image', str(a / 'x.png'), 'a/x'),
        InputItem('image', str(b / 'x.png'), 'b/x'),
        InputItem('image', str(single), 'one'),
        InputItem('video', str(video), 'clip')]
    assert inputs.skipped[0] == SkippedInput(
        str(empty), 'a folder without images (.jpg, .jpeg, .png, .bmp, '
        '.tif, .tiff, .webp, .ppm, .pgm)')
    assert inputs.skipped[1] == (str(missing), 'no such file or folder')
    # one folder alone: the names start below it
    assert [i.name for i in Inputs([str(a)]).items] == ['sub/y', 'x']


def test_one_output_name_for_two_inputs_is_refused(tmp_path):
    _image(tmp_path / 'x.png')
    _image(tmp_path / 'x.jpg')
    with pytest.raises(InvalidInputError, match=r'x\.png and .*x\.jpg would '
                       r'both be written as x\.png'):
        Inputs([str(tmp_path / 'x.jpg'), str(tmp_path / 'x.png')])


def test_unreadable_images_and_videos_are_skipped_while_reading(tmp_path):
    _image(tmp_path / 'good.png', (8, 6))
    (tmp_path / 'broken.jpg').write_bytes(b'not an image')
    video = tmp_path / 'bad.mp4'
    video.write_bytes(b'\0' * 100)
    inputs = Inputs([str(tmp_path / 'good.png'), str(tmp_path / 'broken.jpg'),
                     str(video)])
    assert inputs.expected_count() == 3
    read = list(inputs.iterate(ModelInput()))
    assert [name for name, _ in read] == ['good']
    assert read[0][1].shape == (8, 6, 3) and read[0][1].dtype == np.uint8
    assert inputs.skipped == [
        (str(tmp_path / 'broken.jpg'), 'not a readable image'),
        (str(video), 'a video the installed OpenCV cannot decode')]


def test_video_frames_are_named_by_index(tmp_path):
    video = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             (32, 24))
    for value in (0, 100, 200):
        writer.write(np.full((24, 32, 3), value, np.uint8))
    writer.release()
    if not osp.getsize(video):
        pytest.skip('this OpenCV writes no MJPG video')
    inputs = Inputs([video])
    frames = list(inputs.iterate(ModelInput()))
    assert [name for name, _ in frames] == [
        f'clip/frame_{i:06d}' for i in range(3)]
    assert frames[0][1].shape == (24, 32, 3) and not inputs.skipped


def test_channel_counts_the_model_cannot_take_are_refused(tmp_path):
    grey = tmp_path / 'grey.png'
    cv2.imwrite(str(grey), np.zeros((8, 8), np.uint8))
    inputs = Inputs([str(grey)])
    inputs.check_channels(ModelInput())  # repeated for a colour model
    with pytest.raises(InvalidInputError, match='grey.png'):
        inputs.check_channels(ModelInput(channels=4, bands=True))
