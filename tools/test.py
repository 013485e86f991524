"""Test a segmentor (mmseg's ``tools/test.py`` plus input checks).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...] [--launcher ...]

The checkpoint is loaded with ``torch.load(weights_only=True)`` and an
allow-list (see ``mmseg_plugins.checkpoint``); a file that is not a
checkpoint, is truncated, or holds other pickled objects is refused.
``--tta`` needs ``tta_pipeline`` and ``tta_model`` in the config (the demo
configs have them); without them it is refused. mmseg's ``IoUMetric`` is
replaced by ``mmseg_plugins.ClassMeanIoUMetric`` (same arguments and keys,
one rule for every mean over the classes: a class never predicted counts
with precision 0 instead of leaving ``mPrecision`` and ``mFscore``; see
``mmseg_plugins.evaluation``).
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmseg_plugins.cli import add_runner_args, parse_runner_args
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str, help='dir to save predictions')
    parser.add_argument('--show-dir', help='dir to save painted images')
    parser.add_argument('--tta', action='store_true', help='test time aug')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import mmseg_plugins  # noqa: F401
    from mmengine.runner import Runner
    from mmseg_plugins.cli import (ToolError, check_data_paths, load_config,
                                   prepare_launcher, setup_work_dir,
                                   shutdown_distributed)

    cfg = load_config(args.config, args.cfg_options)
    if args.tta:
        missing = [key for key in ('tta_pipeline', 'tta_model')
                   if key not in cfg]
        if missing:
            raise ToolError(
                f'--tta needs {" and ".join(missing)} in the config '
                f'{args.config} (mmseg defines tta_pipeline in its dataset '
                'configs and tta_model in its default runtime)')
    setup_work_dir(cfg, args.config, args.work_dir)
    from mmseg_plugins.evaluation import use_class_mean_metric
    use_class_mean_metric(cfg)
    check_data_paths(cfg, ('test_dataloader', ))
    from mmseg_plugins.weights import checkpoint_found
    if not checkpoint_found(args.checkpoint):
        raise ToolError(f'checkpoint not found: {args.checkpoint}')
    # loaded strictly, converted from any known layout
    # (mmseg_plugins.weights.StrictLoadHook)
    cfg.load_from = args.checkpoint
    from mmseg_plugins.weights.hook import route_load_from
    route_load_from(cfg)
    if args.show_dir:
        cfg.default_hooks.visualization.draw = True
        cfg.default_hooks.visualization.show = False
        cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    prepare_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.test()
    from mmseg_plugins.hooks import stop_dataloader_workers
    stop_dataloader_workers(runner)
    del runner  # (see shutdown_distributed)
    shutdown_distributed()


if __name__ == '__main__':
    run_tool(main)
