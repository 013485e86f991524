"""Convert an official MPViT checkpoint for mmseg_plugins.

    python tools/model_converters/mpvit2mmseg.py SRC DST
        [--arch tiny|xsmall|small|base]

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
from mmseg_plugins.converters.cli import converter_cli
from mmseg_plugins.converters.mpvit import convert_mpvit
from mmseg_plugins.models import MPVIT_ARCHS
from mmseg_plugins.cli import run_tool


def main(argv=None):
    converter_cli(__doc__, convert_mpvit, list(MPVIT_ARCHS), argv=argv)


if __name__ == '__main__':
    run_tool(main)
