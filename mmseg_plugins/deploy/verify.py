"""Verification of an exported ONNX file: ONNX Runtime against PyTorch at
the export size and, for dynamic exports, at two other sizes
(:func:`verification_shapes`), one :class:`Check` each."""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from ..errors import first_line
from .settings import ExportSettings

__all__ = ['verification_shapes', 'Check', 'example_images', 'verify']


def verification_shapes(shape: Tuple[int, int], min_size: int,
                        dynamic: bool) -> List[Tuple[int, int, int]]:
    """(batch, H, W) of the verification runs: the export size; with
    ``dynamic`` also a multiple of 32 of another aspect ratio (half the
    height, 1.5 times the width, rounded) at batch 2, and odd sides, so not
    multiples of 32 (about 3/4 of the height and 5/8 of the width)."""
    h, w = shape
    sizes = [(1, h, w)]
    if dynamic:
        sizes.append((2, max(min_size, h // 64 * 32),
                      max(min_size, (w * 3 // 2 + 31) // 32 * 32)))
        sizes.append((1, max(min_size, h * 3 // 4) | 1,
                      max(min_size, w * 5 // 8) | 1))
    return sizes


@dataclass
class Check:
    """ONNX Runtime against PyTorch at one input size.

    Attributes:
        shape (tuple): (batch, H, W).
        max_abs_diff (float): Largest logit difference (logits output), or
            the fraction of pixels whose class differs (mask output).
        magnitude (float): Largest PyTorch logit.
        unexplained (int): Mask pixels that differ although PyTorch's top-2
            margin there exceeds the tolerance (0 for logits).
        passed (bool): Within the tolerance.
        error (str, optional): Why ONNX Runtime gave no output.
    """
    shape: Tuple[int, int, int]
    max_abs_diff: float
    magnitude: float
    unexplained: int
    passed: bool
    error: Optional[str] = None

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.magnitude, 1e-30)

    def describe(self, output: str) -> str:
        b, h, w = self.shape
        where = f'{h}x{w} (batch {b})'
        if self.error is not None:
            return f'{where}: onnxruntime failed: {self.error}'
        if output == 'mask':
            return (f'{where}: {self.max_abs_diff:.3%} of the pixels differ, '
                    f'{self.unexplained} outside near-ties')
        return (f'{where}: max abs diff {self.max_abs_diff:.3g} '
                f'({self.relative:.2g} of the largest logit '
                f'{self.magnitude:.3g})')


def example_images(batch: int, h: int, w: int, normalize: bool,
                   seed: int, model_input=None) -> torch.Tensor:
    """Random (B, C, H, W) images of ``model_input`` (a
    :class:`~mmseg_plugins.model_input.ModelInput`; default 3-channel
    colour): raw-looking values when the graph normalises (0..255 colour,
    or bands around the dataset's mean), else standard normal."""
    from ..model_input import ModelInput
    return (model_input or ModelInput()).example(batch, h, w, normalize,
                                                 seed)


def _compare(ours: torch.Tensor, logits: torch.Tensor, output: str,
             tolerance: float, shape) -> Check:
    """One :class:`Check` of an ONNX Runtime output against PyTorch's
    logits."""
    magnitude = logits.abs().max().item()
    bound = tolerance * magnitude
    if output == 'logits':
        diff = (ours - logits).abs().max().item() if \
            ours.shape == logits.shape else float('inf')
        return Check(shape, diff, magnitude, 0, diff <= bound)
    expected = logits.argmax(dim=1)
    if ours.shape != expected.shape:
        return Check(shape, 1.0, magnitude, ours.numel(), False)
    differ = ours != expected
    top2 = logits.topk(2, dim=1).values
    near_tie = (top2[:, 0] - top2[:, 1]) <= bound
    unexplained = int((differ & ~near_tie).sum())
    return Check(shape, differ.float().mean().item(), magnitude, unexplained,
                 unexplained == 0)


def verify(path: str, reference: nn.Module, settings: ExportSettings,
           min_size: int, model_input=None) -> List[Check]:
    """Run the ONNX file with ONNX Runtime (CPU) at the
    :func:`verification_shapes` and compare with ``reference`` (an
    :class:`SegmentorForward` of the original model giving logits), on
    :func:`example_images` of ``model_input``."""
    from .onnx_runtime import OnnxSegmentor
    session = OnnxSegmentor(path, 'cpu')
    checks = []
    for seed, shape in enumerate(
            verification_shapes(settings.shape, min_size, settings.dynamic)):
        x = example_images(*shape, settings.normalize, seed, model_input)
        with torch.no_grad():
            logits = reference(x)
        try:
            ours = session(x)
        except Exception as err:  # onnxruntime raises its own types
            checks.append(Check(shape, float('inf'), 0., 0, False,
                                first_line(err)))
            continue
        checks.append(_compare(ours, logits, settings.output,
                               settings.tolerance, shape))
    return checks
