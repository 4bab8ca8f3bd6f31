/**
 * The normalization that GroupNorm and LayerNorm share: standardize x over the last axis of a view of it
 * ([N, groups, C/groups·H·W], or [rows, normalized elements]), then scale and shift by per-channel or
 * per-element parameters. Statistics take one pass over shifted data; with gradients, the whole is recorded
 * as one step that saves its statistics, with the analytic backward (PyTorch's native_group_norm and
 * native_layer_norm do the same).
 */
import { isGradEnabled, withGradMode } from '../tensor/index.js';
import { autocastDtype, propagate, record, withAutocastDtype } from '../tensor/tape.js';
import type { OpDef } from '../tensor/ops/registry.js';
import { scope } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { inDtypeOf, toAutocast } from '../tensor/autocast.js';
import type { Tensor } from '../tensor/index.js';

/** How a normalization sees x and its parameters. */
export interface NormLayout {
  /** The op's name (in the tape). */
  name: string;
  /** The view of x whose last axis is standardized. */
  view: number[];
  /** The shape the weight and bias take to broadcast against x. */
  paramShape: number[];
  /** The axes of x their gradients sum over. */
  paramAxes: number[];
}

/**
 * Standardizes x over the last axis of `layout.view` (biased variance), then scales by `weight` and shifts by
 * `bias` (either may be absent). x keeps its dtype (autocast: the parameters are cast to it).
 */
export function standardize(x: Tensor, layout: NormLayout, weight: Tensor | null | undefined, bias: Tensor | null | undefined, eps: number): Tensor {
  const want = layout.paramShape.reduce((a, d) => a * d, 1);
  for (const [what, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p && p.size !== want) throw new Error(`${layout.name}: ${what} of shape ${fmt(p.shape)} does not fit input ${fmt(x.shape)}; expected ${want} elements, to broadcast as ${fmt(layout.paramShape)}`);
  }
  const params = [weight, bias].filter((t): t is Tensor => !!t);
  if (!isGradEnabled() || ![x, ...params].some((t) => t.requiresGrad)) return scope(() => standardizeWith(x, layout, weight, bias, eps).y);
  return scope(() => {
    const { y, mean, rstd } = withGradMode(false, () => standardizeWith(x, layout, weight, bias, eps));
    const precision = autocastDtype();
    const vjp = (gy: Tensor, saved: Tensor[], _out: Tensor, _arg: unknown, needs: boolean[]): (Tensor | null)[] => withAutocastDtype(precision, () => {
      const [xs, ...rest] = saved as [Tensor, ...Tensor[]];
      const w = weight ? rest[0]! : null, b = bias ? rest[weight ? 1 : 0]! : null;
      if (isGradEnabled()) {
        // differentiable gradients (createGraph): through the composite on the saved inputs themselves
        const inputs = [xs, ...(w ? [w] : []), ...(b ? [b] : [])];
        const owners = inputs.map((t) => t.gradOwner ?? t);
        const g = propagate(standardizeWith(xs, layout, w, b, eps).y, gy, { retainGraph: true, createGraph: true, wanted: owners });
        return [...owners.map((o, i) => (needs[i] ? g.get(o) ?? null : null)), null, null];
      }
      const [m, r] = saved.slice(-2) as [Tensor, Tensor];
      const g = standardizeBackward(xs.detach(), w?.detach() ?? null, b, m, r, gy, layout, { x: needs[0]!, weight: !!w && needs[1]!, bias: !!b && needs[w ? 2 : 1]! });
      return [g.x, ...(w ? [g.weight] : []), ...(b ? [g.bias] : []), null, null];
    });
    record({ def: { name: layout.name, vjp } as unknown as OpDef, inputs: [x, ...params, mean, rstd], out: y, arg: null });
    return y;
  });
}

/** The composite normalization: y, and the statistics it used, mean and 1/√(var + eps) (the view, last axis 1). */
function standardizeWith(x: Tensor, layout: NormLayout, weight: Tensor | null | undefined, bias: Tensor | null | undefined, eps: number): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const v = x.reshape(layout.view);
  const { mean, rstd } = shiftedMoments(v, v.rank - 1, eps);
  let y = inDtypeOf(x, v.sub(mean).mul(rstd).reshape(x.shape));
  if (weight) y = y.mul(toAutocast(weight).reshape(layout.paramShape));
  if (bias) y = y.add(toAutocast(bias).reshape(layout.paramShape));
  return { y, mean, rstd };
}

/**
 * Mean and 1/√(var + eps) of x over `axis` (kept, size 1; f32) in one pass: the sums of d and d² for d = x − K,
 * K the first element along the axis, run as one reduction kernel. The shift keeps E[d²] − E[d]² accurate
 * when |mean| ≫ σ, where the plain sums of x and x² would cancel (Welford's and Chan's shifted-data
 * algorithms rely on the same); the variance is clamped at 0 against rounding.
 */
function shiftedMoments(x: Tensor, axis: number, eps: number): { mean: Tensor; rstd: Tensor } {
  // in f32 for an f16 x: the sum of d may exceed f16's range where the mean does not
  const wide = x.dtype === 'f16' ? x.cast('f32') : x;
  const shift = wide.narrow(axis, 0, 1);
  const d = wide.sub(shift);
  const avg = (t: Tensor) => t.mean(axis, { keepDim: true });
  // E[d] twice, as two nodes: each is then the core of the kernel storing what follows from it (the mean, and
  // the variance's correction), so the mean is not a kernel of its own
  const m1 = avg(d);
  return { mean: shift.add(avg(d)), rstd: avg(d.mul(d)).sub(m1.mul(m1)).relu().add(eps).rsqrt() };
}

/**
 * The gradients of a normalization (x, weight and bias, where `want` says; each in its tensor's dtype) from
 * its saved statistics: with x̂ = (x − mean)·rstd and g = gy·weight, dx = rstd·(g − mean(g) − x̂·mean(g·x̂))
 * over the normalized axis, whose two means read the same tensors and so run as one reduction kernel;
 * dweight = Σ gy·x̂ and dbias = Σ gy over `paramAxes`.
 */
function standardizeBackward(x: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, rstd: Tensor, gy: Tensor, layout: NormLayout, want: { x: boolean; weight: boolean; bias: boolean }): Record<'x' | 'weight' | 'bias', Tensor | null> {
  const axis = layout.view.length - 1;
  const xhat = x.reshape(layout.view).sub(mean).mul(rstd);
  let gx: Tensor | null = null;
  if (want.x) {
    const g = (weight ? gy.mul(toAutocast(weight).reshape(layout.paramShape)) : gy).reshape(layout.view);
    const s1 = g.mean(axis, { keepDim: true }), s2 = g.mul(xhat).mean(axis, { keepDim: true });
    gx = g.sub(s1).sub(xhat.mul(s2)).mul(rstd).reshape(x.shape);
    if (gx.dtype !== x.dtype) gx = gx.cast(x.dtype);
  }
  const perParam = (t: Tensor, like: Tensor) => (layout.paramAxes.length ? t.sum(layout.paramAxes) : t).reshape(like.shape).cast(like.dtype);
  return {
    x: gx,
    weight: want.weight && weight ? perParam(gy.mul(xhat.reshape(x.shape)), weight) : null,
    bias: want.bias && bias ? perParam(gy, bias) : null,
  };
}
