#!/usr/bin/env python3
"""PyTorch golden fixtures for kiln's nn modules, functional ops and losses.

Regenerate: `apt-get install python3-torch` (Debian's PyTorch 1.13), then from the repository root run
`/usr/bin/python3 scripts/torch-golden.py`. It rewrites tests/fixtures/torch/*.safetensors (and removes
fixtures of cases that no longer exist); with the same PyTorch build the files come out byte for byte the
same. tests/node/torch-golden.test.ts compares kiln against them in `npm test`, without Python.

Each case draws seeded float32 inputs (and parameters), runs PyTorch in float64 on exactly those values,
then backward of loss = (output * probe).sum() with a seeded float32 probe. One safetensors file per case
(written by the minimal writer below: 8-byte little-endian header length, JSON header, raw little-endian
data) holds:
  input.<name>       the inputs in call order (F32; class targets and ids I64; masks BOOL)
  state.<name>       a module's state dict before the forward, under PyTorch's names
  output, probe      the forward's result and the probe (F32, rounded from float64)
  grad.input.<name>  the gradient of every differentiable input
  grad.state.<name>  the gradient of every parameter
  after.<name>       buffers (or functional running statistics) after the forward
and `__metadata__` (JSON strings): case, kind ('module' | 'function'), op, options (PyTorch's keyword
arguments, PyTorch names), inputs, grad_inputs, state, grads, after, training, torch.
Ops that PyTorch 1.13 lacks (RMSNorm, scaled_dot_product_attention) or that are kiln's own
(klDivGaussian, modulate, timestepEmbedding, AdaIN) are written here as formulas in torch ops.
"""
import json
import math
import os
import struct
import sys
import warnings
import zlib
from array import array

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'torch')

torch.set_num_threads(1)
warnings.filterwarnings('ignore', message="Using padding='same'")
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------- safetensors writer

def _bytes(t):
    t = t.detach().contiguous().cpu().flatten()
    if t.dtype == torch.float32:
        a = array('f', t.tolist())
    elif t.dtype == torch.int64:
        a = array('q', t.tolist())
    elif t.dtype == torch.bool:
        return bytes(1 if v else 0 for v in t.tolist())
    else:
        raise TypeError(f'no safetensors dtype for {t.dtype}')
    if sys.byteorder == 'big':
        a.byteswap()
    return a.tobytes()


DTYPES = {torch.float32: 'F32', torch.int64: 'I64', torch.bool: 'BOOL'}


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = _bytes(t)
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    js = json.dumps(header, sort_keys=True, separators=(',', ':')).encode('utf-8')
    js += b' ' * (-len(js) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- random draws (seeded per case)

class Draw:
    def __init__(self, name):
        self.g = torch.Generator().manual_seed(zlib.crc32(name.encode('utf-8')))

    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g) * scale

    def uniform(self, *shape, lo=-1.0, hi=1.0):
        return torch.rand(shape, generator=self.g) * (hi - lo) + lo

    def randint(self, lo, hi, *shape):
        return torch.randint(lo, hi, shape, generator=self.g)

    def init(self, module):
        """Every floating parameter and buffer drawn from this case's generator (affine norm weights near 1)."""
        norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, RMSNorm)
        with torch.no_grad():
            for mod in module.modules():
                for name, p in mod.named_parameters(recurse=False):
                    if isinstance(mod, norms) and name == 'weight':
                        p.copy_(1 + self.randn(*p.shape, scale=0.3))
                    elif p.dim() == 1:
                        p.copy_(self.randn(*p.shape, scale=0.3))
                    elif isinstance(mod, nn.Embedding):
                        p.copy_(self.randn(*p.shape))
                    else:
                        fan_in = p.numel() // p.shape[0]
                        p.copy_(self.uniform(*p.shape) * (1.5 / math.sqrt(fan_in)))
                for name, b in mod.named_buffers(recurse=False):
                    if name == 'running_mean':
                        b.copy_(self.randn(*b.shape, scale=0.3))
                    elif name == 'running_var':
                        b.copy_(self.uniform(*b.shape, lo=0.5, hi=1.5))
        return module


# ---------------------------------------------------------------- cases

CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


def I(name, t, grad=None):
    """An input: floating ones are differentiable unless grad=False."""
    return (name, t, t.is_floating_point() if grad is None else grad)


def module_case(op, module, inputs, call=None, options=None, training=True, after=()):
    return dict(kind='module', op=op, module=module, inputs=inputs, options=options or {},
                call=call or (lambda m, *xs: m(*xs)), training=training, after=list(after))


def fn_case(op, fn, inputs, options=None, after=(), kw=()):
    """A function call: inputs positional in order, except those named in `kw` (keyword arguments)."""
    names = [n for n, _, _ in inputs]

    def call(m, *xs):
        pos = [x for n, x in zip(names, xs) if n not in kw]
        kws = {n: x for n, x in zip(names, xs) if n in kw}
        return fn(*pos, **kws, **(options or {}))
    return dict(kind='function', op=op, inputs=inputs, options=options or {}, call=call, after=list(after))


# ---- nn modules

@case('linear')
def _(d):
    return module_case('nn.Linear', d.init(nn.Linear(5, 4)), [I('x', d.randn(3, 5))], options=dict(in_features=5, out_features=4, bias=True))


@case('linear_nobias_3d')
def _(d):
    return module_case('nn.Linear', d.init(nn.Linear(6, 3, bias=False)), [I('x', d.randn(2, 3, 6))], options=dict(in_features=6, out_features=3, bias=False))


def conv2d_module(d, x_shape, **o):
    o.setdefault('bias', True)
    return module_case('nn.Conv2d', d.init(nn.Conv2d(**o)), [I('x', d.randn(*x_shape))], options=o)


@case('conv2d')
def _(d):
    return conv2d_module(d, (2, 3, 5, 5), in_channels=3, out_channels=4, kernel_size=[3, 3], padding=[1, 1])


@case('conv2d_strided_padded')
def _(d):
    return conv2d_module(d, (2, 3, 7, 6), in_channels=3, out_channels=4, kernel_size=[3, 2], stride=[2, 1], padding=[1, 2])


@case('conv2d_dilated')
def _(d):
    return conv2d_module(d, (1, 2, 8, 7), in_channels=2, out_channels=3, kernel_size=[3, 3], dilation=[2, 2], padding=[1, 1])


@case('conv2d_grouped_strided_nobias')
def _(d):
    return conv2d_module(d, (2, 4, 6, 6), in_channels=4, out_channels=6, kernel_size=[3, 3], groups=2, stride=[2, 2], padding=[1, 1], bias=False)


@case('conv2d_depthwise_dilated_grouped')
def _(d):
    return conv2d_module(d, (1, 4, 7, 7), in_channels=4, out_channels=8, kernel_size=[3, 3], groups=4, dilation=[1, 2], stride=[1, 2], padding=[1, 2])


@case('conv2d_same_even_kernel')
def _(d):
    return conv2d_module(d, (1, 2, 6, 7), in_channels=2, out_channels=3, kernel_size=[4, 3], padding='same', dilation=[1, 2])


@case('conv2d_stride_beyond_kernel')
def _(d):
    return conv2d_module(d, (1, 2, 8, 7), in_channels=2, out_channels=2, kernel_size=[2, 2], stride=[3, 3], padding=[1, 0])


def conv_t_module(d, x_shape, **o):
    o.setdefault('bias', True)
    return module_case('nn.ConvTranspose2d', d.init(nn.ConvTranspose2d(**o)), [I('x', d.randn(*x_shape))], options=o)


@case('conv_transpose2d')
def _(d):
    return conv_t_module(d, (2, 3, 4, 4), in_channels=3, out_channels=2, kernel_size=[3, 3])


@case('conv_transpose2d_strided_output_padding')
def _(d):
    return conv_t_module(d, (1, 3, 4, 5), in_channels=3, out_channels=4, kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], output_padding=[1, 1])


@case('conv_transpose2d_grouped_dilated')
def _(d):
    return conv_t_module(d, (2, 4, 3, 4), in_channels=4, out_channels=6, kernel_size=[3, 2], stride=[1, 2], padding=[1, 0],
                         output_padding=[1, 1], groups=2, dilation=[2, 1], bias=False)


@case('conv_transpose2d_padding_crops')
def _(d):
    # padding beyond dilation·(kernel − 1) crops the result
    return conv_t_module(d, (1, 2, 4, 3), in_channels=2, out_channels=3, kernel_size=[2, 3], stride=[3, 2], padding=[2, 3])


@case('group_norm')
def _(d):
    o = dict(num_groups=2, num_channels=6, eps=1e-5, affine=True)
    return module_case('nn.GroupNorm', d.init(nn.GroupNorm(**o)), [I('x', d.randn(2, 6, 3, 3, scale=2) + 0.5)], options=o)


@case('group_norm_instance')
def _(d):
    o = dict(num_groups=4, num_channels=4, eps=1e-5, affine=True)
    return module_case('nn.GroupNorm', d.init(nn.GroupNorm(**o)), [I('x', d.randn(2, 4, 2, 3))], options=o)


@case('group_norm_noaffine_3d')
def _(d):
    o = dict(num_groups=3, num_channels=6, eps=1e-3, affine=False)
    return module_case('nn.GroupNorm', nn.GroupNorm(**o), [I('x', d.randn(2, 6, 4))], options=o)


def adain(x, weight, bias, eps=1e-5):
    """kiln's AdaIN: instance norm (biased variance, eps inside the square root) scaled and shifted per example and channel."""
    shape = (weight.shape[0] if weight.dim() == 2 else 1, x.shape[1]) + (1,) * (x.dim() - 2)
    return F.instance_norm(x, eps=eps) * weight.reshape(shape) + bias.reshape(shape)


class AdaIN(nn.Module):
    """kiln's nn.AdaIN: (scale, shift) = affine(style) split in halves, then adain."""

    def __init__(self, channels, style_dim, eps):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.affine = nn.Linear(style_dim, 2 * channels)

    def forward(self, x, style):
        s = self.affine(style)
        return adain(x, s[:, :self.channels], s[:, self.channels:], self.eps)


@case('adain')
def _(d):
    x = d.randn(2, 3, 4, 5, scale=2)
    x[1, 2] = 0.3 + 1e-2 * d.randn(4, 5)  # a nearly constant channel: the eps inside the square root matters
    return fn_case('kiln.adaIN', adain, [I('x', x), I('weight', 1 + d.randn(2, 3, scale=0.5)), I('bias', d.randn(2, 3))], dict(eps=1e-3))


@case('adain_per_channel')
def _(d):
    return fn_case('kiln.adaIN', adain, [I('x', d.randn(3, 2, 5)), I('weight', d.randn(2)), I('bias', d.randn(2))], dict(eps=1e-5))


@case('adain_module')
def _(d):
    o = dict(channels=3, style_dim=4, eps=1e-5)
    return module_case('nn.AdaIN', d.init(AdaIN(**o)), [I('x', d.randn(2, 3, 3, 4)), I('style', d.randn(2, 4))], options=o)


@case('layer_norm')
def _(d):
    o = dict(normalized_shape=[4, 5], eps=1e-5, elementwise_affine=True)
    return module_case('nn.LayerNorm', d.init(nn.LayerNorm(**o)), [I('x', d.randn(3, 4, 5, scale=2) - 1)], options=o)


@case('layer_norm_offset')
def _(d):
    # a large common offset: the statistics must not cancel catastrophically
    o = dict(normalized_shape=[8], eps=1e-5, elementwise_affine=True)
    return module_case('nn.LayerNorm', d.init(nn.LayerNorm(**o)), [I('x', d.randn(3, 8) + 100)], options=o)


@case('layer_norm_noaffine')
def _(d):
    o = dict(normalized_shape=[6], eps=1e-3, elementwise_affine=False)
    return module_case('nn.LayerNorm', nn.LayerNorm(**o), [I('x', d.randn(2, 3, 6))], options=o)


class RMSNorm(nn.Module):
    """kiln's RMSNorm (PyTorch 1.13 has none): x / sqrt(mean(x², trailing dims) + eps) · weight."""

    def __init__(self, normalized_shape, eps):
        super().__init__()
        self.normalized_shape, self.eps = list(normalized_shape), eps
        self.weight = nn.Parameter(torch.ones(*normalized_shape))

    def forward(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
    y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps)
    return y * weight if weight is not None else y


@case('rms_norm')
def _(d):
    o = dict(normalized_shape=[6], eps=1e-6)
    return module_case('nn.RMSNorm', d.init(RMSNorm(**o)), [I('x', d.randn(2, 3, 6))], options=o)


def batch_norm2d(d, training, momentum, tracked):
    o = dict(num_features=3, eps=1e-5, momentum=momentum)
    m = d.init(nn.BatchNorm2d(**o))
    m.num_batches_tracked.fill_(tracked)
    return module_case('nn.BatchNorm2d', m, [I('x', d.randn(2, 3, 3, 4, scale=1.5) + 0.7)], options=o, training=training,
                       after=['running_mean', 'running_var', 'num_batches_tracked'] if training else [])


@case('batch_norm2d_train')
def _(d):
    return batch_norm2d(d, True, 0.1, 2)


@case('batch_norm2d_train_cumulative')
def _(d):
    return batch_norm2d(d, True, None, 3)


@case('batch_norm2d_eval')
def _(d):
    return batch_norm2d(d, False, 0.1, 5)


@case('embedding')
def _(d):
    o = dict(num_embeddings=7, embedding_dim=4)
    ids = torch.tensor([[0, 3, 3, 6, 1], [2, 3, 5, 0, 0]])
    return module_case('nn.Embedding', d.init(nn.Embedding(**o)), [I('ids', ids)], options=o)


def mha(d, q_shape, kv_len=None, mask=None, causal=False):
    o = dict(embed_dim=8, num_heads=2)
    m = d.init(nn.MultiheadAttention(8, 2, batch_first=True))
    q = d.randn(*q_shape)
    inputs = [I('query', q)]
    if kv_len is not None:
        inputs += [I('key', d.randn(q_shape[0], kv_len, 8)), I('value', d.randn(q_shape[0], kv_len, 8))]
    if mask is not None:
        inputs.append(I('mask', mask))
    opts = dict(o, causal=causal)

    def call(m, query, key=None, value=None, mask=None):
        key = query if key is None else key
        value = key if value is None else value
        attn_mask = None
        if causal:
            T = query.shape[1]
            attn_mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # PyTorch's bool mask: True = not allowed
        if mask is not None:
            attn_mask = ~mask  # the fixture's mask is kiln's: True = attend
        return m(query, key, value, attn_mask=attn_mask, need_weights=False)[0]
    return module_case('nn.MultiheadAttention', m, inputs, call=call, options=opts)


@case('multihead_attention_self')
def _(d):
    return mha(d, (2, 5, 8))


@case('multihead_attention_cross_mask')
def _(d):
    allowed = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    return mha(d, (2, 3, 8), kv_len=4, mask=allowed)


@case('multihead_attention_causal')
def _(d):
    return mha(d, (2, 4, 8), causal=True)


@case('multihead_attention_float_mask')
def _(d):
    m = mha(d, (1, 3, 8), kv_len=5)
    mask = d.randn(3, 5, scale=2)
    m['inputs'].append(I('mask', mask, False))
    m['call'] = lambda mod, q, k, v, mask: mod(q, k, v, attn_mask=mask, need_weights=False)[0]
    return m


@case('multihead_attention_kdim_vdim_key_mask')
def _(d):
    """Cross-attention to tokens of other widths (PyTorch's separate q/k/v_proj_weight) with padded keys."""
    o = dict(embed_dim=8, num_heads=2, kdim=6, vdim=5)
    m = d.init(nn.MultiheadAttention(8, 2, kdim=6, vdim=5, batch_first=True))
    key_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)  # kiln's keyMask: True = a real key
    inputs = [I('query', d.randn(2, 3, 8)), I('key', d.randn(2, 4, 6)), I('value', d.randn(2, 4, 5)), I('key_mask', key_mask)]

    def call(m, query, key, value, key_mask):
        return m(query, key, value, key_padding_mask=~key_mask, need_weights=False)[0]
    return module_case('nn.MultiheadAttention', m, inputs, call=call, options=dict(o, causal=False))


def activation_module(d, op, module, options=None, scale=2.5):
    return module_case(op, module, [I('x', d.randn(3, 7, scale=scale))], options=options)


@case('relu_module')
def _(d):
    return activation_module(d, 'nn.ReLU', nn.ReLU())


@case('silu_module')
def _(d):
    return activation_module(d, 'nn.SiLU', nn.SiLU())


@case('tanh_module')
def _(d):
    return activation_module(d, 'nn.Tanh', nn.Tanh())


@case('sigmoid_module')
def _(d):
    return activation_module(d, 'nn.Sigmoid', nn.Sigmoid())


@case('gelu_module')
def _(d):
    return activation_module(d, 'nn.GELU', nn.GELU(), dict(approximate='none'))


@case('gelu_tanh_module')
def _(d):
    return activation_module(d, 'nn.GELU', nn.GELU(approximate='tanh'), dict(approximate='tanh'))


@case('leaky_relu_module')
def _(d):
    return activation_module(d, 'nn.LeakyReLU', nn.LeakyReLU(0.2), dict(negative_slope=0.2))


@case('sequential_eval')
def _(d):
    # Conv2d, BatchNorm2d (running statistics), SiLU, Dropout (identity in eval), Flatten, Identity, Linear:
    # the state dict's dotted names ('0.weight', '1.running_mean', '6.bias', …)
    m = d.init(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.SiLU(), nn.Dropout(0.3), nn.Flatten(), nn.Identity(), nn.Linear(48, 5)))
    m[1].num_batches_tracked.fill_(4)
    return module_case('nn.Sequential', m, [I('x', d.randn(2, 2, 4, 4))], training=False)


# ---- functional

@case('F_linear')
def _(d):
    return fn_case('F.linear', F.linear, [I('x', d.randn(2, 3, 5)), I('weight', d.randn(4, 5, scale=0.5)), I('bias', d.randn(4))])


@case('F_conv1d')
def _(d):
    o = dict(stride=2, padding=2, dilation=2, groups=2)
    return fn_case('F.conv1d', F.conv1d, [I('x', d.randn(2, 4, 9)), I('weight', d.randn(6, 2, 3, scale=0.5)), I('bias', d.randn(6))], o)


@case('F_conv1d_same')
def _(d):
    o = dict(padding='same', dilation=2)
    return fn_case('F.conv1d', F.conv1d, [I('x', d.randn(1, 3, 8)), I('weight', d.randn(2, 3, 4, scale=0.5))], o)


@case('F_conv2d')
def _(d):
    o = dict(stride=[1, 2], padding=[2, 1], dilation=[1, 1], groups=1)
    return fn_case('F.conv2d', F.conv2d, [I('x', d.randn(1, 3, 6, 5)), I('weight', d.randn(4, 3, 2, 3, scale=0.4)), I('bias', d.randn(4))], o)


@case('F_conv_transpose2d')
def _(d):
    o = dict(stride=[2, 2], padding=[1, 1], output_padding=[1, 0], groups=2, dilation=[1, 1])
    return fn_case('F.conv_transpose2d', F.conv_transpose2d, [I('x', d.randn(2, 4, 3, 3)), I('weight', d.randn(4, 3, 3, 3, scale=0.4)), I('bias', d.randn(6))], o)


@case('F_avg_pool2d')
def _(d):
    o = dict(kernel_size=[3, 3], stride=[2, 2], padding=[1, 1])
    return fn_case('F.avg_pool2d', F.avg_pool2d, [I('x', d.randn(2, 3, 7, 6))], o)


@case('F_avg_pool2d_rect')
def _(d):
    o = dict(kernel_size=[2, 3])
    return fn_case('F.avg_pool2d', F.avg_pool2d, [I('x', d.randn(1, 2, 5, 7))], o)


@case('F_max_pool2d')
def _(d):
    o = dict(kernel_size=[3, 3], stride=[2, 2], padding=[1, 1])
    return fn_case('F.max_pool2d', F.max_pool2d, [I('x', d.randn(2, 3, 7, 6))], o)


@case('F_max_pool2d_rect')
def _(d):
    o = dict(kernel_size=[2, 3], stride=[2, 1])
    return fn_case('F.max_pool2d', F.max_pool2d, [I('x', d.randn(1, 2, 5, 7))], o)


@case('F_adaptive_avg_pool2d')
def _(d):
    o = dict(output_size=[3, 4])
    return fn_case('F.adaptive_avg_pool2d', F.adaptive_avg_pool2d, [I('x', d.randn(2, 3, 7, 5))], o)


@case('F_adaptive_avg_pool2d_up')
def _(d):
    o = dict(output_size=[5, 6])
    return fn_case('F.adaptive_avg_pool2d', F.adaptive_avg_pool2d, [I('x', d.randn(1, 2, 3, 4))], o)


@case('F_adaptive_avg_pool2d_divisible')
def _(d):
    o = dict(output_size=[3, 2])
    return fn_case('F.adaptive_avg_pool2d', F.adaptive_avg_pool2d, [I('x', d.randn(1, 2, 6, 4))], o)


def interp(d, x_shape, **o):
    return fn_case('F.interpolate', F.interpolate, [I('x', d.randn(*x_shape))], o)


@case('F_interpolate_nearest_size')
def _(d):
    return interp(d, (1, 2, 3, 4), size=[5, 7], mode='nearest')


@case('F_interpolate_nearest_scale2')
def _(d):
    return interp(d, (1, 2, 3, 4), scale_factor=2.0, mode='nearest')


@case('F_interpolate_nearest_scale1_3')
def _(d):
    # PyTorch maps output row i to input row ⌊i / 1.3⌋ (the scale factor, not in/out = 5/6): rows 0 0 1 2 3 3
    return interp(d, (1, 2, 5, 4), scale_factor=1.3, mode='nearest')


@case('F_interpolate_nearest_size_f32_index')
def _(d):
    # PyTorch computes ⌊i · float32(26/22)⌋ in float32: output row 11 reads input row 12, not 11·26/22 = 13
    return interp(d, (1, 1, 26, 3), size=[22, 3], mode='nearest')


@case('F_interpolate_bilinear')
def _(d):
    return interp(d, (1, 2, 3, 4), size=[5, 7], mode='bilinear', align_corners=False)


@case('F_interpolate_bilinear_align_corners')
def _(d):
    return interp(d, (1, 2, 3, 4), size=[5, 6], mode='bilinear', align_corners=True)


@case('F_interpolate_bilinear_down')
def _(d):
    return interp(d, (1, 2, 5, 7), size=[2, 3], mode='bilinear', align_corners=False)


@case('F_interpolate_bilinear_scale1_5')
def _(d):
    return interp(d, (1, 2, 3, 5), scale_factor=1.5, mode='bilinear', align_corners=False)


@case('F_interpolate_bilinear_scale0_6')
def _(d):
    return interp(d, (1, 2, 5, 7), scale_factor=0.6, mode='bilinear', align_corners=False)


@case('F_interpolate_nearest_scale_pair')
def _(d):
    return interp(d, (1, 2, 3, 4), scale_factor=[0.7, 2.5], mode='nearest')


@case('F_pixel_shuffle')
def _(d):
    return fn_case('F.pixel_shuffle', F.pixel_shuffle, [I('x', d.randn(1, 8, 2, 3))], dict(upscale_factor=2))


@case('F_pixel_unshuffle')
def _(d):
    return fn_case('F.pixel_unshuffle', F.pixel_unshuffle, [I('x', d.randn(1, 2, 4, 6))], dict(downscale_factor=2))


@case('F_group_norm')
def _(d):
    return fn_case('F.group_norm', F.group_norm, [I('x', d.randn(2, 4, 3, 2) + 1), I('weight', 1 + d.randn(4, scale=0.3)), I('bias', d.randn(4, scale=0.3))],
                   dict(num_groups=2, eps=1e-4), kw=['weight', 'bias'])


@case('F_layer_norm')
def _(d):
    return fn_case('F.layer_norm', F.layer_norm, [I('x', d.randn(3, 2, 5, scale=3)), I('weight', 1 + d.randn(5, scale=0.3)), I('bias', d.randn(5, scale=0.3))],
                   dict(normalized_shape=[5], eps=1e-5), kw=['weight', 'bias'])


@case('F_batch_norm_train')
def _(d):
    return fn_case('F.batch_norm', F.batch_norm,
                   [I('x', d.randn(3, 2, 3, 3) + 0.5), I('running_mean', d.randn(2, scale=0.3), False), I('running_var', d.uniform(2, lo=0.5, hi=1.5), False),
                    I('weight', 1 + d.randn(2, scale=0.3)), I('bias', d.randn(2, scale=0.3))],
                   dict(training=True, momentum=0.2, eps=1e-3), after=['running_mean', 'running_var'])


@case('F_batch_norm_eval_2d')
def _(d):
    return fn_case('F.batch_norm', F.batch_norm,
                   [I('x', d.randn(4, 3)), I('running_mean', d.randn(3, scale=0.3), False), I('running_var', d.uniform(3, lo=0.5, hi=1.5), False),
                    I('weight', 1 + d.randn(3, scale=0.3)), I('bias', d.randn(3, scale=0.3))],
                   dict(training=False, momentum=0.1, eps=1e-5))


@case('rms_norm_fn')
def _(d):
    return fn_case('kiln.rmsNorm', rms_norm, [I('x', d.randn(2, 2, 4)), I('weight', 1 + d.randn(2, 4, scale=0.3))], dict(normalized_shape=[2, 4], eps=1e-5), kw=['weight'])


def sdpa(q, k, v, mask=None, causal=False, causal_lower_right=False, scale=None):
    """softmax(q·kᵀ·scale + mask)·v; bool masks: True = attend. `causal` hides key j > query i (kiln aligns
    the causal diagonal to the last key: j > i + Tk − Tq, the same as PyTorch's top-left one when Tq = Tk)."""
    s = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if causal:
        Tq, Tk = q.shape[-2], k.shape[-2]
        allowed = torch.arange(Tk).reshape(1, Tk) <= torch.arange(Tq).reshape(Tq, 1) + (Tk - Tq)
        s = s.masked_fill(~allowed, float('-inf'))
    if mask is not None:
        s = s.masked_fill(~mask, float('-inf')) if mask.dtype == torch.bool else s + mask
    return torch.softmax(s, dim=-1) @ v


@case('sdpa')
def _(d):
    return fn_case('kiln.scaledDotProductAttention', sdpa, [I('q', d.randn(2, 2, 3, 4)), I('k', d.randn(2, 2, 5, 4)), I('v', d.randn(2, 2, 5, 3))])


@case('sdpa_causal')
def _(d):
    return fn_case('kiln.scaledDotProductAttention', sdpa, [I('q', d.randn(1, 2, 4, 4)), I('k', d.randn(1, 2, 4, 4)), I('v', d.randn(1, 2, 4, 4))], dict(causal=True))


@case('sdpa_causal_lower_right')
def _(d):
    return fn_case('kiln.scaledDotProductAttention', sdpa, [I('q', d.randn(1, 2, 3, 4)), I('k', d.randn(1, 2, 5, 4)), I('v', d.randn(1, 2, 5, 2))], dict(causal=True))


@case('sdpa_bool_mask_scale')
def _(d):
    allowed = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    return fn_case('kiln.scaledDotProductAttention', sdpa, [I('q', d.randn(2, 3, 4)), I('k', d.randn(2, 5, 4)), I('v', d.randn(2, 5, 4)), I('mask', allowed)], dict(scale=0.3), kw=['mask'])


@case('sdpa_float_mask')
def _(d):
    return fn_case('kiln.scaledDotProductAttention', sdpa,
                   [I('q', d.randn(2, 2, 3, 4)), I('k', d.randn(2, 2, 5, 4)), I('v', d.randn(2, 2, 5, 4)), I('mask', d.randn(2, 1, 3, 5, scale=2), False)], kw=['mask'])


@case('F_embedding')
def _(d):
    return fn_case('F.embedding', F.embedding, [I('ids', torch.tensor([4, 1, 1, 0, 4, 2])), I('weight', d.randn(5, 3))])


@case('F_pad')
def _(d):
    return fn_case('F.pad', F.pad, [I('x', d.randn(2, 3, 4))], dict(pad=[1, 2, -1, 1], mode='constant', value=0.5))


def unary(d, op, fn, options=None, shape=(4, 6), scale=2.5):
    return fn_case(op, fn, [I('x', d.randn(*shape, scale=scale))], options)


@case('F_relu')
def _(d): return unary(d, 'F.relu', F.relu)


@case('F_silu')
def _(d): return unary(d, 'F.silu', F.silu)


@case('F_gelu')
def _(d): return unary(d, 'F.gelu', F.gelu, dict(approximate='none'))


@case('F_gelu_tanh')
def _(d): return unary(d, 'F.gelu', F.gelu, dict(approximate='tanh'))


@case('F_sigmoid')
def _(d): return unary(d, 'F.sigmoid', torch.sigmoid)


@case('F_tanh')
def _(d): return unary(d, 'F.tanh', torch.tanh)


@case('F_logsigmoid')
def _(d): return unary(d, 'F.logsigmoid', F.logsigmoid, scale=6)


@case('F_leaky_relu')
def _(d): return unary(d, 'F.leaky_relu', F.leaky_relu, dict(negative_slope=0.1))


@case('F_softplus')
def _(d): return unary(d, 'F.softplus', F.softplus, dict(beta=1, threshold=20), scale=6)


@case('F_softplus_beta_threshold')
def _(d): return unary(d, 'F.softplus', F.softplus, dict(beta=2, threshold=1.5))


@case('F_softmax')
def _(d): return unary(d, 'F.softmax', F.softmax, dict(dim=1), shape=(2, 5, 3))


@case('F_softmax_large')
def _(d): return unary(d, 'F.softmax', F.softmax, dict(dim=-1), shape=(3, 6), scale=40)


@case('F_log_softmax')
def _(d): return unary(d, 'F.log_softmax', F.log_softmax, dict(dim=0), shape=(4, 3))


@case('F_normalize')
def _(d): return unary(d, 'F.normalize', F.normalize, dict(p=2.0, dim=1, eps=1e-12), shape=(2, 4, 3))


@case('logsumexp')
def _(d): return unary(d, 'Tensor.logsumexp', torch.logsumexp, dict(dim=[1, 2], keepdim=True), shape=(2, 3, 4), scale=4)


@case('logsumexp_last')
def _(d): return unary(d, 'Tensor.logsumexp', torch.logsumexp, dict(dim=[-1], keepdim=False), shape=(3, 5), scale=4)


@case('cumsum')
def _(d): return unary(d, 'Tensor.cumsum', torch.cumsum, dict(dim=1), shape=(2, 6, 3))


# ---- losses

def pair_loss(d, op, fn, options, shape=(3, 4)):
    return fn_case(op, fn, [I('input', d.randn(*shape)), I('target', d.randn(*shape))], options)


@case('mse_loss')
def _(d): return pair_loss(d, 'F.mse_loss', F.mse_loss, dict(reduction='mean'))


@case('mse_loss_none')
def _(d): return pair_loss(d, 'F.mse_loss', F.mse_loss, dict(reduction='none'))


@case('l1_loss')
def _(d): return pair_loss(d, 'F.l1_loss', F.l1_loss, dict(reduction='mean'))


@case('l1_loss_sum')
def _(d): return pair_loss(d, 'F.l1_loss', F.l1_loss, dict(reduction='sum'), shape=(2, 3, 2))


@case('nll_loss_weight_ignore')
def _(d):
    logp = torch.log_softmax(d.randn(6, 4, scale=2), dim=1)
    target = torch.tensor([0, 3, 2, 1, 3, 2])
    return fn_case('F.nll_loss', F.nll_loss, [I('input', logp), I('target', target), I('weight', d.uniform(4, lo=0.2, hi=2.0), False)],
                   dict(ignore_index=2, reduction='mean'), kw=['weight'])


@case('nll_loss_none_ignore')
def _(d):
    logp = torch.log_softmax(d.randn(5, 3, scale=2), dim=1)
    return fn_case('F.nll_loss', F.nll_loss, [I('input', logp), I('target', torch.tensor([0, 2, 1, 2, 1])), I('weight', d.uniform(3, lo=0.2, hi=2.0), False)],
                   dict(ignore_index=1, reduction='none'), kw=['weight'])


@case('nll_loss_spatial_sum')
def _(d):
    logp = torch.log_softmax(d.randn(2, 3, 2, 3, scale=2), dim=1)
    return fn_case('F.nll_loss', F.nll_loss, [I('input', logp), I('target', d.randint(0, 3, 2, 2, 3))], dict(reduction='sum'))


@case('cross_entropy')
def _(d):
    return fn_case('F.cross_entropy', F.cross_entropy, [I('input', d.randn(5, 4, scale=2)), I('target', torch.tensor([3, 0, 1, 1, 2]))], dict(reduction='mean'))


@case('cross_entropy_weight_ignore_smoothing')
def _(d):
    return fn_case('F.cross_entropy', F.cross_entropy,
                   [I('input', d.randn(6, 5, scale=2)), I('target', torch.tensor([4, 0, 1, 1, 3, 2])), I('weight', d.uniform(5, lo=0.2, hi=2.0), False)],
                   dict(ignore_index=1, label_smoothing=0.1, reduction='mean'), kw=['weight'])


@case('cross_entropy_spatial_smoothing_sum')
def _(d):
    return fn_case('F.cross_entropy', F.cross_entropy, [I('input', d.randn(2, 3, 2, 2, scale=2)), I('target', d.randint(0, 3, 2, 2, 2))],
                   dict(label_smoothing=0.2, reduction='sum'))


@case('cross_entropy_none_ignore_smoothing_large')
def _(d):
    return fn_case('F.cross_entropy', F.cross_entropy,
                   [I('input', d.randn(5, 4, scale=30)), I('target', torch.tensor([3, 0, 2, 0, 1])), I('weight', d.uniform(4, lo=0.2, hi=2.0), False)],
                   dict(ignore_index=0, label_smoothing=0.1, reduction='none'), kw=['weight'])


@case('cross_entropy_probabilities')
def _(d):
    p = torch.softmax(d.randn(4, 5, scale=2), dim=1)
    return fn_case('F.cross_entropy', F.cross_entropy, [I('input', d.randn(4, 5, scale=2)), I('target', p)], dict(reduction='mean'))


@case('cross_entropy_probabilities_weight_smoothing')
def _(d):
    p = torch.softmax(d.randn(3, 4, 2, scale=2), dim=1)
    return fn_case('F.cross_entropy', F.cross_entropy,
                   [I('input', d.randn(3, 4, 2, scale=2)), I('target', p), I('weight', d.uniform(4, lo=0.2, hi=2.0), False)],
                   dict(label_smoothing=0.15, reduction='mean'), kw=['weight'])


@case('bce_with_logits')
def _(d):
    return fn_case('F.binary_cross_entropy_with_logits', F.binary_cross_entropy_with_logits,
                   [I('input', d.randn(4, 3, scale=3)), I('target', d.uniform(4, 3, lo=0, hi=1))], dict(reduction='mean'))


@case('bce_with_logits_large_none')
def _(d):
    return fn_case('F.binary_cross_entropy_with_logits', F.binary_cross_entropy_with_logits,
                   [I('input', d.randn(3, 5, scale=25)), I('target', d.uniform(3, 5, lo=0, hi=1))], dict(reduction='none'))


@case('bce_with_logits_pos_weight_weight')
def _(d):
    return fn_case('F.binary_cross_entropy_with_logits', F.binary_cross_entropy_with_logits,
                   [I('input', d.randn(4, 3, scale=3)), I('target', (d.uniform(4, 3, lo=0, hi=1) > 0.5).float()),
                    I('weight', d.uniform(4, 3, lo=0.2, hi=2.0), False), I('pos_weight', d.uniform(3, lo=0.5, hi=3.0), False)],
                   dict(reduction='sum'), kw=['weight', 'pos_weight'])


def kl_div_gaussian(mean, logvar, reduction='batchmean'):
    """kiln's KL(N(mean, e^logvar) ‖ N(0, 1)) = ½(mean² + e^logvar − 1 − logvar) per element."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
    if reduction == 'batchmean':
        return kl.sum() / mean.shape[0]
    return {'mean': kl.mean, 'sum': kl.sum, 'none': lambda: kl}[reduction]()


@case('kl_div_gaussian')
def _(d):
    return fn_case('kiln.klDivGaussian', kl_div_gaussian, [I('mean', d.randn(3, 2, 4)), I('logvar', d.randn(3, 2, 4))], dict(reduction='batchmean'))


@case('kl_div_gaussian_none')
def _(d):
    return fn_case('kiln.klDivGaussian', kl_div_gaussian, [I('mean', d.randn(2, 5)), I('logvar', d.randn(2, 5))], dict(reduction='none'))


def modulate(x, shift, scale):
    """kiln's adaLN modulation: x·(1 + scale) + shift, scale/shift [N, D] broadcast over the tokens of x [N, T, D]."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


@case('modulate')
def _(d):
    return fn_case('kiln.modulate', modulate, [I('x', d.randn(2, 3, 4)), I('shift', d.randn(2, 4)), I('scale', d.randn(2, 4, scale=0.5))])


def timestep_embedding(t, dim, max_period=10000):
    """kiln's sinusoidal embedding [N] → [N, dim]: [cos(t·f_i), sin(t·f_i)], f_i = max_period^(−i/half)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=t.dtype) * (-math.log(max_period) / half))
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


@case('timestep_embedding')
def _(d):
    return fn_case('kiln.timestepEmbedding', timestep_embedding, [I('t', d.uniform(3, lo=0, hi=8))], dict(dim=8, max_period=100))


# ---------------------------------------------------------------- runner

def f32(t):
    return t.detach().to(torch.float32) if t.is_floating_point() else t.detach().clone()


def run(name, build):
    d = Draw(name)
    spec = build(d)
    tensors, calls, grad_inputs = {}, [], []
    for n, t, grad in spec['inputs']:
        tensors[f'input.{n}'] = t.clone()
        if t.is_floating_point():
            t = t.double().requires_grad_(grad)
            if grad:
                grad_inputs.append(n)
        calls.append(t)
    m = spec.get('module')
    state = []
    if m is not None:
        for k, v in m.state_dict().items():
            tensors[f'state.{k}'] = v.detach().clone()
            state.append(k)
        m.double().train(spec['training'])
    out = spec['call'](m, *calls)
    probe = d.randn(*out.shape)
    (out * probe.double()).sum().backward()
    tensors['output'] = f32(out)
    tensors['probe'] = probe
    grads = []
    for (n, _, _), t in zip(spec['inputs'], calls):
        if n in grad_inputs:
            assert t.grad is not None and t.grad.abs().max() > 0, f'{name}: no gradient for input {n}'
            tensors[f'grad.input.{n}'] = f32(t.grad)
            grads.append(f'input.{n}')
    if m is not None:
        for k, p in m.named_parameters():
            assert p.grad is not None and p.grad.abs().max() > 0, f'{name}: no gradient for parameter {k}'
            tensors[f'grad.state.{k}'] = f32(p.grad)
            grads.append(f'state.{k}')
    assert grads, f'{name}: no gradients'
    after = spec['after']
    for b in after:
        if m is not None:
            tensors[f'after.{b}'] = f32(m.get_buffer(b))
        else:
            tensors[f'after.{b}'] = f32(calls[[n for n, _, _ in spec['inputs']].index(b)])
    for k, t in tensors.items():
        assert t.dtype in DTYPES, f'{name}: {k} is {t.dtype}'
    meta = dict(
        case=name, kind=spec['kind'], op=spec['op'], options=spec['options'],
        inputs=[n for n, _, _ in spec['inputs']], grad_inputs=grad_inputs, state=state, grads=grads, after=after,
        training=spec.get('training', True), torch=torch.__version__,
    )
    metadata = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(',', ':')) for k, v in meta.items()}
    write_safetensors(os.path.join(OUT, f'{name}.safetensors'), tensors, metadata)


def main():
    os.makedirs(OUT, exist_ok=True)
    names = [n for n, _ in CASES]
    assert len(names) == len(set(names)), 'duplicate case names'
    for name, build in CASES:
        run(name, build)
    for f in os.listdir(OUT):
        if f.endswith('.safetensors') and f[:-len('.safetensors')] not in names:
            os.remove(os.path.join(OUT, f))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f'{len(names)} cases, {total} bytes in {os.path.relpath(OUT)}')


if __name__ == '__main__':
    main()
