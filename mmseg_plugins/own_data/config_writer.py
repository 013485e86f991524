"""Write the training config of a prepared dataset: the chosen model's
config as ``_base_`` (absolute path), mmseg's ``BaseSegDataset`` reading the
user's images (and the user's or the converted masks) through split lists,
the classes, a crop size from the image sizes, a schedule from the number
of epochs and the per-class metrics."""
import glob
import math
import os.path as osp
import pprint
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

import mmseg_plugins
from ..errors import InvalidInputError
from .transforms import BandStatistics

__all__ = ['configs_root', 'resolve_model_config', 'crop_size_for',
           'scaled_schedule', 'median_frequency_weights', 'SplitFiles',
           'TrainingSettings', 'DatasetConfig', 'render_config']

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


class SplitFiles(NamedTuple):
    """Where mmseg's ``BaseSegDataset`` finds a split: the image and mask
    folders, the split list and the file suffixes."""
    img_dir: str
    mask_dir: str
    ann_file: str
    img_suffix: str
    mask_suffix: str


@dataclass
class TrainingSettings:
    """The settings a prepared config trains with, chosen from the data
    (the report gives each with its reason).

    Args:
        crop_size (tuple): (h, w) training crop.
        max_iters (int): Training iterations.
        epochs (float): The passes over the training images they make.
        iters_option (str): The option that set them: ``'--epochs'`` or
            ``'--iters'``.
        n_train (int): Training images.
        batch_size (int): Training batch size.
        val_interval (int): Iterations between validations.
        class_weight (list[float], optional): Loss weight per class
            (``--balance``), None for none.
        bands (BandStatistics, optional): How images that are not 8-bit
            RGB are read and normalised; None for mmseg's colour loading.
    """
    crop_size: Tuple[int, int]
    max_iters: int
    epochs: float
    iters_option: str
    n_train: int
    batch_size: int
    val_interval: int
    class_weight: Optional[List[float]] = None
    bands: Optional[BandStatistics] = None


@dataclass
class DatasetConfig:
    """What :func:`render_config` writes.

    Args:
        base (str): Absolute path of the model config.
        base_cfg (Config): That config, loaded (for its schedule and
            heads).
        splits (dict): Split name -> :class:`SplitFiles`.
        classes (Sequence[str]): Class names.
        palette (Sequence): RGB colour per class.
        settings (TrainingSettings): Crop, schedule, weights, bands.
        test_scale (tuple, optional): (w, h) test resize, None to keep the
            image sizes.
        num_workers (int): Data loader workers.
        reduce_zero_label (bool): Label 0 ignored, v read as v - 1.
        header (str): Text put first (the config's docstring).
    """
    base: str
    base_cfg: object
    splits: Dict[str, SplitFiles]
    classes: Sequence[str]
    palette: Sequence[Sequence[int]]
    settings: TrainingSettings
    test_scale: Optional[Tuple[int, int]]
    num_workers: int
    reduce_zero_label: bool
    header: str = ''


def _pipelines(spec: DatasetConfig) -> Tuple[list, list]:
    """The train and test pipelines."""
    crop_size, bands = spec.settings.crop_size, spec.settings.bands
    load = (bands.loading() if bands is not None
            else dict(type='LoadImageFromFile'))
    train = [
        load, dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=spec.test_scale or (crop_size[1],
                                                            crop_size[0]),
             ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5)]
    if bands is None:  # photometric distortion assumes 8-bit RGB
        train.append(dict(type='PhotoMetricDistortion'))
    train.append(dict(type='PackSegInputs'))
    test = [load]
    if spec.test_scale:
        test.append(dict(type='Resize', scale=spec.test_scale,
                         keep_ratio=True))
    test += [dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    return train, test


def _dataset(spec: DatasetConfig, split: str, pipeline: list) -> dict:
    files = spec.splits[split]
    return dict(_delete_=True, type='BaseSegDataset',
                metainfo=dict(classes=tuple(spec.classes),
                              palette=[list(map(int, c))
                                       for c in spec.palette]),
                data_prefix=dict(img_path=files.img_dir,
                                 seg_map_path=files.mask_dir),
                ann_file=files.ann_file, img_suffix=files.img_suffix,
                seg_map_suffix=files.mask_suffix,
                reduce_zero_label=spec.reduce_zero_label, pipeline=pipeline)


def _model(spec: DatasetConfig) -> dict:
    """The model's overrides: classes, class weights, input bands."""
    base_model, settings = spec.base_cfg.model, spec.settings
    class_weight, num_classes = settings.class_weight, len(spec.classes)
    head = dict(num_classes=num_classes)
    if class_weight is not None:
        loss = base_model.decode_head.get('loss_decode')
        if not isinstance(loss, dict):
            raise InvalidInputError(
                f'{spec.base}: decode_head.loss_decode is not one loss; '
                '--balance cannot set its class_weight')
        head['loss_decode'] = dict(class_weight=class_weight)
    model = dict(data_preprocessor=dict(size=settings.crop_size),
                 decode_head=head)
    aux = base_model.get('auxiliary_head')
    if isinstance(aux, dict):
        model['auxiliary_head'] = dict(num_classes=num_classes)
        if class_weight is not None and \
                isinstance(aux.get('loss_decode'), dict):
            model['auxiliary_head']['loss_decode'] = dict(
                class_weight=class_weight)
    if settings.bands is not None:
        model['backbone'] = dict(in_channels=settings.bands.channels)
        model['data_preprocessor'].update(settings.bands.preprocessor())
    return model


def render_config(spec: DatasetConfig) -> str:
    """The text of the config (see the module docstring)."""
    settings, base_cfg = spec.settings, spec.base_cfg
    max_iters, val_interval = settings.max_iters, settings.val_interval
    train_pipeline, test_pipeline = _pipelines(spec)
    workers = dict(num_workers=spec.num_workers,
                   persistent_workers=spec.num_workers > 0)
    base_iters = base_cfg.train_cfg.get('max_iters', max_iters)
    schedule = scaled_schedule(list(base_cfg.get('param_scheduler') or []),
                               base_iters, max_iters)
    parts = [
        spec.header,
        f'_base_ = [{spec.base!r}]',
        "custom_imports = dict(imports=['mmseg_plugins'], "
        'allow_failed_imports=False)',
        f'crop_size = {settings.crop_size!r}',
        f'train_pipeline = {_fmt(train_pipeline)}',
        f'test_pipeline = {_fmt(test_pipeline)}',
        'train_dataloader = ' + _fmt(dict(
            batch_size=settings.batch_size, **workers,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=_dataset(spec, 'train', train_pipeline))),
        'val_dataloader = ' + _fmt(dict(
            batch_size=1, **workers,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=_dataset(spec, 'val', test_pipeline))),
        'test_dataloader = val_dataloader',
        '# per class: IoU, Acc, Dice, Fscore, Precision, Recall, and means',
        '# over the classes present in the labels or the predictions (a',
        '# class never predicted counts with precision 0; see',
        '# mmseg_plugins.evaluation)',
        "val_evaluator = dict(type='mmseg_plugins.ClassMeanIoUMetric', "
        "iou_metrics=['mIoU', 'mDice', 'mFscore'])",
        'test_evaluator = val_evaluator',
        f'model = {_fmt(_model(spec))}',
        f'# the inherited schedule scaled from {base_iters} to {max_iters} '
        'iterations',
        f'param_scheduler = {_fmt(schedule)}',
        'train_cfg = ' + _fmt(dict(type='IterBasedTrainLoop',
                                   max_iters=max_iters,
                                   val_interval=val_interval)),
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
