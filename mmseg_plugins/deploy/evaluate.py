"""Images of a dataset config, and the mIoU of an ONNX model on them."""
import copy
from typing import Callable, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from ..forward import slide_logits
from ..config import check_data_paths
from ..errors import ConfigError, DatasetError, InvalidInputError
from ..reporting import quiet_logger
from .onnx_runtime import OnnxSegmentor

__all__ = ['build_split', 'dataset_samples', 'predict_mask', 'evaluate_miou']

#: (image (3, H, W) uint8 BGR after the test pipeline, ground truth
#: (H0, W0) int64 at the original size or None, original (H0, W0)).
Sample = Tuple[torch.Tensor, Optional[torch.Tensor], Tuple[int, int]]


def _innermost(dataset_cfg: dict) -> dict:
    """The dataset config inside wrappers (RepeatDataset, ...)."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def build_split(cfg, split: str = 'test'):
    """The dataset of ``<split>_dataloader`` with the config's *test*
    pipeline (training images come unaugmented, as a deployed model sees
    them).

    Args:
        cfg (Config): A config with ``<split>_dataloader`` and
            ``test_dataloader``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if not cfg.get(key):
        raise ConfigError(f'config {cfg.filename} has no {key}')
    check_data_paths(cfg, (key, ))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset_cfg = copy.deepcopy(_innermost(cfg[key].dataset))
    dataset_cfg.pipeline = copy.deepcopy(
        _innermost(cfg.test_dataloader.dataset).pipeline)
    return DATASETS.build(dataset_cfg)


def dataset_samples(dataset, start: int = 0,
                    count: Optional[int] = None) -> Iterator[Sample]:
    """Samples ``start .. start + count`` (default: to the end) of a
    dataset from :func:`build_split`."""
    stop = len(dataset) if count is None else min(len(dataset),
                                                  start + count)
    for i in range(start, stop):
        item = dataset[i]
        sample = item['data_samples']
        gt = sample.gt_sem_seg.data[0] if 'gt_sem_seg' in sample else None
        yield item['inputs'], gt, tuple(sample.ori_shape)


def predict_mask(segmentor: OnnxSegmentor, image: torch.Tensor,
                 ori_shape: Tuple[int, int]) -> torch.Tensor:
    """(3, H, W) image as the test pipeline gives it -> (H0, W0) class
    indices at the original size, whole or by the sliding windows of the
    exported config's ``test_cfg`` (averaged as mmseg's
    ``slide_inference``): logits are resized bilinearly (with the head's
    ``align_corners``) before the argmax, as mmseg does; a mask graph's
    output is resized by nearest neighbour."""
    mode = segmentor.test_cfg.get('mode', 'whole')
    if mode not in ('whole', 'slide'):
        raise ConfigError(f'{segmentor.path}: unknown test mode {mode!r} in '
                          'its test_cfg (whole or slide)')
    x = segmentor.prepare(image)  # (1, 3, H, W)
    if mode == 'slide':
        if segmentor.output == 'mask':
            raise InvalidInputError(
                f'{segmentor.path} outputs masks, and its '
                'config tests with sliding windows, which '
                'average logits: export with --output logits')
        out = slide_logits(segmentor, x, segmentor.num_classes,
                           tuple(segmentor.test_cfg['crop_size']),
                           tuple(segmentor.test_cfg['stride']))
    else:
        out = segmentor(x)
    if segmentor.output == 'mask':
        if tuple(out.shape[1:]) != tuple(ori_shape):
            out = F.interpolate(out[:, None].float(), size=ori_shape,
                                mode='nearest')[:, 0].long()
        return out[0]
    if tuple(out.shape[2:]) != tuple(ori_shape):
        out = F.interpolate(out, size=ori_shape, mode='bilinear',
                            align_corners=segmentor.align_corners)
    return out[0].argmax(dim=0)


def evaluate_miou(predict: Callable[[torch.Tensor, Tuple[int, int]],
                                    torch.Tensor], dataset) -> float:
    """mIoU (%) over a dataset from :func:`build_split`, with mmseg's
    ``IoUMetric``.

    Args:
        predict (callable): ``predict(image, ori_shape) -> (H0, W0)``
            classes (e.g. :func:`predict_mask` bound to a model).
        dataset: The dataset.
    """
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    for image, gt, ori_shape in dataset_samples(dataset):
        if gt is None:
            raise DatasetError('the dataset has no ground truth (no '
                               'LoadAnnotations in the test pipeline)')
        metric.process({}, [dict(pred_sem_seg=dict(data=predict(
            image, ori_shape)[None]), gt_sem_seg=dict(data=gt[None]))])
    if not metric.results:
        raise DatasetError('the dataset is empty')
    with quiet_logger():  # IoUMetric prints a per-class table
        return float(metric.compute_metrics(metric.results)['mIoU'])
