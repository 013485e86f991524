"""Static int8 quantization of an exported segmentor with ONNX Runtime,
calibrated on images of a dataset config and verified against the float
model before it is written.

The float graph is first prepared with ONNX Runtime's
``quant_pre_process`` (shape inference and graph optimisation, e.g.
BatchNorm folded into convolutions), then ``quantize_static`` inserts
QuantizeLinear/DequantizeLinear pairs (QDQ format): weights int8 per output
channel, activations uint8 with ranges observed on the calibration images.
ONNX Runtime runs the quantized operators with integer kernels.
"""
import logging
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

import numpy as np
import torch

from ..fileio import atomic_path
from ..errors import ExportError, InvalidInputError
from ..reporting import quiet_logger
from .onnx_runtime import OnnxSegmentor

__all__ = [
    'CALIBRATION_METHODS', 'MIN_AGREEMENT', 'QuantizeReport',
    'mask_agreement', 'quantize_int8'
]

CALIBRATION_METHODS = ('minmax', 'entropy', 'percentile')

#: Default smallest share of pixels on which the int8 and float masks must
#: agree. The int8 demo models (AFFormer-tiny/base, SegFormer-B0) agreed
#: with their float models on 99.41-99.88% of the pixels of 8 held-out
#: validation images (README, Deployment).
MIN_AGREEMENT = 0.98


@dataclass
class QuantizeReport:
    """What a quantization did and measured."""
    path: str
    calibration_images: int
    verification_images: int
    agreement: float
    file_bytes: int
    method: str

    def lines(self) -> List[str]:
        return [
            f'quantized {self.path} ({self.file_bytes / 2**20:.1f} MiB): '
            f'static int8 (QDQ; weights int8 per channel, activations '
            f'uint8), {self.method} calibration on '
            f'{self.calibration_images} images',
            f'int8 and float masks agree on {self.agreement:.2%} of the '
            f'pixels of {self.verification_images} held-out images'
        ]


class _Calibration:
    """ONNX Runtime's calibration data reader over a list of batches."""

    def __init__(self, input_name: str, batches: List[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = iter(batches)

    def get_next(self) -> Optional[dict]:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def mask_agreement(first: OnnxSegmentor, second: OnnxSegmentor,
                   images: Iterable[torch.Tensor]) -> float:
    """Share of pixels where the two models' classes agree."""
    same = total = 0
    for image in images:
        x = first.prepare(image)
        a, b = first(x), second(x)
        if first.output == 'logits':
            a, b = a.argmax(dim=1), b.argmax(dim=1)
        same += int((a == b).sum())
        total += a.numel()
    return same / max(total, 1)


def quantize_int8(fp32_path: str, dst: str,
                  calibration: Iterable[torch.Tensor],
                  verification: Iterable[torch.Tensor],
                  method: str = 'minmax',
                  min_agreement: float = MIN_AGREEMENT,
                  description: str = '') -> QuantizeReport:
    """Quantize, verify, and only then write ``dst``.

    Args:
        fp32_path (str): An ONNX file of :func:`~.export.export_onnx`.
        dst (str): The int8 file to write.
        calibration (Iterable[Tensor]): Images as the test pipeline gives
            them ((3, H, W), BGR, 0..255).
        verification (Iterable[Tensor]): Other images of the same kind, on
            which the int8 masks are compared with the float ones.
        method (str): Calibration: ``'minmax'``, ``'entropy'`` or
            ``'percentile'``.
        min_agreement (float): Refuse a result whose masks agree with the
            float model's on a smaller share of the pixels.
        description (str): Where the calibration images came from, stored
            in the file's metadata.

    Raises:
        InvalidInputError: Bad input.
        ExportError: An agreement below ``min_agreement``; nothing is
            written then.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if not 0 <= min_agreement <= 1:
        raise InvalidInputError(f'the minimum agreement is a share of pixels '
                                f'between 0 and 1, got {min_agreement}')
    if method not in CALIBRATION_METHODS:
        raise InvalidInputError(
            f'unknown calibration method {method!r}; choose '
            f'from {", ".join(CALIBRATION_METHODS)}')
    parent = osp.dirname(osp.abspath(dst))
    if not osp.isdir(parent):
        raise InvalidInputError(f'output directory {parent} does not exist')
    fp32 = OnnxSegmentor(fp32_path)
    if fp32.metadata.quantization:
        raise InvalidInputError(f'{fp32_path} is already quantized '
                                f'({fp32.metadata.quantization})')
    batches = [fp32.prepare(image).numpy() for image in calibration]
    if not batches:
        raise InvalidInputError('no calibration images')
    with tempfile.TemporaryDirectory(prefix='.quantize.', dir=parent) as work:
        prepared = osp.join(work, 'prepared.onnx')
        quantized = osp.join(work, 'int8.onnx')
        with quiet_logger('', logging.ERROR):
            # the quantizer logs, on the root logger, one warning per 1-D
            # weight it leaves per-tensor (norm scales, biases)
            _pre_process(quant_pre_process, fp32_path, prepared, work)
            quantize_static(
                prepared, quantized, _Calibration(fp32.input_name, batches),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, {
                    'minmax': 'MinMax', 'entropy': 'Entropy',
                    'percentile': 'Percentile'}[method]))
        _write_metadata(quantized, fp32, f'static int8 (QDQ, {method} '
                        f'calibration on {len(batches)} images'
                        f'{" of " + description if description else ""})')
        int8 = OnnxSegmentor(quantized)
        images = list(verification)
        agreement = mask_agreement(fp32, int8, images)
        if agreement < min_agreement:
            raise ExportError(
                f'refusing to write {dst}: the int8 masks agree with the '
                f'float model on {agreement:.2%} of the pixels of '
                f'{len(images)} images, below the minimum '
                f'{min_agreement:.2%}')
        size = os.path.getsize(quantized)
        with atomic_path(dst) as tmp:
            os.replace(quantized, tmp)
    return QuantizeReport(dst, len(batches), len(images), agreement, size,
                          method)


def _pre_process(quant_pre_process: Callable, src: str, dst: str,
                 work: str) -> None:
    """ONNX Runtime's ``quant_pre_process`` run inside ``work``: when its
    symbolic shape inference cannot infer every shape it writes
    ``sym_shape_infer_temp.onnx`` (and a data file) into the working
    directory and raises; then the step runs again without it (ONNX's own
    shape inference and the graph optimisation still run)."""
    src, dst, cwd = osp.abspath(src), osp.abspath(dst), os.getcwd()
    os.chdir(work)
    try:
        try:
            quant_pre_process(src, dst)
        except Exception:  # "Incomplete symbolic shape inference"
            quant_pre_process(src, dst, skip_symbolic_shape=True)
    finally:
        os.chdir(cwd)


def _write_metadata(path: str, fp32: OnnxSegmentor,
                    quantization: str) -> None:
    """Store the float model's metadata, with ``quantization`` set, in the
    quantized file (the quantizer does not carry it over)."""
    import copy

    import onnx
    model = onnx.load(path)
    metadata = copy.copy(fp32.metadata)
    metadata.quantization = quantization
    metadata.write_to(model)
    onnx.save_model(model, path)
