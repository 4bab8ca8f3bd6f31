/**
 * Normalization (GroupNorm, BatchNorm2d, RMSNorm, adaptive scale/shift) and scaled dot-product attention
 * with PyTorch parameter names and layouts (GroupNorm's computation is shared with LayerNorm: ./standardize.ts).
 */
import { noGrad } from '../tensor/index.js';
import { fmt } from '../tensor/shape.js';
import { scope } from '../tensor/memory.js';
import { inDtypeOf, toAutocast, widened } from '../tensor/autocast.js';
import { arange, ones, tensor, where, zeros, type Tensor } from '../tensor/index.js';
import { conv2d, convTranspose2d, type Conv2dOptions, type ConvTranspose2dOptions } from './conv.js';
import { batchNorm, linear } from './functional.js';
import { kaimingUniform_, uniform_ } from './init.js';
import { Layer, Module, Parameter } from './module.js';
import { Linear } from './layers.js';
import { standardize } from './standardize.js';

/** Group normalization over (C/groups, H, W) per group; affine per channel. */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [N, C] = x.shape as [number, number];
  if (x.rank < 2 || C % groups) throw new Error(`groupNorm: channels ${C} of ${fmt(x.shape)} must be divisible by groups ${groups}`);
  const spatial = x.shape.slice(2);
  const layout = { name: 'groupNorm', view: [N, groups, x.size / N / groups], paramShape: [1, C, ...spatial.map(() => 1)], paramAxes: [0, ...spatial.map((_, i) => i + 2)] };
  return standardize(x, layout, weight, bias, eps);
}

/** RMS normalization over the last dims: x / √(mean(x²) + eps) · weight. */
export function rmsNorm(x: Tensor, normalizedShape: number[], weight?: Tensor | null, eps = 1e-6): Tensor {
  const n = normalizedShape.length;
  const axes = Array.from({ length: n }, (_, i) => x.rank - n + i);
  return scope(() => {
    const xf = widened(x);
    const y = inDtypeOf(x, xf.mul(xf.mul(xf).mean(axes, { keepDim: true }).add(eps).rsqrt()));
    return weight ? y.mul(toAutocast(weight)) : y;
  });
}

/** adaLN modulation: x·(1 + scale) + shift with scale/shift [N, D] broadcast over the token axis of x [N, T, D]. */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  return scope(() => x.mul(scale.unsqueeze(1).add(1)).add(shift.unsqueeze(1)));
}

/**
 * Adaptive instance normalization (Huang & Belongie; StyleGAN): AdaIN(x, w, b) = w·(x − μ(x))/σ(x) + b per
 * example and channel, where μ and σ² are the mean and biased variance of x [N, C, …] over its spatial axes
 * and σ = √(σ² + eps) (PyTorch's instance norm); `weight` and `bias` are [N, C] (one scale and shift per
 * example and channel, e.g. from a style vector) or [C].
 */
export function adaIN(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  if (x.rank < 3) throw new Error(`adaIN: expected x [N, C, H, W] (at least one spatial axis), got ${fmt(x.shape)}`);
  const [N, C] = x.shape as [number, number];
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    const ok = (t.rank === 2 && t.shape[0] === N && t.shape[1] === C) || (t.rank === 1 && t.shape[0] === C);
    if (!ok) throw new Error(`adaIN: ${name} must be [${N}, ${C}] or [${C}] for x ${fmt(x.shape)}, got ${fmt(t.shape)}`);
  }
  if (!(eps >= 0)) throw new Error(`adaIN: eps must be a non-negative number, got ${eps}`);
  return scope(() => {
    const spatial = x.shape.slice(2).map(() => 1);
    const per = (t: Tensor) => toAutocast(t).reshape(t.rank === 2 ? [N, C, ...spatial] : [1, C, ...spatial]);
    return groupNorm(x, C, null, null, eps).mul(per(weight)).add(per(bias));
  });
}

/**
 * AdaIN with a learned affine map from a style vector (StyleGAN's "A" blocks): `affine` (a Linear from
 * `styleDim` to 2·channels, its bias starting at scale 1 and shift 0) gives each example's scale and shift,
 * then `adaIN` applies them. `forward(x [N, channels, H, W], style [N, styleDim])`.
 */
export class AdaIN extends Module {
  affine: Linear;
  constructor(readonly channels: number, readonly styleDim: number, readonly eps = 1e-5) {
    super();
    if (!Number.isInteger(channels) || channels < 1 || !Number.isInteger(styleDim) || styleDim < 1) {
      throw new Error(`AdaIN: channels and styleDim must be positive integers, got ${channels} and ${styleDim}`);
    }
    this.affine = new Linear(styleDim, 2 * channels);
    noGrad(() => scope(() => this.affine.bias!.assign(tensor([...Array<number>(channels).fill(1), ...Array<number>(channels).fill(0)]))));
  }
  /** The scale and shift [N, channels] each of styles [N, styleDim]. */
  styles(style: Tensor): [Tensor, Tensor] {
    if (style.rank !== 2 || style.shape[1] !== this.styleDim) throw new Error(`AdaIN: expected styles [N, ${this.styleDim}], got ${fmt(style.shape)}`);
    const s = this.affine.forward(style);
    return [s.slice(1, 0, this.channels), s.slice(1, this.channels, 2 * this.channels)];
  }
  /** AdaIN of x [N, channels, H, W] with the scale and shift of `style` [N, styleDim]. */
  forward(x: Tensor, style: Tensor): Tensor {
    if (x.rank < 3 || x.shape[1] !== this.channels) throw new Error(`AdaIN: expected x [N, ${this.channels}, H, W], got ${fmt(x.shape)}`);
    if (style.shape[0] !== x.shape[0]) throw new Error(`AdaIN: styles ${fmt(style.shape)} and x ${fmt(x.shape)} have different batch sizes`);
    return scope(() => {
      const [w, b] = this.styles(style);
      return adaIN(x, w, b, this.eps);
    });
  }
}

/** GroupNorm module (PyTorch names: weight, bias). */
export class GroupNorm extends Layer {
  weight: Parameter | null;
  bias: Parameter | null;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly opts: { eps?: number; affine?: boolean } = {}) {
    super();
    if (numChannels % numGroups) throw new Error(`GroupNorm: ${numChannels} channels are not divisible by ${numGroups} groups`);
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(ones([numChannels])) : null;
    this.bias = affine ? new Parameter(zeros([numChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.opts.eps ?? 1e-5);
  }
}

/** RMSNorm module. */
export class RMSNorm extends Layer {
  weight: Parameter;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], readonly eps = 1e-6) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.weight = new Parameter(ones(this.normalizedShape));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}

/**
 * BatchNorm2d (PyTorch's state: weight, bias, running_mean, running_var, num_batches_tracked): batch
 * statistics in training, moving the running statistics by `momentum` (null: a cumulative average over the
 * batches seen, 1/num_batches_tracked), running statistics in eval. num_batches_tracked is an i32 scalar
 * (int64 in PyTorch: safetensors I64 loads into it, and it is saved as I32, which PyTorch's load_state_dict
 * copies into its int64 buffer).
 */
export class BatchNorm2d extends Layer {
  weight: Parameter;
  bias: Parameter;
  declare running_mean: Tensor;
  declare running_var: Tensor;
  declare num_batches_tracked: Tensor;
  constructor(readonly numFeatures: number, readonly eps = 1e-5, readonly momentum: number | null = 0.1) {
    super();
    this.weight = new Parameter(ones([numFeatures]));
    this.bias = new Parameter(zeros([numFeatures]));
    this.registerBuffer('running_mean', zeros([numFeatures]));
    this.registerBuffer('running_var', ones([numFeatures]));
    this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'i32' }));
  }
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.numFeatures) throw new Error(`BatchNorm2d: expected [N, ${this.numFeatures}, H, W], got ${fmt(x.shape)}`);
    let momentum: number | Tensor = this.momentum ?? 0;
    if (this.training) {
      noGrad(() => this.num_batches_tracked.assign(this.num_batches_tracked.add(1)));
      if (this.momentum === null) momentum = this.num_batches_tracked.float().recip();
    }
    return batchNorm(x, this.running_mean, this.running_var, this.weight, this.bias, this.training, momentum, this.eps);
  }
}

/** Kernel size as a pair, checked. */
function kernelPair(op: string, k: number | [number, number]): [number, number] {
  const p: [number, number] = typeof k === 'number' ? [k, k] : k;
  if (!p.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`${op}: kernel size must be positive integers, got ${JSON.stringify(k)}`);
  return p;
}

/** An optional bias [n] drawn from U(±1/√fanIn), PyTorch's default for convolutions and linear layers. */
function defaultBias(n: number, fanIn: number, enabled: boolean | undefined): Parameter | null {
  if (enabled === false) return null;
  const b = new Parameter(zeros([n]));
  uniform_(b, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
  return b;
}

/** Conv2d module (weight [out, in/groups, kh, kw], bias [out]; PyTorch's default init). */
export class Conv2d extends Layer {
  weight: Parameter;
  bias: Parameter | null;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], readonly opts: Conv2dOptions & { bias?: boolean } = {}) {
    super();
    const [kh, kw] = kernelPair('Conv2d', kernelSize);
    const g = opts.groups ?? 1;
    if (inChannels % g || outChannels % g) throw new Error(`Conv2d: groups ${g} must divide ${inChannels} input and ${outChannels} output channels`);
    this.weight = new Parameter(zeros([outChannels, inChannels / g, kh, kw]));
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    this.bias = defaultBias(outChannels, (inChannels / g) * kh * kw, opts.bias);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.opts);
  }
}

/** ConvTranspose2d module (weight [in, out/groups, kh, kw], like PyTorch). */
export class ConvTranspose2d extends Layer {
  weight: Parameter;
  bias: Parameter | null;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], readonly opts: ConvTranspose2dOptions & { bias?: boolean } = {}) {
    super();
    const [kh, kw] = kernelPair('ConvTranspose2d', kernelSize);
    const g = opts.groups ?? 1;
    if (inChannels % g || outChannels % g) throw new Error(`ConvTranspose2d: groups ${g} must divide ${inChannels} input and ${outChannels} output channels`);
    this.weight = new Parameter(zeros([inChannels, outChannels / g, kh, kw]));
    // PyTorch computes fan_in from weight.size(1) · receptive field for transposed convs
    const fanIn = (outChannels / g) * kh * kw;
    uniform_(this.weight, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
    this.bias = defaultBias(outChannels, fanIn, opts.bias);
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, this.opts);
  }
}

/**
 * softmax(q·kᵀ/√d + mask)·v over the last two axes (q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv]).
 * `mask` is a bool tensor (true = attend) or an additive float tensor; `causal` masks future positions.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: { mask?: Tensor; causal?: boolean; scale?: number } = {}): Tensor {
  const d = q.shape[q.rank - 1]!;
  if (k.shape[k.rank - 1] !== d) throw new Error(`scaledDotProductAttention: query dim ${d} and key dim ${k.shape[k.rank - 1]} differ (${fmt(q.shape)} vs ${fmt(k.shape)})`);
  if (k.shape[k.rank - 2] !== v.shape[v.rank - 2]) throw new Error(`scaledDotProductAttention: keys ${fmt(k.shape)} and values ${fmt(v.shape)} need the same length`);
  return scope(() => {
    let s = q.matmul(k.mT).mul(opts.scale ?? 1 / Math.sqrt(d));
    if (opts.causal) {
      const Tq = q.shape[q.rank - 2]!, Tk = k.shape[k.rank - 2]!;
      const allowed = arange(Tk, undefined, 1, { device: q.device }).reshape([1, Tk]).le(arange(Tq, undefined, 1, { device: q.device }).reshape([Tq, 1]).add(Tk - Tq));
      s = where(allowed, s, -Infinity);
    }
    if (opts.mask) s = opts.mask.dtype === 'bool' ? where(opts.mask, s, -Infinity) : s.add(opts.mask);
    return s.softmax(-1).matmul(v);
  });
}

/**
 * Multi-head attention with PyTorch's parameter layout: in_proj_weight [3E, E], in_proj_bias, out_proj; with
 * `kdim`/`vdim` other than E (keys and values of another width, e.g. text tokens for cross-attention)
 * PyTorch's separate q_proj_weight [E, E], k_proj_weight [E, kdim], v_proj_weight [E, vdim] instead of
 * in_proj_weight.
 */
export class MultiheadAttention extends Module {
  in_proj_weight: Parameter | null = null;
  q_proj_weight: Parameter | null = null;
  k_proj_weight: Parameter | null = null;
  v_proj_weight: Parameter | null = null;
  in_proj_bias: Parameter;
  out_proj: Linear;
  readonly kdim: number;
  readonly vdim: number;
  constructor(readonly embedDim: number, readonly numHeads: number, opts: { kdim?: number; vdim?: number } = {}) {
    super();
    if (embedDim % numHeads) throw new Error(`MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    this.kdim = opts.kdim ?? embedDim;
    this.vdim = opts.vdim ?? embedDim;
    for (const [n, v] of [['kdim', this.kdim], ['vdim', this.vdim]] as const) if (!Number.isInteger(v) || v < 1) throw new Error(`MultiheadAttention: ${n} must be a positive integer, got ${v}`);
    if (this.kdim === embedDim && this.vdim === embedDim) {
      this.in_proj_weight = new Parameter(zeros([3 * embedDim, embedDim]));
      const bound = Math.sqrt(6 / (embedDim + 3 * embedDim));
      uniform_(this.in_proj_weight, -bound, bound);
    } else {
      // PyTorch: xavier_uniform_ of each [E, dim] projection
      const make = (dim: number) => {
        const w = new Parameter(zeros([embedDim, dim]));
        const bound = Math.sqrt(6 / (embedDim + dim));
        uniform_(w, -bound, bound);
        return w;
      };
      this.q_proj_weight = make(embedDim);
      this.k_proj_weight = make(this.kdim);
      this.v_proj_weight = make(this.vdim);
    }
    this.in_proj_bias = new Parameter(zeros([3 * embedDim]));
    this.out_proj = new Linear(embedDim, embedDim);
    noGrad(() => this.out_proj.bias!.assign(zeros([embedDim])));
  }
  /**
   * Batch-first attention: query [N, Tq, E], key [N, Tk, kdim], value [N, Tk, vdim] (self-attention when
   * omitted). `mask` as in `scaledDotProductAttention`; `keyMask` [N, Tk] bool marks the keys that may be
   * attended (false: padding, ignored by every query; PyTorch's key_padding_mask negated).
   */
  forward(query: Tensor, key: Tensor = query, value: Tensor = key, opts: { mask?: Tensor; causal?: boolean; keyMask?: Tensor } = {}): Tensor {
    const E = this.embedDim, H = this.numHeads, hd = E / H;
    const check = (what: string, x: Tensor, dim: number) => {
      if (x.rank !== 3 || x.shape[2] !== dim || x.shape[0] !== query.shape[0]) throw new Error(`MultiheadAttention: expected ${what} of shape [${query.shape[0]}, T, ${dim}], got ${fmt(x.shape)}`);
    };
    check('query', query, E);
    check('key', key, this.kdim);
    check('value', value, this.vdim);
    if (key.shape[1] !== value.shape[1]) throw new Error(`MultiheadAttention: keys ${fmt(key.shape)} and values ${fmt(value.shape)} need the same length`);
    let { mask } = opts;
    const keyMask = opts.keyMask;
    if (keyMask) {
      if (keyMask.dtype !== 'bool' || keyMask.rank !== 2 || keyMask.shape[0] !== key.shape[0] || keyMask.shape[1] !== key.shape[1]) {
        throw new Error(`MultiheadAttention: expected keyMask of shape [${key.shape[0]}, ${key.shape[1]}] and dtype bool, got ${fmt(keyMask.shape)} ${keyMask.dtype}`);
      }
    }
    return scope(() => {
      if (keyMask) {
        const km = keyMask.reshape([key.shape[0]!, 1, 1, key.shape[1]!]);
        mask = !mask ? km : mask.dtype === 'bool' ? km.logicalAnd(mask) : where(km, mask, -Infinity);
      }
      const [wq, wk, wv] = this.in_proj_weight ? (this.in_proj_weight.split(E, 0) as [Tensor, Tensor, Tensor]) : [this.q_proj_weight!, this.k_proj_weight!, this.v_proj_weight!];
      const [bq, bk, bv] = this.in_proj_bias.split(E, 0) as [Tensor, Tensor, Tensor];
      const heads = (x: Tensor, w: Tensor, b: Tensor) => linear(x, w, b).reshape([x.shape[0]!, x.shape[1]!, H, hd]).transpose(1, 2);
      const o = scaledDotProductAttention(heads(query, wq, bq), heads(key, wk, bk), heads(value, wv, bv), { mask, causal: opts.causal });
      return this.out_proj.forward(o.transpose(1, 2).reshape([query.shape[0]!, query.shape[1]!, E]));
    });
  }
}
