"""The files a labelling run writes for an image, every one atomically:

    OUT/labels/<name>.png    class indices (8-bit; 16-bit above 256 classes)
    OUT/color/<name>.png     the labels in the dataset's palette
    OUT/overlay/<name>.png   the image blended with the palette colours

Tiled (:meth:`LabelWriter.write_tiled`), an image file is labelled window
by window and its outputs are written by rows as the labels become final:
TIFF inputs get a tiled, compressed ``labels/<name>.tif`` with the input's
georeference (nodata pixels labelled 255, or 65535 above 255 classes) and
colour and overlay PNGs up to :data:`PICTURE_PIXELS`; other inputs the
three PNGs, written by rows (:class:`~.png_stream.PngWriter`).
"""
import contextlib
import os.path as osp
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ..fileio import atomic_path
from .visualize import colorize, overlay

__all__ = ['PICTURES', 'PICTURE_PIXELS', 'PICTURE_ROWS', 'label_dtype',
           'pictures', 'LabelWriter']

#: The PNGs of an image, in order.
PICTURES = ('labels', 'color', 'overlay')
#: Largest TIFF (pixels) that gets colour and overlay PNGs when tiled.
PICTURE_PIXELS = 64 * 2 ** 20
#: Rows of the PNGs drawn at a time when tiled.
PICTURE_ROWS = 128


def label_dtype(num_classes: int) -> type:
    """The dtype of a labels PNG: 8-bit up to 256 classes, else 16-bit."""
    return np.uint8 if num_classes <= 256 else np.uint16


def pictures(image: Optional[np.ndarray], label: np.ndarray, segmenter,
             opacity: float, kinds: Sequence[str] = PICTURES
             ) -> Dict[str, np.ndarray]:
    """``{kind: array}`` of the PNGs of an image (or of a band of its
    rows): ``labels`` (class indices), ``color``, ``overlay`` (BGR, drawn
    on ``segmenter.display(image)``: grey and multi-band images rendered
    as 8-bit colour)."""
    out = {}
    for kind in kinds:
        if kind == 'labels':
            out[kind] = label.astype(label_dtype(segmenter.num_classes))
        elif kind == 'color':
            out[kind] = colorize(label, segmenter.palette)
        else:
            out[kind] = overlay(segmenter.display(image), label,
                                segmenter.palette, opacity)
    return out


class LabelWriter:
    """Writes the outputs of a :class:`~.segmenter.Segmenter`'s labels
    under ``out_dir`` (see the module).

    Args:
        out_dir (str): The output folder (``labels/``, ``color/``,
            ``overlay/`` are made in it as needed).
        segmenter (Segmenter): Its classes, palette and display rendering
            (and, for :meth:`write_tiled`, its tiled labelling).
        opacity (float): Weight of the colours in the overlay.
    """

    def __init__(self, out_dir: str, segmenter, opacity: float = 0.5
                 ) -> None:
        self.out_dir, self.segmenter, self.opacity = (out_dir, segmenter,
                                                      opacity)

    def path(self, kind: str, name: str, ext: str = '.png') -> str:
        return osp.join(self.out_dir, kind, name + ext)

    def write(self, name: str, image: np.ndarray, label: np.ndarray,
              kinds: Sequence[str] = PICTURES) -> None:
        """The PNGs of one image (by default all three)."""
        import cv2
        arrays = pictures(image, label, self.segmenter, self.opacity, kinds)
        for kind in kinds:
            with atomic_path(self.path(kind, name)) as tmp:
                if not cv2.imwrite(tmp, arrays[kind]):
                    raise OSError(f'could not write {name}.png in '
                                  f'{self.out_dir}')

    def write_tiled(self, path: str, name: str, batch_size: int = 1,
                    progress: bool = True) -> None:
        """One image file labelled tile by tile (the segmenter must have
        been made with ``tiling``): the label rows go, as they become
        final, to the labels TIFF (TIFF inputs) and to PNGs written row by
        row, so that neither the image nor its labels are ever held
        whole."""
        from .png_stream import PngWriter
        from .rasters import open_raster
        segmenter = self.segmenter
        raster = open_raster(path)
        try:
            # the raster's windows as the model's loader reads the image
            read = segmenter.input.tile_reader(raster)
            rows = segmenter.label_rows(read, raster.height, raster.width,
                                        batch_size, progress=progress)
            tiff = path.lower().endswith(('.tif', '.tiff'))
            kinds = PICTURES[1:]
            if not tiff:
                kinds = PICTURES
            elif raster.height * raster.width > PICTURE_PIXELS:
                kinds = ()
            with contextlib.ExitStack() as stack:
                pngs = {kind: stack.enter_context(PngWriter(
                    self.path(kind, name), raster.height, raster.width,
                    1 if kind == 'labels' else 3,
                    label_dtype(segmenter.num_classes) if kind == 'labels'
                    else np.uint8)) for kind in kinds}
                final = self._rows_drawn(rows, raster, read, pngs)
                if tiff:
                    self._write_tiff(name, raster, final)
                else:
                    for _ in final:
                        pass
        finally:
            raster.close()

    def _rows_drawn(self, rows: Iterator[Tuple[int, np.ndarray]], raster,
                    read, pngs: dict) -> Iterator[Tuple[int, np.ndarray]]:
        """The label rows (nodata masked, as the TIFF stores them), each
        drawn into the PNGs :data:`PICTURE_ROWS` rows at a time (their
        float intermediates stay small whatever the band's height)."""
        dtype = self.tiff_dtype
        kinds = tuple(pngs)
        for y0, labels in rows:
            y1 = y0 + labels.shape[0]
            labels = labels.astype(dtype)
            mask = raster.nodata_mask(y0, y1)
            if mask is not None:
                labels[mask] = np.iinfo(dtype).max
            for s0 in range(y0, y1, PICTURE_ROWS) if kinds else ():
                s1 = min(s0 + PICTURE_ROWS, y1)
                image = (read(s0, s1, 0, raster.width)
                         if 'overlay' in kinds else None)
                arrays = pictures(image, labels[s0 - y0:s1 - y0],
                                  self.segmenter, self.opacity, kinds)
                for kind, png in pngs.items():
                    png.write(arrays[kind])
            yield y0, labels

    @property
    def tiff_dtype(self) -> type:
        """Labels TIFF dtype: 8-bit up to 255 classes (255 is nodata)."""
        return np.uint8 if self.segmenter.num_classes <= 255 else np.uint16

    def _write_tiff(self, name: str, raster, rows) -> None:
        from .rasters import write_labels_tiff
        dtype = self.tiff_dtype
        tags = dict(raster.geo_tags)
        if raster.nodata is not None:
            value = str(np.iinfo(dtype).max)
            tags[42113] = (2, len(value) + 1, value)  # GDAL_NODATA, ASCII
        write_labels_tiff(self.path('labels', name, '.tif'), rows,
                          raster.height, raster.width, dtype, tags)
