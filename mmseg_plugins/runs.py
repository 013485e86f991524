"""Training and test runs as mmseg's ``tools/train.py`` and
``tools/test.py`` make them, with the package's checks first: what this
project's ``tools/train.py`` and ``tools/test.py`` do, each as one call
(:func:`train`, :func:`evaluate`).

Every check runs before the runner is built, so that bad input stops a
run before any work-directory artefact is written: the config's data and
pretrained paths, every checkpoint fitting the model strictly, mixed
precision and ``torch.compile`` on this machine. Checkpoints load through
:class:`~mmseg_plugins.weights.hook.StrictLoadHook` (converted in memory
from any known layout); tests count with
:class:`~mmseg_plugins.evaluation.ClassMeanIoUMetric`. Multi-process runs
without CUDA use gloo (:func:`~mmseg_plugins.distributed.
prepare_launcher`) and every run ends with its data loader workers
stopped and its process group destroyed.
"""
import logging
from dataclasses import dataclass
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from .accelerate import (check_amp_training, compile_networks,
                         use_amp_optim_wrapper)
from .config import (check_data_paths, check_pretrained_paths, load_config,
                     setup_work_dir)
from .distributed import prepare_launcher, shutdown_distributed
from .errors import CheckpointError, InvalidInputError

__all__ = ['TrainOptions', 'EvaluationOptions', 'train_config', 'train',
           'evaluation_config', 'evaluate']


@dataclass
class TrainOptions:
    """A training run (``tools/train.py``'s arguments).

    Args:
        config (str): The config file.
        work_dir (str, optional): Where logs and checkpoints go (default:
            the config's, else ``./work_dirs/<config name>``).
        cfg_options (dict, optional): Overrides of the config.
        resume (bool): Resume from the latest checkpoint in the work
            directory. Default: False.
        amp (str, optional): ``'fp16'`` or ``'bf16'``: train with
            mmengine's ``AmpOptimWrapper`` (needs CUDA). Default: None.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or
            ``'mpi'``. Default: ``'none'``.
    """
    config: str
    work_dir: Optional[str] = None
    cfg_options: Optional[dict] = None
    resume: bool = False
    amp: Optional[str] = None
    launcher: str = 'none'


@dataclass
class EvaluationOptions:
    """A test run (``tools/test.py``'s arguments).

    Args:
        config (str): The config file.
        checkpoint (str): The checkpoint tested (any layout the loader
            knows).
        work_dir (str, optional): Where logs go (as for training).
        cfg_options (dict, optional): Overrides of the config.
        out (str, optional): Folder for the predictions.
        show_dir (str, optional): Folder for painted images.
        tta (bool): Test-time augmentation (the config's ``tta_pipeline``
            and ``tta_model``). Default: False.
        launcher (str): As for training. Default: ``'none'``.
        fuse (bool): Fuse the model for inference after loading
            (:class:`~mmseg_plugins.hooks.FuseHook`:
            :func:`mmseg_plugins.fuse`, verified against the reference
            forward). Default: True.
    """
    config: str
    checkpoint: str
    work_dir: Optional[str] = None
    cfg_options: Optional[dict] = None
    out: Optional[str] = None
    show_dir: Optional[str] = None
    tta: bool = False
    launcher: str = 'none'
    fuse: bool = True


def train_config(options: TrainOptions) -> Config:
    """The checked config of a training run, ready for mmengine's
    ``Runner``.

    Raises:
        MMSegPluginsError: a missing data or pretrained path, a checkpoint
            that does not fit, AMP or ``torch.compile`` that cannot run
            here.
    """
    from .weights.hook import check_model_weights, route_load_from
    cfg = load_config(options.config, options.cfg_options)
    cfg.resume = options.resume
    check_pretrained_paths(cfg)
    # every checkpoint fits strictly (or the run stops here, before any
    # work-dir artefact); load_from then loads through the strict hook
    check_model_weights(cfg)
    route_load_from(cfg, reinit_class_layers=True)
    setup_work_dir(cfg, options.config, options.work_dir)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    if options.amp:
        check_amp_training(options.amp, 'cuda' if torch.cuda.is_available()
                           else 'cpu')
        if not use_amp_optim_wrapper(cfg, options.amp):
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
    compile_networks(cfg)
    prepare_launcher(cfg, options.launcher)
    return cfg


def evaluation_config(options: EvaluationOptions) -> Config:
    """The checked config of a test run, ready for mmengine's ``Runner``.

    Raises:
        InvalidInputError: ``tta`` without the config's ``tta_pipeline``
            and ``tta_model``.
        CheckpointError: no such checkpoint.
        MMSegPluginsError: a missing data path.
    """
    from .evaluation import use_class_mean_metric
    from .weights import checkpoint_found
    from .weights.hook import route_load_from
    cfg = load_config(options.config, options.cfg_options)
    if options.tta:
        missing = [key for key in ('tta_pipeline', 'tta_model')
                   if key not in cfg]
        if missing:
            raise InvalidInputError(
                f'--tta needs {" and ".join(missing)} in the config '
                f'{options.config} (mmseg defines tta_pipeline in its '
                'dataset configs and tta_model in its default runtime)')
    setup_work_dir(cfg, options.config, options.work_dir)
    use_class_mean_metric(cfg)
    check_data_paths(cfg, ('test_dataloader', ))
    if not checkpoint_found(options.checkpoint):
        raise CheckpointError(f'checkpoint not found: {options.checkpoint}')
    # loaded strictly, converted from any known layout (StrictLoadHook)
    cfg.load_from = options.checkpoint
    route_load_from(cfg)
    if options.show_dir:
        cfg.default_hooks.visualization.draw = True
        cfg.default_hooks.visualization.show = False
        cfg.visualizer.save_dir = options.show_dir
    if options.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if options.out is not None:
        cfg.test_evaluator['output_dir'] = options.out
        cfg.test_evaluator['keep_results'] = True
    if options.fuse:  # after the checkpoint is loaded
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='mmseg_plugins.FuseHook')]
    prepare_launcher(cfg, options.launcher)
    return cfg


def train(options: TrainOptions) -> None:
    """Train as mmseg's ``tools/train.py`` does, after
    :func:`train_config`'s checks."""
    from mmengine.runner import Runner

    from .hooks import stop_dataloader_workers
    cfg = train_config(options)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()
    stop_dataloader_workers(runner)
    del runner  # no reference left (see shutdown_distributed)
    shutdown_distributed()


def evaluate(options: EvaluationOptions) -> dict:
    """Test as mmseg's ``tools/test.py`` does, after
    :func:`evaluation_config`'s checks; returns the metrics."""
    from mmengine.runner import Runner

    from .hooks import stop_dataloader_workers
    runner = Runner.from_cfg(evaluation_config(options))
    metrics = runner.test()
    stop_dataloader_workers(runner)
    del runner  # no reference left (see shutdown_distributed)
    shutdown_distributed()
    return metrics
