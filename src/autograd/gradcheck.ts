/**
 * Gradient checking on the float64 CPU reference: analytic gradients from backward are compared with
 * central finite differences of a random projection of the output.
 */
import { scope } from '../tensor/memory.js';
import { tensor, Tensor, withDevice } from '../tensor/index.js';
import { philox4x32 } from '../wgsl/rng.js';
import { gradients } from './grad.js';

/** An input of `gradcheck`: shape and float64 values. */
export interface GradcheckInput {
  shape: number[];
  data: ArrayLike<number>;
  /** Leave this input out of the check (e.g. integer indices). */
  constant?: boolean;
  dtype?: 'f32' | 'i32';
}

/** The result of `gradcheck`. */
export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes. */
  worst: number;
  /** Where the worst mismatch was. */
  at: { input: number; index: number; analytic: number; numeric: number } | null;
  analytic: Float64Array[];
  numeric: Float64Array[];
}

/**
 * Checks the gradients of `fn` at `inputs` with central differences in float64 on the CPU reference.
 * A non-scalar output is reduced with a fixed random projection so no entry of the Jacobian hides.
 */
export async function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: GradcheckInput[], opts: { eps?: number; atol?: number; rtol?: number } = {}): Promise<GradcheckResult> {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  return withDevice('cpu', async () => {
    const make = (vals: ArrayLike<number>[], grad: boolean) =>
      inputs.map((inp, i) => tensor(Float64Array.from(vals[i]!), { shape: inp.shape, dtype: inp.dtype ?? 'f32', requiresGrad: grad && !inp.constant }));
    const base = inputs.map((i) => Float64Array.from(i.data));
    let proj: Float64Array | null = null;
    const objective = (xs: Tensor[]): Tensor => {
      const out = fn(...xs);
      if (!proj) {
        proj = new Float64Array(out.size);
        for (let i = 0; i < out.size; i++) proj[i] = ((philox4x32(i, 7, 0, 0, 1234, 0)[0] >>> 8) * 2 ** -24) + 0.5;
      }
      return out.mul(tensor(proj, { shape: out.shape, dtype: 'f32' })).sum();
    };
    const analytic = await scope(async () => {
      const xs = make(base, true);
      const loss = objective(xs);
      const wrt = xs.filter((_, i) => !inputs[i]!.constant);
      const gs = gradients(loss, wrt);
      return Promise.all(gs.map(async (g) => Float64Array.from(await g.data())));
    });
    const numeric: Float64Array[] = [];
    for (let i = 0; i < inputs.length; i++) {
      if (inputs[i]!.constant) continue;
      const n = base[i]!.length;
      const grad = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        const f = async (delta: number) => scope(async () => {
          const vals = base.map((b, bi) => (bi === i ? Float64Array.from(b, (v, k) => (k === j ? v + delta : v)) : b));
          return (await objective(make(vals, true)).item()); // inputs require grad: fn may differentiate internally
        });
        grad[j] = ((await f(eps)) - (await f(-eps))) / (2 * eps);
      }
      numeric.push(grad);
    }
    let worst = 0;
    let at: GradcheckResult['at'] = null;
    const idx = inputs.map((inp, i) => (inp.constant ? -1 : i)).filter((i) => i >= 0);
    numeric.forEach((num, k) => {
      const an = analytic[k]!;
      for (let j = 0; j < num.length; j++) {
        const r = Math.abs(an[j]! - num[j]!) / (atol + rtol * Math.abs(num[j]!));
        if (!(r <= worst)) {
          worst = Number.isNaN(r) ? Infinity : r;
          at = { input: idx[k]!, index: j, analytic: an[j]!, numeric: num[j]! };
        }
      }
    });
    return { ok: worst <= 1, worst, at, analytic, numeric };
  });
}
