"""Downloads against a server on 127.0.0.1: once, hash-checked, atomic;
then converted at load time like a local file."""
import hashlib
import http.server
import os
import threading

import pytest
import torch

from official_files import BUILD, NAMES, official_files
from mmseg_plugins.errors import CheckpointError
from mmseg_plugins.weights import download


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}
    hits = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        cut = self.path.startswith('/cut/')
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if cut else data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    torch.hub.set_dir(str(tmp_path / 'torch' / 'hub'))
    _Handler.files, _Handler.hits = {}, []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', _Handler
    httpd.shutdown()
    httpd.server_close()


def _cache(tmp_path):
    path = tmp_path / 'torch' / 'hub' / 'checkpoints'
    return sorted(os.listdir(path)) if path.is_dir() else []


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """Official-layout ImageNet files of the three families, written once."""
    return official_files(tmp_path_factory.mktemp('official'))


@pytest.mark.parametrize('family', list(BUILD))
def test_official_file_by_url_initialises_backbone(server, tmp_path,
                                                   official, family):
    base, handler = server
    model, src = official[family]
    with open(src, 'rb') as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()[:8]
    stem, ext = os.path.splitext(NAMES[family])
    name = f'/{stem}-{digest}{ext}'
    handler.files[name] = data
    for _ in range(2):  # the second run uses the cache
        fresh = BUILD[family](pretrained=base + name)
        fresh.init_weights()
        x = torch.randn(1, 3, 64, 64,
                        generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            for a, b in zip(fresh.eval()(x), model(x)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert handler.hits == [name]
    assert _cache(tmp_path) == [name[1:]]


def test_wrong_hash_and_interrupted_transfer_leave_no_file(server,
                                                           tmp_path):
    base, handler = server
    handler.files['/mit_b0_20220624-deadbeef.pth'] = b'x' * 1000
    with pytest.raises(CheckpointError, match='expected deadbeef'):
        download(base + '/mit_b0_20220624-deadbeef.pth')
    handler.files['/cut/mit_b0.pth'] = b'y' * 4096
    with pytest.raises(CheckpointError, match='interrupted: 2048 of 4096'):
        download(base + '/cut/mit_b0.pth')
    assert _cache(tmp_path) == []
    # a later complete transfer under the same name succeeds
    handler.files['/mit_b0.pth'] = b'y' * 4096
    path = download(base + '/mit_b0.pth',
                    sha256=hashlib.sha256(b'y' * 4096).hexdigest())
    assert open(path, 'rb').read() == b'y' * 4096


def test_unreachable_and_missing_urls(server):
    base, _ = server
    with pytest.raises(CheckpointError, match='cannot download'):
        download(base + '/nothing.pth')
    with pytest.raises(CheckpointError, match='cannot download'):
        download('http://127.0.0.1:9/closed.pth', timeout=2)
