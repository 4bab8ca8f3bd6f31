/**
 * The kernel cores: reductions (sum, max) and the batched matrix product. Each becomes the core of a kernel
 * template whose elementwise consumer fuses in as the epilogue; the reduction's input is fused into its loop
 * body, the matmul's operands are read as strided views of stored buffers.
 */
import type { LazyNode } from '../node.js';
import { contiguousStrides, contiguousView, numel, type FactoredView } from '../shape.js';
import * as ir from '../../wgsl/ir.js';
import type { MatmulOperand } from '../../wgsl/kernels.js';
import { opDef, register, type CoreDef, type MovementDef } from './registry.js';
import { coordsOf, ravel, unravel, vt, type Index, type Lowering } from './lowering.js';

/** Argument of a reduction: the combiner and the (sorted) reduced axes, kept as size 1. */
export interface ReduceArg {
  op: 'sum' | 'max';
  axes: number[];
}

register<CoreDef>({
  kind: 'reduce',
  name: 'reduce',
  cost: Infinity,
  operands: () => [],
  accType: (n) => vt(n.dtype) as 'f32' | 'i32' | 'u32' | 'bool',
  kernel(n, lo, epilogue) {
    const { op, axes } = n.arg as ReduceArg;
    const src = n.src[0]!;
    const inShape = src.shape;
    const redShape = axes.map((a) => inShape[a]!);
    const R = numel(redShape);
    const o = ir.v('o', 'u32', n.size);
    const r = ir.v('r', 'u32', R);
    const trailing = axes.every((a, i) => a === inShape.length - axes.length + i);
    let idx: Index;
    if (trailing) idx = { flat: ir.add(ir.mul(o, ir.int(R)), r), shape: inShape };
    else {
      const oc = coordsOf({ flat: o, shape: n.shape });
      const rc = coordsOf({ flat: r, shape: redShape });
      idx = { coords: inShape.map((_, i) => (axes.includes(i) ? rc[axes.indexOf(i)]! : oc[i]!)), shape: inShape };
    }
    const body = lo.value(src, idx);
    return { kind: 'reduce', op, outSize: n.size, redSize: R, accType: vt(n.dtype), body, epilogue };
  },
  reference(n, [x]) {
    const { op, axes } = n.arg as ReduceArg;
    const src = n.src[0]!;
    const out = new Float64Array(n.size).fill(op === 'sum' ? 0 : -Infinity);
    const ost = contiguousStrides(n.shape);
    const c = new Array<number>(src.shape.length).fill(0);
    for (let i = 0; i < x!.length; i++) {
      unravel(i, src.shape, c);
      for (const a of axes) c[a] = 0;
      const o = ravel(c, ost);
      const v = x![i]!;
      if (op === 'sum') out[o] += v;
      else if (Number.isNaN(v) || Number.isNaN(out[o]!)) out[o] = NaN;
      else if (v > out[o]!) out[o] = v;
    }
    return out;
  },
  vjp(g, [x], out, { op, axes }: ReduceArg) {
    if (op === 'sum') return [g.expand(x!.shape)];
    // max: split evenly among the tied maxima
    const hit = x!.eq(out).cast(g.dtype);
    return [hit.mul(g.div(hit.sum(axes, { keepDim: true })))];
  },
});

/**
 * A node as a factored view of a stored (or to-be-stored) base: the longest chain of movement ops above
 * it that views can express. A pad in the chain makes the padded node the base.
 */
export function factoredView(n: LazyNode): { base: LazyNode; view: FactoredView } {
  const chain: LazyNode[] = [];
  let base = n;
  while (base.kind === 'movement' && !base.realized) {
    chain.push(base);
    base = base.src[0]!;
  }
  let view = contiguousView(base.shape);
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i]!;
    const next = (opDef(node.op) as MovementDef).view(view, node.src[0]!.shape, node.arg);
    if (next) view = next;
    else {
      base = node;
      view = contiguousView(node.shape);
    }
  }
  return { base, view };
}

/** How a matmul reads an operand: batch axes need one stride each, else the operand itself is stored. */
function operandView(x: LazyNode): { base: LazyNode; view: FactoredView } {
  const fv = factoredView(x);
  const r = x.shape.length;
  return fv.view.axes.slice(0, r - 2).some((a) => a.length > 1) ? { base: x, view: contiguousView(x.shape) } : fv;
}

function operand(x: LazyNode, lo: Lowering): MatmulOperand {
  const { base, view } = operandView(x);
  const r = x.shape.length;
  return {
    slot: lo.slot(base),
    offset: view.offset,
    batchStrides: view.axes.slice(0, r - 2).map((a) => a[0]?.[1] ?? 0),
    rows: view.axes[r - 2]!,
    cols: view.axes[r - 1]!,
  };
}

register<CoreDef>({
  kind: 'matmul',
  name: 'matmul',
  cost: Infinity,
  operands: (n) => n.src.map((x) => operandView(x).base),
  accType: () => 'f32',
  kernel(n, lo, epilogue) {
    const [A, B] = n.src as [LazyNode, LazyNode];
    const M = A.shape[A.shape.length - 2]!;
    const K = A.shape[A.shape.length - 1]!;
    const N = B.shape[B.shape.length - 1]!;
    return { kind: 'matmul', batchShape: n.shape.slice(0, -2), M, N, K, a: operand(A, lo), b: operand(B, lo), epilogue };
  },
  reference(n, [a, b]) {
    const [A, B] = n.src as [LazyNode, LazyNode];
    const M = A.shape[A.shape.length - 2]!, K = A.shape[A.shape.length - 1]!, N = B.shape[B.shape.length - 1]!;
    const batch = numel(n.shape.slice(0, -2));
    const out = new Float64Array(n.size);
    for (let bi = 0; bi < batch; bi++) {
      const ao = bi * M * K, bo = bi * K * N, oo = bi * M * N;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a![ao + i * K + k]! * b![bo + k * N + j]!;
          out[oo + i * N + j] = s;
        }
      }
    }
    return out;
  },
  vjp: (g, [a, b], _o, _arg, needs) => [needs[0] ? g.matmul(b!.mT) : null, needs[1] ? a!.mT.matmul(g) : null],
});
