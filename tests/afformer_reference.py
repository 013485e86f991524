"""An independent, functional statement of the official AFFormer forward
pass (github dongbo811/AFFormer, ``tools/afformer.py``; summarised in
``docs/official_implementations.md``), that reads weights in the *official*
state-dict layout. Tests compare our modules with it; it shares no code with
mmseg_plugins.models."""
import torch
import torch.nn.functional as F

from mhca_reference import (batch_norm_training, block, conv_bn,
                            conv_residual, high_pass, patch_embed, randomise,
                            to_official_layout)

__all__ = ['backbone_forward', 'head_forward', 'official_state_dict',
           'randomise', 'batch_norm_training']

#: (first, second) patch-embedding stride per stage
STRIDES = ((1, 1), (2, 1), (1, 2), (1, 4))


def _low_pass(img):
    size = img.shape[2:]
    outs = [
        F.interpolate(F.adaptive_avg_pool2d(c, s), size=size, mode='bilinear',
                      align_corners=False)
        for c, s in zip(img.chunk(4, dim=1), (1, 2, 3, 6))
    ]
    return F.relu(torch.cat(outs, dim=1))


def _frequency_filter(q, v, sd, p, hw):
    """q * HP(v) + LP(v); q, v: (B, h, N, Ch)."""
    b, h, n, ch = v.shape
    img = v.permute(0, 1, 3, 2).reshape(b, h * ch, *hw)  # B (h Ch) H W

    def heads_view(t):
        return t.reshape(b, h, ch, n).permute(0, 1, 3, 2)

    return q * heads_view(high_pass(img, sd, p)) + heads_view(_low_pass(img))


def _dw_mlp(y, sd, p, hw):
    y = F.linear(y, sd[p + '.fc1.weight'], sd[p + '.fc1.bias'])
    yi = y.transpose(1, 2).reshape(y.shape[0], -1, *hw)
    d = F.conv2d(yi, sd[p + '.dwconv.dwconv.weight'],
                 sd[p + '.dwconv.dwconv.bias'], 1, 1, 1, yi.shape[1])
    y = F.gelu(y + d.flatten(2).transpose(1, 2))
    return F.linear(y, sd[p + '.fc2.weight'], sd[p + '.fc2.bias'])


def backbone_forward(sd, x, depths):
    """Official backbone on official keys (no ``backbone.`` prefix)."""
    x = conv_bn(x, sd, 'stem.0', 2, 1)
    x = conv_bn(x, sd, 'stem.1', 2, 1)
    outs = []
    for i in range(4):
        pe = f'patch_embed_stages.{i}.patch_embeds'
        p0 = patch_embed(x, sd, f'{pe}.0.patch_conv', STRIDES[i][0])
        p1 = patch_embed(p0, sd, f'{pe}.1.patch_conv', STRIDES[i][1])
        st = f'mhca_stages.{i}'
        if i == 0:
            fused = conv_residual(p0 + p1, sd, st + '.Restore')
        else:
            local = conv_residual(p0, sd, st + '.Restore')
            hw = p1.shape[2:]
            t = p1.flatten(2).transpose(1, 2)
            for j in range(depths[i]):
                t = block(t, sd, f'{st}.mhca_blks.0.MHCA_layers.{j}', hw,
                          relpos=_frequency_filter, mlp=_dw_mlp)
            t = t.transpose(1, 2).reshape(p1.shape[0], -1, *hw)
            if t.shape[2:] != local.shape[2:]:
                t = F.interpolate(t, size=local.shape[2:], mode='bilinear',
                                  align_corners=True)
            fused = local + t
        x = conv_bn(fused, sd, st + '.aggregate')
        outs.append(x)
    return outs


def head_forward(sd, feats):
    """Official CLS head (eval) on ``decode_head.*`` keys without prefix."""
    y = F.conv2d(feats[3], sd['squeeze.conv.weight'])
    y = F.relu(F.group_norm(y, 32, sd['squeeze.gn.weight'],
                            sd['squeeze.gn.bias']))
    return F.conv2d(y, sd['conv_seg.weight'], sd['conv_seg.bias'])


def official_state_dict(model, head=None, align_seed=0, keep_vars=False):
    """Our (randomised) model's weights in the official layout, including
    the shared-module alias keys and the head's unused ``align`` block.
    With ``keep_vars`` the values are the model's own parameters and
    buffers (the aliases differentiable copies of them), so gradients and
    BatchNorm updates of the functional statement land in ``model``."""
    out = to_official_layout(
        model.state_dict(keep_vars=keep_vars), r'stages\.(\d)\.encoder()\.',
        lambda i, path: f'mhca_stages.{i}.mhca_blks.0',
        lambda i, path: len(model.stages[i].encoder.blocks), 'Restore',
        [('mlp.dwconv.', 'mlp.dwconv.dwconv.')])
    if head is None:
        return out
    full = {f'backbone.{k}': v for k, v in out.items()}
    for k, v in head.state_dict(keep_vars=keep_vars).items():
        full[f'decode_head.{k}'] = v
    g = torch.Generator().manual_seed(align_seed)
    c = head.channels
    full['decode_head.align.conv.weight'] = torch.randn(c, c, 1, 1,
                                                        generator=g)
    full['decode_head.align.gn.weight'] = torch.ones(c)
    full['decode_head.align.gn.bias'] = torch.zeros(c)
    return full
