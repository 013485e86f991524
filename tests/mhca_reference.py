"""Functional statements of the MPViT-style building blocks (shared by
MPViT and AFFormer) on weights in the *official* state-dict layout, as the
official code computes them (summarised in
``docs/official_implementations.md``). They share no code with
mmseg_plugins.models; the family references compose them."""
import contextlib
import re

import torch
import torch.nn.functional as F

WINDOWS = ((3, 2), (5, 3), (7, 3))  # (kernel, heads) of the relative PE

#: BatchNorm mode of the functional statements: False (inference) uses the
#: running statistics; True normalises with the batch statistics and
#: updates the running ones in place (momentum 0.1), as nn.BatchNorm2d in
#: training mode.
_BN_TRAINING = False


@contextlib.contextmanager
def batch_norm_training():
    """Run the statements with BatchNorm in training mode."""
    global _BN_TRAINING
    _BN_TRAINING = True
    try:
        yield
    finally:
        _BN_TRAINING = False


def randomise(module, seed=0, scale=0.2):
    """Random parameters and BN statistics, so every layer matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


def bn(x, sd, p):
    if _BN_TRAINING:
        sd[p + '.num_batches_tracked'].add_(1)
    return F.batch_norm(x, sd[p + '.running_mean'], sd[p + '.running_var'],
                        sd[p + '.weight'], sd[p + '.bias'], _BN_TRAINING, 0.1,
                        1e-5)


def conv_bn(x, sd, p, stride=1, pad=0, act=True):
    y = bn(F.conv2d(x, sd[p + '.conv.weight'], None, stride, pad), sd,
           p + '.bn')
    return F.hardswish(y) if act else y


def patch_embed(x, sd, p, stride):
    """``patch_conv``: 3x3 depthwise, 1x1, BN, Hardswish."""
    w = sd[p + '.dwconv.weight']
    y = F.conv2d(x, w, None, stride, 1, 1, w.shape[0])
    y = F.conv2d(y, sd[p + '.pwconv.weight'])
    return F.hardswish(bn(y, sd, p + '.bn'))


def conv_residual(x, sd, p):
    """``InvRes`` / ``Restore``: x + conv2(act(norm(dwconv(conv1(x)))))."""
    y = conv_bn(x, sd, p + '.conv1')
    y = F.conv2d(y, sd[p + '.dwconv.weight'], None, 1, 1, 1, y.shape[1])
    y = F.hardswish(bn(y, sd, p + '.norm'))
    return x + conv_bn(y, sd, p + '.conv2', act=False)


def high_pass(img, sd, p):
    """Per-window depthwise convs over their head splits, concatenated."""
    parts, start = [], 0
    ch = img.shape[1] // sum(h for _, h in WINDOWS)
    for i, (k, heads) in enumerate(WINDOWS):
        c = heads * ch
        parts.append(F.conv2d(img[:, start:start + c],
                              sd[f'{p}.conv_list.{i}.weight'],
                              sd[f'{p}.conv_list.{i}.bias'], 1, k // 2, 1, c))
        start += c
    return torch.cat(parts, dim=1)


def crpe(q, v, sd, p, hw):
    """MPViT/CoaT relative PE: q * DWConv(v); q, v: (B, h, N, Ch)."""
    b, h, n, ch = v.shape
    img = v.permute(0, 1, 3, 2).reshape(b, h * ch, *hw)  # B (h Ch) H W
    return q * high_pass(img, sd, p).reshape(b, h, ch, n).permute(0, 1, 3, 2)


def plain_mlp(y, sd, p, hw):
    y = F.gelu(F.linear(y, sd[p + '.fc1.weight'], sd[p + '.fc1.bias']))
    return F.linear(y, sd[p + '.fc2.weight'], sd[p + '.fc2.bias'])


def block(x, sd, p, hw, relpos=crpe, mlp=plain_mlp, heads=8):
    """One ``MHCA_layers.l`` block on tokens (B, N, C); the shared cpe/crpe
    are read from the block's own (alias) keys, as the official code does.
    """
    b, n, c = x.shape
    img = x.transpose(1, 2).reshape(b, c, *hw)
    img = F.conv2d(img, sd[p + '.cpe.proj.weight'], sd[p + '.cpe.proj.bias'],
                   1, 1, 1, c) + img
    x = img.flatten(2).transpose(1, 2)
    y = F.layer_norm(x, (c, ), sd[p + '.norm1.weight'], sd[p + '.norm1.bias'],
                     1e-6)
    a = p + '.factoratt_crpe'
    qkv = F.linear(y, sd[a + '.qkv.weight'], sd[a + '.qkv.bias'])
    q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    kv = torch.einsum('bhnk,bhnv->bhkv', k.softmax(dim=2), v)
    fa = torch.einsum('bhnk,bhkv->bhnv', q, kv)
    att = (c // heads)**-0.5 * fa + relpos(q, v, sd, a + '.crpe', hw)
    att = F.linear(att.transpose(1, 2).reshape(b, n, c),
                   sd[a + '.proj.weight'], sd[a + '.proj.bias'])
    x = x + att
    y = F.layer_norm(x, (c, ), sd[p + '.norm2.weight'], sd[p + '.norm2.bias'],
                     1e-6)
    return x + mlp(y, sd, p + '.mlp', hw)


def encoder(img, sd, p, depth, **kwargs):
    """``mhca_blks.p``: ``depth`` blocks on a (B, C, H, W) map."""
    hw = img.shape[2:]
    t = img.flatten(2).transpose(1, 2)
    for j in range(depth):
        t = block(t, sd, f'{p}.MHCA_layers.{j}', hw, **kwargs)
    return t.transpose(1, 2).reshape(img.shape[0], -1, *hw)


def to_official_layout(sd, encoder_re, official_encoder, depth_of, local,
                       mlp_renames=()):
    """Our state dict -> the official key layout, with the alias keys of
    the shared cpe/crpe under every block (independent of the converter's
    rules).

    Args:
        encoder_re (str): Our encoder prefix with groups (stage, path).
        official_encoder (callable): (stage, path) -> official prefix.
        depth_of (callable): (stage, path) -> number of blocks.
        local (str): Official name of the conv residual branch.
        mlp_renames (Sequence[tuple]): (ours, official) MLP sub-names.
    """
    out = {}
    enc_re = re.compile(encoder_re + r'(cpe|crpe)\.(.+)')
    blk_re = re.compile(encoder_re + r'blocks\.(\d+)\.(.+)')
    for k, v in sd.items():
        m = enc_re.fullmatch(k)
        if m:
            i, path, mod, rest = m.groups()
            base = official_encoder(i, path)
            out[f'{base}.{mod}.{rest}'] = v
            for j in range(depth_of(int(i), path)):
                layer = f'{base}.MHCA_layers.{j}'
                out[f'{layer}.{mod}.{rest}'] = v.clone()
                if mod == 'crpe':
                    out[f'{layer}.factoratt_crpe.crpe.{rest}'] = v.clone()
            continue
        m = blk_re.fullmatch(k)
        if m:
            i, path, j, rest = m.groups()
            rest = rest.replace('attn.', 'factoratt_crpe.')
            for ours, theirs in mlp_renames:
                rest = rest.replace(ours, theirs)
            out[f'{official_encoder(i, path)}.MHCA_layers.{j}.{rest}'] = v
            continue
        k2 = re.sub(r'stages\.(\d)\.patch_embeds\.(\d)\.',
                    r'patch_embed_stages.\1.patch_embeds.\2.patch_conv.', k)
        k2 = re.sub(r'^stages\.(\d)\.local\.', rf'mhca_stages.\1.{local}.',
                    k2)
        k2 = re.sub(r'^stages\.(\d)\.aggregate\.',
                    r'mhca_stages.\1.aggregate.', k2)
        out[k2] = v
    return out
