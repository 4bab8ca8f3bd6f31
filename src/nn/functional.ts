/**
 * The functional API, `k.F`: what `torch.nn.functional` has and kiln implements, under PyTorch's names in
 * camelCase (`F.conv2d`, `F.interpolate`, `F.crossEntropy`, …). Modules (`k.nn`) call these functions, and
 * `k.nn` re-exports the convolution, pooling, normalization and attention functions as the same objects.
 * Everything is a composite of Tensor ops, so gradients come from the primitives; losses are written in
 * numerically stable forms.
 */
import { fmt, normAxis } from '../tensor/shape.js';
import { scope } from '../tensor/memory.js';
import { inDtypeOf, toAutocast, widened } from '../tensor/autocast.js';
import { assertAlive, checkIndices, noGrad, rand, Tensor, unchecked, where } from '../tensor/index.js';
import { standardize } from './standardize.js';

export { conv1d, conv2d, convTranspose2d, avgPool2d, maxPool2d, adaptiveAvgPool2d, interpolate, pixelShuffle, pixelUnshuffle, type Conv1dOptions, type Conv2dOptions, type ConvTranspose2dOptions, type Pool2dOptions, type InterpolateOptions } from './conv.js';
export { adaIN, groupNorm, rmsNorm, scaledDotProductAttention } from './norm-attention.js';

/** How a loss reduces over elements. */
export type Reduction = 'mean' | 'sum' | 'none';

function reduce(op: string, t: Tensor, reduction: Reduction): Tensor {
  switch (reduction) {
    case 'mean': return t.mean();
    case 'sum': return t.sum();
    case 'none': return t;
    default: throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(reduction)}`);
  }
}

function sameShape(op: string, a: Tensor, b: Tensor): void {
  assertAlive(op, [a, b]);
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: input ${fmt(a.shape)} and target ${fmt(b.shape)} must have the same shape`);
  }
}

/** y = x·Wᵀ + b (W: [out, in]); the transpose is a free view and the bias fuses into the matmul. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  assertAlive('linear', [x, weight, bias]);
  return scope(() => {
    const y = x.matmul(weight.T);
    return bias ? y.add(toAutocast(bias)) : y;
  });
}

/** Inverted dropout with probability p (identity when not training). */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (!training || p === 0) return x;
  if (p === 1) return x.mul(0);
  return scope(() => x.mul(rand(x.shape, { device: x.device }).ge(p)).div(1 - p));
}

/**
 * Rows of `weight` [num, dim] picked by integer `ids` (any shape; the result is [...ids.shape, dim]). An id
 * outside [0, num) is an error: at the call when the ids are on the host, else at the next readback.
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (!(ids instanceof Tensor) || !(weight instanceof Tensor)) throw new TypeError('embedding: ids and weight must be Tensors');
  assertAlive('embedding', [ids, weight]);
  if (ids.dtype !== 'i32' && ids.dtype !== 'u32') throw new TypeError(`embedding: ids must be i32 or u32, got ${ids.dtype}`);
  if (weight.rank !== 2) throw new Error(`embedding: weight must be [num, dim], got ${fmt(weight.shape)}`);
  const [n, dim] = weight.shape as [number, number];
  checkIndices(ids, { op: 'embedding', noun: 'id', lo: 0, hi: n, context: `for ${n} embeddings` });
  return unchecked(() => weight.indexSelect(0, ids.flatten()).reshape([...ids.shape, dim]));
}

/**
 * Batch normalization of x [N, C, …] per channel (PyTorch's `F.batch_norm`). Training: normalizes by the
 * batch's statistics (biased variance) and, when running statistics are given, moves them towards the
 * batch's by `momentum` (a number, or a scalar tensor such as 1/batches for a cumulative average), the
 * variance unbiased. Otherwise: normalizes by the running statistics.
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight?: Tensor | null, bias?: Tensor | null, training = false, momentum: number | Tensor = 0.1, eps = 1e-5): Tensor {
  assertAlive('batchNorm', [x, runningMean, runningVar, weight, bias]);
  if (x.rank < 2) throw new Error(`batchNorm: input must be [N, C, …], got ${fmt(x.shape)}`);
  const C = x.shape[1]!;
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', weight], ['bias', bias]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== C)) throw new Error(`batchNorm: ${name} must be [${C}] (one per channel of input ${fmt(x.shape)}), got ${fmt(t.shape)}`);
  }
  if (!training && (!runningMean || !runningVar)) throw new Error('batchNorm: without training=true it normalizes by the running statistics; pass runningMean and runningVar');
  const axes = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];
  const perChannel = [1, C, ...Array.from({ length: x.rank - 2 }, () => 1)];
  return scope(() => {
    let mean: Tensor, v: Tensor;
    if (training) {
      mean = x.mean(axes);
      const d = x.sub(mean.reshape(perChannel));
      v = d.mul(d).mean(axes);
      const n = x.size / C;
      noGrad(() => {
        const m = momentum;
        const blend = (run: Tensor, batch: Tensor) => run.assign(run.mul(typeof m === 'number' ? 1 - m : m.neg().add(1)).add(batch.detach().mul(m)));
        if (runningMean) blend(runningMean, mean);
        if (runningVar) blend(runningVar, v.mul(n / Math.max(n - 1, 1)));
      });
    } else {
      mean = runningMean!;
      v = runningVar!;
    }
    let y = inDtypeOf(x, x.sub(mean.reshape(perChannel)).mul(v.add(eps).rsqrt().reshape(perChannel)));
    if (weight) y = y.mul(toAutocast(weight).reshape(perChannel));
    if (bias) y = y.add(toAutocast(bias).reshape(perChannel));
    return y;
  });
}

/**
 * Pads x with `value` (PyTorch's `F.pad`, constant mode): `pad` lists [before, after] pairs from the last
 * dim backwards (`[left, right, top, bottom]` pads the last two dims); negative amounts crop.
 */
export function pad(x: Tensor, pad: number[], mode: 'constant' = 'constant', value = 0): Tensor {
  assertAlive('pad', [x]);
  if (mode !== 'constant') throw new Error(`pad: only mode 'constant' is implemented, got ${JSON.stringify(mode)}`);
  if (!Array.isArray(pad) || pad.length % 2 || pad.length / 2 > x.rank) throw new Error(`pad: expected an even number of amounts, at most 2 per dim of input ${fmt(x.shape)} (last dim first), got ${JSON.stringify(pad)}`);
  const pairs = x.shape.map((_, i) => {
    const j = x.rank - 1 - i;
    return (2 * j < pad.length ? [pad[2 * j], pad[2 * j + 1]] : [0, 0]) as [number, number];
  });
  return x.pad(pairs, value);
}

/** Normalizes over the trailing dims `normalizedShape` (biased variance), then scales and shifts. */
export function layerNorm(x: Tensor, normalizedShape: number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  assertAlive('layerNorm', [x, weight, bias]);
  const n = normalizedShape.length;
  if (n > x.rank || normalizedShape.some((d, i) => x.shape[x.rank - n + i] !== d)) {
    throw new Error(`layerNorm: input of shape ${fmt(x.shape)} does not end with the normalized shape ${fmt(normalizedShape)}`);
  }
  const lead = x.shape.slice(0, x.rank - n);
  const layout = { name: 'layerNorm', view: [...lead, normalizedShape.reduce((a, d) => a * d, 1)], paramShape: normalizedShape, paramAxes: lead.map((_, i) => i) };
  return standardize(x, layout, weight, bias, eps);
}

/** Mean squared error. */
export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  sameShape('mseLoss', input, target);
  return scope(() => { const d = widened(input).sub(widened(target)); return reduce('mseLoss', d.mul(d), opts.reduction ?? 'mean'); });
}

/** Mean absolute error. */
export function l1Loss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  sameShape('l1Loss', input, target);
  return scope(() => reduce('l1Loss', widened(input).sub(widened(target)).abs(), opts.reduction ?? 'mean'));
}

/** Options of `nllLoss` / `crossEntropy`. */
export interface ClassLossOptions {
  reduction?: Reduction;
  /** Per-class weights [C]. */
  weight?: Tensor;
  /** Targets equal to this are ignored (contribute neither loss nor weight). */
  ignoreIndex?: number;
}

/**
 * Checks class targets against input [N, C, …]: dtype, shape, weight [C], and every target in [0, C) or
 * equal to `ignoreIndex` (at the call when the targets are on the host, else at the next readback).
 */
function checkClassTarget(op: string, input: Tensor, target: Tensor, opts: ClassLossOptions): void {
  if (!(input instanceof Tensor) || !(target instanceof Tensor)) throw new TypeError(`${op}: input and target must be Tensors`);
  assertAlive(op, [input, target, opts.weight]);
  if (input.rank < 2) throw new Error(`${op}: input must be [N, C, …], got ${fmt(input.shape)}`);
  if (target.dtype !== 'i32' && target.dtype !== 'u32') throw new TypeError(`${op}: class targets must be i32 or u32, got ${target.dtype} (for probabilities pass a float target of the input's shape to crossEntropy)`);
  const expected = [input.shape[0]!, ...input.shape.slice(2)];
  if (target.rank !== expected.length || target.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${op}: target of shape ${fmt(target.shape)} does not match input ${fmt(input.shape)} (expected ${fmt(expected)})`);
  }
  const C = input.shape[1]!;
  if (opts.weight && (opts.weight.rank !== 1 || opts.weight.shape[0] !== C)) throw new Error(`${op}: weight must be [${C}] (one per class), got ${fmt(opts.weight.shape)}`);
  const ignore = opts.ignoreIndex;
  if (ignore !== undefined && !Number.isInteger(ignore)) throw new Error(`${op}: ignoreIndex must be an integer, got ${ignore}`);
  checkIndices(target, { op, noun: 'target', lo: 0, hi: C, ignore, context: `for ${C} classes` });
}

/** Negative log likelihood of class targets given log-probabilities [N, C, …]. */
export function nllLoss(logProbs: Tensor, target: Tensor, opts: ClassLossOptions = {}): Tensor {
  checkClassTarget('nllLoss', logProbs, target, opts);
  return scope(() => unchecked(() => {
    const t = target.cast('i32');
    const valid = opts.ignoreIndex === undefined ? null : t.ne(opts.ignoreIndex);
    const safe = valid ? where(valid, t, 0) : t;
    const picked = logProbs.gather(1, safe.unsqueeze(1)).squeeze(1).neg();
    let w: Tensor | null = opts.weight ? opts.weight.indexSelect(0, safe.flatten()).reshape(safe.shape) : null;
    if (valid) w = w ? where(valid, w, 0) : valid.float();
    const losses = w ? picked.mul(w) : picked;
    const reduction = opts.reduction ?? 'mean';
    if (reduction === 'mean' && w) return losses.sum().div(w.sum());
    return reduce('nllLoss', losses, reduction);
  }));
}

/**
 * Cross entropy from logits [N, C, …] with integer class targets (optionally label smoothing, class
 * weights, ignoreIndex) or with class-probability targets of the input's shape.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: ClassLossOptions & { labelSmoothing?: number } = {}): Tensor {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const reduction = opts.reduction ?? 'mean';
  if (!(logits instanceof Tensor) || !(target instanceof Tensor)) throw new TypeError('crossEntropy: input and target must be Tensors');
  assertAlive('crossEntropy', [logits, target, opts.weight]);
  const classTargets = target.dtype !== 'f32' && target.dtype !== 'f16';
  if (classTargets) checkClassTarget('crossEntropy', logits, target, opts);
  return scope(() => unchecked(() => {
    const logp = logits.logSoftmax(1);
    const C = logits.shape[1]!;
    if (!classTargets) {
      sameShape('crossEntropy', logits, target);
      let p = target;
      if (eps > 0) p = p.mul(1 - eps).add(eps / C);
      let per = logp.mul(p);
      if (opts.weight) per = per.mul(opts.weight.reshape([1, C, ...logits.shape.slice(2).map(() => 1)]));
      const losses = per.sum(1).neg();
      return reduce('crossEntropy', losses, reduction);
    }
    const nll = nllLoss(logp, target, { ...opts, reduction: eps > 0 ? 'none' : reduction });
    if (eps === 0) return nll;
    // smoothing term: mean over classes of −log p (weighted like PyTorch)
    const t = target.cast('i32');
    const valid = opts.ignoreIndex === undefined ? null : t.ne(opts.ignoreIndex);
    let smooth = (opts.weight ? logp.mul(opts.weight.reshape([1, C, ...logits.shape.slice(2).map(() => 1)])) : logp).sum(1).neg().div(C);
    if (valid) smooth = where(valid, smooth, 0);
    const per = nll.mul(1 - eps).add(smooth.mul(eps));
    if (reduction === 'mean') {
      const safe = valid ? where(valid, t, 0) : t;
      let w: Tensor | null = opts.weight ? opts.weight.indexSelect(0, safe.flatten()).reshape(safe.shape) : null;
      if (valid) w = w ? where(valid, w, 0) : valid.float();
      return w ? per.sum().div(w.sum()) : per.mean();
    }
    return reduce('crossEntropy', per, reduction);
  }));
}

/** Binary cross entropy from logits, stable: max(x,0) − x·y + log(1 + e^−|x|) (optional posWeight). */
export function binaryCrossEntropyWithLogits(x: Tensor, target: Tensor, opts: { reduction?: Reduction; posWeight?: Tensor | number; weight?: Tensor } = {}): Tensor {
  sameShape('binaryCrossEntropyWithLogits', x, target);
  return scope(() => {
    const logits = widened(x);
    const sp = logits.neg().softplus(); // log(1 + e^−x) = −log σ(x)
    let losses: Tensor;
    if (opts.posWeight === undefined) losses = logits.mul(target.neg().add(1)).add(sp);
    else {
      const lw = target.mul(opts.posWeight).sub(target).add(1); // 1 + (pw − 1)·y
      losses = logits.mul(target.neg().add(1)).add(lw.mul(sp));
    }
    if (opts.weight) losses = losses.mul(opts.weight);
    return reduce('binaryCrossEntropyWithLogits', losses, opts.reduction ?? 'mean');
  });
}

/**
 * KL(N(μ, e^logvar) ‖ N(0, 1)) = ½(μ² + e^logvar − 1 − logvar) per element. Reduction 'batchmean' sums
 * over all but the first dim and averages over the batch (the usual VAE term).
 */
export function klDivGaussian(mu: Tensor, logvar: Tensor, opts: { reduction?: Reduction | 'batchmean' } = {}): Tensor {
  sameShape('klDivGaussian', mu, logvar);
  return scope(() => {
    const mean = widened(mu);
    const kl = mean.mul(mean).add(logvar.exp()).sub(1).sub(logvar).mul(0.5);
    const r = opts.reduction ?? 'batchmean';
    if (r === 'batchmean') return kl.sum().div(mean.shape[0] ?? 1);
    return reduce('klDivGaussian', kl, r);
  });
}

/** softmax along an axis. */
export function softmax(x: Tensor, axis = -1): Tensor { return x.softmax(axis); }
/** log-softmax along an axis. */
export function logSoftmax(x: Tensor, axis = -1): Tensor { return x.logSoftmax(axis); }
/** max(x, 0). */
export function relu(x: Tensor): Tensor { return x.relu(); }
/** 1 / (1 + e^−x). */
export function sigmoid(x: Tensor): Tensor { return x.sigmoid(); }
/** tanh(x). */
export function tanh(x: Tensor): Tensor { return x.tanh(); }
/** log σ(x) = −softplus(−x), stable for large |x|. */
export function logsigmoid(x: Tensor): Tensor { return scope(() => x.neg().softplus().neg()); }
/** x·σ(x). */
export function silu(x: Tensor): Tensor { return x.silu(); }
/** GELU. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor { return x.gelu(approximate); }
/** Leaky ReLU. */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor { return x.leakyRelu(slope); }
/** Softplus. */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor { return x.softplus(beta, threshold); }
/** One-hot encoding. */
export function oneHot(ids: Tensor, numClasses: number): Tensor { return ids.oneHot(numClasses); }
/** Normalizes along an axis to unit p-norm. */
export function normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  const a = normAxis('normalize', axis, x.rank);
  return scope(() => x.div(x.mul(x).sum(a, { keepDim: true }).sqrt().maximum(eps)));
}
