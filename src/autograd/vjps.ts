/**
 * Vector-Jacobian products of every primitive, written with Tensor ops (so they are lazy, fuse, and can
 * be differentiated again). Composite ops (softmax, GELU, norms, losses…) need none: their gradients
 * come from these.
 *
 * Rules worth knowing: `max` reductions split the gradient evenly among tied maxima; `maximum`/`minimum`
 * give half to each side on ties; `abs`, `relu` (= maximum(x, 0)) and friends use a zero subgradient at 0
 * only through these rules; rounding, comparisons and random bits have zero gradient.
 */
import { elementwiseDef } from '../tensor/ops.js';
import type { MovementArg } from '../tensor/node.js';
import { Tensor, where, zerosLike } from '../tensor/tensor.js';
import type { Step } from './tape.js';

/** A VJP: output gradient, saved inputs, saved output, static argument, which inputs need a gradient. */
export type Vjp = (g: Tensor, x: Tensor[], out: Tensor, arg: unknown, needs: boolean[]) => (Tensor | null)[];

const ew = new Map<string, Vjp>();
const def = (name: string, f: Vjp) => {
  ew.set(name, f);
  elementwiseDef(name).vjp = f;
};

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

def('add', (g) => [g, g]);
def('sub', (g) => [g, g.neg()]);
def('mul', (g, [a, b]) => [g.mul(b!), g.mul(a!)]);
def('div', (g, [a, b], _o, _arg, needs) => [g.div(b!), needs[1] ? g.mul(a!).div(b!.mul(b!)).neg() : null]);
def('pow', (g, [a, b], out, _arg, needs) => [
  needs[0] ? g.mul(b!).mul(a!.pow(b!.sub(1))) : null,
  needs[1] ? where(a!.gt(0), g.mul(out).mul(a!.log()), 0) : null,
]);
const tieSplit = (x: Tensor, y: Tensor) => where(x.gt(y), 1, where(x.eq(y), 0.5, 0));
def('maximum', (g, [a, b]) => [g.mul(tieSplit(a!, b!)), g.mul(tieSplit(b!, a!))]);
def('minimum', (g, [a, b]) => [g.mul(tieSplit(b!, a!)), g.mul(tieSplit(a!, b!))]);
def('mod', (g, [a, b], _o, _arg, needs) => [g, needs[1] ? g.mul(a!.floorDiv(b!)).neg() : null]);
def('neg', (g) => [g.neg()]);
def('recip', (g, _x, out) => [g.mul(out.mul(out)).neg()]);
def('sqrt', (g, _x, out) => [g.div(out.mul(2))]);
def('exp', (g, _x, out) => [g.mul(out)]);
def('log', (g, [a]) => [g.div(a!)]);
def('log1p', (g, [a]) => [g.div(a!.add(1))]);
def('expm1', (g, _x, out) => [g.mul(out.add(1))]);
def('sin', (g, [a]) => [g.mul(a!.cos())]);
def('cos', (g, [a]) => [g.mul(a!.sin()).neg()]);
def('tanh', (g, _x, out) => [g.mul(out.mul(out).neg().add(1))]);
def('sigmoid', (g, _x, out) => [g.mul(out).mul(out.neg().add(1))]);
def('erf', (g, [a]) => [g.mul(a!.mul(a!).neg().exp().mul(TWO_OVER_SQRT_PI))]);
def('abs', (g, [a]) => [g.mul(a!.sign())]);
def('relu', (g, [a]) => [where(a!.gt(0), g, 0)]);
def('where', (g, [c]) => [null, where(c!, g, 0), where(c!, 0, g)]);
def('cast', (g, [a]) => [g.cast(a!.dtype)]);
for (const name of ['sign', 'floor', 'ceil', 'round', 'trunc', 'floordiv', 'lt', 'le', 'eq', 'ne', 'logical_and', 'logical_or', 'logical_xor', 'logical_not', 'isnan', 'uniform_bits', 'normal_bits']) {
  def(name, (_g, x) => x.map(() => null));
}

function movementVjp(g: Tensor, x: Tensor, m: MovementArg): Tensor {
  switch (m.op) {
    case 'reshape': return g.reshape(x.shape);
    case 'permute': {
      const inv = new Array<number>(m.perm.length);
      m.perm.forEach((p, i) => (inv[p] = i));
      return g.permute(inv);
    }
    case 'expand': {
      const axes = x.shape.flatMap((d, i) => (d === 1 && m.shape[i] !== 1 ? [i] : []));
      return axes.length ? g.sum(axes, { keepDim: true }) : g;
    }
    case 'pad': return g.pad(m.pads.map(([b, a]) => [-b, -a] as [number, number]));
    case 'shrink': return g.pad(m.ranges.map(([s, e], i) => [s, x.shape[i]! - e] as [number, number]));
    case 'flip': return g.flip(m.axes);
    case 'unfold': {
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
    }
  }
}

/** The VJP of a recorded step. */
export function vjpOf(step: Step): Vjp {
  switch (step.kind) {
    case 'elementwise': {
      const f = ew.get(step.op) ?? elementwiseDef(step.op).vjp;
      if (!f) throw new Error(`backward: op '${step.op}' has no gradient (define a vjp for it with defineOp)`);
      return f as Vjp;
    }
    case 'movement': return (g, [x]) => [movementVjp(g, x!, step.arg as MovementArg)];
    case 'contiguous': return (g) => [g];
    case 'reduce': {
      const { op, axes } = step.arg as { op: 'sum' | 'max'; axes: number[] };
      if (op === 'sum') return (g, [x]) => [g.expand(x!.shape)];
      // max: split evenly among the tied maxima
      return (g, [x], out) => {
        const hit = x!.eq(out).cast(g.dtype);
        return [hit.mul(g.div(hit.sum(axes, { keepDim: true })))];
      };
    }
    case 'matmul': return (g, [a, b], _o, _arg, needs) => [needs[0] ? g.matmul(b!.mT) : null, needs[1] ? a!.mT.matmul(g) : null];
    case 'gather': return (g, [x, index]) => [zerosLike(x!).scatterAdd(step.arg as number, index!, g), null];
    case 'leaf': return () => [];
  }
}
