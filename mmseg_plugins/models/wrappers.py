"""Model wrappers."""
import warnings

import torch
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm

from ..registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that also runs on CPU (gloo).

    mmengine's runner always passes ``device_ids=[LOCAL_RANK]``, which
    PyTorch's DDP rejects for CPU modules. For a module on the CPU this
    wrapper drops ``device_ids``/``output_device`` and, because PyTorch's
    ``SyncBatchNorm`` only runs on accelerators, reverts SyncBN layers to
    BatchNorm (per-process statistics, with a warning). On a GPU it behaves
    exactly like :class:`MMDistributedDataParallel`.

    Args:
        module (nn.Module): The model to wrap.
        **kwargs: Passed to :class:`MMDistributedDataParallel`.
    """

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        first = next(module.parameters(), None)
        if first is not None and first.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
            has_sync_bn = any(
                isinstance(m, torch.nn.SyncBatchNorm) or
                type(m).__name__ == 'SyncBatchNorm' for m in module.modules())
            if has_sync_bn:
                warnings.warn('SyncBN cannot run on CPU; using per-process '
                              'BatchNorm for this CPU distributed run.')
                module = revert_sync_batchnorm(module)
        super().__init__(module=module, **kwargs)
