"""Convert an official AFFormer checkpoint for mmseg_plugins.

    python tools/model_converters/afformer2mmseg.py SRC DST
        [--arch tiny|small|base]

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
from mmseg_plugins.converters.afformer import convert_afformer
from mmseg_plugins.converters.cli import converter_cli
from mmseg_plugins.models import AFFORMER_ARCHS
from mmseg_plugins.cli import run_tool


def main(argv=None):
    converter_cli(__doc__, convert_afformer, list(AFFORMER_ARCHS), argv=argv)


if __name__ == '__main__':
    run_tool(main)
