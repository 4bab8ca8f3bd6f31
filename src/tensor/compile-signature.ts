/**
 * The argument signature of a call of a compiled function (./compile.ts): which calls may share a trace.
 */
import { Tensor } from './tensor.js';
import { autocastDtype, isGradEnabled } from './tape.js';

/**
 * The arguments as the trace sees them (JAX's pytree leaves): a tensor inside an array or plain object is
 * an argument of its own, after it comes its container with each such tensor replaced by a marker, so the
 * container's shape (its length, keys and other values) is part of the signature. `fn` still receives the
 * arguments as given.
 */
export function leavesOf(args: unknown[]): unknown[] {
  const out: unknown[] = [];
  const skeleton = (v: unknown): unknown => {
    if (v instanceof Tensor) {
      out.push(v);
      return { tensor: out.length - 1 };
    }
    if (Array.isArray(v)) return v.map(skeleton);
    if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, skeleton(x)]));
    return v;
  };
  for (const a of args) out.push(a instanceof Tensor ? a : skeleton(a)); // a container's tensors first, then its skeleton
  return out;
}

/** The key of an argument list: shapes, dtypes and devices of tensors, other values as JSON; the grad mode and autocast. */
export function signatureOf(name: string, args: unknown[]): string {
  return `${isGradEnabled() ? 'grad' : 'nograd'}|${autocastDtype() ?? ''}|` + args.map((a, i) => {
    if (a instanceof Tensor) {
      if (a.disposed) throw new Error(`k.compile(${name}): argument ${i} was disposed`);
      // arguments that share their values (the same tensor twice) are part of the key
      const first = args.findIndex((b) => b instanceof Tensor && b.rawNode === a.rawNode);
      return `T${a.dtype}[${a.shape.join(',')}]@${a.device}${first < i ? `=${first}` : ''}`;
    }
    if (typeof a === 'function') throw new TypeError(`k.compile(${name}): argument ${i} is a function; pass tensors, numbers, strings or plain data`);
    return JSON.stringify(a) ?? 'undefined';
  }).join(';');
}
