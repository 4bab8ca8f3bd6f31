/**
 * Movement primitives (views): reshape, permute, expand, pad, shrink, flip and unfold. Each maps an output
 * position to a source position; none copies. For each: the output shape, the lowering (index math in the
 * kernel IR), the same view on a factored strided view (so matmuls read windows and transposes in place),
 * the float64 reference (coordinates on the host) and the VJP.
 */
import type { Tensor } from '../tensor.js';
import type { LazyNode } from '../node.js';
import { numel, reshapeFactored, simplifyAtoms as simplify, type Atom, type FactoredView, type Shape } from '../shape.js';
import * as ir from '../../wgsl/ir.js';
import type { Expr } from '../../wgsl/ir.js';
import { register, type MovementDef } from './registry.js';
import { coordsOf, flatOf, mapCoords, vt, type Index, type Lowering } from './lowering.js';

/** Arguments of movement ops, by op name. */
export interface MovementArgs {
  reshape: { shape: number[] };
  permute: { perm: number[] };
  expand: { shape: number[] };
  pad: { pads: [number, number][]; value: number };
  shrink: { ranges: [number, number][] };
  flip: { axes: number[] };
  /** sliding windows along `axis`: that axis becomes the window count, a new last axis of `size` is added */
  unfold: { axis: number; size: number; step: number; dilation: number };
}

/** The name of a movement op. */
export type MovementOp = keyof MovementArgs;

/** One movement op's definition, with its argument type. */
type Spec<O extends MovementOp> = Omit<MovementDef<MovementArgs[O]>, 'kind' | 'name' | 'cost' | 'lower' | 'reference' | 'expands' | 'sameIndex' | 'vjp'> & {
  /** Source coordinates of output coordinates (IR); ops that index otherwise give `lower` instead. */
  source?: (c: Expr[], src: Shape, arg: MovementArgs[O]) => Expr[];
  /** The same on the host (null: outside the source, where the value is `fill`); or give `reference`. */
  sourceRef?: (c: number[], src: Shape, arg: MovementArgs[O]) => number[] | null;
  /** The value outside the source (pad). */
  fill?: (arg: MovementArgs[O]) => number;
  vjp: (g: Tensor, x: Tensor, arg: MovementArgs[O]) => Tensor;
  expands?: (src: Shape, arg: MovementArgs[O]) => boolean;
  lower?: MovementDef['lower'];
  reference?: MovementDef['reference'];
  sameIndex?: boolean;
};

function defineMovement<O extends MovementOp>(name: O, spec: Spec<O>): MovementDef<MovementArgs[O]> {
  return register<MovementDef<MovementArgs[O]>>({
    kind: 'movement',
    name,
    cost: 0,
    shape: spec.shape,
    view: spec.view,
    expands: spec.expands ?? (() => false),
    sameIndex: spec.sameIndex ?? false,
    lower: spec.lower ?? ((n: LazyNode, idx: Index, lo: Lowering) => {
      const src = n.src[0]!;
      return lo.value(src, { coords: spec.source!(coordsOf(idx), src.shape, n.arg as MovementArgs[O]), shape: src.shape });
    }),
    reference: spec.reference ?? ((n, [x]) => {
      const arg = n.arg as MovementArgs[O];
      return mapCoords(n, x!, (c) => spec.sourceRef!(c, n.src[0]!.shape, arg), spec.fill?.(arg));
    }),
    vjp: (g, [x], _out, arg) => [spec.vjp(g, x!, arg)],
  });
}

/** An axis of a factored view that is a single strided run (undefined: size 1; null: several atoms). */
const single = (v: FactoredView, a: number): Atom | null | undefined => (v.axes[a]!.length <= 1 ? v.axes[a]![0] : null);

/** A view taking [lo, hi) of each axis, reversed on the flipped ones; null when an axis is not a single run. */
function cropView(v: FactoredView, src: Shape, ranges: readonly (readonly [number, number])[], flipped: readonly number[]): FactoredView | null {
  let offset = v.offset;
  const axes: Atom[][] = [];
  for (let i = 0; i < v.axes.length; i++) {
    const [lo, hi] = ranges[i]!;
    const flip = flipped.includes(i);
    if (!flip && lo === 0 && hi === src[i]) { axes.push(v.axes[i]!); continue; }
    const atom = single(v, i);
    if (atom === null) return null;
    const s = atom ? atom[1] : 0;
    offset += lo * s;
    if (flip) offset += (hi - lo - 1) * s;
    axes.push(simplify([[hi - lo, flip ? -s : s]]));
  }
  return { axes, offset };
}

defineMovement('reshape', {
  shape: (_src, { shape }) => [...shape],
  // the flat index passes through unchanged
  lower: (n, idx, lo) => lo.value(n.src[0]!, { flat: flatOf(idx), shape: n.src[0]!.shape }),
  sameIndex: true,
  reference: (_n, [x]) => x!.slice(),
  view: (v, _src, { shape }) => reshapeFactored(v, shape),
  vjp: (g, x) => g.reshape(x.shape),
});

defineMovement('permute', {
  shape: (src, { perm }) => perm.map((a) => src[a]!),
  source: (c, _src, { perm }) => {
    const sc = new Array<Expr>(perm.length);
    perm.forEach((p, i) => (sc[p] = c[i]!));
    return sc;
  },
  sourceRef: (c, _src, { perm }) => {
    const sc = new Array<number>(perm.length);
    perm.forEach((p, i) => (sc[p] = c[i]!));
    return sc;
  },
  view: (v, _src, { perm }) => ({ axes: perm.map((p) => v.axes[p]!), offset: v.offset }),
  vjp: (g, _x, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return g.permute(inv);
  },
});

defineMovement('expand', {
  shape: (_src, { shape }) => [...shape],
  expands: (src, { shape }) => numel(shape) > numel(src),
  source: (c, src) => c.map((e, i) => (src[i] === 1 ? ir.int(0) : e)),
  sourceRef: (c, src) => c.map((v, i) => (src[i] === 1 ? 0 : v)),
  view: (v, _src, { shape }) => ({ axes: v.axes.map((atoms, i) => (shape[i] !== 1 && !atoms.length ? [[shape[i]!, 0] as Atom] : atoms)), offset: v.offset }),
  vjp: (g, x, { shape }) => {
    const axes = x.shape.flatMap((d, i) => (d === 1 && shape[i] !== 1 ? [i] : []));
    return axes.length ? g.sum(axes, { keepDim: true }) : g;
  },
});

defineMovement('shrink', {
  shape: (_src, { ranges }) => ranges.map(([a, b]) => b - a),
  source: (c, _src, { ranges }) => c.map((e, i) => ir.add(e, ir.int(ranges[i]![0]))),
  sourceRef: (c, _src, { ranges }) => c.map((v, i) => v + ranges[i]![0]),
  view: (v, src, { ranges }) => cropView(v, src, ranges, []),
  vjp: (g, x, { ranges }) => g.pad(ranges.map(([s, e], i) => [s, x.shape[i]! - e] as [number, number])),
});

defineMovement('flip', {
  shape: (src) => [...src],
  source: (c, src, { axes }) => c.map((e, i) => (axes.includes(i) ? ir.sub(ir.int(src[i]! - 1), e) : e)),
  sourceRef: (c, src, { axes }) => c.map((v, i) => (axes.includes(i) ? src[i]! - 1 - v : v)),
  view: (v, src, { axes }) => cropView(v, src, src.map((d) => [0, d] as const), axes),
  vjp: (g, _x, { axes }) => g.flip(axes),
});

defineMovement('pad', {
  shape: (src, { pads }) => src.map((d, i) => d + pads[i]![0] + pads[i]![1]),
  lower: (n, idx, lo) => {
    const src = n.src[0]!;
    const { pads, value } = n.arg as MovementArgs['pad'];
    let valid: Expr = ir.lit(true, 'bool');
    const sc = coordsOf(idx).map((e, i) => {
      const [before, after] = pads[i]!;
      if (before === 0 && after === 0) return e;
      // u32: a position before the data wraps to a huge value, so one comparison tests both ends
      const s = ir.sub(e, ir.int(before));
      const size = src.shape[i]!;
      valid = ir.and(valid, ir.lt(s, ir.int(size)));
      return ir.clampIdx(s, size);
    });
    const inner = lo.value(src, { coords: sc, shape: src.shape });
    return ir.select(ir.lit(value, vt(n.dtype)), inner, valid);
  },
  sourceRef: (c, src, { pads }) => {
    const sc = c.map((v, i) => v - pads[i]![0]);
    return sc.every((v, i) => v >= 0 && v < src[i]!) ? sc : null;
  },
  fill: ({ value }) => value,
  view: (v, _src, { pads }) => (pads.every(([a, b]) => a === 0 && b === 0) ? v : null),
  vjp: (g, _x, { pads }) => g.pad(pads.map(([b, a]) => [-b, -a] as [number, number])),
});

/** Number of windows of an unfold. */
const windows = (n: number, { size, step, dilation }: MovementArgs['unfold']) => Math.floor((n - dilation * (size - 1) - 1) / step) + 1;

defineMovement('unfold', {
  shape: (src, arg) => {
    const shape = [...src, arg.size];
    shape[arg.axis] = windows(src[arg.axis]!, arg);
    return shape;
  },
  source: (c, _src, { axis, step, dilation }) => {
    const sc = c.slice(0, -1);
    sc[axis] = ir.add(ir.mul(c[axis]!, ir.int(step)), ir.mul(c[c.length - 1]!, ir.int(dilation)));
    return sc;
  },
  sourceRef: (c, _src, { axis, step, dilation }) => {
    const sc = c.slice(0, -1);
    sc[axis] = c[axis]! * step + c[c.length - 1]! * dilation;
    return sc;
  },
  view: (v, src, arg) => {
    const atom = single(v, arg.axis);
    if (atom === null) return null;
    const s = atom ? atom[1] : 0;
    const axes = [...v.axes];
    axes[arg.axis] = simplify([[windows(src[arg.axis]!, arg), s * arg.step]]);
    axes.push(simplify([[arg.size, s * arg.dilation]]));
    return { axes, offset: v.offset };
  },
  vjp: (g, x, m) => {
    // each window element j scatters back to positions i·step + j·dilation: one strided, shifted pad per j
    const n = x.shape[m.axis]!, count = g.shape[m.axis]!, last = g.rank - 1;
    let dx: Tensor | null = null;
    for (let j = 0; j < m.size; j++) {
      let gj = g.narrow(last, j, 1).squeeze(last);
      if (m.step > 1) {
        const sh = [...gj.shape];
        sh.splice(m.axis, 1, count * m.step);
        const u = gj.unsqueeze(m.axis + 1);
        const gaps = u.shape.map((_, i) => (i === m.axis + 1 ? [0, m.step - 1] : [0, 0]) as [number, number]);
        gj = u.pad(gaps).reshape(sh).narrow(m.axis, 0, (count - 1) * m.step + 1);
      }
      const before = j * m.dilation;
      const placed = gj.pad(gj.shape.map((d, i) => (i === m.axis ? [before, n - before - d] : [0, 0]) as [number, number]));
      dx = dx ? dx.add(placed) : placed;
    }
    return dx!;
  },
});
