"""Device, precision and ``torch.compile`` choices shared by the inference
and benchmark tools, each checked before any work starts so that an option
the machine cannot honour is one clear error, not a crash halfway."""
import contextlib
import shutil
from typing import Optional

import torch
import torch.nn as nn

from .errors import InvalidInputError, first_line

__all__ = [
    'PRECISIONS', 'COMPILE_MODES', 'resolve_device', 'check_precision',
    'autocast', 'check_amp_training', 'use_amp_optim_wrapper',
    'check_compile', 'compile_module', 'compile_in_place',
    'compile_networks'
]

#: ``--precision`` choices: fp32, or autocast to fp16 / bf16.
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: ``torch.compile`` modes (``'reduce-overhead'`` captures CUDA graphs).
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune',
                 'max-autotune-no-cudagraphs')


def _error(message: str) -> Exception:
    return InvalidInputError(message)


def resolve_device(device: str = 'auto') -> str:
    """``'auto'`` -> ``'cuda'`` when a GPU is present, else ``'cpu'``;
    a CUDA device without CUDA is refused."""
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise _error(f'--device {device} but no CUDA device is available')
    if not device.startswith(('cpu', 'cuda')):
        raise _error(f'unknown device {device!r}; use auto, cpu or cuda[:N]')
    return device


def _cpu_supports_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX); the
    flags are read from /proc/cpuinfo (Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return ' avx512_bf16' in flags or ' amx_bf16' in flags


def check_precision(precision: str, device: str) -> None:
    """Refuse a precision the device cannot run: fp16 autocast needs CUDA
    (on the CPU it is emulated and slower than fp32), bf16 a GPU or CPU
    with bfloat16 arithmetic."""
    if precision not in PRECISIONS:
        raise _error(f'unknown precision {precision!r}; choose from '
                     f'{", ".join(PRECISIONS)}')
    if precision == 'fp16' and not device.startswith('cuda'):
        raise _error('--precision fp16 (autocast) needs a CUDA device; on '
                     'this CPU use fp32 (or bf16 where the CPU has it)')
    if precision == 'bf16':
        if device.startswith('cuda'):
            if not torch.cuda.is_bf16_supported():
                raise _error('--precision bf16 but this GPU has no bfloat16 '
                             'arithmetic')
        elif not _cpu_supports_bf16():
            raise _error('--precision bf16 but this CPU has no bfloat16 '
                         'arithmetic (AVX512-BF16 or AMX)')


def autocast(precision: str, device: str):
    """The autocast context of a precision (none for fp32)."""
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16).get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.split(':')[0], dtype=dtype)


def check_amp_training(precision: str, device: str) -> None:
    """Refuse mixed-precision training where mmengine's ``AmpOptimWrapper``
    cannot run it: it needs a CUDA device (and bf16 a GPU with bfloat16
    arithmetic)."""
    if not device.startswith('cuda'):
        raise _error('--amp trains with mmengine\'s AmpOptimWrapper, which '
                     'needs a CUDA device; train in fp32 here')
    check_precision(precision, device)


def use_amp_optim_wrapper(cfg, precision: str) -> bool:
    """Switch a config's optimiser wrapper to mmengine's
    ``AmpOptimWrapper``: autocast to float16 or bfloat16 in the forward
    pass, loss scaled with a dynamic scale (gradient steps with inf/NaN
    skipped and the scale halved).

    Returns:
        bool: False when the config already trains with AMP (unchanged).
    """
    if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return False
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.optim_wrapper.dtype = dict(fp16='float16',
                                   bf16='bfloat16')[precision]
    return True


def check_compile(mode: Optional[str] = 'default',
                  backend: str = 'inductor', device: str = 'cpu') -> None:
    """Refuse a ``torch.compile`` setting that cannot work here: an unknown
    mode or backend, inductor without a C++ compiler on the CPU or without
    Triton on CUDA, ``reduce-overhead`` (CUDA graphs) without CUDA.

    Args:
        mode (str, optional): A ``torch.compile`` mode (see
            :data:`COMPILE_MODES`); ``'default'`` or None for the default.
        backend (str): A ``torch.compile`` backend, e.g. ``'inductor'`` or
            ``'aot_eager'`` (no code generation). Default: ``'inductor'``.
        device (str): Where the module runs.
    """
    if mode not in (None, ) + COMPILE_MODES:
        raise _error(f'unknown compile mode {mode!r}; choose from '
                     f'{", ".join(COMPILE_MODES)}')
    import torch._dynamo
    from torch._dynamo.backends.registry import lookup_backend
    try:
        lookup_backend(backend)
    except Exception:  # torch raises its own InvalidBackend
        raise _error(f'unknown torch.compile backend {backend!r}; known: '
                     f'{", ".join(torch._dynamo.list_backends())}') from None
    if backend == 'inductor':
        if device.startswith('cuda'):
            try:
                import triton  # noqa: F401
            except ImportError:
                raise _error('--compile with the inductor backend needs '
                             'Triton on CUDA; pip install triton, or use '
                             '--compile-backend aot_eager')
        elif not any(shutil.which(cc)
                     for cc in ('cc', 'gcc', 'clang', 'g++', 'c++')):
            raise _error('--compile with the inductor backend needs a C++ '
                         'compiler on the CPU; install one, or use '
                         '--compile-backend aot_eager')
    if mode == 'reduce-overhead' and not device.startswith('cuda'):
        raise _error('--compile reduce-overhead captures CUDA graphs and '
                     'needs a CUDA device')
    # a tiny function through the same backend: a missing or broken
    # toolchain shows here, not halfway through a run
    try:
        torch._dynamo.reset()
        smoke = torch.compile(lambda x: torch.relu(x) * 2 + 1,
                              **_compile_options(None, backend))
        smoke(torch.randn(4, 4, device=device))
        torch._dynamo.reset()
    except Exception as err:  # any failure of the toolchain
        # dynamo wraps the backend's own failure (inner_exception)
        err = getattr(err, 'inner_exception', None) or err
        first = first_line(err)
        raise _error(f'torch.compile backend {backend!r} does not work on '
                     f'{device}: {first}') from None


def _compile_options(mode: Optional[str], backend: str) -> dict:
    return dict(mode=None if mode in (None, 'default') else mode,
                backend=backend)


def compile_module(module, mode: Optional[str] = 'default',
                   backend: str = 'inductor', device: str = 'cpu'):
    """``torch.compile(module)`` (a module or function) after
    :func:`check_compile`."""
    check_compile(mode, backend, device)
    return torch.compile(module, **_compile_options(mode, backend))


def compile_in_place(module: nn.Module, mode: Optional[str] = 'default',
                     backend: str = 'inductor', device: str = 'cpu'
                     ) -> nn.Module:
    """``module.compile()`` (its forward compiled, its state-dict keys
    unchanged) after :func:`check_compile`."""
    check_compile(mode, backend, device)
    module.compile(**_compile_options(mode, backend))
    return module


def compile_networks(cfg) -> bool:
    """Turn a training config's ``compile`` option (``True`` or a dict of
    ``mode`` and ``backend``) into ``mmseg_plugins.CompileHook`` in its
    ``custom_hooks``: the networks compiled, not mmengine's whole
    ``train_step``, which TorchDynamo cannot trace through the optimizer.
    The backend is checked first on this machine's device
    (:func:`check_compile`); the option is removed from ``cfg``.

    Returns:
        bool: Whether a hook was added (False without the option).
    """
    options = cfg.pop('compile', None)
    if not options:
        return False
    options = {} if options is True else dict(options)
    hook = dict(type='mmseg_plugins.CompileHook', mode=options.get('mode'),
                backend=options.get('backend', 'inductor'))
    check_compile(hook['mode'], hook['backend'],
                  'cuda' if torch.cuda.is_available() else 'cpu')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]
    return True
