"""``hf://`` references, resolved through huggingface_hub from a hub cache
that the test fills itself (offline mode: no network): a Hugging Face
SegFormer repository initialises our MiT backbone, as a whole snapshot and
as one safetensors file of it; a repository not in the cache is an error of
the package's own type."""
import pytest
import torch

from afformer_reference import randomise
from mmseg_plugins.errors import CheckpointError
from mmseg_plugins.models import MiT

transformers = pytest.importorskip('transformers')
hub = pytest.importorskip('huggingface_hub')

REPO = 'nvidia/segformer-b0-finetuned-ade-512-512'
REVISION = '0123456789abcdef0123456789abcdef01234567'


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding REPO at REVISION (``refs/main`` -> snapshot, as
    huggingface_hub lays it out), in offline mode; returns the HF model
    saved there."""
    from huggingface_hub import constants
    base = tmp_path / 'hub' / f'models--{REPO.replace("/", "--")}'
    (base / 'refs').mkdir(parents=True)
    (base / 'refs' / 'main').write_text(REVISION)
    hf = randomise(transformers.SegformerForSemanticSegmentation(
        transformers.SegformerConfig(num_labels=5)).eval(), 5)
    hf.save_pretrained(base / 'snapshots' / REVISION)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    return hf


@pytest.mark.parametrize('ref', [f'hf://{REPO}',
                                 f'hf://{REPO}/model.safetensors'],
                         ids=['snapshot', 'file'])
def test_hub_repository_initialises_the_backbone(hub_cache, ref):
    # Hugging Face's MiT uses LayerNorm eps 1e-5 throughout
    backbone = MiT('b0', norm_eps=1e-5, pretrained=ref)
    backbone.init_weights()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = hub_cache.segformer(
            pixel_values=x, output_hidden_states=True).hidden_states
        for ours, theirs in zip(backbone.eval()(x), expected):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_repository_not_in_the_cache_is_refused(hub_cache):
    backbone = MiT('b0', pretrained='hf://nvidia/not-there')
    with pytest.raises(CheckpointError, match='cannot fetch '
                       'hf://nvidia/not-there'):
        backbone.init_weights()


def test_hub_repository_is_a_whole_segmentor_for_inference(hub_cache):
    """``hf://`` at a segmentor's entry point (``Segmenter``, on the builder
    that tools/inference.py, the benchmark and the exporter share): the
    repository's decode head and classifier load too, and the logits are
    Hugging Face's, upsampled to the input as mmseg does."""
    import os.path as osp

    import torch.nn.functional as F

    from helpers import ROOT
    from mmseg_plugins.inference import Segmenter
    config = osp.join(ROOT, 'configs', 'demo',
                      'segformer_mit-b0_shapes-128x128.py')
    seg = Segmenter(config, f'hf://{REPO}', device='cpu', cfg_options={
        'model.decode_head.num_classes': 5,
        'model.backbone.norm_eps': 1e-5})
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = F.interpolate(hub_cache(pixel_values=x).logits, size=(64, 96),
                               mode='bilinear', align_corners=False)
        torch.testing.assert_close(seg._network_logits(x), theirs,
                                   rtol=1e-4, atol=1e-4)
