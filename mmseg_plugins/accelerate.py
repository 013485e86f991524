"""Device, precision and ``torch.compile`` choices shared by the inference
and benchmark tools, each checked before any work starts so that an option
the machine cannot honour is one clear error, not a crash halfway."""
import contextlib
import shutil
from typing import Optional

import torch
import torch.nn as nn

__all__ = [
    'PRECISIONS', 'COMPILE_MODES', 'resolve_device', 'check_precision',
    'autocast', 'compile_module'
]

#: ``--precision`` choices: fp32, or autocast to fp16 / bf16.
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: ``torch.compile`` modes (``'reduce-overhead'`` captures CUDA graphs).
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune',
                 'max-autotune-no-cudagraphs')


def _error(message: str) -> Exception:
    from .tools import ToolError
    return ToolError(message)


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


def compile_module(module: nn.Module, mode: Optional[str] = 'default',
                   backend: str = 'inductor', device: str = 'cpu'
                   ) -> nn.Module:
    """``torch.compile(module)`` after checking that the backend can work
    here: inductor needs a C++ compiler on the CPU and Triton on CUDA;
    ``reduce-overhead`` (CUDA graphs) needs CUDA.

    Args:
        module (nn.Module): The module to compile.
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
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise _error(f'unknown torch.compile backend {backend!r}')
    if backend == 'inductor':
        if device.startswith('cuda'):
            try:
                import triton  # noqa: F401
            except ImportError:
                raise _error('--compile with the inductor backend needs '
                             'Triton on CUDA; pip install triton, or use '
                             '--compile-backend aot_eager')
        elif not any(shutil.which(cc) for cc in ('cc', 'gcc', 'clang',
                                                  'g++', 'c++')):
            raise _error('--compile with the inductor backend needs a C++ '
                         'compiler on the CPU; install one, or use '
                         '--compile-backend aot_eager')
    if mode == 'reduce-overhead' and not device.startswith('cuda'):
        raise _error('--compile reduce-overhead captures CUDA graphs and '
                     'needs a CUDA device')
    return torch.compile(module, mode=None if mode == 'default' else mode,
                         backend=backend)
