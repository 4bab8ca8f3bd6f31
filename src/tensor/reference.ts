/**
 * The float64 CPU reference: interprets the same lazy graph op by op on dense arrays, with each
 * op's own reference function. It shares no index math with the WGSL code generator, so the
 * conformance suite compares two independent implementations.
 */
import { coerce, isFloat } from './dtype.js';
import { elementwiseDef } from './ops.js';
import { LazyNode, type MovementArg } from './node.js';
import { contiguousStrides, numel } from './shape.js';
import { philox4x32 } from '../wgsl/rng.js';

function unravel(i: number, shape: readonly number[], out: number[]): void {
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    out[d] = i % s;
    i = Math.floor(i / s);
  }
}

function ravel(c: readonly number[], strides: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < c.length; d++) i += c[d]! * strides[d]!;
  return i;
}

function mapCoords(shape: readonly number[], srcShape: readonly number[], src: Float64Array, f: (c: number[]) => number | null, fill = 0): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  const st = contiguousStrides(srcShape);
  const c = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    unravel(i, shape, c);
    const j = f(c);
    out[i] = j === null ? fill : src[j === -1 ? 0 : j]!;
  }
  void st;
  return out;
}

function movement(n: LazyNode, x: Float64Array): Float64Array {
  const src = n.src[0]!;
  const m = n.arg as MovementArg;
  const st = contiguousStrides(src.shape);
  switch (m.op) {
    case 'reshape': return x.slice();
    case 'permute': {
      const sc = new Array<number>(src.shape.length);
      return mapCoords(n.shape, src.shape, x, (c) => {
        m.perm.forEach((p, i) => (sc[p] = c[i]!));
        return ravel(sc, st);
      });
    }
    case 'expand': return mapCoords(n.shape, src.shape, x, (c) => ravel(c.map((v, i) => (src.shape[i] === 1 ? 0 : v)), st));
    case 'shrink': return mapCoords(n.shape, src.shape, x, (c) => ravel(c.map((v, i) => v + m.ranges[i]![0]), st));
    case 'flip': return mapCoords(n.shape, src.shape, x, (c) => ravel(c.map((v, i) => (m.axes.includes(i) ? src.shape[i]! - 1 - v : v)), st));
    case 'unfold': return mapCoords(n.shape, src.shape, x, (c) => {
      const sc = c.slice(0, -1);
      sc[m.axis] = c[m.axis]! * m.step + c[c.length - 1]! * m.dilation;
      return ravel(sc, st);
    });
    case 'pad': return mapCoords(n.shape, src.shape, x, (c) => {
      const sc = c.map((v, i) => v - m.pads[i]![0]);
      return sc.every((v, i) => v >= 0 && v < src.shape[i]!) ? ravel(sc, st) : null;
    }, m.value);
  }
}

function reduce(n: LazyNode, x: Float64Array): Float64Array {
  const { op, axes } = n.arg as { op: 'sum' | 'max'; axes: number[] };
  const src = n.src[0]!;
  const out = new Float64Array(n.size).fill(op === 'sum' ? 0 : -Infinity);
  const ost = contiguousStrides(n.shape);
  const c = new Array<number>(src.shape.length).fill(0);
  for (let i = 0; i < x.length; i++) {
    unravel(i, src.shape, c);
    for (const a of axes) c[a] = 0;
    const o = ravel(c, ost);
    const v = x[i]!;
    if (op === 'sum') out[o] += v;
    else if (Number.isNaN(v) || Number.isNaN(out[o]!)) out[o] = NaN;
    else if (v > out[o]!) out[o] = v;
  }
  return out;
}

function matmul(n: LazyNode, a: Float64Array, b: Float64Array): Float64Array {
  const [A, B] = n.src as [LazyNode, LazyNode];
  const M = A.shape[A.shape.length - 2]!, K = A.shape[A.shape.length - 1]!, N = B.shape[B.shape.length - 1]!;
  const batch = numel(n.shape.slice(0, -2));
  const out = new Float64Array(n.size);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * M * K, bo = bi * K * N, oo = bi * M * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + i * K + k]! * b[bo + k * N + j]!;
        out[oo + i * N + j] = s;
      }
    }
  }
  return out;
}

function gather(n: LazyNode, x: Float64Array, index: Float64Array): Float64Array {
  const X = n.src[0]!;
  const axis = n.arg as number;
  const st = contiguousStrides(X.shape);
  const size = X.shape[axis]!;
  const c = new Array<number>(n.shape.length).fill(0);
  const out = new Float64Array(n.size);
  for (let i = 0; i < n.size; i++) {
    unravel(i, n.shape, c);
    let j = index[i]!;
    if (j < 0) j += size;
    c[axis] = Math.min(Math.max(j, 0), size - 1);
    out[i] = x[ravel(c, st)]!;
  }
  return out;
}

function evalNode(n: LazyNode, memo: Map<LazyNode, Float64Array>): Float64Array {
  if (n.realized) {
    if (!n.host) throw new Error('kiln: a reference (cpu) computation reached a tensor stored on the GPU; create both on the same device');
    return n.host;
  }
  const hit = memo.get(n);
  if (hit) return hit;
  const srcs = n.src.map((s) => evalNode(s, memo));
  let out: Float64Array;
  switch (n.kind) {
    case 'leaf':
      if (n.op === 'const') out = new Float64Array(n.size).fill(isFloat(n.dtype) ? (n.arg as number) : coerce(n.arg as number, n.dtype));
      else if (n.op === 'rng') {
        const a = n.arg as { key: [number, number]; ctr: number; word: number };
        out = new Float64Array(n.size);
        for (let i = 0; i < n.size; i++) out[i] = philox4x32(i, a.ctr, 0, 0, a.key[0], a.key[1])[a.word]!;
      } else if (n.op === 'iota') {
        out = new Float64Array(n.size);
        for (let i = 0; i < n.size; i++) out[i] = i;
      } else throw new Error(`kiln internal error: unknown leaf '${n.op}'`);
      break;
    case 'elementwise': {
      const def = elementwiseDef(n.op);
      const ctx = { inDtypes: n.src.map((s) => s.dtype), outDtype: n.dtype, arg: n.arg };
      out = new Float64Array(n.size);
      const xs = new Array<number>(srcs.length);
      const exact = isFloat(n.dtype);
      for (let i = 0; i < n.size; i++) {
        for (let j = 0; j < srcs.length; j++) xs[j] = srcs[j]![i]!;
        const r = def.ref(xs, ctx);
        out[i] = exact ? r : coerce(r, n.dtype);
      }
      break;
    }
    case 'movement': out = movement(n, srcs[0]!); break;
    case 'reduce': out = reduce(n, srcs[0]!); break;
    case 'matmul': out = matmul(n, srcs[0]!, srcs[1]!); break;
    case 'gather': out = gather(n, srcs[0]!, srcs[1]!); break;
    case 'contiguous': out = srcs[0]!; break;
  }
  memo.set(n, out);
  return out;
}

/** Realizes CPU-reference nodes in float64. */
export function realizeReference(targets: LazyNode[]): void {
  const memo = new Map<LazyNode, Float64Array>();
  for (const t of targets) {
    if (t.realized) continue;
    const v = evalNode(t, memo);
    t.becomeBuffer({ host: v === t.host ? v : v });
  }
}
