"""tools/train.py refuses checkpoints that do not fit before any step or
work-dir artefact."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch

import afformer_reference as afformer_ref
import mpvit_reference as ref
from helpers import ROOT
from mmseg_plugins.models import AFFormer, MPViT

DEMO = osp.join(ROOT, 'configs', 'demo', 'afformer_tiny_shapes-128x128.py')


def _train(argv, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, 'argv', ['train.py', *argv])
    from mmseg_plugins.cli import run_tool
    run_tool(mod.main)


@pytest.mark.parametrize('case', [
    'family', 'variant', 'truncated', 'missing', 'init_cfg prefix',
    'init_cfg key'
])
def test_refused_before_training(tmp_path, monkeypatch, capsys, case):
    path = tmp_path / 'mpvit_tiny.pth'
    weights = [f'model.pretrained={path}']
    if case.startswith('init_cfg'):  # AFFormer-tiny's own weights
        torch.save(AFFormer('tiny').state_dict(), path)
        extra = 'prefix=encoder' if case == 'init_cfg prefix' else \
            'strict=False'
        weights = [f'model.backbone.init_cfg.{k}' for k in (
            '_delete_=True', 'type=Pretrained', f'checkpoint={path}', extra)]
    elif case == 'family':
        torch.save({'model': ref.official_state_dict(MPViT('tiny'), 1000)},
                   path)
    elif case == 'variant':  # AFFormer-base's file, AFFormer-tiny's config
        torch.save(afformer_ref.official_state_dict(AFFormer('base')), path)
    elif case == 'truncated':
        path.write_bytes(b'PK\x03\x04' + b'\0' * 64)
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exit_:
        _train([DEMO, '--work-dir', str(work), '--cfg-options', *weights],
               monkeypatch)
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith('error: '), err
    expected = dict(family='does not fit AFFormer',
                    variant='the file holds an AFFormer-base backbone '
                    'checkpoint (official layout), the model is '
                    'AFFormer-tiny;',
                    truncated='not a readable',
                    missing='does not exist',
                    **{'init_cfg prefix': 'no keys under the prefix '
                       "'encoder.'",
                       'init_cfg key': "unknown keys ['strict']"})[case]
    assert expected in err[0], err[0]
    assert not work.exists()
