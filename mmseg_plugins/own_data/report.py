"""The text report of a prepared dataset: files, image sizes, channels, the
label histogram per split, problems found and the recommended settings,
each with its reason."""
from collections import Counter
from typing import Dict, List, Tuple

import numpy as np

from .config_writer import TrainingSettings
from .scan import DatasetScan
from .survey import Survey, label_histograms

__all__ = ['format_report', 'recommendations']


def _size_line(sizes: List[Tuple[int, int]]) -> str:
    areas = sorted(sizes, key=lambda s: s[0] * s[1])
    med = areas[len(areas) // 2]
    return (f'min {areas[0][0]}x{areas[0][1]}, median {med[0]}x{med[1]}, '
            f'max {areas[-1][0]}x{areas[-1][1]} (w x h)')


def _listing(title: str, items: List[str], limit: int = 5) -> List[str]:
    if not items:
        return []
    lines = [f'{title}: {len(items)}']
    lines += [f'  {x}' for x in items[:limit]]
    if len(items) > limit:
        lines.append(f'  ... and {len(items) - limit} more')
    return lines


def recommendations(survey: Survey, settings: TrainingSettings
                    ) -> List[str]:
    """Each setting the config uses, with its reason."""
    hist = label_histograms(survey)
    pixels = hist['train'][0]
    out = [f'crop_size={settings.crop_size}: median image size, at most '
           '512, a multiple of 32',
           f'max_iters={settings.max_iters}: {settings.epochs:g} '
           f'epochs of {settings.n_train} images at batch '
           f'{settings.batch_size} '
           f'({settings.iters_option}; warmup scaled in proportion)',
           f'val_interval={settings.val_interval}: about ten '
           'validations per run; the best mIoU checkpoint is kept']
    bands = settings.bands
    if bands is not None:
        out.append(
            f'in_channels={bands.channels} ({bands.dtype} images, not 8-bit '
            'RGB): loaded by mmseg_plugins.LoadImageAnyBands, normalised '
            f'with the training images\' per-channel mean {bands.mean} '
            f'and std {bands.std}; no photometric distortion (it assumes '
            '8-bit RGB); the RGB-pretrained input filters are adapted when '
            'the weights load (1 channel: their sum; N: repeated and scaled '
            'by 3/N)')
    present = pixels[pixels > 0]
    if present.size > 1:
        ratio = present.max() / present.min()
        if settings.class_weight is not None:
            out.append('class_weight=median frequency balancing '
                       f'(--balance): {settings.class_weight}')
        elif ratio > 10:
            out.append(f'consider --balance: the most frequent class has '
                       f'{ratio:.0f}x the pixels of the rarest')
    if survey.plan.reduce_zero_label:
        out.append('reduce_zero_label=True (--zero-is-ignore): label 0 is '
                   'ignored, label v is class v-1')
    elif survey.plan.kind == 'index' and pixels.size > 1 and \
            survey.plan.classes[0].lower() in ('ignore', 'unlabeled',
                                               'unlabelled', 'void'):
        out.append('class 0 is named like "ignore": consider '
                   '--zero-is-ignore (mmseg\'s reduce_zero_label)')
    if len(survey.plan.classes) == 2:
        out.append('binary task: trained as 2-class softmax (background, '
                   'foreground), mmseg\'s default loss')
    return out


def format_report(scan: DatasetScan, survey: Survey,
                  settings: TrainingSettings,
                  unpaired: Dict[str, List[str]]) -> str:
    """The report the tool prints and writes as ``report.txt``."""
    plan = survey.plan
    lines = [f'dataset: {scan.root}', f'layout: {scan.layout}; split: '
             f'{scan.split_rule}',
             f'suffixes: image {scan.img_suffix!r}, mask '
             f'{scan.mask_suffix!r}']
    for split, pairs in survey.pairs.items():
        infos = survey.images[split]
        modes = Counter(f'{i.channels} channel(s), {i.bits}-bit'
                        for i in infos)
        lines.append(f'{split}: {len(pairs)} image/mask pairs; sizes '
                     f'{_size_line([i.size for i in infos])}; '
                     + ', '.join(f'{n} x {m}' for m, n in modes.items()))
    lines.append(f'masks: {plan.kind}' + (' (JPEG)' if survey.jpeg else '')
                 + f', {survey.mask_bits}-bit; ' +
                 ('converted into the output folder: ' +
                  '; '.join(plan.reasons) if plan.convert
                  else 'read as they are'))
    if survey.snap is not None:
        snap = survey.snap
        lines.append(
            f'JPEG snapping: {len(snap.targets)} label values/colours found; '
            f'{snap.changed_share:.2%} of the pixels changed label (edge '
            'pixels between classes snapped to the nearest label); '
            f'about {snap.error:.2%} of the labels estimated wrong (by '
            're-compressing the snapped masks)')
    hist = label_histograms(survey)
    width = max(len(c) for c in plan.classes)
    lines.append('label histogram (pixels / images per class):')
    lines.append('  ' + 'class'.ljust(width) + ''.join(
        f'  {s + " px":>12} {s + " img":>9}' for s in hist))
    for i, name in enumerate(plan.classes):
        lines.append('  ' + name.ljust(width) + ''.join(
            f'  {h[0][i]:>12} {h[1][i]:>9}' for h in hist.values()))
    lines.append('  ' + 'ignored (255)'.ljust(width) + ''.join(
        f'  {h[2]:>12} {"-":>9}' for h in hist.values()))
    for split, h in hist.items():
        absent = [plan.classes[i] for i in np.flatnonzero(h[0] == 0)]
        if absent:
            lines.append(f'WARNING classes absent from {split}: '
                         + ', '.join(absent))
    for split, items in unpaired.items():
        lines += _listing(f'WARNING unpaired files ({split})', items)
    dups = [d for s in scan.splits.values() for d in s.duplicates]
    lines += _listing('WARNING duplicate names (same stem, other suffix)',
                      dups)
    lines += _listing('WARNING unreadable files skipped', survey.unreadable)
    lines.append('recommended settings (written to the config):')
    lines += [f'  {r}' for r in recommendations(survey, settings)]
    return '\n'.join(lines) + '\n'
