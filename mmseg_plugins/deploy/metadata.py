"""What an exported model computes and how to feed it, stored in the ONNX
file itself (``metadata_props``), so that a runtime needs only the file.

Every field of :class:`ExportMetadata` is one ``metadata_props`` entry whose
value is JSON; the entry ``mmseg_plugins`` holds the format version and
marks the file as ours. ``onnxruntime`` exposes the entries as
``session.get_modelmeta().custom_metadata_map``; Netron and
``onnx.load(path).metadata_props`` show them too.
"""
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional

from ..config import declared_classes as dataset_classes  # noqa: F401
from ..config import plain
from ..errors import InvalidInputError

__all__ = [
    'FORMAT_KEY', 'FORMAT_VERSION', 'ExportMetadata', 'dataset_classes',
    'plain'
]

#: The ``metadata_props`` key that marks a file as exported by this package.
FORMAT_KEY = 'mmseg_plugins'
#: Version of the set of fields below.
FORMAT_VERSION = '1'


@dataclass
class ExportMetadata:
    """How to use an exported segmentor.

    Args:
        output (str): ``'logits'`` (B, K, H, W) float32 or ``'mask'``
            (B, H, W) int64.
        normalize (bool): The graph swaps BGR to RGB (if ``bgr_to_rgb``) and
            normalises with ``mean``/``std``: it takes raw images (BGR,
            0..255 as OpenCV reads them). Else it takes preprocessed ones.
        mean (list[float]): The config's data-preprocessor mean (RGB order
            when ``bgr_to_rgb``).
        std (list[float]): Its std.
        bgr_to_rgb (bool): Whether the preprocessor swaps the channel
            order.
        num_classes (int): Classes of the decode head.
        align_corners (bool): ``align_corners`` of the decode head's resize
            (for resizing logits to the original image outside the graph).
        test_cfg (dict): The config's ``model.test_cfg`` (``mode`` ``whole``
            or ``slide`` with ``crop_size``/``stride``): the graph computes
            one whole image; sliding windows are the caller's.
        min_input_size (int): Smallest input side the model accepts.
        classes (list[str], optional): Class names.
        palette (list[list[int]], optional): RGB colour per class.
        config (str): File name of the config exported.
        exporter (str): ``'dynamo'`` or ``'torchscript'``.
        opset (int): ONNX opset of the default domain.
        dynamic (bool): Batch, height and width are free; else the graph
            takes exactly ``shape`` at batch 1.
        shape (list[int]): (H, W) of the export.
        fused (bool): The model was fused (``mmseg_plugins.fuse``).
        quantization (str, optional): How the weights and activations were
            quantized (None: float32).
        in_channels (int): Channels of the images the graph takes.
        band_input (bool): The images are the stored bands (as float32, in
            the stored order: ``mmseg_plugins.LoadImageAnyBands``) rather
            than OpenCV's BGR colour (see
            :class:`~mmseg_plugins.model_input.ModelInput`).
        input_dtype (str, optional): The sample type of the images the
            model was trained on (band inputs), None: not recorded.
    """
    output: str
    normalize: bool
    mean: List[float]
    std: List[float]
    bgr_to_rgb: bool
    num_classes: int
    align_corners: bool
    test_cfg: Dict[str, Any]
    min_input_size: int
    classes: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None
    config: str = ''
    exporter: str = ''
    opset: int = 0
    dynamic: bool = True
    shape: List[int] = field(default_factory=list)
    fused: bool = False
    quantization: Optional[str] = None
    in_channels: int = 3
    band_input: bool = False
    input_dtype: Optional[str] = None

    def model_input(self):
        """The :class:`~mmseg_plugins.model_input.ModelInput` of the
        graph's images."""
        from ..model_input import ModelInput
        return ModelInput(self.in_channels, self.band_input,
                          self.input_dtype, list(self.mean),
                          list(self.std), self.bgr_to_rgb)

    def to_props(self) -> Dict[str, str]:
        """``{key: JSON value}`` for ``metadata_props``, with the format
        marker."""
        props = {k: json.dumps(plain(v)) for k, v in asdict(self).items()}
        props[FORMAT_KEY] = FORMAT_VERSION
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str],
                   source: str) -> 'ExportMetadata':
        """Read the fields back.

        Raises:
            ValueError: ``source`` was not exported by this package, or by
                a version with other fields.
        """
        if FORMAT_KEY not in props:
            raise InvalidInputError(
                f'{source} is an ONNX model but not one exported by '
                'mmseg_plugins (its metadata has no "mmseg_plugins" entry); '
                'export it with tools/deployment/pytorch2onnx.py')
        if props[FORMAT_KEY] != FORMAT_VERSION:
            raise InvalidInputError(
                f'{source} has mmseg_plugins metadata version '
                f'{props[FORMAT_KEY]!r}; this version reads '
                f'{FORMAT_VERSION!r}: export it again')
        names = [f.name for f in fields(cls)]
        try:
            return cls(**{k: json.loads(props[k]) for k in names
                          if k in props})
        except (TypeError, json.JSONDecodeError) as err:
            raise InvalidInputError(
                f'{source}: unreadable mmseg_plugins metadata '
                f'({err})') from None

    def write_to(self, model) -> None:
        """Replace the entries of an ``onnx.ModelProto`` by these."""
        props = self.to_props()
        kept = [p for p in model.metadata_props if p.key not in props]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
