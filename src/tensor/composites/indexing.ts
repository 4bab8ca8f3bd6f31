/** Indexing and joining composites (scatterAdd, one-hot, cat, stack): plain Tensor ops over gather, pad and masks. */
import { type DType, promote } from '../dtype.js';
import { fmt, normAxis, shapesEqual } from '../shape.js';
import { scope } from '../memory.js';
import { Tensor } from '../tensor.js';
import { assertAlive, deviceOf, where } from '../apply.js';
import { iota } from '../creation.js';
import { checkIndices } from '../index-checks.js';

/** t + src scattered by index along axis (PyTorch scatter_add; index and src share a shape). Deterministic. */
export function scatterAdd(t: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  const a = normAxis('scatterAdd', axis, t.rank);
  if (!(index instanceof Tensor) || !(src instanceof Tensor)) throw new TypeError('scatterAdd: index and src must be Tensors');
  if (index.dtype !== 'i32' && index.dtype !== 'u32') throw new TypeError(`scatterAdd: index must be i32 or u32, got ${index.dtype}`);
  if (!shapesEqual(index.shape, src.shape)) throw new Error(`scatterAdd: index ${fmt(index.shape)} and src ${fmt(src.shape)} must have the same shape`);
  if (index.rank !== t.rank || index.shape.some((d, i) => i !== a && d > t.shape[i]!)) {
    throw new Error(`scatterAdd: index ${fmt(index.shape)} must not exceed input ${fmt(t.shape)} on any axis but ${a}`);
  }
  deviceOf('scatterAdd', [t, index, src]);
  const size = t.shape[a]!;
  checkIndices(index, { op: 'scatterAdd', noun: 'index', lo: -size, hi: size, context: `for axis ${a} of size ${size}` });
  return scope(() => {
    const n = t.shape[a]!;
    const idx = index.cast('i32').transpose(a, -1).unsqueeze(-2); // [..., 1, m]
    const s = src.cast(t.dtype).transpose(a, -1).unsqueeze(-2);
    const targets = iota(n, 'i32', t.device).reshape([n, 1]);
    const wrapped = where(idx.lt(0), idx.add(n), idx);
    let contrib = where(wrapped.eq(targets), s, 0).sum(-1).cast(t.dtype).transpose(a, -1); // index's shape, n on axis a
    if (contrib.shape.some((d, i) => d !== t.shape[i])) contrib = contrib.pad(contrib.shape.map((d, i) => [0, t.shape[i]! - d] as [number, number]));
    return t.add(contrib);
  });
}

/** One-hot encoding along a new last axis. */
export function oneHot(t: Tensor, numClasses: number, dtype: DType): Tensor {
  if (t.dtype !== 'i32' && t.dtype !== 'u32') throw new TypeError(`oneHot: expected integer class indices, got ${t.dtype}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`oneHot: numClasses must be a positive integer, got ${numClasses}`);
  checkIndices(t, { op: 'oneHot', noun: 'class', lo: 0, hi: numClasses, context: `for ${numClasses} classes` });
  return scope(() => t.cast('i32').unsqueeze(-1).eq(iota(numClasses, 'i32', t.device)).cast(dtype));
}

/** Concatenates along an existing axis. */
export function cat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('cat: expected a non-empty array of tensors');
  if (tensors.some((t) => !(t instanceof Tensor))) throw new TypeError('cat: expected an array of tensors');
  assertAlive('cat', tensors);
  const first = tensors[0]!;
  const ax = normAxis('cat', axis, first.rank);
  const dtype = tensors.map((t) => t.dtype).reduce(promote);
  deviceOf('cat', tensors);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`cat: shapes ${tensors.map((x) => fmt(x.shape)).join(', ')} must match except along axis ${ax}`);
    }
  }
  if (tensors.length === 1) return first.cast(dtype).contiguousView();
  const total = tensors.reduce((s, t) => s + t.shape[ax]!, 0);
  return scope(() => {
    let offset = 0;
    let out: Tensor | null = null;
    for (const t of tensors) {
      const pads = t.shape.map((_, i) => (i === ax ? [offset, total - offset - t.shape[ax]!] : [0, 0]) as [number, number]);
      offset += t.shape[ax]!;
      const p = t.cast(dtype).pad(pads);
      out = out === null ? p : dtype === 'bool' ? out.logicalOr(p) : out.add(p);
    }
    return out!.cast(dtype);
  });
}

/** Stacks along a new axis. */
export function stack(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('stack: expected a non-empty array of tensors');
  if (tensors.some((t) => !(t instanceof Tensor))) throw new TypeError('stack: expected an array of tensors');
  assertAlive('stack', tensors);
  const first = tensors[0]!;
  for (const t of tensors) if (!shapesEqual(t.shape, first.shape)) throw new Error(`stack: all tensors must have the same shape, got ${tensors.map((x) => fmt(x.shape)).join(', ')}`);
  const ax = normAxis('stack', axis, first.rank + 1);
  return scope(() => cat(tensors.map((t) => t.unsqueeze(ax)), ax));
}
