"""Train a segmentor (mmseg's ``tools/train.py`` plus input checks and CPU
distributed support).

    python tools/train.py CONFIG [--work-dir DIR] [--resume]
        [--amp [fp16|bf16]] [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm|mpi]

Multi-process: ``bash tools/dist_train.sh CONFIG NPROC [args]`` (torchrun);
without CUDA the processes use gloo on the CPU. ``--amp`` trains with
mmengine's ``AmpOptimWrapper`` (fp16 with a dynamic loss scale, or bf16),
which needs a GPU; ``--cfg-options compile.backend=inductor`` (or
``compile=True``) compiles the model's networks with ``torch.compile``
(``mmseg_plugins.CompileHook``), after a check that the backend works on
this machine.
"""
import argparse
import logging

from mmengine.logging import print_log

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmseg_plugins.cli import add_runner_args, parse_runner_args
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp', nargs='?', const='fp16', default=None,
        choices=['fp16', 'bf16'],
        help='automatic mixed precision (default fp16, dynamic loss scale)')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def compile_networks(cfg) -> None:
    """A config's ``compile`` option becomes ``mmseg_plugins.CompileHook``
    (the networks compiled, not mmengine's whole ``train_step``, which
    TorchDynamo cannot trace through the optimizer), after a check that the
    backend works on this machine."""
    import torch

    from mmseg_plugins.accelerate import check_compile
    options = cfg.pop('compile', None)
    if not options:
        return
    options = {} if options is True else dict(options)
    hook = dict(type='mmseg_plugins.CompileHook', mode=options.get('mode'),
                backend=options.get('backend', 'inductor'))
    check_compile(hook['mode'], hook['backend'],
                  'cuda' if torch.cuda.is_available() else 'cpu')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]


def main(argv=None):
    args = parse_args(argv)
    import mmseg_plugins  # noqa: F401  (compat layer + registration)
    from mmengine.runner import Runner
    from mmseg_plugins.cli import (check_data_paths, check_pretrained_paths,
                                   load_config, prepare_launcher,
                                   setup_work_dir, shutdown_distributed)

    from mmseg_plugins.weights.hook import (check_model_weights,
                                            route_load_from)

    cfg = load_config(args.config, args.cfg_options)
    cfg.resume = args.resume
    check_pretrained_paths(cfg)
    # every checkpoint fits strictly (or the run stops here, before any
    # work-dir artefact); load_from then loads through the strict hook
    check_model_weights(cfg)
    route_load_from(cfg, reinit_class_layers=True)
    setup_work_dir(cfg, args.config, args.work_dir)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    if args.amp:
        import torch

        from mmseg_plugins.accelerate import (check_amp_training,
                                              use_amp_optim_wrapper)
        check_amp_training(args.amp, 'cuda' if torch.cuda.is_available()
                           else 'cpu')
        if not use_amp_optim_wrapper(cfg, args.amp):
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
    compile_networks(cfg)
    prepare_launcher(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()
    from mmseg_plugins.hooks import stop_dataloader_workers
    stop_dataloader_workers(runner)
    del runner  # (see shutdown_distributed)
    shutdown_distributed()


if __name__ == '__main__':
    run_tool(main)
