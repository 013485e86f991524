"""Train a segmentor (mmseg's ``tools/train.py`` plus input checks and CPU
distributed support).

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Multi-process: ``bash tools/dist_train.sh CONFIG NPROC [args]`` (torchrun);
without CUDA the processes use gloo on the CPU.
"""
import argparse
import logging

from mmengine.logging import print_log

from mmseg_plugins.tools import run_tool


def parse_args():
    from mmseg_plugins.tools import add_runner_args, parse_runner_args
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    add_runner_args(parser)
    return parse_runner_args(parser)


def main():
    args = parse_args()
    import mmseg_plugins  # noqa: F401  (compat layer + registration)
    from mmengine.runner import Runner
    from mmseg_plugins.tools import (check_data_paths, check_pretrained_paths,
                                     load_config, prepare_launcher,
                                     setup_work_dir, shutdown_distributed)

    cfg = load_config(args.config, args.cfg_options)
    setup_work_dir(cfg, args.config, args.work_dir)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    cfg.resume = args.resume
    check_pretrained_paths(cfg)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    prepare_launcher(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    run_tool(main)
