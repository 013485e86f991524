"""End-to-end tests of tools/inference.py: folders, videos and odd inputs
in, three PNGs per image out, bad input refused."""
import glob
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

from helpers import ROOT, assert_refused, call

TOOL = osp.join(ROOT, 'tools', 'inference.py')
CONFIG = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import mhca_reference as ref
    from mmseg_plugins.builder import build_model
    model = ref.randomise(build_model(CONFIG, None, 'cpu'), seed=3)
    path = tmp_path_factory.mktemp('ckpt') / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def _outputs(out_dir):
    return sorted(osp.relpath(p, out_dir) for p in glob.glob(
        osp.join(out_dir, '**', '*'), recursive=True) if osp.isfile(p))


def test_folders_videos_and_unreadable_inputs(demo_root, checkpoint,
                                              tmp_path):
    from mmseg_plugins.inference import Segmenter
    src = tmp_path / 'photos'
    (src / 'sub').mkdir(parents=True)
    files = sorted(glob.glob(osp.join(demo_root, 'images', 'validation',
                                      '*.png')))
    shutil.copy(files[0], src / 'a.png')
    image = cv2.imread(files[1])
    cv2.imwrite(str(src / 'sub' / 'b.jpg'), cv2.resize(image, (201, 97)))
    (src / 'sub' / 'broken.jpg').write_bytes(b'not an image')
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             (96, 64))
    for i in range(3):
        writer.write(cv2.resize(cv2.imread(files[i]), (96, 64)))
    writer.release()
    out = tmp_path / 'out'
    proc = call(TOOL, CONFIG, checkpoint, str(src), str(video),
                str(tmp_path / 'missing.png'), '--out-dir', str(out),
                '--batch-size', '2')
    assert proc.returncode == 1, proc.stderr[-2000:]
    skipped = [ln for ln in proc.stderr.splitlines()
               if ln.startswith('skipped')]
    assert sorted(skipped) == sorted([
        f'skipped {src}/sub/broken.jpg: not a readable image',
        f'skipped {tmp_path}/missing.png: no such file or folder'])
    assert 'labelled 5 images' in proc.stdout
    assert 'skipped 2 input(s)' in proc.stdout
    names = ['photos/a', 'photos/sub/b'] + [
        f'clip/frame_{i:06d}' for i in range(3)]
    assert _outputs(out) == sorted(f'{kind}/{name}.png' for kind in (
        'color', 'labels', 'overlay') for name in names)
    # the label PNG holds the class indices the API gives
    label = cv2.imread(str(out / 'labels' / 'photos' / 'sub' / 'b.png'),
                       cv2.IMREAD_UNCHANGED)
    expected = Segmenter(CONFIG, checkpoint)(
        [cv2.imread(str(src / 'sub' / 'b.jpg'))])[0]
    assert label.shape == (97, 201) and label.dtype == np.uint8
    assert (label != expected).mean() < 1e-3
    overlay = cv2.imread(str(out / 'overlay' / 'photos' / 'a.png'))
    assert overlay.shape == (128, 128, 3)


def test_undecodable_video_is_skipped(checkpoint, tmp_path, demo_root):
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(os.urandom(2000))
    good = sorted(glob.glob(osp.join(demo_root, 'images', 'training',
                                     '*.png')))[0]
    proc = call(TOOL, CONFIG, checkpoint, str(bad), good,
                '--out-dir', str(tmp_path / 'out'))
    assert proc.returncode == 1
    assert f'skipped {bad}: a video the installed OpenCV cannot decode' in \
        proc.stderr
    assert 'labelled 1 images' in proc.stdout


def test_bad_invocations_are_refused(checkpoint, tmp_path, demo_root):
    image = sorted(glob.glob(osp.join(demo_root, 'images', 'training',
                                      '*.png')))[0]
    a_file = tmp_path / 'taken'
    a_file.write_text('x')
    assert_refused(call(TOOL, CONFIG, checkpoint, image,
                        '--out-dir', str(a_file)),
                   r'--out-dir .*taken is a file')
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert_refused(call(TOOL, CONFIG, checkpoint, str(empty),
                        '--out-dir', str(tmp_path / 'o1')),
                   r'no images to label: .*empty: a folder without images')
    from mmseg_plugins.models import MPViT
    other = tmp_path / 'mpvit.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               MPViT('tiny').state_dict().items()}}, other)
    assert_refused(call(TOOL, CONFIG, str(other), image,
                        '--out-dir', str(tmp_path / 'o2')),
                   r'mpvit\.pth does not fit the model of ')
    assert_refused(call(TOOL, CONFIG, checkpoint, image, image,
                        '--out-dir', str(tmp_path / 'o3')),
                   r'would both be written as')
    assert_refused(call(TOOL, CONFIG, checkpoint, image,
                        '--out-dir', str(tmp_path / 'o4'), '--precision',
                        'fp16', '--device', 'cpu'),
                   r'fp16 \(autocast\) needs a CUDA device')
    assert sorted(os.listdir(tmp_path)) == ['empty', 'mpvit.pth', 'taken']


def test_onnx_model_gives_the_checkpoints_labels(checkpoint, tmp_path,
                                                 demo_root):
    """The same images through the checkpoint and through its verified
    ONNX export (ONNX Runtime, normalisation inside the graph): the same
    label PNGs, also at a size the export was not traced at."""
    pytest.importorskip('onnxruntime')
    export = osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
    onnx_file = tmp_path / 'demo.onnx'
    proc = call(export, CONFIG, checkpoint, str(onnx_file),
                '--shape', '64', '64', '--dynamic', '--exporter',
                'torchscript')
    assert proc.returncode == 0, proc.stderr[-2000:]
    images = tmp_path / 'images'
    images.mkdir()
    for name in sorted(os.listdir(osp.join(demo_root, 'images',
                                           'validation')))[:2]:
        shutil.copy(osp.join(demo_root, 'images', 'validation', name),
                    images / name)
    odd = cv2.imread(str(next(images.iterdir())))[:75, :101]
    cv2.imwrite(str(images / 'odd.png'), odd)
    labels = {}
    for kind, weights in (('pth', checkpoint), ('onnx', str(onnx_file))):
        out = tmp_path / kind
        proc = call(TOOL, CONFIG, weights, str(images), '--out-dir',
                    str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        labels[kind] = {p: cv2.imread(osp.join(out, p), cv2.IMREAD_UNCHANGED)
                        for p in _outputs(str(out)) if p.endswith('.png')}
    assert labels['pth'].keys() == labels['onnx'].keys()
    assert len(labels['pth']) == 9  # label, colour, overlay per image
    for name, ours in labels['pth'].items():
        same = (ours == labels['onnx'][name]).mean()
        assert same > 0.999, (name, same)  # pixels may differ at near-ties
    # a config that normalises otherwise than the exported one is refused
    assert_refused(call(TOOL, CONFIG, str(onnx_file), str(images),
                        '--out-dir', str(tmp_path / 'other'), '--cfg-options',
                        'model.data_preprocessor.std=[1.0,1.0,1.0]'),
                   r'demo\.onnx was exported with mean \[123\.675, '
                   r'116\.28, 103\.53\], std \[58\.395, 57\.12, 57\.375\], '
                   r'bgr_to_rgb True, but the config has mean .*std '
                   r'\[1\.0, 1\.0, 1\.0\]')
    assert not osp.exists(tmp_path / 'other')


def test_onnx_mask_export_and_foreign_onnx_are_refused(checkpoint, tmp_path,
                                                       demo_root):
    pytest.importorskip('onnxruntime')
    import torch.nn as nn
    image = sorted(glob.glob(osp.join(demo_root, 'images', 'training',
                                      '*.png')))[0]
    export = osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
    mask_file = tmp_path / 'mask.onnx'
    proc = call(export, CONFIG, checkpoint, str(mask_file),
                '--shape', '64', '64', '--output', 'mask', '--exporter',
                'torchscript')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_refused(call(TOOL, CONFIG, str(mask_file), image,
                        '--out-dir', str(tmp_path / 'o1')),
                   'outputs mask; the inference tool needs logits')
    foreign = tmp_path / 'conv.onnx'
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8), ),
                      str(foreign), dynamo=False)
    assert_refused(call(TOOL, CONFIG, str(foreign), image,
                        '--out-dir', str(tmp_path / 'o2')),
                   'not one exported by mmseg_plugins')
    assert sorted(os.listdir(tmp_path)) == ['conv.onnx', 'mask.onnx']
