"""Running a trained segmentor on one's own images.

:class:`Segmenter` labels images given as arrays with the model of a config
and either a PyTorch checkpoint or an ONNX file written by
``tools/deployment/pytorch2onnx.py`` (run by ONNX Runtime); ``tools/
inference.py`` is its command line. Both backends run the same steps, which
are mmseg's test-time steps:

1. the config's test pipeline (its ``Resize``/``ResizeToMultiple``; no
   annotations), on the image as OpenCV reads it (BGR, uint8);
2. the data preprocessor's normalisation (BGR -> RGB, mean, std);
3. the network on the whole image, or on overlapping windows averaged as
   mmseg's ``slide_inference`` does when the config's ``test_cfg`` says
   ``mode='slide'``; the logits are resized to the network's input;
4. the logits resized to the original image (bilinear, the model's
   ``align_corners``) and the arg-max over classes.

Images smaller than the backbone's minimum input are padded (with zeros
after normalisation, i.e. the mean colour) and the padding is cropped from
the logits, so any size works.
"""
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'InferenceForward', 'Segmenter', 'segment', 'normalize_images',
    'slide_logits', 'dataset_meta', 'colorize', 'overlay'
]

#: Input side below which the backbones of this package refuse an image.
DEFAULT_MIN_INPUT_SIZE = 32


def normalize_images(images: torch.Tensor, mean: Optional[torch.Tensor],
                     std: Optional[torch.Tensor],
                     bgr_to_rgb: bool) -> torch.Tensor:
    """mmseg's ``SegDataPreProcessor`` normalisation, in its order: the
    channel swap, then ``(x - mean) / std``. Stated once for the paths that
    run it outside the preprocessor (:class:`Segmenter`, the ONNX Runtime
    runner, the exported graph).

    Args:
        images (Tensor): (B, 3, H, W) float images as OpenCV reads them
            (BGR, 0..255).
        mean (Tensor, optional): The preprocessor's 3 means (in the
            order after the swap); None: no mean/std step.
        std (Tensor, optional): Its 3 standard deviations.
        bgr_to_rgb (bool): Swap the channels to RGB first.
    """
    if bgr_to_rgb:
        images = images[:, [2, 1, 0]]
    if mean is not None:
        images = (images - mean.reshape(1, -1, 1, 1)) / std.reshape(
            1, -1, 1, 1)
    return images


def dataset_meta(cfg, checkpoint_meta: Optional[dict] = None,
                 num_classes: Optional[int] = None) -> Dict:
    """Class names and palette: from the checkpoint's ``dataset_meta`` if it
    has one, else from the config's test dataset (its ``metainfo`` or its
    class's ``METAINFO``), else numbered classes with a fixed palette."""
    meta = dict((checkpoint_meta or {}).get('dataset_meta') or {})
    if not meta.get('classes'):
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        meta = dict(dataset.get('metainfo') or {})
        if not meta.get('classes') and dataset.get('type'):
            from mmseg.registry import DATASETS
            try:
                meta = dict(getattr(DATASETS.get(dataset['type']),
                                    'METAINFO', {}) or {})
            except KeyError:
                meta = {}
    classes = list(meta.get('classes') or [])
    if num_classes and len(classes) != num_classes:
        classes = [f'class {i}' for i in range(num_classes)]
    palette = meta.get('palette')
    if not palette or len(palette) < len(classes):
        rng = np.random.default_rng(0)  # fixed colours for unnamed classes
        palette = rng.integers(0, 256, (len(classes), 3)).tolist()
    return dict(classes=tuple(classes),
                palette=[list(map(int, c)) for c in palette[:len(classes)]])


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]
             ) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) BGR image of the palette (RGB)."""
    lut = np.zeros((max(len(palette), int(label.max()) + 1), 3), np.uint8)
    lut[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return lut[label]


def overlay(image: np.ndarray, label: np.ndarray,
            palette: Sequence[Sequence[int]], alpha: float = 0.5
            ) -> np.ndarray:
    """The BGR image blended with the colours of its labels."""
    color = colorize(label, palette).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) +
            color * alpha).round().astype(np.uint8)


def slide_logits(logits_fn: Callable[[torch.Tensor], torch.Tensor],
                 inputs: torch.Tensor, num_classes: int,
                 crop_size: Tuple[int, int], stride: Tuple[int, int]
                 ) -> torch.Tensor:
    """Logits (B, K, H, W) of ``inputs`` (B, 3, H, W) from overlapping
    windows averaged, as mmseg's ``EncoderDecoder.slide_inference`` (a
    window larger than the image is cut to the image).

    Args:
        logits_fn (callable): (B, 3, h, w) -> (B, K, h, w) logits.
        inputs (Tensor): The preprocessed batch.
        num_classes (int): K.
        crop_size (tuple[int, int]): Window (h, w).
        stride (tuple[int, int]): Window step (h, w).
    """
    h_stride, w_stride = stride
    h_crop, w_crop = crop_size
    batch, _, h_img, w_img = inputs.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = inputs.new_zeros((batch, num_classes, h_img, w_img))
    count = inputs.new_zeros((batch, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, h_img)
            x2 = min(w_idx * w_stride + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            preds[:, :, y1:y2, x1:x2] += logits_fn(
                inputs[:, :, y1:y2, x1:x2])
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


class InferenceForward(nn.Module):
    """What a segmentor computes at test time for a batch: backbone, decode
    head, the logits resized to the input (no auxiliary head). It is
    mmseg's ``encode_decode`` without its metadata, what the ONNX export
    holds (apart from normalisation) and what the benchmark counts."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seg = self.segmentor
        logits = seg.decode_head(seg.extract_feat(x))  # (B, K, h, w)
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=seg.align_corners)


class Segmenter:
    """Label images with a trained segmentor.

    Args:
        config (str | mmengine.Config): The model's config.
        checkpoint (str): A checkpoint of that model (``.pth``), or an ONNX
            file exported from it (``.onnx``, needs ``onnxruntime``).
        device (str): ``'auto'`` (the GPU when there is one), ``'cpu'``,
            ``'cuda'``, ``'cuda:1'`` ... Default: ``'auto'``.
        precision (str): ``'fp32'``, or ``'fp16'``/``'bf16'`` autocast
            (PyTorch backend). Default: ``'fp32'``.
        channels_last (bool): Run the network on channels-last tensors
            (PyTorch backend). Default: False.
        compile (str, optional): ``torch.compile`` the network with this
            mode (``'default'``, ``'reduce-overhead'``,
            ``'max-autotune-no-cudagraphs'``, ...; PyTorch backend).
        compile_backend (str): ``torch.compile`` backend. Default:
            ``'inductor'``.
        cfg_options (dict, optional): Overrides of the config, e.g.
            ``{'model.test_cfg.mode': 'slide', ...}``.

    Raises:
        ToolError: the config has no model, the checkpoint does not fit it,
            or an option cannot be honoured here.
    """

    def __init__(self,
                 config,
                 checkpoint: str,
                 device: str = 'auto',
                 precision: str = 'fp32',
                 channels_last: bool = False,
                 compile: Optional[str] = None,
                 compile_backend: str = 'inductor',
                 cfg_options: Optional[dict] = None) -> None:
        from mmengine.config import Config

        from .accelerate import check_precision, resolve_device
        from .tools import ToolError, load_config
        cfg = load_config(config, cfg_options) if not isinstance(
            config, Config) else copy.deepcopy(config)
        if cfg_options and isinstance(config, Config):
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        if not osp.isfile(checkpoint):
            raise ToolError(f'checkpoint not found: {checkpoint}')
        self.onnx = checkpoint.endswith('.onnx')
        preprocessor = cfg.model.get('data_preprocessor') or {}
        self.mean = torch.tensor(preprocessor.get('mean') or [0., 0., 0.],
                                 dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(preprocessor.get('std') or [1., 1., 1.],
                                dtype=torch.float32).view(1, -1, 1, 1)
        self.bgr_to_rgb = bool(preprocessor.get('bgr_to_rgb', False))
        test_cfg = cfg.model.get('test_cfg') or {}
        self.mode = test_cfg.get('mode', 'whole')
        if self.mode == 'slide':
            self.crop_size = tuple(test_cfg['crop_size'])
            self.stride = tuple(test_cfg['stride'])
        self.align_corners = bool(
            (cfg.model.get('decode_head') or {}).get('align_corners', False))
        self.pipeline = self._test_pipeline(cfg)
        if self.onnx:
            self._load_onnx(checkpoint, precision, channels_last, compile)
        else:
            self._load_torch(checkpoint, channels_last, compile,
                             compile_backend)
        self.classes = self.meta['classes']
        self.palette = self.meta['palette']

    # ----------------------------------------------------------- loading
    def _load_torch(self, checkpoint: str, channels_last: bool,
                    compile: Optional[str], compile_backend: str) -> None:
        from mmengine.model import revert_sync_batchnorm
        from mmengine.registry import init_default_scope
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        from mmseg.registry import MODELS

        from .checkpoint import CheckpointError, safe_load
        from .tools import ToolError
        cfg = self.cfg
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.pop('pretrained', None)
        model_cfg.train_cfg = None
        if model_cfg.get('backbone', {}).get('init_cfg'):
            model_cfg.backbone.init_cfg = None
        try:
            model = revert_sync_batchnorm(MODELS.build(model_cfg))
        except (KeyError, ValueError, TypeError) as err:
            raise ToolError(f'cannot build the model of the config: {err}')
        ckpt = safe_load(checkpoint)
        if not isinstance(ckpt, dict):
            raise CheckpointError(f'{checkpoint} holds no state dict')
        try:
            _load_checkpoint_to_model(model, ckpt, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise ToolError(
                f'{checkpoint} does not fit the model of the config: '
                f'{" ".join(first[1:3]) if len(first) > 1 else first[0]}'
            ) from None
        self.num_classes = model.decode_head.out_channels
        self.meta = dataset_meta(cfg, ckpt.get('meta'), self.num_classes)
        model = model.to(self.device).eval()
        self.min_input_size = getattr(model.backbone, 'min_input_size',
                                      DEFAULT_MIN_INPUT_SIZE)
        network = InferenceForward(model)
        self.channels_last = channels_last
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.model = model
        self.network = network
        if compile:
            from .accelerate import compile_module
            self.network = compile_module(network, compile, compile_backend,
                                          self.device)
        self.inputs_normalised = True

    def _load_onnx(self, path: str, precision: str, channels_last: bool,
                   compile: Optional[str]) -> None:
        from .tools import ToolError
        if precision != 'fp32' or channels_last or compile:
            raise ToolError('--precision, --channels-last and --compile '
                            'apply to PyTorch checkpoints, not to an ONNX '
                            'model')
        try:
            from .deploy.onnx_runtime import OnnxSegmentor
        except ImportError as err:
            raise ToolError(f'running an ONNX model needs onnxruntime '
                            f"(pip install 'mmseg_plugins[deploy]'): {err}")
        runner = OnnxSegmentor(path, self.device)
        if runner.output != 'logits':
            raise ToolError(f'{path} outputs {runner.output}; the inference '
                            'tool needs logits (export with --output '
                            'logits)')
        self._check_onnx_preprocessing(runner, path)
        self.network = runner
        self.model = None
        self.channels_last = False
        self.num_classes = runner.num_classes
        self.meta = dataset_meta(self.cfg, dict(dataset_meta=dict(
            classes=runner.classes, palette=runner.palette)) if getattr(
                runner, 'classes', None) else None, self.num_classes)
        self.min_input_size = runner.min_input_size
        # the graph normalises raw BGR images itself when it was exported so
        self.inputs_normalised = not runner.normalize

    def _check_onnx_preprocessing(self, runner, path: str) -> None:
        """Refuse a config whose data preprocessor differs from the one the
        ONNX file was exported with (stored in the file): its mean/std
        would normalise the inputs (or pad them) differently from what the
        graph expects."""
        from .tools import ToolError
        ours = dict(mean=self.mean.flatten().tolist(),
                    std=self.std.flatten().tolist(),
                    bgr_to_rgb=self.bgr_to_rgb)
        stored = dict(mean=list(runner.mean), std=list(runner.std),
                      bgr_to_rgb=bool(runner.bgr_to_rgb))

        def close(a: list, b: list) -> bool:
            return len(a) == len(b) and all(
                abs(x - y) <= 1e-6 * max(1., abs(y)) for x, y in zip(a, b))

        if ours['bgr_to_rgb'] != stored['bgr_to_rgb'] or not (
                close(ours['mean'], stored['mean'])
                and close(ours['std'], stored['std'])):
            def describe(v: dict) -> str:
                return (f'mean {[round(x, 4) for x in v["mean"]]}, std '
                        f'{[round(x, 4) for x in v["std"]]}, bgr_to_rgb '
                        f'{v["bgr_to_rgb"]}')
            raise ToolError(
                f'{path} was exported with {describe(stored)}, but the '
                f'config has {describe(ours)}: use the config it was '
                'exported from')

    @staticmethod
    def _test_pipeline(cfg):
        """The config's test pipeline on arrays, without annotations."""
        from mmcv.transforms import Compose
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        steps = cfg.get('test_pipeline') or \
            cfg.test_dataloader.dataset.pipeline
        steps = [copy.deepcopy(s) for s in steps
                 if s['type'] not in ('LoadAnnotations', 'LoadImageFromFile',
                                      'LoadDepthAnnotation')]
        return Compose([dict(type='LoadImageFromNDArray')] + steps)

    # ---------------------------------------------------------- running
    def preprocess(self, image: np.ndarray) -> Tuple[torch.Tensor, dict]:
        """One (H, W, 3) BGR uint8 image -> the network's (3, h, w) float
        input (normalised unless the ONNX graph normalises) and its
        metadata (``ori_shape``, ``img_shape``)."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        elif image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f'expected an (H, W, 3) image, got shape '
                             f'{tuple(image.shape)}')
        image = np.ascontiguousarray(image[..., :3])
        data = self.pipeline(dict(img=image))
        x = data['inputs'].float()  # (3, h, w), BGR
        meta = data['data_samples'].metainfo
        if self.inputs_normalised:
            x = normalize_images(x[None], self.mean, self.std,
                                 self.bgr_to_rgb)[0]
        return x, dict(ori_shape=tuple(meta['ori_shape']),
                       img_shape=tuple(x.shape[1:]))

    def _pad_value(self) -> torch.Tensor:
        """What padding becomes zero after normalisation: 0 for normalised
        inputs, the mean colour (in BGR) for a graph that normalises."""
        if self.inputs_normalised:
            return torch.zeros(3, 1, 1)
        mean = self.mean[0]
        return mean[[2, 1, 0]] if self.bgr_to_rgb else mean

    def _network_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at ``x``'s size, padding what is below the minimum input
        size (and cropping it off again)."""
        h, w = x.shape[2:]
        ph, pw = max(self.min_input_size - h, 0), max(
            self.min_input_size - w, 0)
        if ph or pw:
            pad = self._pad_value().to(x).view(1, 3, 1, 1)
            big = pad.expand(x.shape[0], 3, h + ph, w + pw).clone()
            big[:, :, :h, :w] = x
            return self._network_logits(big)[:, :, :h, :w]
        from .accelerate import autocast
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(self.precision, self.device):
            return self.network(x).float()

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a preprocessed batch (B, 3, h, w) at its size, whole or
        by sliding window (the config's ``test_cfg``)."""
        batch = batch.to(self.device)
        if self.mode == 'slide':
            return slide_logits(self._network_logits, batch,
                                self.num_classes, self.crop_size, self.stride)
        return self._network_logits(batch)

    def __call__(self, images: Sequence[np.ndarray],
                 batch_size: int = 1) -> List[np.ndarray]:
        """Label maps (H, W) of class indices (int64) of BGR images.

        Consecutive images that the test pipeline brings to the same size
        are run together, up to ``batch_size`` at a time.
        """
        prepared = [self.preprocess(image) for image in images]
        labels: List[np.ndarray] = []
        start = 0
        while start < len(prepared):
            shape = prepared[start][1]['img_shape']
            end = start + 1
            while end < len(prepared) and end - start < batch_size and \
                    prepared[end][1]['img_shape'] == shape:
                end += 1
            chunk = prepared[start:end]
            logits = self.logits(torch.stack([x for x, _ in chunk]))
            for one, (_, meta) in zip(logits, chunk):
                labels.append(self.postprocess(one[None], meta))
            start = end
        return labels

    def postprocess(self, logits: torch.Tensor, meta: dict) -> np.ndarray:
        """(1, K, h, w) logits -> (H, W) labels at the original size."""
        logits = F.interpolate(logits, size=meta['ori_shape'][:2],
                               mode='bilinear',
                               align_corners=self.align_corners)
        return logits[0].argmax(0).cpu().numpy()


def segment(images: Union[np.ndarray, Sequence[np.ndarray]], config,
            checkpoint: str, **kwargs) -> Union[np.ndarray, List[np.ndarray]]:
    """One-shot: label one BGR image (H, W, 3) or a list of them with a
    config and checkpoint (see :class:`Segmenter` for ``kwargs``)."""
    single = isinstance(images, np.ndarray) and images.ndim == 3
    segmenter = Segmenter(config, checkpoint, **kwargs)
    labels = segmenter([images] if single else list(images))
    return labels[0] if single else labels
