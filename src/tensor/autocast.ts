/**
 * Automatic mixed precision (PyTorch's `torch.autocast`). Inside `autocast(fn)`:
 * - matrix products — so linear layers, convolutions and attention — take f16 operands and return f16
 *   (their kernels accumulate in f32);
 * - elementwise ops on f16 tensors stay f16: kiln computes every op in f32 and stores f16, so activations
 *   kept for backward take half the bytes;
 * - ops whose range or accuracy f16 cannot hold read f16 and return f32: sums and means (and so softmax,
 *   variance and losses), powers, exp, log, log1p, expm1 and reciprocals;
 * - normalization layers compute their statistics and normalize in f32, then round to their input's dtype
 *   before the affine part (flax's rule; PyTorch's autocast returns f32 from layer and group norm, which
 *   keeps an f32 copy of each activation for backward).
 * Parameters stay f32 (master weights): each use casts them, and the cast's gradient arrives in f32.
 */
import { gpu, hasDevice } from '../wgsl/device.js';
import { isFloat, type DType } from './dtype.js';
import { autocastDtype, withAutocastDtype } from './tape.js';
import type { Tensor } from './tensor.js';

/** Options of `autocast`. */
export interface AutocastOptions {
  /** The dtype of matmuls and convolutions (only 'f16'). */
  dtype?: 'f16';
  /** false runs `fn` in full precision (e.g. a region inside an autocast one). Default true. */
  enabled?: boolean;
}

let warned = false;

/**
 * Runs `fn` (sync or async) under mixed precision: see the module comment for which ops run in f16.
 * Backward runs the recorded ops' gradients in the dtypes of the forward pass; call it outside (PyTorch's
 * advice), and scale the loss with `k.optim.GradScaler` so small f16 gradients do not flush to zero. On an
 * adapter without the `shader-f16` feature (or before `k.init()`) it warns once and runs `fn` in f32.
 */
export function autocast<T>(opts: AutocastOptions | (() => T), fn?: () => T): T {
  const o = typeof opts === 'function' ? {} : opts;
  const f = typeof opts === 'function' ? opts : fn;
  if (typeof f !== 'function') throw new TypeError('autocast: expected a function to run, as autocast(fn) or autocast({ dtype }, fn)');
  const dtype = o.dtype ?? 'f16';
  if (dtype !== 'f16') throw new Error(`autocast: dtype must be 'f16', got ${JSON.stringify(dtype)}`);
  if (o.enabled === false) return withAutocastDtype(null, f);
  // without the feature (or before k.init) every device runs in f32, the float64 reference too, so results agree
  if (!hasDevice() || !gpu().f16) {
    if (!warned) console.warn(hasDevice() ? "kiln: autocast: this adapter lacks the feature 'shader-f16'; running in f32" : 'kiln: autocast: no WebGPU device yet (call k.init() first); running in f32');
    warned = true;
    return withAutocastDtype(null, f);
  }
  return withAutocastDtype(dtype, f);
}

/** True while ops run under autocast. */
export function isAutocastEnabled(): boolean {
  return autocastDtype() !== null;
}

/** Elementwise ops that read f16 and return f32 under autocast (PyTorch's f32 list, as far as kiln has the ops). */
export const WIDE_OPS: ReadonlySet<string> = new Set(['exp', 'log', 'log1p', 'expm1', 'recip', 'pow']);

/** `t` cast to f32 when it is f16 under autocast (inputs of ops that need f32's range), else `t`. */
export function widened(t: Tensor): Tensor {
  return t.dtype === 'f16' && autocastDtype() ? t.cast('f32') : t;
}

/** `t` cast to the autocast dtype when it is a float tensor of another dtype under autocast, else `t` (the operands of matmuls). */
export function toAutocast(t: Tensor): Tensor {
  const dt = autocastDtype();
  return dt && t.dtype !== dt && isFloat(t.dtype) ? t.cast(dt) : t;
}

/** Under autocast, a normalization's normalized values `y` in the dtype of its input `x` (its affine part then runs in f16); else `y`. */
export function inDtypeOf(x: Tensor, y: Tensor): Tensor {
  return autocastDtype() && x.dtype === 'f16' && y.dtype !== 'f16' ? y.cast('f16') : y;
}

/** The dtype of an op's inputs under autocast when the op is in `WIDE_OPS` (f16 → f32). */
export function wideDtypes(op: string, dts: DType[]): DType[] {
  return autocastDtype() && WIDE_OPS.has(op) ? dts.map((d) => (d === 'f16' ? 'f32' : d)) : dts;
}
