"""Convert SegFormer weights (NVlabs, mmseg, Hugging Face, smp) for
mmseg_plugins.

    python tools/model_converters/segformer2mmseg.py SRC DST
        [--source nvlabs|mmseg|hf|smp] [--arch b0..b5]

SRC is a ``.pth``/``.bin`` file or a Hugging Face model folder (config.json
+ model.safetensors or pytorch_model.bin; safetensors are read with the
safetensors package, never through pickle). Backbone-only files (ImageNet)
give bare MiT keys for ``model.pretrained``/``init_cfg``; whole models give
``backbone.*``/``decode_head.*`` for ``tools/test.py`` and ``load_from``
(``mmseg_plugins.SegformerHead`` for NVlabs/HF/smp, mmseg's own
``SegformerHead`` for mmseg files).
The source layout is detected from the keys unless ``--source`` is given,
the variant from the shapes unless ``--arch`` is given, the number of
classes from the classifier. DST is written atomically.
"""
from mmseg_plugins.converters.cli import converter_cli
from mmseg_plugins.converters.segformer import (SEGFORMER_RULES,
                                                convert_segformer)
from mmseg_plugins.models import MIT_ARCHS
from mmseg_plugins.cli import run_tool


def main(argv=None):
    converter_cli(__doc__, convert_segformer, list(MIT_ARCHS),
                  sources=list(SEGFORMER_RULES), argv=argv)


if __name__ == '__main__':
    run_tool(main)
