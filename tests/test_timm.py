"""Tests of mmseg_plugins/timm.py: the backbones as timm models and as
segmentation_models_pytorch ``tu-`` encoders, with the same weights."""
import os
import sys

import pytest
import torch

import mhca_reference as ref
from official_files import official_files
from helpers import ROOT, run

timm = pytest.importorskip('timm')

from mmseg_plugins.errors import (CheckpointError,  # noqa: E402
                                  InvalidInputError)
from mmseg_plugins.models import AFFormer, MiT, MPViT  # noqa: E402
from mmseg_plugins.timm import MODEL_NAMES, create  # noqa: E402

BACKBONES = dict(mit=MiT, afformer=AFFormer, mpvit=MPViT)


def _backbone(name):
    family, variant = name.split('_')
    return BACKBONES[family](variant)


@pytest.mark.parametrize('name', list(MODEL_NAMES))
def test_features_match_feature_info_and_the_mmseg_backbone(name, tmp_path):
    """For every variant: the features_only model's outputs have the
    channels and reductions of feature_info, and a file of the mmseg
    backbone's weights, loaded through timm's ``pretrained``, gives the
    mmseg backbone's features."""
    backbone = ref.randomise(_backbone(name).eval(), seed=5, scale=0.1)
    path = tmp_path / 'backbone.pth'
    torch.save(backbone.state_dict(), path)
    model = timm.create_model(name, features_only=True, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats, expected = model(x), backbone(x)
    info = model.feature_info
    assert [f.shape[1] for f in feats] == info.channels()
    assert [64 // f.shape[2] for f in feats] == info.reduction()
    assert [96 // f.shape[3] for f in feats] == info.reduction()
    for ours, theirs in zip(feats, expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # the same network: the state dict moves back unchanged
    inner = timm.create_model(name, num_classes=0)
    assert inner.state_dict().keys() == backbone.state_dict().keys()


@pytest.mark.parametrize('family', ['AFFormer', 'MPViT', 'MiT'])
def test_official_layout_files_load_through_timm(family, tmp_path,
                                                 monkeypatch):
    """The authors' ImageNet files (AFFormer's, MPViT's {'model': ...}
    with cls_head, NVlabs MiT with head) load through timm, converted in
    memory, each read once; the official classifier fills ``head``."""
    from mmseg_plugins.weights import loading
    source, path = official_files(tmp_path)[family]
    name = dict(AFFormer='afformer_tiny', MPViT='mpvit_tiny',
                MiT='mit_b0')[family]
    reads = []
    read_weights = loading.read_weights
    monkeypatch.setattr(loading, 'read_weights',
                        lambda *a: reads.append(a) or read_weights(*a))
    model = timm.create_model(name, pretrained=True,
                              pretrained_cfg_overlay=dict(file=path)).eval()
    assert len(reads) == 1
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), source(x)[-1],
                                   rtol=1e-5, atol=1e-5)
    if family != 'AFFormer':  # its authors' model has no classifier
        sd = torch.load(path, weights_only=True)
        sd = sd.get('model', sd)
        key = 'cls_head.cls.weight' if family == 'MPViT' else 'head.weight'
        assert torch.equal(model.head.weight, sd[key])
        assert model(x).shape == (1, 1000)


def test_in_chans_adapts_the_pretrained_input_filters(tmp_path):
    backbone = ref.randomise(MiT('b0').eval(), seed=2)
    path = tmp_path / 'b0.pth'
    torch.save(backbone.state_dict(), path)
    model = timm.create_model('mit_b0', in_chans=1, num_classes=0,
                              pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    rgb = backbone.stages[0].patch_embed.proj.weight
    torch.testing.assert_close(model.stages[0].patch_embed.proj.weight,
                               rgb.sum(1, keepdim=True))


def test_forward_intermediates_and_classifier_reset():
    model = timm.create_model('mpvit_tiny', num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, indices=2)
        only = model.forward_intermediates(x, indices=[0, 3],
                                           intermediates_only=True)
        logits = model(x)
    assert [t.shape[1] for t in inter] == [216, 216]
    torch.testing.assert_close(final, inter[-1])
    assert [t.shape[2] for t in only] == [16, 2]
    assert logits.shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, 216)


def test_bad_input_is_refused_with_the_packages_errors(tmp_path):
    with pytest.raises(InvalidInputError, match='unknown model .mit_b9.*'
                       'mit_b0'):
        create('mit_b9')
    with pytest.raises(ValueError, match=r'out_indices=\(0, 4\).*0\.\.3'):
        timm.create_model('afformer_tiny', features_only=True,
                          out_indices=(0, 4))
    path = tmp_path / 'mpvit.pth'
    torch.save(MPViT('tiny').state_dict(), path)
    with pytest.raises(CheckpointError, match='MPViT'):
        timm.create_model('afformer_tiny', pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)))
    with pytest.raises(CheckpointError, match=r'mpvit_tiny\.pth.*'
                       'pretrained_cfg_overlay'):
        timm.create_model('mpvit_tiny', pretrained=True)


HIDE_OPENMMLAB = r'''
import importlib.abc, importlib.metadata as md, sys
HIDDEN = ('mmseg', 'mmengine', 'mmcv')
DISTS = {'mmsegmentation', 'mmengine', 'mmengine-lite', 'mmcv', 'mmcv-lite',
         'onedl-mmsegmentation', 'onedl-mmengine', 'onedl-mmcv'}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HIDDEN:
            raise ModuleNotFoundError(f'No module named {name!r}')
sys.meta_path.insert(0, Hide())
for m in [m for m in sys.modules if m.split('.')[0] in HIDDEN]:
    del sys.modules[m]
real_version = md.version
def version(name):
    if name in DISTS:
        raise md.PackageNotFoundError(name)
    return real_version(name)
md.version = version
'''


def test_timm_only_environment(tmp_path):
    """With mmseg, mmengine and mmcv hidden, the timm models build, load an
    official file and run; nothing of the OpenMMLab stack is imported."""
    _, path = official_files(tmp_path)['MPViT']
    code = HIDE_OPENMMLAB + f'''
import torch, timm
import mmseg_plugins
m = timm.create_model('mpvit_tiny', pretrained=True,
                      pretrained_cfg_overlay=dict(file={path!r})).eval()
with torch.no_grad():
    print(tuple(m(torch.randn(1, 3, 64, 64)).shape))
f = timm.create_model('afformer_tiny', features_only=True)
print(f.feature_info.reduction())
print(sorted(n for n in sys.modules if n.split('.')[0] in HIDDEN))
try:
    mmseg_plugins.MODELS
except ImportError as err:
    print(type(err).__name__)
'''
    proc = run([sys.executable, '-c', code],
               env={'PYTHONPATH': ROOT + os.pathsep + ROOT + '/tests'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split('\n')[:4] == [
        '(1, 1000)', '[4, 8, 8, 8]', '[]', 'StackError'], proc.stdout


smp = pytest.importorskip('segmentation_models_pytorch')


@pytest.mark.parametrize('decoder', ['Unet', 'FPN', 'UPerNet'])
@pytest.mark.parametrize('encoder', ['mit_b0', 'mpvit_tiny'])
def test_smp_encoders_train_a_step(decoder, encoder):
    torch.manual_seed(0)
    model = getattr(smp, decoder)(f'tu-{encoder}', encoder_weights=None,
                                  classes=3)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    out = model(x)
    assert out.shape == (2, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b)
               for a, b in zip(before, model.encoder.parameters()))


def test_smp_refuses_afformer_whose_stages_share_one_stride():
    """AFFormer's last three stages all run at 1/8 (the paper's design), so
    it is not the 4..32 pyramid smp's decoders take; smp says so."""
    with pytest.raises(ValueError, match='downsampling pattern'):
        smp.Unet('tu-afformer_tiny', encoder_weights=None, classes=3)


def test_mmseg_path_does_not_need_smp():
    assert 'segmentation_models_pytorch' in sys.modules  # imported above
    code = 'import sys, mmseg_plugins\n' \
        'print("segmentation_models_pytorch" in sys.modules)'
    proc = run([sys.executable, '-c', code], env={'PYTHONPATH': ROOT})
    assert proc.returncode == 0 and proc.stdout.strip() == 'False', \
        proc.stderr[-2000:]
