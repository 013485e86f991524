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


def main(argv=None):
    args = parse_args(argv)
    from mmseg_plugins.runs import TrainOptions, train
    train(TrainOptions(args.config, work_dir=args.work_dir,
                       cfg_options=args.cfg_options, resume=args.resume,
                       amp=args.amp, launcher=args.launcher))


if __name__ == '__main__':
    run_tool(main)
