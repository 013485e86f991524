"""The images a labelling run reads: image files, folders (searched
recursively) and video files, each with the name its outputs get (the
input's name and sub-folder structure; video frames as ``<video
name>/frame_000000``). Inputs that cannot be read are collected with the
reason, not raised."""
import os
import os.path as osp
from typing import Iterator, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..errors import DatasetError, InvalidInputError
from ..model_input import ModelInput

__all__ = ['IMAGE_EXTENSIONS', 'VIDEO_EXTENSIONS', 'InputItem',
           'SkippedInput', 'Inputs']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg',
                    '.mpeg', '.wmv')


class InputItem(NamedTuple):
    """One input file: ``kind`` ``'image'`` or ``'video'``, its ``path``
    and the ``name`` its outputs get (without extension)."""
    kind: str
    path: str
    name: str


class SkippedInput(NamedTuple):
    """An input left out, and why."""
    path: str
    reason: str


class Inputs:
    """The images to label, found from paths given by the user.

    Args:
        paths (Sequence[str]): Image files, folders (searched recursively
            for :data:`IMAGE_EXTENSIONS`) and video files
            (:data:`VIDEO_EXTENSIONS`). With one folder the outputs keep
            the paths below it; with several each keeps its folder's name
            in front.

    Attributes:
        items (list[InputItem]): The files, in order.
        skipped (list[SkippedInput]): Inputs that could not be read
            (missing, folders without images; unreadable images and
            videos are added while :meth:`iterate` runs).

    Raises:
        InvalidInputError: two inputs would be written under one name.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self.skipped: List[SkippedInput] = []
        self.items: List[InputItem] = []
        for path in paths:
            if osp.isdir(path):
                self._add_folder(path, '' if len(paths) == 1 else
                                 osp.basename(osp.normpath(path)))
            elif not osp.exists(path):
                self.skipped.append(SkippedInput(path,
                                                 'no such file or folder'))
            else:
                kind = ('video' if path.lower().endswith(VIDEO_EXTENSIONS)
                        else 'image')
                self.items.append(InputItem(
                    kind, path, osp.splitext(osp.basename(path))[0]))
        names = {}
        for item in self.items:
            if item.name in names:
                raise InvalidInputError(
                    f'{item.path} and {names[item.name]} would both be '
                    f'written as {item.name}.png; label them in separate '
                    'runs or folders')
            names[item.name] = item.path

    def _add_folder(self, folder: str, prefix: str) -> None:
        found = sorted(
            osp.join(root, f) for root, _, files in os.walk(folder)
            for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            self.skipped.append(SkippedInput(
                folder, 'a folder without images '
                f'({", ".join(IMAGE_EXTENSIONS)})'))
        for f in found:
            rel = osp.splitext(osp.relpath(f, folder))[0]
            self.items.append(InputItem('image', f, osp.join(prefix, rel)))

    def expected_count(self) -> int:
        """Images to label: one per image file, the frame count of each
        video (as its header gives it, at least 1)."""
        import cv2
        total = 0
        for item in self.items:
            if item.kind == 'video':
                cap = cv2.VideoCapture(item.path)
                total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
                cap.release()
            else:
                total += 1
        return total

    def check_channels(self, model_input: ModelInput) -> None:
        """Refuse (``InvalidInputError``) before anything is written an
        image file whose header gives a channel count the model cannot
        take (see :mod:`mmseg_plugins.model_input`); unreadable headers
        are left to the reading."""
        from ..own_data.survey import image_info
        for item in self.items:
            if item.kind != 'image':
                continue
            try:
                channels = image_info(item.path).channels
            except DatasetError:
                continue
            model_input.check_channels(
                channels, item.path,
                alpha=not item.path.lower().endswith(('.tif', '.tiff')))

    def iterate(self, model_input: ModelInput
                ) -> Iterator[Tuple[str, np.ndarray]]:
        """``(output name, image)`` read as the model's loader reads them;
        unreadable inputs are recorded in :attr:`skipped` and left out,
        images the model cannot take raise ``InvalidInputError``."""
        for item in self.items:
            if item.kind == 'image':
                try:
                    image = model_input.read(item.path)
                except DatasetError:
                    self.skipped.append(SkippedInput(
                        item.path, 'not a readable image'))
                    continue
                yield item.name, image
            else:
                yield from self._frames(item, model_input)

    def _frames(self, item: InputItem, model_input: ModelInput
                ) -> Iterator[Tuple[str, np.ndarray]]:
        import cv2
        cap = cv2.VideoCapture(item.path)
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            self.skipped.append(SkippedInput(
                item.path, 'a video the installed OpenCV cannot decode'))
        index = 0
        while ok:
            yield osp.join(item.name, f'frame_{index:06d}'), \
                model_input.from_opencv(frame,
                                        f'{item.path} (frame {index})')
            index += 1
            ok, frame = cap.read()
        cap.release()
