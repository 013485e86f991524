"""``prepare_dataset``: scan a user's folder of images and masks, convert
the masks mmseg would misread, and write a config that trains and tests
with mmseg's own ``tools/train.py`` and ``tools/test.py``.

Everything is written under the output folder (``<dataset>_<model>.py``,
named after the data folder and the model so that mmseg's default work
directory ``work_dirs/<dataset>_<model>`` differs between datasets,
``report.txt``, ``splits/{train,val}.txt`` and, only where masks had to be
converted, ``data/masks/{train,val}/``); the user's files are only read.
"""
import os
import os.path as osp
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2

from ..errors import DatasetError, InvalidInputError
from ..fileio import atomic_write
from .config_writer import (DatasetConfig, SplitFiles, TrainingSettings,
                            crop_size_for, iterations,
                            median_frequency_weights, render_config,
                            resolve_model_config)
from .masks import RawMask, apply_plan, load_mask
from .report import format_report
from .scan import scan_dataset
from .survey import label_histograms, survey_dataset
from .transforms import channel_statistics, needs_band_loader

__all__ = ['PrepareOptions', 'PrepareResult', 'read_classes_file',
           'prepare_dataset']


@dataclass
class PrepareOptions:
    """What :func:`prepare_dataset` prepares, for which model, and how
    (``tools/prepare_dataset.py``'s options).

    Args:
        data_root (str): The folder of images and masks (only read).
        model (str): A model config path or name, or a short name such as
            ``afformer_tiny`` (see
            :func:`~.config_writer.resolve_model_config`).
        out (str): The output folder (outside ``data_root``).
        classes (Sequence[str], optional): Class names (default: from the
            masks).
        class_colours (Sequence, optional): RGB colour per class (colour
            masks).
        img_suffix (str, optional): Image file suffix (default: found).
        mask_suffix (str, optional): Mask file suffix (default: found).
        val_fraction (float): Share of the images validated on where the
            data has no split. Default: 0.2.
        seed (int): Seed of that split and of the channel statistics.
            Default: 0.
        zero_is_ignore (bool): Label 0 means ignore (mmseg's
            ``reduce_zero_label``). Default: False.
        snap_jpeg (bool): Accept JPEG masks, snapping pixels to the
            nearest label. Default: False.
        epochs (float): Passes over the training images. Default: 50.
        max_iters (int, optional): Training iterations (overrides
            ``epochs``).
        batch_size (int, optional): Default: the model config's.
        num_workers (int): Data loader workers. Default: 2.
        balance (bool): Class weights by median frequency balancing.
            Default: False.
    """
    data_root: str
    model: str
    out: str
    classes: Optional[Sequence[str]] = None
    class_colours: Optional[Sequence] = None
    img_suffix: Optional[str] = None
    mask_suffix: Optional[str] = None
    val_fraction: float = 0.2
    seed: int = 0
    zero_is_ignore: bool = False
    snap_jpeg: bool = False
    epochs: float = 50
    max_iters: Optional[int] = None
    batch_size: Optional[int] = None
    num_workers: int = 2
    balance: bool = False


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` wrote; ``skipped`` counts unreadable
    files left out (the tool exits 1 when there are any); ``weights`` says
    whether the ImageNet weights the config starts from are in place and,
    if not, how to get them or train from scratch."""
    config: str
    report: str
    converted: int
    skipped: int
    work_dir: str = ''
    weights: List[str] = field(default_factory=list)


def config_name(data_root: str, model_config: str) -> str:
    """``<dataset>_<model>``: the data folder's name and the model config's
    name up to its schedule (``afformer_tiny_8xb2-160k_ade20k-512x512`` ->
    ``afformer_tiny``), in letters, digits, ``-``, ``_`` and ``.``."""
    dataset = osp.basename(osp.normpath(osp.abspath(data_root)))
    model = re.split(r'_\d+xb\d+', osp.splitext(
        osp.basename(model_config))[0])[0]
    model = re.sub(r'_ade20k$', '', model)
    return re.sub(r'[^\w.-]+', '_', f'{dataset}_{model}')


def weights_status(model_cfg, config: str) -> List[str]:
    """Lines on the pretrained weights the model config reads: found, to be
    downloaded (a URL), or missing with where they are published and the
    command that trains from scratch instead."""
    from ..config import _pretrained_paths
    from ..weights.sources import where_published
    lines = []
    for where, path in _pretrained_paths(model_cfg.get('model', {}),
                                         'model'):
        if '://' in str(path):
            lines.append(f'weights: {path} ({where}) is downloaded on the '
                         'first run (then cached by torch.hub)')
        elif osp.exists(path):
            lines.append(f'weights: {path} ({where}) found')
        else:
            lines.append(
                f'weights: MISSING {path} ({where}), relative to the folder '
                f'you train from{where_published(path)}: put the file there '
                '(docs/weights.md), or train from scratch: python '
                f'tools/train.py {config} --cfg-options {where}=None')
    if not lines:
        lines.append('weights: none (the model config trains from scratch)')
    return lines


def read_classes_file(path: str) -> Tuple[List[str], Optional[List]]:
    """Class names, one a line, each optionally followed by its colour
    ``R G B`` (or ``R,G,B``); ``#`` starts a comment.

    Returns:
        tuple: (names, colours or None when no line has one).

    Raises:
        DatasetError: unreadable, or colours on some lines only.
    """
    names, colours = [], []
    try:
        with open(path) as f:
            lines = [ln.split('#')[0].strip() for ln in f]
    except OSError as err:
        raise DatasetError(f'cannot read classes file {path}: {err}') \
            from None
    for line in filter(None, lines):
        tokens = line.replace(',', ' ').split()
        if len(tokens) >= 4 and all(t.isdigit() for t in tokens[-3:]):
            colours.append(tuple(int(t) for t in tokens[-3:]))
            names.append(' '.join(tokens[:-3]))
        else:
            names.append(line)
    if colours and len(colours) != len(names):
        raise DatasetError(f'{path}: give a colour on every line or none')
    if not names:
        raise DatasetError(f'classes file {path} names no classes')
    return names, (colours or None)


def _check_out_dir(data_root: str, out: str) -> None:
    data = osp.realpath(data_root)
    dst = osp.realpath(out)
    if osp.commonpath([data, dst]) == data:
        raise InvalidInputError(
            f'output folder {out} is inside the data folder {data_root}; '
            'choose one outside it (the data is never written to)')


def _write_masks(survey, out: str) -> int:
    """Converted masks into ``out/data/masks/<split>/`` (replaced as a
    whole, so no mix of old and new files)."""
    tmp = tempfile.mkdtemp(prefix='.data.', dir=out)
    count = 0
    try:
        for split, pairs in survey.pairs.items():
            for pair in pairs:
                mask = load_mask(pair.mask_path)
                if survey.snap is not None:
                    mask = RawMask(mask.kind, survey.snap.snap(mask.codes,
                                                               mask.kind))
                dst = osp.join(tmp, 'masks', split, pair.name + '.png')
                os.makedirs(osp.dirname(dst), exist_ok=True)
                if not cv2.imwrite(dst, apply_plan(mask, survey.plan)):
                    raise DatasetError(f'cannot write {dst}')
                count += 1
        final = osp.join(out, 'data')
        if osp.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def _write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _splits(scan, survey, out: str) -> Dict[str, SplitFiles]:
    """The split lists written under ``out/splits`` and where each split's
    images and (converted or original) masks are."""
    splits = {}
    convert = survey.plan.convert
    for split, pairs in survey.pairs.items():
        ann_file = osp.join(out, 'splits', f'{split}.txt')
        os.makedirs(osp.dirname(ann_file), exist_ok=True)
        _write_text(ann_file, ''.join(p.name + '\n' for p in pairs))
        files = scan.splits[split]
        splits[split] = SplitFiles(
            img_dir=files.img_dir,
            mask_dir=(osp.join(out, 'data', 'masks', split) if convert
                      else files.mask_dir),
            ann_file=ann_file, img_suffix=scan.img_suffix,
            mask_suffix='.png' if convert else scan.mask_suffix)
    return splits


def _training_settings(options: PrepareOptions, survey,
                       default_batch: int) -> TrainingSettings:
    """Crop, schedule, class weights and band loading chosen from the
    data."""
    batch = options.batch_size or default_batch
    n_train = len(survey.pairs['train'])
    iters = options.max_iters or iterations(n_train, batch, options.epochs)
    infos = [i for s in survey.images.values() for i in s]
    bands = None
    if needs_band_loader([i.channels for i in infos],
                         [i.bits for i in infos]):
        bands = channel_statistics(
            [p.img_path for p in survey.pairs['train']], options.seed)
    return TrainingSettings(
        crop_size=crop_size_for([i.size for i in survey.images['train']]),
        max_iters=iters,
        # the passes over the training images the run makes
        epochs=(options.epochs if not options.max_iters else
                round(iters * batch / max(n_train, 1), 1)),
        iters_option='--iters' if options.max_iters else '--epochs',
        n_train=n_train, batch_size=batch,
        val_interval=max(1, iters // 10),
        class_weight=(median_frequency_weights(
            label_histograms(survey)['train'][0])
            if options.balance else None),
        bands=bands)


def prepare_dataset(options: PrepareOptions) -> PrepareResult:
    """Scan, report, convert, write the config (see the module docstring).

    Raises:
        DatasetError: the dataset cannot be trained as it is (see
            :func:`~mmseg_plugins.own_data.survey.survey_dataset`).
        InvalidInputError: bad options (an output folder inside the data,
            an unknown model).
    """
    from mmengine.config import Config
    _check_out_dir(options.data_root, options.out)
    base = resolve_model_config(options.model)
    base_cfg = Config.fromfile(base)
    scan = scan_dataset(options.data_root, options.img_suffix,
                        options.mask_suffix, options.val_fraction,
                        options.seed)
    survey = survey_dataset(scan, options.classes, options.class_colours,
                            options.zero_is_ignore, options.snap_jpeg)
    for split in ('train', 'val'):
        if not survey.pairs.get(split):
            raise DatasetError(f'no readable image/mask pairs in the '
                               f'{split} split of {scan.root}')
    os.makedirs(options.out, exist_ok=True)
    out = osp.abspath(options.out)
    converted = _write_masks(survey, out) if survey.plan.convert else 0
    splits = _splits(scan, survey, out)
    settings = _training_settings(
        options, survey, int(base_cfg.train_dataloader.batch_size))
    unpaired = {s: f.unpaired_images + f.unpaired_masks
                for s, f in scan.splits.items()}
    report = format_report(scan, survey, settings, unpaired)
    header = ('"""Training config written by tools/prepare_dataset.py for '
              f'{scan.root}\n(report: report.txt beside this file).\n\n' +
              report.replace('\\', '/').replace('"""', "'''") + '"""')
    sizes = [i.size for i in survey.images['train']]
    median = sorted(sizes, key=lambda s: s[0] * s[1])[len(sizes) // 2]
    one_size = len({i.size for s in survey.images.values() for i in s}) == 1
    text = render_config(DatasetConfig(
        base, base_cfg, splits, survey.plan.classes, survey.plan.palette,
        settings, test_scale=None if one_size else median,
        num_workers=options.num_workers,
        reduce_zero_label=survey.plan.reduce_zero_label, header=header))
    name = config_name(scan.root, base)
    config = osp.join(out, name + '.py')
    weights = weights_status(base_cfg, config)
    _write_text(config, text)
    _write_text(osp.join(out, 'report.txt'), report + ''.join(
        line + '\n' for line in weights))
    return PrepareResult(config, report, converted, len(survey.unreadable),
                         osp.join('work_dirs', name), weights)
