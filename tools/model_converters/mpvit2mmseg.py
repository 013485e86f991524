"""Convert an official MPViT checkpoint for mmseg_plugins.

    python tools/model_converters/mpvit2mmseg.py SRC DST [--arch tiny|xsmall|small|base]

SRC is an official ImageNet file (``{'model': ...}`` with ``cls_head``; the
classifier is dropped), an mmseg backbone file (bare keys, possibly inside
``state_dict``, e.g. the authors' ``mpvit_*_mm.pth``) or an official UperNet
model (mmcv 1.x ``meta``/``state_dict``/``optimizer`` with ``backbone.*``,
``decode_head.*`` and ``auxiliary_head.*``). DST loads with no missing or
unexpected keys through ``tools/test.py configs/mpvit/CONFIG DST``
(UperNet) or ``model.backbone.init_cfg=dict(type='Pretrained',
checkpoint=DST)`` (ImageNet). The variant is detected from the shapes unless
``--arch`` is given. Shared-module alias keys are folded (after checking they
are identical) and the report says so. DST is written atomically: on any
error nothing is written.
"""
import argparse
import os.path as osp
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official MPViT checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--arch', default=None,
                        help='tiny, xsmall, small or base (default: detect)')
    args = parser.parse_args()
    from mmseg_plugins.converters.driver import (convert_checkpoint,
                                                 summary_lines)
    from mmseg_plugins.converters.mpvit import mpvit_spec
    info = convert_checkpoint(args.src, args.dst, mpvit_spec(), args.arch)
    print('\n'.join(summary_lines(info, args.dst)))


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import warnings
    warnings.filterwarnings('ignore')
    from mmseg_plugins.tools import run_tool
    run_tool(main)
