"""Running an exported segmentor with ONNX Runtime."""
import os.path as osp
from typing import Any, Optional

import numpy as np
import torch

from ..errors import InvalidInputError, first_line
from ..forward import normalize_images
from .metadata import ExportMetadata

__all__ = ['OnnxSegmentor', 'onnxruntime_providers', 'is_onnx_model']


def is_onnx_model(path: str) -> bool:
    """Whether ``path`` is an ONNX model file (its first byte is the tag of
    ``ir_version``, which ONNX writers serialise first, and it parses).
    PyTorch checkpoints are zip archives or pickles and fail at once;
    folders and references to fetch are not ONNX models."""
    if not osp.isfile(path):
        return False
    with open(path, 'rb') as f:
        if f.read(1) != b'\x08':
            return False
    import onnx
    try:
        onnx.load(path, load_external_data=False)
    except Exception:  # protobuf raises its own types
        return False
    return True


def onnxruntime_providers(device: str):
    """Execution providers for ``device``: CUDA (then CPU) when ``device``
    starts with ``cuda`` and this onnxruntime build has the CUDA provider,
    else CPU."""
    import onnxruntime as ort
    if device.startswith('cuda') and \
            'CUDAExecutionProvider' in ort.get_available_providers():
        index = int(device.split(':')[1]) if ':' in device else 0
        return [('CUDAExecutionProvider', dict(device_id=index)),
                'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class OnnxSegmentor:
    """An ONNX file written by :func:`~.export.export_onnx`, run with ONNX
    Runtime.

    The fields of :class:`~.metadata.ExportMetadata` stored in the file are
    attributes: ``output`` (``'logits'``/``'mask'``), ``normalize``,
    ``mean``, ``std``, ``bgr_to_rgb``, ``num_classes``, ``classes``,
    ``palette``, ``test_cfg``, ``align_corners``, ``min_input_size``, ...

    Args:
        path (str): The ``.onnx`` file.
        device (str): ``'cpu'`` or ``'cuda[:i]'`` (the CUDA execution
            provider when this onnxruntime build has it, else the CPU).
        threads (int, optional): Intra-op threads of the CPU provider;
            default: ``torch.get_num_threads()``, so that both runtimes use
            the same number of cores.

    Raises:
        ValueError: ``path`` is missing, not an ONNX model, or an ONNX model
            not exported by this package.
    """

    def __init__(self, path: str, device: str = 'cpu',
                 threads: Optional[int] = None) -> None:
        import onnxruntime as ort
        if not osp.isfile(path):
            raise InvalidInputError(f'ONNX file not found: {path}')
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # idle threads sleep instead of spinning, which would take the cores
        # from PyTorch running in the same process (the benchmark alternates
        # the two)
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
        # failures raise exceptions; the runtime need not print them too
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(
                path, options, providers=onnxruntime_providers(device))
        except Exception as err:  # onnxruntime raises its own types
            raise InvalidInputError(f'{path} is not a loadable ONNX model '
                                    f'({first_line(err)})') from None
        self.path = path
        self.metadata = ExportMetadata.from_props(
            self.session.get_modelmeta().custom_metadata_map, path)
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]

    def __getattr__(self, name: str) -> Any:
        metadata = self.__dict__.get('metadata')
        if metadata is not None and hasattr(metadata, name):
            return getattr(metadata, name)
        raise AttributeError(name)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in the model's convention (OpenCV's BGR 0..255, or the
        stored bands of a band model; (C, H, W) or (B, C, H, W), any
        dtype) -> the float32 batch the graph takes:
        unchanged when the graph normalises, else BGR->RGB and mean/std
        normalised as the config's data preprocessor does."""
        x = images[None] if images.dim() == 3 else images
        x = x.float()
        if self.normalize:
            return x
        return normalize_images(x, torch.tensor(self.mean),
                                torch.tensor(self.std), self.bgr_to_rgb)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float32 (see :meth:`prepare`) -> logits
        (B, K, H, W) float32 or mask (B, H, W) int64, on ``batch``'s
        device."""
        channels = self.in_channels
        if batch.dim() != 4 or batch.shape[1] != channels:
            raise InvalidInputError(
                f'{self.path} takes a (B, {channels}, H, W) batch, got '
                f'{tuple(batch.shape)}')
        h, w = batch.shape[2:]
        if min(h, w) < self.min_input_size:
            raise InvalidInputError(
                f'{self.path} needs inputs of at least {self.min_input_size}x'
                f'{self.min_input_size} pixels, got {h}x{w}')
        if not self.dynamic and (batch.shape[0], h, w) != (1, *self.shape):
            raise InvalidInputError(
                f'{self.path} was exported for one {self.shape[0]}x'
                f'{self.shape[1]} image at a time (static shapes), got '
                f'{tuple(batch.shape)}')
        array = np.ascontiguousarray(
            batch.detach().to('cpu', torch.float32).numpy())
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(out).to(batch.device)
