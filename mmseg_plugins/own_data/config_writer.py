"""Write the training config of a prepared dataset: the chosen model's
config as ``_base_`` (absolute path), mmseg's ``BaseSegDataset`` reading the
user's images (and the user's or the converted masks) through split lists,
the classes, a crop size from the image sizes, a schedule from the number
of epochs and the per-class metrics."""
import glob
import math
import os.path as osp
import pprint
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import mmseg_plugins
from ..errors import InvalidInputError

__all__ = ['configs_root', 'resolve_model_config', 'crop_size_for',
           'scaled_schedule', 'median_frequency_weights', 'render_config']

#: the largest crop the tool picks (the model configs' ADE20K crop)
MAX_CROP = 512
#: class weights of --balance are clipped to [1/CLIP, CLIP]
WEIGHT_CLIP = 10.0


def configs_root() -> str:
    """The package's configs: ``mmseg_plugins/.mim/configs`` (in the
    repository a link to ``configs/``; in a wheel a copy)."""
    return osp.join(osp.dirname(mmseg_plugins.__file__), '.mim', 'configs')


def resolve_model_config(model: str) -> str:
    """The absolute path of a model config: a file path, a name under
    ``configs/`` (``segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512``,
    with or without ``.py``) or a short name (``afformer_tiny``,
    ``segformer_mit-b2``, ``mpvit_small``: its ADE20K config).

    Raises:
        InvalidInputError: no such config.
    """
    if osp.isfile(model):
        return osp.abspath(model)
    root = configs_root()
    name = model[:-3] if model.endswith('.py') else model
    direct = osp.join(root, name + '.py')
    if osp.isfile(direct):
        return osp.realpath(direct)
    files = sorted(glob.glob(osp.join(root, '*', '*.py')))
    exact = [f for f in files if osp.basename(f)[:-3] == name]
    if exact:
        return osp.realpath(exact[0])
    short = [f for f in files
             if osp.basename(f).startswith(name + '_') and
             osp.basename(osp.dirname(f)) != '_base_']
    if short:
        # the plain ADE20K recipe: no fine-tune/pretrain variants
        short.sort(key=lambda f: ('ade20k' not in f, len(f), f))
        return osp.realpath(short[0])
    raise InvalidInputError(
        f'no model config {model!r} under {root}: give a config path, a '
        'name such as segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512, '
        'or a short name such as afformer_tiny, segformer_mit-b2, '
        'mpvit_small')


def crop_size_for(sizes: Sequence[Tuple[int, int]]) -> Tuple[int, int]:
    """(h, w) training crop: the median image size, at most
    :data:`MAX_CROP`, rounded down to a multiple of 32 (the models' largest
    stride), at least 32."""
    w = int(np.median([s[0] for s in sizes]))
    h = int(np.median([s[1] for s in sizes]))
    return tuple(max(32, min(MAX_CROP, v) // 32 * 32) for v in (h, w))


def scaled_schedule(schedulers: List[dict], base_iters: int,
                    max_iters: int) -> List[dict]:
    """The inherited parameter schedulers with their iteration bounds
    scaled from ``base_iters`` to ``max_iters`` (warmup keeps its share)."""
    scale = max_iters / base_iters
    out = []
    for sched in schedulers:
        sched = dict(sched)
        for key in ('begin', 'end'):
            if key in sched:
                sched[key] = min(max_iters, int(round(sched[key] * scale)))
        if 'end' in sched and sched['end'] <= sched.get('begin', 0):
            sched['end'] = sched.get('begin', 0) + 1
        out.append(sched)
    return out


def median_frequency_weights(pixels: np.ndarray) -> List[float]:
    """Median frequency balancing (Eigen & Fergus, 2015): ``w_c =
    median(f) / f_c`` with ``f_c`` the share of training pixels of class c,
    the median over the classes present, clipped to [0.1, 10]; classes
    absent from training get 1.0."""
    freq = pixels / max(1, pixels.sum())
    present = freq[freq > 0]
    med = float(np.median(present)) if present.size else 1.0
    weights = [float(np.clip(med / f, 1 / WEIGHT_CLIP, WEIGHT_CLIP))
               if f > 0 else 1.0 for f in freq]
    return [round(w, 4) for w in weights]


def _fmt(value) -> str:
    return pprint.pformat(value, width=74, sort_dicts=False)


def render_config(base: str, base_cfg, splits: Dict[str, dict],
                  classes: Sequence[str], palette: Sequence[Sequence[int]],
                  crop_size: Tuple[int, int],
                  test_scale: Optional[Tuple[int, int]],
                  batch_size: int, num_workers: int, max_iters: int,
                  val_interval: int, reduce_zero_label: bool,
                  class_weight: Optional[List[float]] = None,
                  header: str = '', photometric: bool = True,
                  image_loading: Optional[dict] = None,
                  normalisation: Optional[dict] = None) -> str:
    """The text of the config (see the module docstring).

    Args:
        base (str): absolute path of the model config.
        base_cfg (Config): that config, loaded (for its schedule and heads).
        splits (dict): split -> dict(img_dir, mask_dir, ann_file,
            img_suffix, mask_suffix).
        test_scale (tuple, optional): (w, h) test resize, None to keep the
            image sizes.
        image_loading (dict, optional): the image loading transform of
            non-RGB images (default mmseg's ``LoadImageFromFile``).
        normalisation (dict, optional): data preprocessor mean/std/
            bgr_to_rgb and the backbone's ``in_channels``.
    """
    load = image_loading or dict(type='LoadImageFromFile')
    train_pipeline = [
        load, dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=test_scale or (crop_size[1],
                                                       crop_size[0]),
             ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5)]
    if photometric:
        train_pipeline.append(dict(type='PhotoMetricDistortion'))
    train_pipeline.append(dict(type='PackSegInputs'))
    test_pipeline = [load]
    if test_scale:
        test_pipeline.append(dict(type='Resize', scale=test_scale,
                                  keep_ratio=True))
    test_pipeline += [dict(type='LoadAnnotations'),
                      dict(type='PackSegInputs')]

    def dataset(split, pipeline):
        s = splits[split]
        return dict(_delete_=True, type='BaseSegDataset',
                    metainfo=dict(classes=tuple(classes),
                                  palette=[list(map(int, c))
                                           for c in palette]),
                    data_prefix=dict(img_path=s['img_dir'],
                                     seg_map_path=s['mask_dir']),
                    ann_file=s['ann_file'], img_suffix=s['img_suffix'],
                    seg_map_suffix=s['mask_suffix'],
                    reduce_zero_label=reduce_zero_label, pipeline=pipeline)

    workers = dict(num_workers=num_workers,
                   persistent_workers=num_workers > 0)
    head = dict(num_classes=len(classes))
    if class_weight is not None:
        loss = base_cfg.model.decode_head.get('loss_decode')
        if not isinstance(loss, dict):
            raise InvalidInputError(
                f'{base}: decode_head.loss_decode is not one loss; '
                '--balance cannot set its class_weight')
        head['loss_decode'] = dict(class_weight=class_weight)
    model = dict(data_preprocessor=dict(size=crop_size), decode_head=head)
    aux = base_cfg.model.get('auxiliary_head')
    if isinstance(aux, dict):
        model['auxiliary_head'] = dict(num_classes=len(classes))
        if class_weight is not None and \
                isinstance(aux.get('loss_decode'), dict):
            model['auxiliary_head']['loss_decode'] = dict(
                class_weight=class_weight)
    if normalisation:
        norm = dict(normalisation)
        model['backbone'] = dict(in_channels=norm.pop('in_channels'))
        model['data_preprocessor'].update(norm)
    base_iters = base_cfg.train_cfg.get('max_iters', max_iters)
    schedule = scaled_schedule(list(base_cfg.get('param_scheduler') or []),
                               base_iters, max_iters)
    parts = [
        header,
        f'_base_ = [{base!r}]',
        "custom_imports = dict(imports=['mmseg_plugins'], "
        'allow_failed_imports=False)',
        f'crop_size = {crop_size!r}',
        f'train_pipeline = {_fmt(train_pipeline)}',
        f'test_pipeline = {_fmt(test_pipeline)}',
        'train_dataloader = ' + _fmt(dict(
            batch_size=batch_size, **workers,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dataset('train', train_pipeline))),
        'val_dataloader = ' + _fmt(dict(
            batch_size=1, **workers,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset('val', test_pipeline))),
        'test_dataloader = val_dataloader',
        '# per class: IoU, Acc, Dice, Fscore, Precision, Recall, and means',
        '# over the classes present in the labels or the predictions (a',
        '# class never predicted counts with precision 0; see',
        '# mmseg_plugins.evaluation)',
        "val_evaluator = dict(type='mmseg_plugins.ClassMeanIoUMetric', "
        "iou_metrics=['mIoU', 'mDice', 'mFscore'])",
        'test_evaluator = val_evaluator',
        f'model = {_fmt(model)}',
        f'# the inherited schedule scaled from {base_iters} to {max_iters} '
        'iterations',
        f'param_scheduler = {_fmt(schedule)}',
        f'train_cfg = {_fmt(dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=val_interval))}',  # noqa: E501
        'default_hooks = ' + _fmt(dict(
            logger=dict(type='LoggerHook',
                        interval=max(1, min(50, val_interval)),
                        log_metric_by_epoch=False),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=val_interval, save_best='mIoU',
                            rule='greater', max_keep_ckpts=2))),
    ]
    return '\n'.join(p for p in parts if p) + '\n'


def iterations(n_train: int, batch_size: int, epochs: float) -> int:
    """Iterations for ``epochs`` passes over ``n_train`` images."""
    return max(1, int(math.ceil(epochs * n_train / batch_size)))
