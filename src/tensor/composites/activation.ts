/** Activation composites: plain Tensor ops, so their gradients come from the primitives'. */
import type { Tensor, TensorLike } from '../tensor.js';
import { scope } from '../memory.js';

/** x if x ≥ 0 else slope·x. */
export function leakyRelu(x: Tensor, slope: number): Tensor {
  return scope(() => x.where(x.ge(0), x.mul(slope)));
}

/** GELU, exact (erf) or with the tanh approximation. */
export function gelu(t: Tensor, approximate: 'none' | 'tanh'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') throw new Error(`gelu: approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  return scope(() => {
    const x = t.float();
    if (approximate === 'tanh') return x.mul(0.5).mul(x.mul(x).mul(x).mul(0.044715).add(x).mul(Math.sqrt(2 / Math.PI)).tanh().add(1));
    return x.mul(0.5).mul(x.mul(Math.SQRT1_2).erf().add(1));
  });
}

/** log(1+e^(βx))/β, linear above `threshold` (PyTorch semantics). */
export function softplus(t: Tensor, beta: number, threshold: number): Tensor {
  return scope(() => {
    const x = t.float();
    const bx = beta === 1 ? x : x.mul(beta);
    const sp = bx.maximum(0).add(bx.abs().neg().exp().log1p());
    return x.where(bx.gt(threshold), beta === 1 ? sp : sp.div(beta));
  });
}

/** Limits values to [min, max] (either may be omitted). */
export function clamp(t: Tensor, min?: TensorLike | null, max?: TensorLike | null): Tensor {
  if ((min === undefined || min === null) && (max === undefined || max === null)) throw new Error('clamp: give at least one of min and max');
  return scope(() => {
    let x: Tensor = t;
    if (max !== undefined && max !== null) x = x.minimum(max);
    if (min !== undefined && min !== null) x = x.maximum(min);
    return x === t ? t.contiguousView() : x;
  });
}
