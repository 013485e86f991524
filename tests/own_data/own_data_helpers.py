"""Helpers for the own-data tests: tiny datasets in each layout and mask
format, drawn with the demo shapes generator (``mmseg_plugins.demo_data``)."""
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image

from mmseg_plugins.demo_data import SHAPES_METAINFO, _draw_sample

COLOURS = np.array(SHAPES_METAINFO['palette'], np.uint8)  # (4, 3) RGB


def write_mask(path, label, fmt):
    """Write a (H, W) label map 0-3 in a mask format."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    if fmt == 'index':
        cv2.imwrite(path, label)
    elif fmt == 'binary255':
        cv2.imwrite(path, ((label > 0) * 255).astype(np.uint8))
    elif fmt == 'colour':
        Image.fromarray(COLOURS[label]).save(path)
    elif fmt == 'palette':
        img = Image.fromarray(label, mode='P')
        img.putpalette(COLOURS.ravel().tolist())
        img.save(path)
    elif fmt == 'index16':
        Image.fromarray(label.astype(np.uint16)).save(path)
    elif fmt == 'jpeg':
        Image.fromarray(COLOURS[label]).save(path, quality=85)
    else:
        raise ValueError(fmt)


def make_dataset(root, layout='flat', fmt='index', n=(6, 3), size=32,
                 seed=0, mask_ext='.png'):
    """Write ``n`` (train, val) image/mask pairs under ``root``.

    Returns:
        dict: {name: (H, W) label map written}.
    """
    rng = np.random.default_rng(seed)
    labels = {}
    for split, count in zip(('train', 'val'), n):
        if layout == 'mmseg':
            img_dir = osp.join(root, 'img_dir', split)
            mask_dir = osp.join(root, 'ann_dir', split)
        elif layout == 'outside':
            img_dir = osp.join(root, split, 'images')
            mask_dir = osp.join(root, split, 'masks')
        else:
            img_dir = osp.join(root, 'images')
            mask_dir = osp.join(root, 'masks')
        os.makedirs(img_dir, exist_ok=True)
        for i in range(count):
            img, label = _draw_sample(rng, size)
            name = f'{split}_{i:02d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img[..., ::-1])
            write_mask(osp.join(mask_dir, name + mask_ext), label, fmt)
            labels[name] = label
    return labels


def tree_digest(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = osp.join(d, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, root)] = fh.read()
    return out


def load_tool(relpath):
    """A script of ``tools/`` as a module (its ``main(argv)``)."""
    import helpers
    return helpers.load_tool(osp.join(helpers.ROOT, 'tools', relpath))


def run_tool_main(tool, argv, capsys):
    """``tool.main(argv)`` through ``run_tool``, as the script runs:
    returns (exit code, stdout, stderr)."""
    from helpers import own_mmengine_instances
    from mmseg_plugins.cli import run_tool
    code = 0
    try:
        with own_mmengine_instances():
            run_tool(tool.main, argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def region_label(num_classes, size=192, seed=0):
    """A (size, size) uint8 label map like a hand-drawn one: every class
    0..num_classes-1 as two large regions (ellipses, boxes, polygons) drawn
    in random order over class 0, then smaller shapes."""
    rng = np.random.default_rng(seed)
    label = np.zeros((size, size), np.uint8)
    large = list(range(1, num_classes)) * 2
    for k, c in enumerate(large + rng.integers(1, num_classes,
                                               num_classes).tolist()):
        r = int(rng.integers(size // 16, size // 6) if k < len(large)
                else rng.integers(size // 40, size // 12))
        cx, cy = (int(v) for v in rng.integers(0, size, 2))
        shape = int(rng.integers(3))
        if shape == 0:
            cv2.ellipse(label, (cx, cy), (r, int(r * rng.uniform(0.4, 1))),
                        float(rng.uniform(0, 180)), 0, 360, c, -1)
        elif shape == 1:
            cv2.rectangle(label, (cx, cy), (cx + r, cy + int(r * 0.7)), c,
                          -1)
        else:
            pts = (rng.normal(0, r, (6, 2)) + (cx, cy)).astype(np.int32)
            cv2.fillPoly(label, [cv2.convexHull(pts)], c)
    return label


def prepared_config(out):
    """The config prepare_dataset.py wrote into ``out``
    (``<dataset>_<model>.py``)."""
    import glob
    found = glob.glob(osp.join(out, '*.py'))
    assert len(found) == 1, found
    return found[0]


def convert_images(root, convert):
    """Replace every image under ``root``/images by ``convert(path, rgb)``
    (which writes the new file and returns its path)."""
    for d, _, files in os.walk(osp.join(root, 'images')):
        for f in sorted(files):
            path = osp.join(d, f)
            rgb = cv2.imread(path)[..., ::-1]
            if convert(osp.splitext(path)[0], rgb) != path:
                os.remove(path)


def printed_config(report):
    """The config path that ``prepare_dataset.py`` printed."""
    return next(ln.split(':', 1)[1].strip() for ln in report.splitlines()
                if ln.startswith('config:'))


def initial_checkpoint(config, path):
    """A checkpoint of the model of ``config`` as initialised (no
    training): enough for inference and export checks."""
    import torch

    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.config import load_config
    model, _ = build_segmentor(load_config(config))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)
