"""Whole-segmentor files in the authors' layouts at the entry points that
take a segmentor: ``Segmenter`` (tools/inference.py; the builder that the
benchmark and the ONNX exporter share), the project's tools/test.py and
mmseg's own, each converted in memory and loaded strictly. The files are
the demo SegFormer (random weights) written in the NVlabs layout and as a
Hugging Face folder (by tools/model_converters/segformer2hf.py)."""
import os.path as osp

import numpy as np
import pytest
import torch

from helpers import (ROOT, call, call_mmseg, demo_overrides, logged_miou,
                     run_log)
from official_files import nvlabs_segformer_keys
from mmseg_plugins.inference import Segmenter

CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'segformer_mit-b0_shapes-128x128.py')
TO_HF = osp.join(ROOT, 'tools', 'model_converters', 'segformer2hf.py')
TEST = osp.join(ROOT, 'tools', 'test.py')


@pytest.fixture(scope='module')
def files(demo_segmentor, tmp_path_factory):
    """``{layout: path}`` of the same weights."""
    _, model = demo_segmentor('segformer')
    tmp = tmp_path_factory.mktemp('layouts')
    ours = tmp / 'ours.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ours)
    nvlabs = tmp / 'segformer.b0.512x512.ade.160k.pth'
    keys = nvlabs_segformer_keys(model.backbone, model.decode_head)
    torch.save({'state_dict': keys, 'meta': {}}, nvlabs)
    folder = tmp / 'hf'
    proc = call(TO_HF, str(ours), str(folder))
    assert proc.returncode == 0, proc.stderr
    return {'ours': str(ours), 'nvlabs': str(nvlabs),
            'hf-folder': str(folder),
            'hf-safetensors': str(folder / 'model.safetensors')}


@pytest.mark.parametrize('layout', ['nvlabs', 'hf-folder', 'hf-safetensors'])
def test_segmenter_takes_the_raw_file(files, layout):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
              for _ in range(2)]
    ours = Segmenter(CONFIG, files['ours'], device='cpu')
    theirs = Segmenter(CONFIG, files[layout], device='cpu')
    x = torch.from_numpy(rng.standard_normal((1, 3, 64, 64)).astype(
        np.float32))
    torch.testing.assert_close(theirs._network_logits(x),
                               ours._network_logits(x), rtol=1e-5, atol=1e-5)
    for a, b in zip(theirs(images), ours(images)):
        np.testing.assert_array_equal(a, b)


def test_test_tools_take_the_raw_files(files, demo_root, tmp_path):
    """The same mIoU from every layout, through the project's test.py (an
    HF folder and an NVlabs file) and mmseg's own (an NVlabs file, through
    the runtime config's StrictLoadHook)."""
    options = ['--cfg-options', *demo_overrides(demo_root, 1)]
    scores = {}
    for layout in ('ours', 'hf-folder', 'nvlabs'):
        proc = call(TEST, CONFIG, files[layout], '--work-dir',
                    tmp_path / layout, *options)
        assert proc.returncode == 0, proc.stderr[-2000:]
        scores[layout] = logged_miou(run_log(tmp_path / layout))
    work = tmp_path / 'mmseg'
    call_mmseg('test.py', CONFIG, files['nvlabs'], '--work-dir', work,
               *options)
    log = run_log(work)
    assert 'converted: MiT-b0 segmentation checkpoint, nvlabs layout' in log
    scores['mmseg nvlabs'] = logged_miou(log)
    assert len(set(scores.values())) == 1, scores
