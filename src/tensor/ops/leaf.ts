/**
 * Leaves and index ops: constants, random bits, iota and stored buffers (no sources); `gather` (reads its
 * input at positions taken from an index tensor); and `contiguous` (the identity, always stored).
 */
import { coerce, isFloat } from '../dtype.js';
import type { LazyNode } from '../node.js';
import { contiguousStrides } from '../shape.js';
import * as ir from '../../wgsl/ir.js';
import type { Expr } from '../../wgsl/ir.js';
import { philox4x32, PHILOX_WGSL } from '../../wgsl/rng.js';
import { register, type IndexedDef } from './registry.js';
import { coordsOf, flatOf, ravel, unravel, vt } from './lowering.js';
import { unchecked } from '../checks.js';

/** Argument of a random-bits leaf: the Philox key, the counter of the draw, and which output word. */
export interface RngArg {
  key: [number, number];
  ctr: number;
  word: number;
}

const leaf = (def: Omit<IndexedDef, 'kind' | 'sameIndex'>) => register<IndexedDef>({ kind: 'leaf', sameIndex: [], ...def });

/** Cost estimate of one Philox evaluation. */
const RNG_COST = 6;

leaf({
  name: 'buffer',
  cost: 0,
  lower: (n, idx, lo) => lo.load(n, idx),
  reference: (n) => {
    if (!n.host) throw new Error('kiln: a reference (cpu) computation reached a tensor stored on the GPU; create both on the same device');
    return n.host;
  },
});

leaf({
  name: 'const',
  cost: 0,
  params: (n) => [n.arg as number],
  lower: (n, _idx, lo) => lo.param(n, 0, n.dtype),
  reference: (n) => new Float64Array(n.size).fill(isFloat(n.dtype) ? (n.arg as number) : coerce(n.arg as number, n.dtype)),
});

leaf({
  name: 'rng',
  cost: RNG_COST,
  params: (n) => {
    const a = n.arg as RngArg;
    return [a.key[0], a.key[1], a.ctr];
  },
  structure: (n) => String((n.arg as RngArg).word),
  lower: (n, idx, lo) => {
    lo.helper(PHILOX_WGSL);
    const a = n.arg as RngArg;
    const [k0, k1, ctr] = [0, 1, 2].map((i) => lo.param(n, i, 'u32')) as [Expr, Expr, Expr];
    const words = ir.call('philox', (x) => `kiln_philox(vec4<u32>(${x[0]}, ${x[1]}, 0u, 0u), vec2<u32>(${x[2]}, ${x[3]}))`, [flatOf(idx), ctr, k0, k1], 'vec4u');
    return ir.call(`word${a.word}`, (x) => `${x[0]}.${'xyzw'[a.word]}`, [words], 'u32');
  },
  reference: (n) => {
    const a = n.arg as RngArg;
    const out = new Float64Array(n.size);
    for (let i = 0; i < n.size; i++) out[i] = philox4x32(i, a.ctr, 0, 0, a.key[0], a.key[1])[a.word]!;
    return out;
  },
});

leaf({
  name: 'iota',
  cost: 0,
  lower: (n, idx) => {
    const f = flatOf(idx);
    return n.dtype === 'u32' ? f : ir.call(`to_${n.dtype}`, (x) => `${vt(n.dtype)}(${x[0]})`, [f], vt(n.dtype));
  },
  reference: (n) => Float64Array.from({ length: n.size }, (_, i) => i),
});

/**
 * out[…i…] = x[…index[…i…]…] along `arg` (negative indices count from the end). `Tensor.gather` and the ops
 * built on it reject out-of-range indices (../checks.ts); the kernel clamps them into range, so an index a
 * device-side check will report still reads inside the buffer.
 */
register<IndexedDef>({
  kind: 'gather',
  name: 'gather',
  cost: 2,
  sameIndex: [false, true],
  lower: (n, idx, lo) => {
    const [x, index] = n.src as [LazyNode, LazyNode];
    const axis = n.arg as number;
    const c = coordsOf(idx).slice();
    const size = x.shape[axis]!;
    // in i32, then to an index
    const raw = lo.value(index, idx);
    c[axis] = ir.call(`gidx${size}`, (x) => `u32(clamp(select(${x[0]}, ${x[0]} + ${size}, ${x[0]} < 0), 0, ${Math.max(size - 1, 0)}))`, [raw], 'u32');
    return lo.value(x, { coords: c, shape: x.shape });
  },
  reference: (n, [x, index]) => {
    const X = n.src[0]!;
    const axis = n.arg as number;
    const st = contiguousStrides(X.shape);
    const size = X.shape[axis]!;
    const c = new Array<number>(n.shape.length).fill(0);
    const out = new Float64Array(n.size);
    for (let i = 0; i < n.size; i++) {
      unravel(i, n.shape, c);
      let j = index![i]!;
      if (j < 0) j += size;
      c[axis] = Math.min(Math.max(j, 0), size - 1);
      out[i] = x![ravel(c, st)]!;
    }
    return out;
  },
  // the forward op checked the indices
  vjp: (g, [x, index], _out, axis: number) => [unchecked(() => x!.newZeros(x!.shape).scatterAdd(axis, index!, g)), null],
});

/** The identity, always stored in a buffer of its own (`Tensor.contiguous`). */
register<IndexedDef>({
  kind: 'contiguous',
  name: 'contiguous',
  cost: 0,
  sameIndex: [true],
  store: true,
  lower: (n, idx, lo) => lo.value(n.src[0]!, idx),
  reference: (_n, [x]) => x!,
  vjp: (g) => [g],
});
