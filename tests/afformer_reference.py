"""An independent, functional statement of the official AFFormer forward
pass, written from the reference notes (shared/reference/afformer.md), that
reads weights in the *official* state-dict layout. Tests compare our modules
with it; it shares no code with mmseg_plugins.models."""
import torch
import torch.nn.functional as F

#: (first, second) patch-embedding stride per stage
STRIDES = ((1, 1), (2, 1), (1, 2), (1, 4))
WINDOWS = ((3, 2), (5, 3), (7, 3))  # (kernel, heads)


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + '.running_mean'], sd[p + '.running_var'],
                        sd[p + '.weight'], sd[p + '.bias'], False, 0., 1e-5)


def _conv_bn(x, sd, p, stride=1, pad=0, act=True):
    y = _bn(F.conv2d(x, sd[p + '.conv.weight'], None, stride, pad), sd,
            p + '.bn')
    return F.hardswish(y) if act else y


def _patch_embed(x, sd, p, stride):
    w = sd[p + '.dwconv.weight']
    y = F.conv2d(x, w, None, stride, 1, 1, w.shape[0])
    y = F.conv2d(y, sd[p + '.pwconv.weight'])
    return F.hardswish(_bn(y, sd, p + '.bn'))


def _restore(x, sd, p):
    y = _conv_bn(x, sd, p + '.conv1')
    y = F.conv2d(y, sd[p + '.dwconv.weight'], None, 1, 1, 1, y.shape[1])
    y = F.hardswish(_bn(y, sd, p + '.norm'))
    return x + _conv_bn(y, sd, p + '.conv2', act=False)


def _low_pass(img):
    size = img.shape[2:]
    outs = [
        F.interpolate(F.adaptive_avg_pool2d(c, s), size=size, mode='bilinear',
                      align_corners=False)
        for c, s in zip(img.chunk(4, dim=1), (1, 2, 3, 6))
    ]
    return F.relu(torch.cat(outs, dim=1))


def _frequency_filter(q, v, sd, p, hw):
    b, h, n, ch = v.shape
    img = v.permute(0, 1, 3, 2).reshape(b, h * ch, *hw)  # B (h Ch) H W
    parts, start = [], 0
    for i, (k, heads) in enumerate(WINDOWS):
        c = heads * ch
        parts.append(F.conv2d(img[:, start:start + c],
                              sd[f'{p}.conv_list.{i}.weight'],
                              sd[f'{p}.conv_list.{i}.bias'], 1, k // 2, 1, c))
        start += c
    high = torch.cat(parts, dim=1)

    def heads_view(t):
        return t.reshape(b, h, ch, n).permute(0, 1, 3, 2)

    return q * heads_view(high) + heads_view(_low_pass(img))


def _block(x, sd, p, hw, heads=8):
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
    att = (c // heads)**-0.5 * fa + _frequency_filter(q, v, sd, a + '.crpe',
                                                      hw)
    att = F.linear(att.transpose(1, 2).reshape(b, n, c),
                   sd[a + '.proj.weight'], sd[a + '.proj.bias'])
    x = x + att
    y = F.layer_norm(x, (c, ), sd[p + '.norm2.weight'], sd[p + '.norm2.bias'],
                     1e-6)
    y = F.linear(y, sd[p + '.mlp.fc1.weight'], sd[p + '.mlp.fc1.bias'])
    yi = y.transpose(1, 2).reshape(b, -1, *hw)
    d = F.conv2d(yi, sd[p + '.mlp.dwconv.dwconv.weight'],
                 sd[p + '.mlp.dwconv.dwconv.bias'], 1, 1, 1, yi.shape[1])
    y = F.gelu(y + d.flatten(2).transpose(1, 2))
    y = F.linear(y, sd[p + '.mlp.fc2.weight'], sd[p + '.mlp.fc2.bias'])
    return x + y


def backbone_forward(sd, x, depths):
    """Official backbone on official keys (no ``backbone.`` prefix)."""
    x = _conv_bn(x, sd, 'stem.0', 2, 1)
    x = _conv_bn(x, sd, 'stem.1', 2, 1)
    outs = []
    for i in range(4):
        pe = f'patch_embed_stages.{i}.patch_embeds'
        p0 = _patch_embed(x, sd, f'{pe}.0.patch_conv', STRIDES[i][0])
        p1 = _patch_embed(p0, sd, f'{pe}.1.patch_conv', STRIDES[i][1])
        st = f'mhca_stages.{i}'
        if i == 0:
            fused = _restore(p0 + p1, sd, st + '.Restore')
        else:
            local = _restore(p0, sd, st + '.Restore')
            hw = p1.shape[2:]
            t = p1.flatten(2).transpose(1, 2)
            for j in range(depths[i]):
                t = _block(t, sd, f'{st}.mhca_blks.0.MHCA_layers.{j}', hw)
            t = t.transpose(1, 2).reshape(p1.shape[0], -1, *hw)
            if t.shape[2:] != local.shape[2:]:
                t = F.interpolate(t, size=local.shape[2:], mode='bilinear',
                                  align_corners=True)
            fused = local + t
        x = _conv_bn(fused, sd, st + '.aggregate')
        outs.append(x)
    return outs


def head_forward(sd, feats):
    """Official CLS head (eval) on ``decode_head.*`` keys without prefix."""
    y = F.conv2d(feats[3], sd['squeeze.conv.weight'])
    y = F.relu(F.group_norm(y, 32, sd['squeeze.gn.weight'],
                            sd['squeeze.gn.bias']))
    return F.conv2d(y, sd['conv_seg.weight'], sd['conv_seg.bias'])


def official_state_dict(model, head=None, align_seed=0):
    """Our (randomised) model's weights in the official layout, including
    the shared-module alias keys and the head's unused ``align`` block."""
    import re
    out = {}
    enc_re = re.compile(r'stages\.(\d)\.encoder\.(cpe|crpe)\.(.+)')
    blk_re = re.compile(r'stages\.(\d)\.encoder\.blocks\.(\d+)\.(.+)')
    for k, v in model.state_dict().items():
        m = enc_re.fullmatch(k)
        if m:
            i, mod, rest = m.groups()
            out[f'mhca_stages.{i}.mhca_blks.0.{mod}.{rest}'] = v
            depth = len(model.stages[int(i)].encoder.blocks)
            for j in range(depth):
                base = f'mhca_stages.{i}.mhca_blks.0.MHCA_layers.{j}'
                out[f'{base}.{mod}.{rest}'] = v.clone()
                if mod == 'crpe':
                    out[f'{base}.factoratt_crpe.crpe.{rest}'] = v.clone()
            continue
        m = blk_re.fullmatch(k)
        if m:
            i, j, rest = m.groups()
            rest = rest.replace('attn.', 'factoratt_crpe.')
            rest = rest.replace('mlp.dwconv.', 'mlp.dwconv.dwconv.')
            out[f'mhca_stages.{i}.mhca_blks.0.MHCA_layers.{j}.{rest}'] = v
            continue
        k2 = re.sub(r'stages\.(\d)\.patch_embeds\.(\d)\.',
                    r'patch_embed_stages.\1.patch_embeds.\2.patch_conv.', k)
        k2 = re.sub(r'^stages\.(\d)\.local\.', r'mhca_stages.\1.Restore.', k2)
        k2 = re.sub(r'^stages\.(\d)\.aggregate\.', r'mhca_stages.\1.aggregate.',
                    k2)
        out[k2] = v
    if head is None:
        return out
    full = {f'backbone.{k}': v for k, v in out.items()}
    for k, v in head.state_dict().items():
        full[f'decode_head.{k}'] = v
    g = torch.Generator().manual_seed(align_seed)
    c = head.channels
    full['decode_head.align.conv.weight'] = torch.randn(c, c, 1, 1,
                                                        generator=g)
    full['decode_head.align.gn.weight'] = torch.ones(c)
    full['decode_head.align.gn.bias'] = torch.zeros(c)
    return full


def randomise(module, seed=0):
    """Random parameters and BN statistics, so every layer matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module
