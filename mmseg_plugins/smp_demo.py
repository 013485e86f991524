"""The demo's training run with segmentation_models_pytorch (smp) instead
of mmseg: an smp decoder on one of the package's encoders (``tu-mit_b0``
through :mod:`mmseg_plugins.timm`), trained and evaluated on the demo
dataset (``data/demo_shapes``) with the recipe of
``configs/demo/segformer_mit-b0_shapes-128x128.py``, in plain PyTorch:

* the training split, 128x128 images as they are (no crop: the images are
  the crop size), a random horizontal flip (p=0.5), batches of 4 drawn from
  a reshuffled pass over the split (mmengine's ``InfiniteSampler``);
* RGB inputs normalised with the ImageNet mean and std (the config's
  ``data_preprocessor``: ``mean=[123.675, 116.28, 103.53]``,
  ``std=[58.395, 57.12, 57.375]``, ``bgr_to_rgb=True``);
* cross-entropy (label 255 ignored), AdamW (lr 1e-3, betas 0.9/0.999,
  weight decay 0.01, none on parameters whose name contains ``norm``),
  linear warm-up from 1e-3 x lr over 30 iterations, then linear (poly,
  power 1) decay to 0 at the last of 1000 iterations, step for step as
  mmengine's schedulers compute it; drop path 0.1; seed 0;
* mIoU on the validation split by mmseg's ``IoUMetric`` definition: the
  intersection and union of each class summed over the whole split, their
  ratio per class, the mean over the classes whose union is not empty.

What differs: smp's Segformer decoder has no dropout before its classifier
(mmseg's ``SegformerHead``: 0.1) and uses ``BatchNorm2d`` (the config's
``SyncBN`` is the same on one process); the random streams differ.

``tools/smp_demo.py`` is the command line.
"""
import glob
import os.path as osp
import time
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import InvalidInputError

__all__ = ['DECODERS', 'SmpDemoSettings', 'load_split', 'build_smp_model',
           'optimizer_param_groups', 'demo_lr_factor', 'iou_areas',
           'miou_from_areas', 'train_smp_demo']

#: smp decoders that take a 4-level encoder of reductions 4, 8, 16, 32
#: (every encoder here but AFFormer, whose stages run at 4, 8, 8, 8).
DECODERS = ('Segformer', 'Unet', 'FPN', 'UPerNet')
#: The config's data_preprocessor, in 0..255 RGB.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
IGNORE_INDEX = 255


class SmpDemoSettings:
    """The run's recipe; the defaults are the demo config's.

    Args:
        encoder (str): timm name of the encoder (smp's ``tu-<name>``).
        decoder (str): smp architecture, one of :data:`DECODERS`.
        iters (int): Training iterations. Default: 1000.
        batch_size (int): Images per iteration. Default: 4.
        lr (float): AdamW's peak learning rate. Default: 1e-3.
        weight_decay (float): AdamW's weight decay. Default: 0.01.
        warmup_iters (int): Linear warm-up length (at most a tenth of
            ``iters``, as ``tools/demo.py --iters`` does). Default: 30.
        drop_path_rate (float): The encoder's stochastic depth. Default: 0.1.
        seed (int): Seed of the weights, the shuffling and the flips.
        log_interval (int): Print the loss every this many iterations.
    """

    def __init__(self, encoder: str = 'mit_b0', decoder: str = 'Segformer',
                 iters: int = 1000, batch_size: int = 4, lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup_iters: int = 30,
                 drop_path_rate: float = 0.1, seed: int = 0,
                 log_interval: int = 100) -> None:
        if decoder not in DECODERS:
            raise InvalidInputError(f'decoder {decoder!r}: use one of '
                                    f'{", ".join(DECODERS)}')
        if iters < 1 or batch_size < 1:
            raise InvalidInputError(f'iters={iters}, batch_size='
                                    f'{batch_size}: both must be >= 1')
        from .timm import MODEL_NAMES, TimmAFFormer
        if encoder not in MODEL_NAMES:
            raise InvalidInputError(f'encoder {encoder!r}: use one of '
                                    f'{", ".join(MODEL_NAMES)}')
        if MODEL_NAMES[encoder][0] is TimmAFFormer:
            raise InvalidInputError(
                f'encoder {encoder!r}: its last three stages all run at 1/8 '
                "of the input, and smp's decoders need stages at 1/4, 1/8, "
                '1/16 and 1/32; use a mit_* or mpvit_* encoder')
        self.encoder, self.decoder = encoder, decoder
        self.iters, self.batch_size = iters, batch_size
        self.lr, self.weight_decay = lr, weight_decay
        # tools/demo.py's rule for a shorter --iters: a tenth, at most 30
        self.warmup_iters = max(1, min(warmup_iters, iters // 10))
        self.drop_path_rate, self.seed = drop_path_rate, seed
        self.log_interval = log_interval


def load_split(data_root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of the demo layout (``images/<split>/*.png`` and
    ``annotations/<split>/*.png`` of the same names) into memory.

    Returns:
        tuple: images (N, H, W, 3) uint8 RGB and labels (N, H, W) uint8.
    """
    files = sorted(glob.glob(osp.join(data_root, 'images', split, '*.png')))
    if not files:
        raise FileNotFoundError(
            f'no images in {osp.join(data_root, "images", split)}')
    images, labels = [], []
    for path in files:
        ann = osp.join(data_root, 'annotations', split, osp.basename(path))
        label = cv2.imread(ann, cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f'{ann}: no such label file')
        images.append(cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1])  # RGB
        labels.append(label)
    return np.stack(images), np.stack(labels)


def build_smp_model(settings: SmpDemoSettings,
                    num_classes: int) -> nn.Module:
    """``smp.<decoder>('tu-<encoder>')`` from scratch (no weights), the
    encoder built through timm from :mod:`mmseg_plugins.timm`."""
    import segmentation_models_pytorch as smp

    from . import timm as _registers_the_encoders  # noqa: F401
    return getattr(smp, settings.decoder)(
        f'tu-{settings.encoder}', encoder_weights=None, classes=num_classes,
        drop_path_rate=settings.drop_path_rate)


def optimizer_param_groups(model: nn.Module,
                           weight_decay: float) -> List[dict]:
    """AdamW groups as mmengine's ``paramwise_cfg=dict(custom_keys={'norm':
    dict(decay_mult=0.)})`` makes them: no decay where the parameter's name
    contains ``norm``."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if 'norm' in name else decay).append(param)
    return [dict(params=decay, weight_decay=weight_decay),
            dict(params=no_decay, weight_decay=0.)]


def demo_lr_factor(iteration: int, warmup_iters: int, iters: int) -> float:
    """The config's schedule as a factor of the peak lr at ``iteration``
    (0-based): mmengine's ``LinearLR(start_factor=1e-3, begin=0,
    end=warmup_iters)`` then ``PolyLR(power=1., eta_min=0,
    begin=warmup_iters, end=iters)``, in closed form. mmengine's schedulers
    reach their end value one step before ``end`` (``total_iters = end -
    begin - 1``): the factor is 1 at ``warmup_iters - 1`` and 0 at the last
    iteration."""
    start = 1e-3
    if iteration < warmup_iters:
        return start + (1. - start) * min(
            1., iteration / max(1, warmup_iters - 1))
    return max(0., 1. - (iteration - warmup_iters) /
               max(1, iters - warmup_iters - 1))


def iou_areas(pred: np.ndarray, label: np.ndarray,
              num_classes: int) -> np.ndarray:
    """Per-class (intersection, union, prediction, label) pixel counts of
    one image, ``IGNORE_INDEX`` left out (mmseg's ``intersect_and_union``).

    Returns:
        np.ndarray: (4, num_classes) int64.
    """
    keep = label != IGNORE_INDEX
    pred, label = pred[keep].astype(np.int64), label[keep].astype(np.int64)
    area_pred = np.bincount(pred, minlength=num_classes)[:num_classes]
    area_label = np.bincount(label, minlength=num_classes)[:num_classes]
    area_inter = np.bincount(pred[pred == label],
                             minlength=num_classes)[:num_classes]
    return np.stack([area_inter, area_pred + area_label - area_inter,
                     area_pred, area_label])


def miou_from_areas(areas: np.ndarray) -> Tuple[float, np.ndarray]:
    """mIoU (%) and per-class IoU (%, NaN for a class with an empty union)
    from :func:`iou_areas` summed over a split (mmseg's ``IoUMetric``)."""
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = 100. * areas[0] / areas[1]
    return float(np.nanmean(iou)), iou


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray,
             num_classes: int) -> Tuple[float, np.ndarray]:
    """mIoU (%) and per-class IoU of ``model`` on a split, image by image
    at full size (mmseg's ``mode='whole'``)."""
    model.eval()
    areas = np.zeros((4, num_classes), np.int64)
    for image, label in zip(images, labels):
        logits = model(_normalise(image[None]))  # (1, K, H, W)
        if logits.shape[-2:] != label.shape:
            logits = F.interpolate(logits, size=label.shape,
                                   mode='bilinear', align_corners=False)
        pred = logits.argmax(1)[0].numpy()
        areas += iou_areas(pred, label, num_classes)
    return miou_from_areas(areas)


def _normalise(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32, the config's
    mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB).view(1, 3, 1, 1)
    return (x.float() - mean) / std


def _batches(count: int, batch_size: int,
             generator: torch.Generator) -> Sequence[np.ndarray]:
    """Index batches forever: each pass over the split reshuffled, batches
    running on across passes (mmengine's ``InfiniteSampler``)."""
    pending = np.zeros(0, np.int64)
    while True:
        while len(pending) < batch_size:
            order = torch.randperm(count, generator=generator).numpy()
            pending = np.concatenate([pending, order])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def train_smp_demo(data_root: str, settings: SmpDemoSettings,
                   num_classes: int = 4) -> Dict[str, object]:
    """Train ``settings``' smp model on ``data_root``'s training split and
    evaluate it on its validation split.

    Args:
        data_root (str): The demo layout (``images/`` and ``annotations/``,
            each with ``training/`` and ``validation/``).
        settings (SmpDemoSettings): The recipe.
        num_classes (int): Classes of the labels. Default: 4 (the demo's).

    Returns:
        dict: ``mIoU`` (%), ``IoU`` (per class, %), ``seconds`` (training
        and evaluation), ``model`` (the trained network).
    """
    start = time.time()
    images, labels = load_split(data_root, 'training')
    val_images, val_labels = load_split(data_root, 'validation')
    found = int(np.where(labels == IGNORE_INDEX, 0, labels).max())
    if found >= num_classes:
        raise InvalidInputError(f'{data_root}: label {found} with '
                                f'num_classes={num_classes}')
    # seeded inside: the caller's global random state is restored after
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        generator = torch.Generator().manual_seed(settings.seed)
        model = build_smp_model(settings, num_classes)
        optimizer = torch.optim.AdamW(
            optimizer_param_groups(model, settings.weight_decay),
            lr=settings.lr, betas=(0.9, 0.999))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: demo_lr_factor(it, settings.warmup_iters,
                                                 settings.iters))
        model.train()
        batches = _batches(len(images), settings.batch_size, generator)
        for iteration in range(1, settings.iters + 1):
            index = next(batches)
            flip = torch.rand(len(index), generator=generator).numpy() < 0.5
            batch_images, batch_labels = images[index], labels[index]
            batch_images[flip] = batch_images[flip, :, ::-1]  # horizontal
            batch_labels[flip] = batch_labels[flip, :, ::-1]
            logits = model(_normalise(batch_images))  # (B, K, H, W)
            target = torch.from_numpy(batch_labels.astype(np.int64))
            loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
            lr = optimizer.param_groups[0]['lr']  # this iteration's
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            if iteration % settings.log_interval == 0 or \
                    iteration == settings.iters:
                print(f'iter {iteration}/{settings.iters}: loss '
                      f'{loss.item():.4f}, lr {lr:.2e}', flush=True)
    miou, iou = evaluate(model, val_images, val_labels, num_classes)
    return dict(mIoU=miou, IoU=iou, seconds=time.time() - start,
                model=model)
