"""Tests of mmseg_plugins/checkpoint.py: weights-only loading with an
allow-list, refusal of unsafe/bad files, atomic writes."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from helpers import Exploit

from mmseg_plugins.checkpoint import (CheckpointError, atomic_save,
                                      safe_load, unwrap_state_dict)


def _mmengine_like_checkpoint():
    """What mmengine's runner stores: meta, a message hub with
    HistoryBuffers (numpy arrays inside, statistics methods pickled through
    getattr), numpy scalars, optimizer state."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_checkpoint_hub')
    for i in range(3):
        hub.update_scalar('train/loss', float(i) + 0.5)
    hub.update_info('iter', 7)
    hub.update_info('np_scalar', np.float64(0.25))
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return dict(
        meta=dict(epoch=0, iter=7, seed=np.int64(3),
                  dataset_meta=dict(classes=('a', 'b'), palette=[[1, 2, 3]])),
        state_dict=model.state_dict(),
        message_hub=hub.state_dict(),
        optimizer=optim.state_dict())


def test_mmengine_checkpoint_round_trip(tmp_path):
    ckpt = _mmengine_like_checkpoint()
    path = tmp_path / 'iter_7.pth'
    torch.save(ckpt, path)
    # plain torch.load(weights_only=True) refuses it: that is the bug fixed
    with pytest.raises(pickle.UnpicklingError,
                       match='HistoryBuffer|Weights only'):
        torch.load(path, weights_only=True)
    loaded = safe_load(str(path))
    hub = loaded['message_hub']['log_scalars']['train/loss']
    assert hub.current() == 2.5 and hub.mean() == pytest.approx(1.5)
    assert loaded['meta']['seed'] == 3
    torch.testing.assert_close(loaded['state_dict']['weight'],
                               ckpt['state_dict']['weight'])


def test_mmengine_loader_goes_through_safe_load(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    path = tmp_path / 'c.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert 'message_hub' in loaded


class _GetattrExploit:
    """Uses the allow-listed getattr name for something else."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, 'register_statistics'))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match=r'refusing to load.*system'):
        safe_load(str(path))
    assert not marker.exists()


def test_getattr_is_only_allowed_for_history_buffer_methods(tmp_path):
    path = tmp_path / 'evil2.pth'
    torch.save({'x': _GetattrExploit()}, path)
    with pytest.raises(CheckpointError, match='refusing to load'):
        safe_load(str(path))


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all' * 10])
def test_non_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='not a readable PyTorch'):
        safe_load(str(path))


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'full.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, path)
    data = path.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='not a readable PyTorch'):
        safe_load(str(cut))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        safe_load(str(tmp_path / 'nope.pth'))


def test_unwrap_state_dict():
    sd = {'a': torch.zeros(1)}
    assert unwrap_state_dict({'state_dict': sd, 'meta': {}}) is sd
    assert unwrap_state_dict({'model': sd}) is sd
    assert unwrap_state_dict(sd) is sd
    with pytest.raises(CheckpointError):
        unwrap_state_dict([1, 2])


def test_atomic_save_writes_whole_file(tmp_path):
    dst = tmp_path / 'sub' / 'out.pth'
    atomic_save({'w': torch.ones(2)}, dst)
    assert safe_load(str(dst))['w'].sum() == 2
    assert os.listdir(dst.parent) == ['out.pth']


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')

    def failing(obj, f):
        f.write(b'partial')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        atomic_save({'w': 1}, dst, save_fn=failing)
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.pth']


def test_http_loader_downloads_once_then_loads_safely(tmp_path, monkeypatch):
    from mmseg_plugins import compat
    src = tmp_path / 'remote.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}}, src)
    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        with open(src, 'rb') as f, open(dst, 'wb') as g:
            g.write(f.read())

    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    cache = str(tmp_path / 'cache')
    url = 'https://example.invalid/models/remote.pth'
    for _ in range(2):
        out = compat.load_from_http(url, map_location='cpu', model_dir=cache)
        assert out['state_dict']['w'].item() == 1
    assert calls == [url]
    assert osp.isfile(osp.join(cache, 'remote.pth'))
