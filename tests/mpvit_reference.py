"""An independent, functional statement of the official MPViT segmentation
backbone (github youngwanLEE/MPViT, ``semantic_segmentation/backbone/
mpvit.py``; summarised in ``docs/official_implementations.md``), that reads
weights in the *official* state-dict layout (alias keys included).
Tests compare our modules with it; it shares no code with
mmseg_plugins.models."""
import torch

from mhca_reference import (batch_norm_training, conv_bn, conv_residual,
                            encoder, patch_embed, randomise,
                            to_official_layout)

__all__ = ['backbone_forward', 'official_state_dict', 'randomise',
           'batch_norm_training']


def backbone_forward(sd, x, depths, num_paths):
    """Official backbone on official keys (no ``backbone.`` prefix): the 4
    ``mhca_stages`` outputs."""
    x = conv_bn(x, sd, 'stem.0', 2, 1)
    x = conv_bn(x, sd, 'stem.1', 2, 1)
    outs = []
    for i in range(4):
        inputs = []
        for p in range(num_paths[i]):  # chained embeddings
            stride = 2 if p == 0 and i > 0 else 1
            x = patch_embed(x, sd, f'patch_embed_stages.{i}.patch_embeds.{p}.'
                            'patch_conv', stride)
            inputs.append(x)
        st = f'mhca_stages.{i}'
        feats = [conv_residual(inputs[0], sd, st + '.InvRes')] + [
            encoder(inp, sd, f'{st}.mhca_blks.{p}', depths[i])
            for p, inp in enumerate(inputs)
        ]
        x = conv_bn(torch.cat(feats, dim=1), sd, st + '.aggregate')
        outs.append(x)
    return outs


def official_state_dict(model, num_classes=None, seed=0, keep_vars=False):
    """Our (randomised) backbone's weights in the official layout, with the
    shared-module alias keys; ``num_classes`` adds the ImageNet
    ``cls_head.cls`` of the classification checkpoints. With ``keep_vars``
    the values are the model's own parameters and buffers (the aliases
    differentiable copies), so gradients and BatchNorm updates of the
    functional statement land in ``model``."""
    out = to_official_layout(
        model.state_dict(keep_vars=keep_vars),
        r'stages\.(\d)\.encoders\.(\d)\.',
        lambda i, path: f'mhca_stages.{i}.mhca_blks.{path}',
        lambda i, path: len(model.stages[i].encoders[int(path)].blocks),
        'InvRes')
    if num_classes:
        g = torch.Generator().manual_seed(seed)
        c = model.stage_channels[-1]
        out['cls_head.cls.weight'] = torch.randn(num_classes, c, generator=g)
        out['cls_head.cls.bias'] = torch.randn(num_classes, generator=g)
    return out
