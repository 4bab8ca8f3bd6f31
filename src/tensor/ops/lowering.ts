/**
 * What op definitions use to lower themselves and to compute their references: the index of an element
 * inside a kernel (flat or per-axis IR expressions), the lowering context a definition reads its sources
 * through, and the coordinate helpers of the float64 reference. The two sides share no index math, so the
 * conformance suite compares independent implementations.
 */
import type { DType } from '../dtype.js';
import { wgslType } from '../dtype.js';
import type { LazyNode } from '../node.js';
import { contiguousStrides, numel } from '../shape.js';
import * as ir from '../../wgsl/ir.js';
import type { Expr, VT } from '../../wgsl/ir.js';

/** An element position inside a kernel: a flat index, per-axis coordinates, or both, in `shape`. */
export interface Index {
  flat?: Expr;
  coords?: Expr[];
  shape: readonly number[];
}

/** The lowering context: how a definition reads its sources and declares what its fragment needs. */
export interface Lowering {
  /** The value of node `n` at `idx` (fused, or loaded when `n` is stored). */
  value(n: LazyNode, idx: Index): Expr;
  /** A stored buffer's element at `idx`. */
  load(n: LazyNode, idx: Index): Expr;
  /** Run-time scalar `i` of leaf `n` (its definition's `params(n)[i]`), read from the kernel's uniforms. */
  param(n: LazyNode, i: number, dt: DType): Expr;
  /** A WGSL helper declaration the kernel must contain. */
  helper(code: string): void;
  /** The kernel's binding slot of a stored node. */
  slot(n: LazyNode): number;
}

/** The IR value type of a dtype. */
export const vt = (dt: DType): VT => wgslType(dt) as VT;

/** The flat index of a position. */
export function flatOf(idx: Index): Expr {
  if (idx.flat) return idx.flat;
  const st = contiguousStrides(idx.shape);
  let e: Expr = ir.int(0);
  idx.coords!.forEach((c, i) => {
    if (idx.shape[i] !== 1) e = ir.add(e, ir.mul(c, ir.int(st[i]!)));
  });
  return e;
}

/** The per-axis coordinates of a position. */
export function coordsOf(idx: Index): Expr[] {
  if (idx.coords) return idx.coords;
  const st = contiguousStrides(idx.shape);
  const f = idx.flat!;
  return idx.shape.map((d, i) => {
    if (d === 1) return ir.int(0);
    const q = ir.div(f, st[i]!);
    return i === 0 ? q : ir.mod(q, d);
  });
}

// ---- float64 reference ----------------------------------------------------------------------------

/** Coordinates of flat index `i` in `shape` (written into `out`). */
export function unravel(i: number, shape: readonly number[], out: number[]): void {
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    out[d] = i % s;
    i = Math.floor(i / s);
  }
}

/** Flat index of coordinates under `strides`. */
export function ravel(c: readonly number[], strides: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < c.length; d++) i += c[d]! * strides[d]!;
  return i;
}

/** Output values where each element copies the source element at the coordinates `f` gives (null: `fill`). */
export function mapCoords(n: LazyNode, src: Float64Array, f: (c: number[]) => number[] | null, fill = 0): Float64Array {
  const srcShape = n.src[0]!.shape;
  const st = contiguousStrides(srcShape);
  const size = numel(n.shape);
  const out = new Float64Array(size);
  const c = new Array<number>(n.shape.length).fill(0);
  for (let i = 0; i < size; i++) {
    unravel(i, n.shape, c);
    const sc = f(c);
    out[i] = sc === null ? fill : src[ravel(sc, st)]!;
  }
  return out;
}
