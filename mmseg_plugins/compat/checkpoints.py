"""Fixes 2 and 4, ``safe_loader`` and ``atomic_put``: mmengine's
checkpoint reading through the allow-list loader, and its writing through
a temporary file (:mod:`mmseg_plugins.compat`)."""
import os
import tempfile
from typing import Callable

import torch

from .probes import source_matches


# --------------------------------------------------------------------------
# 2. weights_only checkpoint loading for mmengine
# --------------------------------------------------------------------------
# mmengine names a loader in its log as ``function.__name__[10:]``, hence
# the ``load_from_`` prefix.
def load_from_local(filename: str, map_location=None):
    """mmengine's local checkpoint loader, through :func:`safe_load`.

    Observable behaviour is mmengine's: the same return value (the
    unpickled checkpoint), ``FileNotFoundError`` for a missing file (the
    package's :class:`~mmseg_plugins.errors.CheckpointNotFoundError`
    derives from it), ``pickle.UnpicklingError`` for a refused object (as
    ``torch.load(weights_only=True)``, torch's default, raises) and
    ``RuntimeError`` for an unreadable file."""
    from ..checkpoint import safe_load
    filename = os.path.expanduser(filename)
    return safe_load(filename, map_location=map_location)


def _cached_download(filename: str, map_location, model_dir,
                     progress: bool):
    from urllib.parse import urlparse

    from ..checkpoint import safe_load
    if model_dir is None:
        model_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir,
                          os.path.basename(urlparse(filename).path))
    if not os.path.exists(cached):
        torch.hub.download_url_to_file(filename, cached, progress=progress)
    return safe_load(cached, map_location=map_location)


def load_from_http(filename: str, map_location=None, model_dir=None,
                   progress: bool = os.isatty(0)):
    """mmengine's http(s) loader: download once into the torch hub cache
    (``model_dir``), then load through :func:`safe_load`. As mmengine's:
    in a distributed run rank 0 downloads first and the other ranks read
    its file after a barrier; download errors are torch.hub's."""
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    checkpoint = None
    if rank == 0:
        checkpoint = _cached_download(filename, map_location, model_dir,
                                      progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _cached_download(filename, map_location, model_dir,
                                          progress)
    return checkpoint


def mmengine_loader_is_unrestricted() -> bool:
    """Whether mmengine's own local loader unpickles without an allow-list:
    it calls ``torch.load`` without ``weights_only=True`` (upstream), or
    falls back to ``weights_only=False`` (OneDL's ``_safe_torch_load``,
    which ``load_from_local`` calls there).

    Read from the loaders' source text, not tried: trying means handing
    the loader a checkpoint it must refuse, and a loader that falls back
    (OneDL's) then prints a warning on stdout, at every import of the
    plugin; silencing it would mean swapping ``sys.stdout`` for the whole
    process. (Whether ``weights_only`` is True or False is a value, which
    the compiled code's names do not show.)"""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    loaders = [mmengine_checkpoint.load_from_local] + [
        f for f in [getattr(mmengine_checkpoint, '_safe_torch_load', None)]
        if f is not None]
    return any(source_matches(loader, lambda source: 'weights_only=False'
                              in source) for loader in loaders) or not any(
        source_matches(loader, lambda source: 'weights_only=True' in source)
        for loader in loaders)


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's local and http(s) checkpoint loading through
    :func:`mmseg_plugins.checkpoint.safe_load` (``weights_only=True`` and an
    allow-list). Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), force=True)(load_from_http)


# --------------------------------------------------------------------------
# 4. atomic checkpoint writes
# --------------------------------------------------------------------------
def _atomic_put(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put`` that never leaves a partial file."""
    from ..fileio import atomic_write
    atomic_write(filepath, lambda f: f.write(obj))


def writes_in_place(put: Callable[[bytes, str], None]) -> bool:
    """Whether ``put(data, path)`` writes into the file at ``path`` rather
    than replacing it with a complete new file: tried on a file in a
    temporary folder, kept open meanwhile so that its inode cannot be
    reused (where replacing an open file is refused, as on Windows, the
    answer is True)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'probe.pth')
        with open(path, 'wb') as f:
            f.write(b'old')
        with open(path, 'rb') as old:
            try:
                put(b'new', path)
            except OSError:
                return True
            return os.path.samestat(os.fstat(old.fileno()), os.stat(path))


def mmengine_put_writes_in_place() -> bool:
    """Fix 4's condition: mmengine's ``LocalBackend.put`` writes into the
    final path (no temporary file and rename), :func:`writes_in_place`."""
    from mmengine.fileio.backends import LocalBackend
    return writes_in_place(LocalBackend().put)


def install_atomic_local_put() -> None:
    """Make mmengine's local file writes (checkpoints) atomic."""
    from mmengine.fileio.backends import LocalBackend
    LocalBackend.put = _atomic_put
