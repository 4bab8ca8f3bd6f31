/** Reduction composites (argmax, variance, logsumexp, softmax, cumsum): plain Tensor ops over sum and max. */
import { isFloat } from '../dtype.js';
import { normAxes, normAxis } from '../shape.js';
import { scope } from '../memory.js';
import { type ReduceOptions, type Tensor } from '../tensor.js';
import { where } from '../apply.js';
import { iota } from '../creation.js';

/** Index of the maximum (or minimum) along an axis, first on ties; NaN counts as the maximum. */
export function argReduce(t: Tensor, name: string, axis: number | undefined, keepDim: boolean, useMax: boolean): Tensor {
  return scope(() => {
    if (axis === undefined) {
      const r = argReduce(t.flatten(), name, 0, false, useMax);
      return keepDim ? r.reshape(t.shape.map(() => 1)) : r;
    }
    const a = normAxis(name, axis, t.rank);
    const n = t.shape[a]!;
    const m = useMax ? t.max(a, { keepDim: true }) : t.min(a, { keepDim: true });
    const idx = iota(n, 'i32', t.device).reshape(t.shape.map((_, i) => (i === a ? n : 1)));
    const hit = isFloat(t.dtype) ? t.eq(m).logicalOr(t.isnan()) : t.eq(m);
    return where(hit, idx, n).min(a, { keepDim });
  });
}

/** Variance (two-pass, `correction` 1 = unbiased like PyTorch's default). */
export function variance(t: Tensor, axis: number | number[] | undefined, opts: ReduceOptions & { correction?: number }): Tensor {
  const axes = normAxes('var', axis, t.rank);
  const n = axes.reduce((s, a) => s * t.shape[a]!, 1);
  const correction = opts.correction ?? 1;
  return scope(() => {
    const x = t.float();
    const d = x.sub(x.mean(axes, { keepDim: true }));
    return d.mul(d).sum(axes, { keepDim: opts.keepDim }).div(Math.max(n - correction, 0));
  });
}

/** log Σ exp, stable (shifted by the maximum). */
export function logsumexp(t: Tensor, axis: number | number[] | undefined, opts: ReduceOptions): Tensor {
  const axes = normAxes('logsumexp', axis, t.rank);
  return scope(() => {
    const x = t.float();
    const m = x.max(axes, { keepDim: true });
    const shift = where(m.abs().eq(Infinity), 0, m);
    const r = x.sub(shift).exp().sum(axes, { keepDim: true }).log().add(shift);
    return opts.keepDim ? r : r.squeeze(axes);
  });
}

/** Softmax along an axis (stable). */
export function softmax(t: Tensor, axis: number): Tensor {
  const a = normAxis('softmax', axis, t.rank);
  return scope(() => {
    const x = t.float();
    const e = x.sub(x.max(a, { keepDim: true })).exp();
    return e.div(e.sum(a, { keepDim: true }));
  });
}

/** log softmax along an axis (stable). */
export function logSoftmax(t: Tensor, axis: number): Tensor {
  const a = normAxis('logSoftmax', axis, t.rank);
  return scope(() => t.float().sub(logsumexp(t, a, { keepDim: true })));
}

/** Inclusive prefix sum along an axis (a masked reduction: O(n²) work per row, fine for n up to a few thousand). */
export function cumsum(t: Tensor, axis: number): Tensor {
  const a = normAxis('cumsum', axis, t.rank);
  return scope(() => {
    const x = (t.dtype === 'bool' ? t.cast('i32') : t).transpose(a, -1);
    const n = x.shape[x.rank - 1]!;
    const i = iota(n, 'i32', t.device);
    const mask = i.reshape([1, n]).le(i.reshape([n, 1])); // [out j, in i]: i ≤ j
    const r = where(mask, x.unsqueeze(-2), 0).sum(-1);
    return r.transpose(a, -1);
  });
}
