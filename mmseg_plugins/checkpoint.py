"""Safe checkpoint I/O.

Every checkpoint this project reads goes through :func:`safe_load`, which
calls ``torch.load(weights_only=True)`` with an explicit allow-list of the
harmless Python types that mmengine and mmseg store in their checkpoints
(message-hub history buffers, numpy arrays and scalars, config-free
metadata).  Any other pickled global (a class, a function such as
``os.system``) makes the load fail with :class:`CheckpointError`; there is
no fallback to unrestricted unpickling.

Writers use :func:`atomic_save`: the file appears under its final name only
once it is complete.
"""
import os
import os.path as osp
import pickle
import warnings
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch

from .errors import (CheckpointError, CheckpointNotFoundError,
                     UnsafeCheckpointError)
from .fileio import atomic_write

__all__ = [
    'CheckpointError', 'safe_load', 'atomic_save', 'allowed_globals',
    'unwrap_state_dict', 'read_hf_folder'
]


def _numpy_globals() -> List[Any]:
    """The numpy pickling entry points needed to rebuild arrays/scalars."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    items: List[Any] = [multiarray._reconstruct, multiarray.scalar,
                        np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their concrete dtype classes
    # (``numpy.dtypes.Float64DType`` ...).
    for code in 'bBhHiIlLqQefdgFDG?':
        items.append(type(np.dtype(code)))
    # numpy 1.x pickles arrays through ``numpy.core.multiarray`` even under
    # numpy 2; make that alias resolvable too.
    try:
        with warnings.catch_warnings():
            # numpy 2 warns, on each attribute of numpy.core, that it was
            # renamed numpy._core
            warnings.filterwarnings('ignore', message=r'numpy\.core is',
                                    category=DeprecationWarning)
            from numpy.core import multiarray as legacy  # noqa: F401
            items.extend([
                (legacy._reconstruct, 'numpy.core.multiarray._reconstruct'),
                (legacy.scalar, 'numpy.core.multiarray.scalar')])
    except Exception:  # pragma: no cover
        pass
    return items


#: Attributes of ``HistoryBuffer`` that mmengine pickles as
#: ``getattr(HistoryBuffer, name)`` (its registered statistics methods).
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _restricted_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling.

    mmengine stores ``HistoryBuffer``'s statistics methods as
    ``getattr(HistoryBuffer, 'min')`` etc.; exactly those lookups are
    allowed, any other use of ``getattr`` in a pickle is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL getattr({getattr(obj, "__name__", obj)!r}'
        f', {name!r}) is not on the allow-list')


def allowed_globals() -> List[Any]:
    """Return the allow-list used by :func:`safe_load`.

    It holds only data containers: mmengine's ``HistoryBuffer`` (plain
    numpy arrays inside) with its four statistics methods, numpy
    arrays/scalars/dtypes and a few builtins.
    """
    items = _numpy_globals()
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
        items.append(HistoryBuffer)
        items.append((_restricted_getattr, 'builtins.getattr'))
    except ImportError:  # pragma: no cover
        pass
    import collections
    items.extend([collections.OrderedDict, collections.defaultdict, slice,
                  set, frozenset, complex, range])
    return items


def _describe(src: Any) -> str:
    return src if isinstance(src, str) else getattr(src, 'name', repr(src))


def safe_load(src: Union[str, os.PathLike, Any],
              map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True`` and the allow-list.

    Args:
        src (str | PathLike | file): Path or binary file object.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        CheckpointNotFoundError: the file is missing (also a
            ``FileNotFoundError``, as mmengine's loader raises).
        UnsafeCheckpointError: it holds a pickled global that is not on
            the allow-list (also a ``pickle.UnpicklingError``, as
            ``torch.load(weights_only=True)`` raises).
        CheckpointError: not a checkpoint, or truncated.
    """
    name = _describe(src)
    if isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
        raise CheckpointNotFoundError(f'checkpoint not found: {name}')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(src, map_location=map_location,
                              weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        boilerplate = ('Weights only load failed', 'Please file an issue',
                       'Check the documentation')
        reasons = [ln for ln in lines if not ln.startswith(boilerplate)]
        detail = reasons[0] if reasons else (lines[0] if lines else '')
        if any('GLOBAL' in ln for ln in lines):
            detail = next(ln for ln in lines if 'GLOBAL' in ln)
            detail = detail.split(' was not an allowed global')[0]
            raise UnsafeCheckpointError(
                f'refusing to load {name}: it holds a pickled object that '
                f'is not on the allow-list of safe types ({detail})') from None
        raise CheckpointError(
            f'{name} is not a readable PyTorch checkpoint '
            f'({type(err).__name__}: {detail})') from None


def unwrap_state_dict(checkpoint: Any) -> dict:
    """Return the state dict inside an mmengine/mmcv/timm checkpoint."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'expected a dict checkpoint, found {type(checkpoint).__name__}')
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def atomic_save(obj: Any,
                dst: Union[str, os.PathLike],
                save_fn: Optional[Callable[[Any, Any], None]] = None) -> None:
    """Save ``obj`` to ``dst`` so that ``dst`` is never half-written (see
    :mod:`mmseg_plugins.fileio`); on error ``dst`` is left untouched.

    Args:
        obj: Object to save.
        dst (str | PathLike): Destination path.
        save_fn (callable, optional): ``save_fn(obj, file)``; defaults to
            :func:`torch.save`.
    """
    save_fn = save_fn or torch.save
    atomic_write(dst, lambda f: save_fn(obj, f))


def read_hf_folder(path: str) -> Dict[str, torch.Tensor]:
    """Weights of a Hugging Face model folder (``model.safetensors``, read
    with the safetensors package, or ``pytorch_model.bin`` through the safe
    loader).

    Raises:
        CheckpointError: the folder has no config.json or no weights.
    """
    if not osp.isfile(osp.join(path, 'config.json')):
        raise CheckpointError(f'{path} is not a Hugging Face model folder: no '
                              'config.json')
    st = osp.join(path, 'model.safetensors')
    if osp.isfile(st):
        from safetensors.torch import load_file
        return load_file(st)
    binary = osp.join(path, 'pytorch_model.bin')
    if osp.isfile(binary):
        return safe_load(binary)
    raise CheckpointError(
        f'Hugging Face folder {path} holds no weights: expected '
        'model.safetensors or pytorch_model.bin')
