"""Checkpoint downloads: once, atomically, hash-checked.

``http(s)://`` URLs download into torch's hub cache
(``$TORCH_HOME/hub/checkpoints``) under the URL's file name. The data goes
to a temporary file beside it that is renamed only once complete and its
SHA-256 verified, so an interrupted or corrupt transfer never leaves a file
a later run would take for complete. The hash is the one given, or the
prefix mmseg and torchvision put in their file names
(``mit_b0_20220624-7e0fe6dd.pth``: the first 8 hex digits of the SHA-256).

``hf://<repo_id>[@revision][/<file>]`` resolves through ``huggingface_hub``
(the optional ``hf`` extra); without a file the whole repository snapshot
(a model folder) is used.
"""
import hashlib
import http.client
import os.path as osp
import re
import urllib.error
import urllib.request
from typing import Optional
from urllib.parse import urlparse

from ..errors import CheckpointError
from ..fileio import atomic_path

__all__ = ['resolve', 'download', 'hash_prefix', 'cache_dir']

#: mmseg/torchvision file names: ``<name>-<first hex digits of sha256>``.
HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.(pth|pt|bin|safetensors)$')
CHUNK = 1 << 20


def cache_dir() -> str:
    """torch's hub checkpoint cache."""
    import torch
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def hash_prefix(name: str) -> Optional[str]:
    """The SHA-256 prefix in an mmseg-style file name, or None."""
    m = HASH_IN_NAME.search(name)
    return m.group(1) if m else None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, sha256: Optional[str] = None,
             directory: Optional[str] = None, timeout: float = 60.) -> str:
    """Download ``url`` once into ``directory`` (the hub cache) and return
    the local file.

    Args:
        url (str): ``http://`` or ``https://`` URL.
        sha256 (str, optional): Expected SHA-256 (or a prefix of it);
            default: the prefix in the file name, if any.
        directory (str, optional): Default: :func:`cache_dir`.
        timeout (float): Socket timeout in seconds.

    Raises:
        CheckpointError: unreachable URL, short transfer, hash mismatch;
            no file is left under the final name then.
    """
    name = osp.basename(urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url} names no file')
    directory = directory or cache_dir()
    dst = osp.join(directory, name)
    expected = (sha256 or hash_prefix(name) or '').lower() or None
    if osp.isfile(dst):
        if expected and not _sha256(dst).startswith(expected):
            raise CheckpointError(f'cached {dst} does not have the SHA-256 '
                                  f'{expected} of {url}; remove it')
        return dst
    try:
        with atomic_path(dst) as tmp:
            _fetch(url, tmp, timeout)
            actual = _sha256(tmp)
            if expected and not actual.startswith(expected):
                raise CheckpointError(
                    f'download of {url} has SHA-256 {actual[:16]}..., '
                    f'expected {expected}; nothing was saved')
    except (urllib.error.URLError, http.client.HTTPException,
            OSError) as err:
        raise CheckpointError(f'cannot download {url}: '
                              f'{getattr(err, "reason", err)}') from None
    return dst


def _fetch(url: str, path: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, \
            open(path, 'wb') as out:
        length = response.headers.get('Content-Length')
        size = 0
        for block in iter(lambda: response.read(CHUNK), b''):
            out.write(block)
            size += len(block)
    if length is not None and size != int(length):
        raise CheckpointError(f'download of {url} was interrupted: '
                              f'{size} of {length} bytes')


def _hf(ref: str) -> str:
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(f'{ref} needs huggingface_hub: pip install '
                              '"mmseg_plugins[hf]"') from None
    body = ref[len('hf://'):]
    parts = body.split('/')
    repo, rest = '/'.join(parts[:2]), '/'.join(parts[2:])
    repo, _, revision = repo.partition('@')
    try:
        if rest:
            return huggingface_hub.hf_hub_download(
                repo, rest, revision=revision or None)
        return huggingface_hub.snapshot_download(
            repo, revision=revision or None)
    except Exception as err:  # the hub raises many types
        raise CheckpointError(f'cannot fetch {ref}: {err}') from None


def is_fetched(checkpoint: str) -> bool:
    """Whether ``checkpoint`` is fetched (an ``http(s)://`` URL or an
    ``hf://`` reference) rather than a local path."""
    return checkpoint.startswith(('http://', 'https://', 'hf://'))


def checkpoint_found(checkpoint: str) -> bool:
    """A local file or folder (a Hugging Face model folder) that exists,
    or a reference to fetch (checked when it is fetched)."""
    return is_fetched(checkpoint) or osp.exists(checkpoint)


def resolve(checkpoint: str) -> str:
    """A local path for ``checkpoint`` (a path, ``http(s)://`` URL or
    ``hf://`` reference)."""
    if checkpoint.startswith(('http://', 'https://')):
        return download(checkpoint)
    if checkpoint.startswith('hf://'):
        return _hf(checkpoint)
    return checkpoint
