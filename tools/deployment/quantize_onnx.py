"""Static int8 quantization of an exported segmentor with ONNX Runtime.

    python tools/deployment/quantize_onnx.py CONFIG FP32.onnx OUT.onnx
        [--calib-images N] [--calib-split train|val|test]
        [--verify-images M] [--verify-split train|val|test]
        [--method minmax|entropy|percentile] [--min-agreement A]
        [--evaluate] [--speed-shape H W] [--repeats R] [--threads T]
        [--cfg-options k=v ...]

FP32.onnx comes from ``tools/deployment/pytorch2onnx.py`` (any output and
preprocessing; dynamic shapes unless all images have its size). The
quantizer observes the activations on N images of the config's calibration
split (default: the first 32 training images, through the *test*
pipeline), then compares the int8 masks with the float masks on M other
images (default: the first 8 of the test split) and refuses to write OUT
when they agree on less than ``--min-agreement`` of the pixels (default
0.98; see ``mmseg_plugins/deploy/quantize.py``).

``--evaluate`` prints the mIoU of the float and the int8 model on the test
split; ``--speed-shape H W`` times both with ONNX Runtime on the same
(1, 3, H, W) input, alternating call by call, and prints the medians and
the int8 speed-up (median of the paired float / int8 times).
"""
import argparse

from mmseg_plugins.cli import run_tool


def parse_args(argv=None):
    from mmengine.config import DictAction
    splits = ['train', 'val', 'test']
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with the dataset')
    parser.add_argument('model', help='float ONNX file (pytorch2onnx.py)')
    parser.add_argument('out', help='int8 ONNX file to write')
    parser.add_argument('--calib-images', type=int, default=32)
    parser.add_argument('--calib-split', choices=splits, default='train')
    parser.add_argument('--verify-images', type=int, default=8)
    parser.add_argument('--verify-split', choices=splits, default='test')
    parser.add_argument('--method', default='minmax',
                        choices=['minmax', 'entropy', 'percentile'],
                        help='calibration method')
    parser.add_argument('--min-agreement', type=float, default=None,
                        help='smallest share of pixels with the same class '
                        'as the float model (default 0.98)')
    parser.add_argument('--evaluate', action='store_true',
                        help='mIoU of both models on the test split')
    parser.add_argument('--speed-shape', type=int, nargs=2, default=None,
                        metavar=('H', 'W'),
                        help='time both models at this input size')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of both runtimes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import platform

    import torch

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.benchmark.measures import paired_ratio, time_models
    from mmseg_plugins.deploy.evaluate import (build_split, dataset_samples,
                                               evaluate_miou, predict_mask)
    from mmseg_plugins.deploy.onnx_runtime import OnnxSegmentor
    from mmseg_plugins.deploy.quantize import MIN_AGREEMENT, quantize_int8
    from mmseg_plugins.cli import ToolError, load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.calib_images, args.verify_images, args.repeats) < 1:
        raise ToolError('--calib-images, --verify-images and --repeats must '
                        'be positive')
    cfg = load_config(args.config, args.cfg_options)
    fp32 = OnnxSegmentor(args.model)
    calib_set = build_split(cfg, args.calib_split)
    verify_set = calib_set if args.verify_split == args.calib_split else \
        build_split(cfg, args.verify_split)
    # the same split: verification starts after the calibration images
    verify_start = args.calib_images if verify_set is calib_set else 0
    calibration = [image for image, _, _ in dataset_samples(
        calib_set, 0, args.calib_images)]
    verification = [image for image, _, _ in dataset_samples(
        verify_set, verify_start, args.verify_images)]
    if not verification:
        raise ToolError(f'no {args.verify_split} images left for the '
                        'verification')
    report = quantize_int8(
        args.model, args.out, calibration, verification, args.method,
        MIN_AGREEMENT if args.min_agreement is None else args.min_agreement,
        f'{cfg.filename.split("/")[-1]} ({args.calib_split} split)')
    print('\n'.join(report.lines()))
    int8 = OnnxSegmentor(args.out)
    if args.evaluate:
        test_set = build_split(cfg, 'test')
        for name, model in (('float', fp32), ('int8', int8)):
            miou = evaluate_miou(
                lambda image, shape: predict_mask(model, image, shape),
                test_set)
            print(f'mIoU on the test split ({len(test_set)} images), '
                  f'{name}: {miou:.2f}')
    if args.speed_shape:
        h, w = args.speed_shape
        x = fp32.prepare(torch.rand(3, h, w) * 255)
        float_time, int8_time = time_models(
            dict(float=fp32, int8=int8), x, args.repeats, warmup=3)
        print(f'onnxruntime on {platform.processor() or platform.machine()} '
              f'CPU, {torch.get_num_threads()} threads, 1x3x{h}x{w}, '
              f'{args.repeats} alternating calls: float median '
              f'{float_time.median * 1e3:.1f} ms, int8 median '
              f'{int8_time.median * 1e3:.1f} ms, int8 speed-up '
              f'{paired_ratio(float_time, int8_time):.2f}x (median of '
              'paired float / int8 times)')


if __name__ == '__main__':
    run_tool(main)
