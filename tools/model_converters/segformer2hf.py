"""Export our SegFormer (MiT + official-form SegformerHead) to a Hugging Face
model folder.

    python tools/model_converters/segformer2hf.py SRC DST_DIR [--arch b0..b5]

SRC is a checkpoint of this project (e.g. ``work_dirs/x/iter_160000.pth``);
DST_DIR receives config.json and model.safetensors, which
``transformers.SegformerForSemanticSegmentation.from_pretrained(DST_DIR)``
loads. Hugging Face's SegFormer uses LayerNorm eps 1e-5 in every norm where
the official code (and our default) uses 1e-6 in the block and stage norms,
so its logits differ slightly (see README). DST_DIR must not exist or be
empty; it appears only when complete.
"""
import argparse

from mmseg_plugins.cli import run_tool


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='mmseg_plugins SegFormer checkpoint')
    parser.add_argument('dst', help='output folder')
    parser.add_argument('--arch', default=None, help='b0..b5 (default: '
                        'detect)')
    args = parser.parse_args(argv)
    from mmseg_plugins.converters.hf import export_hf
    info = export_hf(args.src, args.dst, args.arch)
    print(f'MiT-{info["arch"]} with the official head: {info["num_keys"]} '
          f'tensors written to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
