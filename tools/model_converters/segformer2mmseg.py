"""Convert SegFormer weights (NVlabs, mmseg, Hugging Face, smp) for
mmseg_plugins.

    python tools/model_converters/segformer2mmseg.py SRC DST
        [--source nvlabs|mmseg|hf|smp] [--arch b0..b5]

SRC is a ``.pth``/``.bin`` file or a Hugging Face model folder (config.json
+ model.safetensors or pytorch_model.bin; safetensors are read with the
safetensors package, never through pickle). Backbone-only files (ImageNet)
give bare MiT keys for ``model.pretrained``/``init_cfg``; whole models give
``backbone.*``/``decode_head.*`` for ``tools/test.py`` and ``load_from``
(official-form head for NVlabs/HF/smp, ``head_form='mmseg'`` for mmseg).
The source layout is detected from the keys unless ``--source`` is given,
the variant from the shapes unless ``--arch`` is given, the number of
classes from the classifier. DST is written atomically.
"""
import argparse
import os.path as osp
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint file or Hugging Face folder')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--source', choices=['nvlabs', 'mmseg', 'hf', 'smp'],
                        default=None, help='layout of SRC (default: detect)')
    parser.add_argument('--arch', default=None, help='b0..b5 (default: '
                        'detect)')
    args = parser.parse_args()
    from mmseg_plugins.checkpoint import safe_load, unwrap_state_dict
    from mmseg_plugins.converters.driver import (convert_checkpoint,
                                                 summary_lines)
    from mmseg_plugins.converters.segformer import (detect_source,
                                                    read_hf_folder,
                                                    segformer_spec)
    if osp.isdir(args.src):
        sd = read_hf_folder(args.src)
    else:
        sd = unwrap_state_dict(safe_load(args.src))
    source = args.source or detect_source(sd)
    info = convert_checkpoint(args.src, args.dst, segformer_spec(source),
                              args.arch, state_dict=sd)
    print(f'source layout: {source}')
    print('\n'.join(summary_lines(info, args.dst)))


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import warnings
    warnings.filterwarnings('ignore')
    from mmseg_plugins.tools import run_tool
    run_tool(main)
