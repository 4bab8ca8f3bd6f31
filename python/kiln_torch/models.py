"""PyTorch definitions of kiln's UNet, DiT, VAE and PatchDiscriminator (src/nn/models/*.ts).

Every module has kiln's parameter names, so `model.load_state_dict(kiln_state_dict, strict=True)` works
and `model.state_dict()` loads into kiln strictly. Configs are kiln's (camelCase keys, kiln's defaults);
`model.config` is the full config, as kiln stores it in checkpoint metadata. Initialization is PyTorch's
default except where kiln zero-initializes a layer (residual outputs, adaLN-Zero, output convolutions).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

UNET_DEFAULTS = dict(channels=1, size=28, widths=[32, 64], depth=1, attention=[1], midAttention=True, heads=4,
                     numClasses=10, patch=2, groups=8)
DIT_DEFAULTS = dict(channels=1, size=28, patch=4, dim=96, depth=4, heads=4, mlpRatio=2, numClasses=10,
                    positions='sinusoidal')
VAE_DEFAULTS = dict(channels=1, size=28, patch=2, widths=[16, 32], depth=1, latentChannels=4, groups=8,
                    learnLogvar=True, logvarInit=0)
PATCH_DISCRIMINATOR_DEFAULTS = dict(channels=1, width=32, layers=2, norm='group', groups=8)


# keys kiln stores in every config for features this mirror does not implement, with the one value it supports
# (kiln's default): a config that has them at that value loads, without them in `model.config`
KILN_ONLY = dict(guidanceInput=False, numClasses=0)


def _config(defaults, config, name, kiln_only=()):
    config = dict(config or {})
    for key in kiln_only:
        if key in config:
            if config[key] != KILN_ONLY[key]:
                raise ValueError(f'{name}: {key}={config[key]!r} is not in this mirror (it supports only {KILN_ONLY[key]!r})')
            del config[key]
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f'{name}: unknown config keys {sorted(unknown)} (known: {sorted(defaults)})')
    return {**defaults, **config}


def _zero(layer):
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def group_norm(groups, ch):
    """kiln's rule: min(groups, channels) groups, eps 1e-5, affine."""
    return nn.GroupNorm(min(groups, ch), ch, eps=1e-5)


def timestep_embedding(t, dim, max_period=10000):
    """[N] → [N, dim]: [cos(t·f_i), sin(t·f_i)] with f_i = max_period^(−i/half) (kiln's timestepEmbedding)."""
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.float32
    freqs = torch.exp(torch.arange(half, dtype=dtype, device=t.device) * (-math.log(max_period) / half))
    args = t.to(dtype)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def modulate(x, shift, scale):
    """x·(1 + scale) + shift, with shift and scale [N, D] broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with PyTorch's parameter names (in_proj_weight, in_proj_bias, out_proj)."""

    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f'MultiheadAttention: embed dim {dim} is not divisible by {heads} heads')
        self.dim, self.heads = dim, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x):
        n, t, e = x.shape
        h, hd = self.heads, e // self.heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(e, dim=-1)
        q, k, v = (z.reshape(n, t, h, hd).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        return self.out_proj((a @ v).transpose(1, 2).reshape(n, t, e))


def condition_vector(time_embed, class_embed, t, labels, freq_dim):
    """SiLU(MLP(sinusoidal(t)) + class embedding): what every block is conditioned on."""
    emb = timestep_embedding(t, freq_dim).to(time_embed[0].weight.dtype)
    e = time_embed[1](F.silu(time_embed[0](emb)))
    if class_embed is not None and labels is not None:
        e = e + class_embed(labels.long())
    return F.silu(e)


def _check_inputs(model, c, x, t, labels):
    if x.dim() != 4 or x.shape[1] != c['channels'] or x.shape[2] != c['size'] or x.shape[3] != c['size']:
        raise ValueError(f"{model}: expected x of shape [N, {c['channels']}, {c['size']}, {c['size']}], got {list(x.shape)}")
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f'{model}: expected t of shape [{x.shape[0]}], got {list(t.shape)}')
    if c['numClasses'] > 0 and labels is None:
        raise ValueError(f"{model}: this model is class-conditional ({c['numClasses']} classes); pass labels (use {c['numClasses']} for no class)")


# ---------------------------------------------------------------- UNet

class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv3, the conditioning as a per-channel shift, GroupNorm–SiLU–conv3; 1×1 skip when widths differ."""

    def __init__(self, in_ch, out_ch, emb_dim, groups):
        super().__init__()
        self.norm1 = group_norm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        _zero(self.conv2)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the positions of a feature map (GroupNorm first), with a residual connection."""

    def __init__(self, ch, heads, groups):
        super().__init__()
        self.norm = group_norm(groups, ch)
        self.attn = MultiheadAttention(ch, heads)
        _zero(self.attn.out_proj)

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = self.norm(x).reshape(n, c, h * w).transpose(1, 2)
        return x + self.attn(tokens).transpose(1, 2).reshape(n, c, h, w)


class _Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attns = nn.ModuleList()


class UNet(nn.Module):
    """kiln's UNet: forward(x [N, C, H, W], t [N], labels [N] or None) → a tensor shaped like x."""

    def __init__(self, config=None, **kw):
        super().__init__()
        c = self.config = _config(UNET_DEFAULTS, {**(config or {}), **kw}, 'UNet', ('guidanceInput',))
        side = c['size'] / c['patch']
        if side != int(side) or int(side) % 2 ** (len(c['widths']) - 1):
            raise ValueError(f"UNet: image size {c['size']} with patch {c['patch']} must be divisible by 2^{len(c['widths']) - 1}")
        if any(w % min(c['groups'], w) or w % c['heads'] for w in c['widths']):
            raise ValueError(f"UNet: widths {c['widths']} must be divisible by groups {c['groups']} and heads {c['heads']}")
        w0, g, heads = c['widths'][0], c['groups'], c['heads']
        emb = 4 * w0
        self.time_embed = nn.ModuleList([nn.Linear(w0, emb), nn.Linear(emb, emb)])
        self.class_embed = nn.Embedding(c['numClasses'] + 1, emb) if c['numClasses'] > 0 else None
        in_ch = c['channels'] * c['patch'] ** 2
        self.conv_in = nn.Conv2d(in_ch, w0, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        skips, ch = [w0], w0
        L = len(c['widths'])
        for l, w in enumerate(c['widths']):
            level = _Level()
            for _ in range(c['depth']):
                level.blocks.append(ResBlock(ch, w, emb, g))
                ch = w
                if l in c['attention']:
                    level.attns.append(AttentionBlock(ch, heads, g))
                skips.append(ch)
            self.down.append(level)
            if l < L - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = _Level()
        self.mid.blocks.append(ResBlock(ch, ch, emb, g))
        self.mid.blocks.append(ResBlock(ch, ch, emb, g))
        if c['midAttention']:
            self.mid.attns.append(AttentionBlock(ch, heads, g))
        for l in range(L - 1, -1, -1):
            w = c['widths'][l]
            level = _Level()
            for _ in range(c['depth'] + 1):
                level.blocks.append(ResBlock(ch + skips.pop(), w, emb, g))
                ch = w
                if l in c['attention']:
                    level.attns.append(AttentionBlock(ch, heads, g))
            self.up.append(level)
            if l > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = group_norm(g, ch)
        self.conv_out = nn.Conv2d(ch, in_ch, 3, padding=1)
        _zero(self.conv_out)

    def embed(self, t, labels=None):
        return condition_vector(self.time_embed, self.class_embed, t, labels, self.config['widths'][0])

    def forward(self, x, t, labels=None):
        c = self.config
        _check_inputs('UNet', c, x, t, labels)
        emb = self.embed(t, labels)
        p, L = c['patch'], len(c['widths'])
        h = self.conv_in(F.pixel_unshuffle(x, p) if p > 1 else x)
        skips = [h]
        for l in range(L):
            level = self.down[l]
            for i in range(c['depth']):
                h = level.blocks[i](h, emb)
                if l in c['attention']:
                    h = level.attns[i](h)
                skips.append(h)
            if l < L - 1:
                h = self.downsample[l](h)
                skips.append(h)
        h = self.mid.blocks[0](h, emb)
        if c['midAttention']:
            h = self.mid.attns[0](h)
        h = self.mid.blocks[1](h, emb)
        for j in range(L):
            l = L - 1 - j
            level = self.up[j]
            for i in range(c['depth'] + 1):
                h = level.blocks[i](torch.cat([h, skips.pop()], dim=1), emb)
                if l in c['attention']:
                    h = level.attns[i](h)
            if l > 0:
                h = self.upsample[j](F.interpolate(h, scale_factor=2, mode='nearest'))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, p) if p > 1 else h


# ---------------------------------------------------------------- DiT

def sinusoidal_positions_2d(side, dim):
    """Fixed 2-D sin/cos position embeddings [side², dim] (kiln's sinusoidalPositions2d, rounded to float32)."""
    if dim % 4:
        raise ValueError(f'sinusoidal_positions_2d: dim {dim} must be divisible by 4')
    q = dim // 4
    w = 1 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    i = torch.arange(side, dtype=torch.float64)[:, None, None]
    j = torch.arange(side, dtype=torch.float64)[None, :, None]
    ii, jj = (i * w).expand(side, side, q), (j * w).expand(side, side, q)
    out = torch.cat([ii.sin(), ii.cos(), jj.sin(), jj.cos()], dim=-1)
    return out.reshape(side * side, dim).float()


class DiTBlock(nn.Module):
    """A transformer block with adaLN-Zero conditioning (shift, scale, gate per sub-layer)."""

    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = MultiheadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)
        self.ada = nn.Linear(dim, 6 * dim)
        _zero(self.ada)

    def forward(self, x, c):
        sa, ca, ga, sm, cm, gm = self.ada(c).chunk(6, dim=1)
        x = x + self.attn(modulate(self.norm1(x), sa, ca)) * ga.unsqueeze(1)
        h = self.fc2(F.gelu(self.fc1(modulate(self.norm2(x), sm, cm)), approximate='tanh'))
        return x + h * gm.unsqueeze(1)


class DiT(nn.Module):
    """kiln's DiT: patch tokens, 2-D sinusoidal or learned positions, adaLN-Zero blocks."""

    def __init__(self, config=None, **kw):
        super().__init__()
        c = self.config = _config(DIT_DEFAULTS, {**(config or {}), **kw}, 'DiT', ('guidanceInput',))
        side = c['size'] // c['patch']
        if side * c['patch'] != c['size']:
            raise ValueError(f"DiT: image size {c['size']} must be divisible by patch {c['patch']}")
        if c['dim'] % c['heads'] or c['dim'] % 4:
            raise ValueError(f"DiT: dim {c['dim']} must be divisible by heads {c['heads']} and by 4")
        pd, dim = c['channels'] * c['patch'] ** 2, c['dim']
        self.patch_embed = nn.Linear(pd, dim)
        pos = sinusoidal_positions_2d(side, dim)
        if c['positions'] == 'learned':
            self.pos_embed = nn.Parameter(torch.randn(side * side, dim) * 0.02)
        elif c['positions'] == 'sinusoidal':
            self.register_buffer('pos_embed', pos)
        else:
            raise ValueError(f"DiT: positions must be 'sinusoidal' or 'learned', got {c['positions']!r}")
        self.time_embed = nn.ModuleList([nn.Linear(256, dim), nn.Linear(dim, dim)])
        self.class_embed = nn.Embedding(c['numClasses'] + 1, dim) if c['numClasses'] > 0 else None
        self.blocks = nn.ModuleList([DiTBlock(dim, c['heads'], c['mlpRatio']) for _ in range(c['depth'])])
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(dim, 2 * dim)
        _zero(self.ada_out)
        self.proj_out = nn.Linear(dim, pd)
        _zero(self.proj_out)

    def forward(self, x, t, labels=None):
        c = self.config
        _check_inputs('DiT', c, x, t, labels)
        n, p = x.shape[0], c['patch']
        side = c['size'] // p
        cond = condition_vector(self.time_embed, self.class_embed, t, labels, 256)
        patches = F.pixel_unshuffle(x, p).reshape(n, -1, side * side).transpose(1, 2)
        h = self.patch_embed(patches) + self.pos_embed
        for b in self.blocks:
            h = b(h, cond)
        shift, scale = self.ada_out(cond).chunk(2, dim=1)
        h = self.proj_out(modulate(self.norm_out(h), shift, scale))
        return F.pixel_shuffle(h.transpose(1, 2).reshape(n, -1, side, side), p)


# ---------------------------------------------------------------- VAE

class VAEResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, groups):
        super().__init__()
        self.norm1 = group_norm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class _VAELevel(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.downsample = None
        self.upsample = None


class _VAEMid(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.block_1 = VAEResBlock(ch, ch, groups)
        self.block_2 = VAEResBlock(ch, ch, groups)

    def forward(self, h):
        return self.block_2(self.block_1(h))


class VAEEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        g = c['groups']
        self.conv_in = nn.Conv2d(c['channels'] * c['patch'] ** 2, c['widths'][0], 3, padding=1)
        self.down = nn.ModuleList()
        ch = c['widths'][0]
        for l, w in enumerate(c['widths']):
            level = _VAELevel()
            for _ in range(c['depth']):
                level.block.append(VAEResBlock(ch, w, g))
                ch = w
            if l < len(c['widths']) - 1:
                level.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            self.down.append(level)
        self.mid = _VAEMid(ch, g)
        self.norm_out = group_norm(g, ch)
        self.conv_out = nn.Conv2d(ch, 2 * c['latentChannels'], 3, padding=1)

    def forward(self, x):
        p = self.config['patch']
        h = self.conv_in(F.pixel_unshuffle(x, p) if p > 1 else x)
        for level in self.down:
            for b in level.block:
                h = b(h)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VAEDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        g, L = c['groups'], len(c['widths'])
        ch = c['widths'][-1]
        self.conv_in = nn.Conv2d(c['latentChannels'], ch, 3, padding=1)
        self.mid = _VAEMid(ch, g)
        levels = [None] * L
        for l in range(L - 1, -1, -1):
            w = c['widths'][l]
            level = _VAELevel()
            for _ in range(c['depth'] + 1):
                level.block.append(VAEResBlock(ch, w, g))
                ch = w
            if l > 0:
                level.upsample = nn.Conv2d(ch, ch, 3, padding=1)
            levels[l] = level
        self.up = nn.ModuleList(levels)  # up.<l> is level l (0 = full resolution)
        self.norm_out = group_norm(g, ch)
        self.conv_out = nn.Conv2d(ch, c['channels'] * c['patch'] ** 2, 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for l in range(len(self.up) - 1, -1, -1):
            level = self.up[l]
            for b in level.block:
                h = b(h)
            if level.upsample is not None:
                h = level.upsample(F.interpolate(h, scale_factor=2, mode='nearest'))
        out = self.conv_out(F.silu(self.norm_out(h)))
        p = self.config['patch']
        return F.pixel_shuffle(out, p) if p > 1 else out


class VAE(nn.Module):
    """kiln's KL-VAE (latent diffusion's names): encode → (mean, logvar), decode(z) → images, scalar `logvar`."""

    def __init__(self, config=None, **kw):
        super().__init__()
        c = self.config = _config(VAE_DEFAULTS, {**(config or {}), **kw}, 'VAE')
        c['widths'] = list(c['widths'])
        down = c['patch'] * 2 ** (len(c['widths']) - 1)
        if c['size'] % down:
            raise ValueError(f"VAE: image size {c['size']} must be divisible by {down}")
        for w in c['widths']:
            if w % min(c['groups'], w):
                raise ValueError(f"VAE: width {w} must be divisible by groups {c['groups']}")
        self.encoder = VAEEncoder(c)
        self.decoder = VAEDecoder(c)
        self.quant_conv = nn.Conv2d(2 * c['latentChannels'], 2 * c['latentChannels'], 1)
        self.post_quant_conv = nn.Conv2d(c['latentChannels'], c['latentChannels'], 1)
        lv = torch.full((), float(c['logvarInit']))
        if c['learnLogvar']:
            self.logvar = nn.Parameter(lv)
        else:
            self.register_buffer('logvar', lv)

    @property
    def latent_shape(self):
        c = self.config
        s = c['size'] // (c['patch'] * 2 ** (len(c['widths']) - 1))
        return [c['latentChannels'], s, s]

    def encode(self, x):
        """Posterior mean and log-variance (clamped to [−30, 20])."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x, sample=True, noise=None):
        """(reconstruction, mean, logvar, z): z drawn from the posterior (or its mean when sample is False)."""
        mean, logvar = self.encode(x)
        if sample:
            z = mean + torch.exp(0.5 * logvar) * (torch.randn_like(mean) if noise is None else noise)
        else:
            z = mean
        return self.decode(z), mean, logvar, z


# ---------------------------------------------------------------- PatchGAN discriminator

class PatchDiscriminator(nn.Module):
    """kiln's PatchGAN (parameters under main.<i>): 4×4 stride-2 convs with LeakyReLU 0.2, one stride-1 block, a 1-channel logit map."""

    def __init__(self, config=None, **kw):
        super().__init__()
        c = self.config = _config(PATCH_DISCRIMINATOR_DEFAULTS, {**(config or {}), **kw}, 'PatchDiscriminator', ('numClasses',))
        if c['norm'] not in ('group', 'none'):
            raise ValueError(f"PatchDiscriminator: norm must be 'group' or 'none', got {c['norm']!r}")
        bias = c['norm'] == 'none'
        seq = [nn.Conv2d(c['channels'], c['width'], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = c['width']

        def block(out, stride):
            nonlocal ch
            seq.append(nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=bias))
            if c['norm'] == 'group':
                seq.append(group_norm(c['groups'], out))
            seq.append(nn.LeakyReLU(0.2))
            ch = out

        for n in range(1, c['layers']):
            block(c['width'] * min(2 ** n, 8), 2)
        block(c['width'] * min(2 ** c['layers'], 8), 1)
        seq.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*seq)

    def forward(self, x):
        return self.main(x)


def build_denoiser(kind, config):
    """A UNet or DiT from a kiln checkpoint's model spec (kind 'unet' | 'dit', config)."""
    if kind == 'unet':
        return UNet(config)
    if kind == 'dit':
        return DiT(config)
    raise ValueError(f"kind must be 'unet' or 'dit', got {kind!r}")
