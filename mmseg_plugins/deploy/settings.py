"""How to export: :class:`ExportSettings` (the exporter tool's options,
validated before anything is built) and the limits they are checked
against."""
from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import InvalidInputError

__all__ = [
    'EXPORTERS', 'OPSETS', 'SINGLE_FILE_LIMIT', 'INPUT_NAME',
    'ExportSettings'
]

EXPORTERS = ('dynamo', 'torchscript')

#: ONNX opsets each exporter writes, (lowest, highest): dynamo's operator
#: library is written for opset 18 (it silently keeps 18 when asked for
#: less) up to torch's newest; the TorchScript exporter stops at 20, and
#: below 13 it cannot export these models' operators with dynamic shapes.
OPSETS = {'dynamo': (18, 23), 'torchscript': (13, 20)}

#: A protobuf message, hence a self-contained ONNX file, must stay under
#: 2 GiB; larger models keep their weights in ``<file>.data``.
SINGLE_FILE_LIMIT = 2**31 - 1

#: Input and output names of the graph.
INPUT_NAME = 'images'


@dataclass
class ExportSettings:
    """How to export (the options of ``tools/deployment/pytorch2onnx.py``).

    Args:
        shape (tuple): (H, W) of the traced input; with ``dynamic`` one of
            the verified sizes, else the only size the graph takes.
        dynamic (bool): Free batch, height and width.
        output (str): ``'logits'`` or ``'mask'`` (argmax in the graph).
        normalize (bool): BGR->RGB and mean/std normalisation in the graph
            (raw images in), as the config's data preprocessor does.
        exporter (str): ``'dynamo'`` (``torch.onnx.export(dynamo=True)``)
            or ``'torchscript'`` (``dynamo=False``).
        opset (int, optional): ONNX opset; None: the exporter's default.
        fuse (bool): Fuse the model for inference first
            (:func:`mmseg_plugins.fuse`). Default: True.
        tolerance (float): Largest accepted difference between ONNX Runtime
            and PyTorch, relative to the largest PyTorch logit.
    """
    shape: Tuple[int, int] = (512, 512)
    dynamic: bool = False
    output: str = 'logits'
    normalize: bool = True
    exporter: str = 'dynamo'
    opset: Optional[int] = None
    fuse: bool = True
    tolerance: float = 1e-4

    def validate(self, min_input_size: int) -> None:
        """Raise ``InvalidInputError`` for settings no export can satisfy."""
        if self.exporter not in EXPORTERS:
            raise InvalidInputError(
                f'unknown exporter {self.exporter!r}; choose '
                f'from {", ".join(EXPORTERS)}')
        if self.output not in ('logits', 'mask'):
            raise InvalidInputError(f'output must be logits or mask, got '
                                    f'{self.output!r}')
        low, high = OPSETS[self.exporter]
        if self.opset is not None and not low <= self.opset <= high:
            raise InvalidInputError(
                f'opset {self.opset} is not supported by the {self.exporter} '
                f'exporter (supported: {low} to {high})')
        h, w = self.shape
        if min(h, w) < min_input_size:
            raise InvalidInputError(
                f'--shape {h} {w}: the model needs inputs of at '
                f'least {min_input_size}x{min_input_size}')
        if not self.tolerance > 0:
            raise InvalidInputError(f'tolerance must be positive, got '
                                    f'{self.tolerance}')
