/**
 * Per-call host values. Code that computes numbers on the host for each step — a learning rate, a bias
 * correction, a random counter, times sampled on the host — wraps that computation in `perCall` and makes
 * its tensors with `scalar`/`tensor`. Eagerly this is just the computation. Inside a compiled function
 * (`k.compile`), whose JavaScript runs only when traced, the computation runs again at every call, in the
 * order it was made, and the uniforms and buffers made from it are refreshed, so replays see the values
 * an eager call would have computed.
 */
import { coerce, isFloat, type DType } from './dtype.js';
import type { LazyNode } from './node.js';
import type { Tensor } from './tensor.js';
import { constNode } from './apply.js';
import { defaultDeviceOf, hostArray, tensor, type CreateOptions } from './creation.js';
import { inHostStep, notePerCall, tracing, type Recording } from './trace.js';

/** A host value computed once per call; see `perCall`. */
export class PerCall<V> {
  /** @internal */
  constructor(readonly value: V, private readonly at: { rec: Recording; index: number } | null) {}

  /** A 0-d constant f(value) (a uniform: recomputed at every call of a compiled function). */
  scalar(f: (v: V) => number, opts: CreateOptions = {}): Tensor {
    const dtype = opts.dtype ?? 'f32';
    const t = constNode(f(this.value), dtype, defaultDeviceOf(opts));
    this.bind(t.rawNode, (v) => (isFloat(dtype) ? f(v) : coerce(f(v), dtype)));
    return t;
  }

  /** A tensor uploaded from f(value) (uploaded again at every call of a compiled function). */
  tensor(f: (v: V) => ArrayLike<number>, opts: CreateOptions & { shape?: number[] } = {}): Tensor {
    const t = tensor(f(this.value) as number[], opts);
    if (this.at) {
      const dtype = t.dtype;
      if (this.at.rec.uploads.delete(t.rawNode)) t.rawNode.release();
      this.at.rec.dynamic.set(t.rawNode, { entry: this.at.index, data: (v) => hostArray(f(v as V), dtype) });
    }
    return t;
  }

  /** Makes a leaf's run-time scalars (`node.arg`) derive from the value (internal: random draws). */
  bind(node: LazyNode, arg: (v: V) => unknown): void {
    if (this.at) this.at.rec.dynamic.set(node, { entry: this.at.index, arg: arg as (v: unknown) => unknown });
  }
}

/**
 * Computes a host value for this call: `compute()` now, and inside a compiled function again at every
 * call, in the order the calls were made (so side effects such as advancing a counter repeat too).
 * Tensors made with the result's `scalar` and `tensor` follow the value.
 */
export function perCall<V>(compute: () => V): PerCall<V> {
  const value = inHostStep(compute);
  return new PerCall(value, tracing() ? notePerCall({ compute }) : null);
}
