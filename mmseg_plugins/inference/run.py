"""Label one's own image files, folders and videos into an output folder:
what ``tools/inference.py`` does, as one call, :func:`run_inference`.

For every image (every frame of a video) the three PNGs of
:mod:`.outputs` are written, keeping the input's name and sub-folder
structure (:mod:`.inputs`). Without tiling, images of the same size run
in batches through the config's test pipeline and ``test_cfg``; with
:class:`~.tiled.TileOptions`, every image file runs tile by tile and its
outputs are written by rows (:meth:`.outputs.LabelWriter.write_tiled`;
videos are skipped). Inputs that cannot be read are skipped and listed in
the :class:`InferenceSummary`; bad options, a checkpoint of another model
or an image whose channels the model cannot take stop the run before
anything is written.
"""
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config

from ..errors import InvalidInputError
from ..reporting import Progress
from .backends import TorchOptions
from .inputs import Inputs, SkippedInput
from .outputs import LabelWriter
from .segmenter import Segmenter
from .tiled import TileOptions

__all__ = ['InferenceOptions', 'InferenceSummary', 'run_inference']


@dataclass
class InferenceOptions:
    """What :func:`run_inference` labels, with what, and where to.

    Args:
        config (str | mmengine.Config): The model's config.
        checkpoint (str): Its checkpoint, or an ONNX file exported from it
            (see :class:`~.segmenter.Segmenter`).
        inputs (Sequence[str]): Image files, folders and video files.
        out_dir (str): The output folder.
        batch_size (int): Images of the same size (tiled: windows) run
            together. Default: 4.
        device (str): ``'auto'``, ``'cpu'``, ``'cuda[:N]'``. Default:
            ``'auto'``.
        opacity (float): Weight of the colours in the overlay. Default:
            0.5.
        cfg_options (dict, optional): Overrides of the config.
        torch_options (TorchOptions): Precision, channels-last,
            ``torch.compile`` (PyTorch checkpoints).
        tiling (TileOptions, optional): Label tile by tile, streaming.
    """
    config: Union[str, Config]
    checkpoint: str
    inputs: Sequence[str]
    out_dir: str
    batch_size: int = 4
    device: str = 'auto'
    opacity: float = 0.5
    cfg_options: Optional[dict] = None
    torch_options: TorchOptions = field(default_factory=TorchOptions)
    tiling: Optional[TileOptions] = None

    def check(self) -> None:
        """Refuse an output folder that is a file and a batch size below
        1 (``InvalidInputError``)."""
        if osp.exists(self.out_dir) and not osp.isdir(self.out_dir):
            raise InvalidInputError(f'--out-dir {self.out_dir} is a file, '
                                    'not a folder')
        if self.batch_size < 1:
            raise InvalidInputError('--batch-size must be at least 1')


@dataclass
class InferenceSummary:
    """What :func:`run_inference` did: ``labelled`` images in ``seconds``
    on ``device``, and the inputs it ``skipped`` (unreadable)."""
    labelled: int
    seconds: float
    device: str
    out_dir: str
    tiled: bool
    skipped: List[SkippedInput] = field(default_factory=list)

    def message(self) -> str:
        """The one-line report of the run."""
        if self.tiled:
            text = (f'labelled {self.labelled} images tile by tile in '
                    f'{self.seconds:.1f} s on {self.device} -> '
                    f'{self.out_dir}/labels')
        else:
            text = (f'labelled {self.labelled} images in {self.seconds:.1f} '
                    f's ({self.labelled / max(self.seconds, 1e-9):.2f} '
                    f'images/s) on {self.device} -> '
                    f'{self.out_dir}/{{labels,color,overlay}}')
        if self.skipped:
            text += f'; skipped {len(self.skipped)} input(s)'
        return text


def run_inference(options: InferenceOptions) -> InferenceSummary:
    """Label ``options.inputs`` into ``options.out_dir`` (see the module).

    Raises:
        InvalidInputError: bad options, no images at all, two inputs with
            one output name, an image the model cannot take; a tiled
            output that could not be written.
        CheckpointError: a missing checkpoint or one of another model.
    """
    options.check()
    inputs = Inputs(options.inputs)
    if not inputs.items:
        raise InvalidInputError('no images to label: ' + '; '.join(
            f'{path}: {why}' for path, why in inputs.skipped))
    segmenter = Segmenter(options.config, options.checkpoint,
                          device=options.device,
                          cfg_options=options.cfg_options,
                          torch_options=options.torch_options,
                          tiling=options.tiling)
    inputs.check_channels(segmenter.input)
    writer = LabelWriter(options.out_dir, segmenter, options.opacity)
    start = time.perf_counter()
    if options.tiling is None:
        done = _label_batches(segmenter, inputs, writer, options.batch_size)
    else:
        done = _label_tiled(inputs, writer, options.batch_size)
    return InferenceSummary(done, time.perf_counter() - start,
                            segmenter.device, options.out_dir,
                            options.tiling is not None, inputs.skipped)


def _label_batches(segmenter: Segmenter, inputs: Inputs,
                   writer: LabelWriter, batch_size: int) -> int:
    """Every image and video frame, ``batch_size`` at a time; returns the
    count."""
    progress = Progress(inputs.expected_count(), 'images')
    done = 0
    batch: List[Tuple[str, np.ndarray]] = []

    def flush():
        labels = segmenter([image for _, image in batch], batch_size)
        for (name, image), label in zip(batch, labels):
            writer.write(name, image, label)
        progress.step(batch[-1][0], len(batch))
        batch.clear()

    try:
        for name, image in inputs.iterate(segmenter.input):
            batch.append((name, image))
            done += 1
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    finally:
        progress.close()
    return done


def _label_tiled(inputs: Inputs, writer: LabelWriter,
                 batch_size: int) -> int:
    """Every image file tile by tile (videos skipped); returns the
    count."""
    done = 0
    for item in inputs.items:
        if item.kind == 'video':
            inputs.skipped.append(SkippedInput(
                item.path, 'a video; --tile labels images'))
            continue
        try:
            writer.write_tiled(item.path, item.name, batch_size)
        except OSError as err:  # disk full, permissions: nothing was kept
            raise InvalidInputError(f'could not write the outputs of '
                                    f'{item.path}: {err}') from None
        done += 1
    return done
