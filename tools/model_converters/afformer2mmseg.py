"""Convert an official AFFormer checkpoint for mmseg_plugins.

    python tools/model_converters/afformer2mmseg.py SRC DST [--arch tiny|small|base]

SRC is either an ImageNet backbone file (bare keys, possibly inside
``state_dict``) or a segmentation model (``backbone.*``/``decode_head.*``,
mmcv-1.x ``meta``/``state_dict``/``optimizer`` wrapper). DST loads with no
missing or unexpected keys through ``tools/test.py CONFIG DST``
(segmentation) or ``model.backbone.init_cfg=dict(type='Pretrained',
checkpoint=DST)`` (ImageNet). The variant is detected from the shapes unless
``--arch`` is given. Shared-module alias keys are folded (after checking they
are identical), the head's unused ``align`` block is dropped, and the report
says so. DST is written atomically: on any error nothing is written.
"""
import argparse
import os.path as osp
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official AFFormer checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--arch', default=None,
                        help='tiny, small or base (default: detect)')
    args = parser.parse_args()
    from mmseg_plugins.converters.afformer import afformer_spec
    from mmseg_plugins.converters.driver import (convert_checkpoint,
                                                 summary_lines)
    info = convert_checkpoint(args.src, args.dst, afformer_spec(), args.arch)
    print('\n'.join(summary_lines(info, args.dst)))


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import warnings
    warnings.filterwarnings('ignore')
    from mmseg_plugins.tools import run_tool
    run_tool(main)
