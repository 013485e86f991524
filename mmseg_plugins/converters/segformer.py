"""Key rules between SegFormer checkpoint layouts and this project's MiT.

Only mmseg 1.x's ``MixVisionTransformer`` layout is covered here (it is what
the foundation tests compare against); the NVlabs, Hugging Face and smp
layouts build on the same rules.
"""
from ..converters.rules import Rename, Split

__all__ = ['MMSEG_MIT_TO_MIT']


def _linear_from_1x1(w):
    """(out, in, 1, 1) conv weight -> (out, in) Linear weight."""
    return w.reshape(w.shape[0], w.shape[1])


_B = r'layers\.(\d+)\.1\.(\d+)\.'  # a block in mmseg's layout
_T = r'stages.\1.blocks.\2.'

#: mmseg ``MixVisionTransformer`` (backbone keys, no prefix) -> ``MiT``.
MMSEG_MIT_TO_MIT = (
    Rename(r'layers\.(\d+)\.0\.projection\.(weight|bias)',
           r'stages.\1.patch_embed.proj.\2'),
    Rename(r'layers\.(\d+)\.0\.norm\.(weight|bias)',
           r'stages.\1.patch_embed.norm.\2'),
    Rename(_B + r'(norm1|norm2)\.(weight|bias)', _T + r'\3.\4'),
    Split(_B + r'attn\.attn\.in_proj_(weight|bias)',
          (_T + r'attn.q.\3', _T + r'attn.kv.\3'), (1, 2)),
    Rename(_B + r'attn\.attn\.out_proj\.(weight|bias)', _T + r'attn.proj.\3'),
    Rename(_B + r'attn\.(sr|norm)\.(weight|bias)', _T + r'attn.\3.\4'),
    Rename(_B + r'ffn\.layers\.0\.weight', _T + 'mlp.fc1.weight',
           _linear_from_1x1),
    Rename(_B + r'ffn\.layers\.0\.bias', _T + 'mlp.fc1.bias'),
    Rename(_B + r'ffn\.layers\.1\.(weight|bias)', _T + r'mlp.dwconv.\3'),
    Rename(_B + r'ffn\.layers\.4\.weight', _T + 'mlp.fc2.weight',
           _linear_from_1x1),
    Rename(_B + r'ffn\.layers\.4\.bias', _T + 'mlp.fc2.bias'),
    Rename(r'layers\.(\d+)\.2\.(weight|bias)', r'stages.\1.norm.\2'),
)
