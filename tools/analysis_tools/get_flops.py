"""FLOPs and parameters of a segmentor (mmseg's
``tools/analysis_tools/get_flops.py``, same arguments and output).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]]
        [--cfg-options k=v ...]

mmseg 1.2.2's own script does not run with mmengine 0.10.7: it passes both
``input_shape`` and ``inputs`` to ``get_model_complexity_info``, which
raises "input_shape and inputs cannot be both set". This one counts with
``mmseg_plugins.benchmark.count_flops`` (mmengine's ``FlopAnalyzer``, the
fvcore convention: one multiply-add is one FLOP) over
``InferenceForward``: backbone, decode head and the resize of the logits to
the input, without the auxiliary head, whose parameters are not counted
either (mmseg's script drops it too). ``tools/benchmark.py`` gives the same
counts with latency, throughput and memory.
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Get the FLOPs of a segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[2048, 1024],
        help='input image size: H [W] (W = H when omitted)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.analysis.print_helper import _format_size

    from mmseg_plugins.benchmark import (InferenceForward, build_model,
                                         count_flops, count_params)
    from mmseg_plugins.cli import ToolError
    if len(args.shape) not in (1, 2) or min(args.shape) < 1:
        raise ToolError(f'--shape takes H or H W (positive), got {args.shape}')
    shape = (args.shape[0], args.shape[-1])
    from mmseg_plugins.config import load_config
    from mmseg_plugins.model_input import ModelInput
    channels = ModelInput.from_config(
        load_config(args.config, args.cfg_options)).channels
    model = build_model(args.config, None, 'cpu', args.cfg_options)
    model.auxiliary_head = None  # not run at test time, not counted
    inference = InferenceForward(model)
    gflops, _ = count_flops(inference, shape, channels=channels)
    split_line = '=' * 30
    print(f'{split_line}\nCompute type: direct: randomly generate a picture\n'
          f'Input shape: {shape}\nFlops: {_format_size(round(gflops * 1e9))}\n'
          f'Params: {_format_size(count_params(inference))}\n{split_line}')
    print('FLOPs in the fvcore convention (one multiply-add = one FLOP) of '
          'the inference path: backbone, decode head, resize to the input; '
          'no auxiliary head.')


if __name__ == '__main__':
    run_tool(main)
