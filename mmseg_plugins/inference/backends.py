"""What runs a :class:`~.segmenter.Segmenter`'s network: PyTorch or ONNX
Runtime.

A :class:`Backend` takes the network's (B, C, h, w) float input and gives
(B, K, h, w) float32 logits at the same size; everything around it (the
test pipeline, normalisation, padding, sliding windows, tiling, the
arg-max) is the :class:`~.segmenter.Segmenter`'s and the same for both.
:func:`load_backend` picks the backend from the checkpoint: an ``.onnx``
file runs in ONNX Runtime (:class:`OnnxBackend`), anything else is a
PyTorch checkpoint (:class:`TorchBackend`).
"""
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn

from ..accelerate import autocast, compile_module
from ..builder import build_segmentor
from ..errors import InvalidInputError
from ..forward import SegmentorForward, min_input_size, normalize_images
from ..model_input import ModelInput

__all__ = ['TorchOptions', 'Normalisation', 'Backend', 'TorchBackend',
           'OnnxBackend', 'prepare_model', 'load_backend']


@dataclass(frozen=True)
class TorchOptions:
    """How the PyTorch backend runs the network.

    Args:
        precision (str): ``'fp32'``, or ``'fp16'``/``'bf16'`` autocast.
            Default: ``'fp32'``.
        channels_last (bool): Channels-last weights and inputs. Default:
            False.
        compile (str, optional): ``torch.compile`` the network with this
            mode (``'default'``, ``'reduce-overhead'``, ...). Default: None
            (eager).
        compile_backend (str): ``torch.compile`` backend. Default:
            ``'inductor'``.
    """
    precision: str = 'fp32'
    channels_last: bool = False
    compile: Optional[str] = None
    compile_backend: str = 'inductor'

    @property
    def eager_fp32(self) -> bool:
        """Whether these are the defaults (all an ONNX model can honour)."""
        return (self.precision == 'fp32' and not self.channels_last
                and not self.compile)


@dataclass(frozen=True)
class Normalisation:
    """A data preprocessor's normalisation (mmseg's
    ``SegDataPreProcessor``): the channel swap, then ``(x - mean) / std``.

    Args:
        mean (Tensor): (1, C, 1, 1) means, in the order after the swap.
        std (Tensor): (1, C, 1, 1) standard deviations.
        bgr_to_rgb (bool): Swap the three channels to RGB first.
    """
    mean: torch.Tensor
    std: torch.Tensor
    bgr_to_rgb: bool

    @classmethod
    def from_input(cls, model_input: ModelInput) -> 'Normalisation':
        """The normalisation of a model's input (mean 0, std 1 where its
        data preprocessor has none)."""
        channels = model_input.channels

        def stat(values: Optional[Sequence[float]],
                 default: float) -> torch.Tensor:
            return torch.tensor(list(values or [default] * channels),
                                dtype=torch.float32).view(1, -1, 1, 1)

        return cls(stat(model_input.mean, 0.), stat(model_input.std, 1.),
                   model_input.bgr_to_rgb)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float images -> normalised, on their device."""
        return normalize_images(images, self.mean.to(images),
                                self.std.to(images), self.bgr_to_rgb)

    def describe(self) -> str:
        return _describe(self.mean.flatten().tolist(),
                         self.std.flatten().tolist(), self.bgr_to_rgb)

    def matches(self, mean: Sequence[float], std: Sequence[float],
                bgr_to_rgb: bool) -> bool:
        """Whether another mean/std/swap normalises as this one does (to a
        relative 1e-6)."""
        def close(a: list, b: list) -> bool:
            return len(a) == len(b) and all(
                abs(x - y) <= 1e-6 * max(1., abs(y)) for x, y in zip(a, b))

        return bool(bgr_to_rgb) == self.bgr_to_rgb and close(
            self.mean.flatten().tolist(), list(mean)) and close(
                self.std.flatten().tolist(), list(std))


def _describe(mean: Sequence[float], std: Sequence[float],
              bgr_to_rgb: bool) -> str:
    return (f'mean {[round(x, 4) for x in mean]}, std '
            f'{[round(x, 4) for x in std]}, bgr_to_rgb {bgr_to_rgb}')


@runtime_checkable
class Backend(Protocol):
    """What a :class:`~.segmenter.Segmenter` needs of its network.

    Attributes:
        device (str): Where the network runs.
        num_classes (int): K, the logits' channels.
        min_input_size (int): The smallest input side the network takes.
        checkpoint_meta (dict, optional): The checkpoint's ``meta`` (its
            ``dataset_meta`` names the classes), or None.
        normalises_inputs (bool): Whether the network normalises raw
            images itself (an ONNX graph exported so); else it takes
            normalised inputs.
    """
    device: str
    num_classes: int
    min_input_size: int
    checkpoint_meta: Optional[dict]
    normalises_inputs: bool

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) float inputs on :attr:`device` -> (B, K, h, w)
        float32 logits."""


def prepare_model(model: nn.Module) -> nn.Module:
    """The single step in which a built segmentor becomes the form that
    inference runs: evaluation mode, fused (:func:`mmseg_plugins.fuse`:
    BatchNorm folded, speed forms; verified against the reference forward
    before it returns), so that every inference path through
    :class:`TorchBackend` gets it."""
    from ..models.fuse import fuse
    return fuse(model.eval())


class TorchBackend:
    """The network of a built segmentor, run by PyTorch.

    Args:
        model (nn.Module): The segmentor (on any device); it is moved to
            ``device`` and made ready for inference (:func:`prepare_model`).
        device (str): Where it runs.
        options (TorchOptions): Precision, memory format, compilation.
        checkpoint_meta (dict, optional): The ``meta`` of the checkpoint it
            was loaded from.
    """
    normalises_inputs = False

    def __init__(self, model: nn.Module, device: str,
                 options: TorchOptions = TorchOptions(),
                 checkpoint_meta: Optional[dict] = None) -> None:
        self.device, self.options = device, options
        self.checkpoint_meta = checkpoint_meta
        self.num_classes = model.decode_head.out_channels
        self.model = prepare_model(model.to(device))
        self.min_input_size = min_input_size(self.model)
        network = SegmentorForward(self.model)
        if options.channels_last:
            network = network.to(memory_format=torch.channels_last)
        if options.compile:
            network = compile_module(network, options.compile,
                                     options.compile_backend, device)
        self.network = network

    @classmethod
    def load(cls, cfg, checkpoint: str, device: str,
             options: TorchOptions = TorchOptions()) -> 'TorchBackend':
        """The model of ``cfg`` with ``checkpoint``'s weights (any layout
        the loader knows, loaded strictly)."""
        model, meta = build_segmentor(cfg, checkpoint, 'cpu')
        return cls(model, device, options, meta)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(self.options.precision, self.device):
            return self.network(inputs).float()


class OnnxBackend:
    """An ONNX file exported by ``tools/deployment/pytorch2onnx.py
    --output logits``, run by ONNX Runtime.

    Args:
        path (str): The ``.onnx`` file.
        device (str): ``'cpu'`` or a CUDA device (the CUDA execution
            provider).
        normalisation (Normalisation): The config's; refused when the file
            was exported with another.
        channels (int): The config's input channels; refused when the file
            takes another count.

    Raises:
        InvalidInputError: onnxruntime is missing, the file outputs masks,
            or it does not fit the config.
    """

    def __init__(self, path: str, device: str, normalisation: Normalisation,
                 channels: int) -> None:
        try:
            from ..deploy.onnx_runtime import OnnxSegmentor
        except ImportError as err:
            raise InvalidInputError(
                f'running an ONNX model needs onnxruntime '
                f"(pip install 'mmseg_plugins[deploy]'): {err}")
        runner = OnnxSegmentor(path, device)
        if runner.output != 'logits':
            raise InvalidInputError(
                f'{path} outputs {runner.output}; the inference tool needs '
                'logits (export with --output logits)')
        if runner.in_channels != channels:
            raise InvalidInputError(
                f'{path} takes {runner.in_channels}-channel images, the '
                f'config {channels}: use the config it was exported from')
        if not normalisation.matches(runner.mean, runner.std,
                                     runner.bgr_to_rgb):
            stored = _describe(list(runner.mean), list(runner.std),
                               bool(runner.bgr_to_rgb))
            raise InvalidInputError(
                f'{path} was exported with {stored}, but the '
                f'config has {normalisation.describe()}: use the config it '
                'was exported from')
        self.runner, self.device = runner, device
        self.num_classes = runner.num_classes
        self.min_input_size = runner.min_input_size
        self.checkpoint_meta = (dict(dataset_meta=dict(
            classes=runner.classes, palette=runner.palette))
            if getattr(runner, 'classes', None) else None)
        # the graph normalises raw BGR images itself when exported so
        self.normalises_inputs = bool(runner.normalize)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.runner(inputs).float()


def load_backend(cfg, checkpoint: str, device: str,
                 options: TorchOptions, normalisation: Normalisation,
                 channels: int) -> Backend:
    """The backend of a checkpoint: :class:`OnnxBackend` for an ``.onnx``
    file (which takes only the default ``options``), else
    :class:`TorchBackend`."""
    if not checkpoint.endswith('.onnx'):
        return TorchBackend.load(cfg, checkpoint, device, options)
    if not options.eager_fp32:
        raise InvalidInputError(
            '--precision, --channels-last and --compile apply to PyTorch '
            'checkpoints, not to an ONNX model')
    return OnnxBackend(checkpoint, device, normalisation, channels)
