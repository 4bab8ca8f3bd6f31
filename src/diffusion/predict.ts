/**
 * Model parameterizations and conversions: a model may predict ε, x0, v (VP only), the flow velocity
 * dx/dt (rectified flow) or the score; any sampler consumes the pair (x̂0, ε̂).
 */
import { scope } from '../tensor/memory.js';
import type { Tensor } from '../tensor/index.js';
import type { TimePoint } from './process.js';

/** What a model outputs. */
export type Prediction = 'eps' | 'x0' | 'v' | 'flow' | 'score';

/** The denoised estimate and the noise estimate at a point. */
export interface Denoised {
  x0: Tensor;
  eps: Tensor;
}

/** Converts a model output at point p into (x̂0, ε̂) using x = a·x0 + s·ε. */
export function toDenoised(out: Tensor, x: Tensor, p: TimePoint, prediction: Prediction): Denoised {
  const { a, s } = p;
  return scope(() => {
    switch (prediction) {
      case 'eps': {
        if (a === 0) throw new Error('toDenoised: ε-prediction cannot recover x0 where a(t) = 0 (pure noise); use a flow or x0 model');
        return { x0: x.sub(out.mul(s)).div(a), eps: out };
      }
      case 'x0': {
        if (s === 0) return { x0: out, eps: out.mul(0) };
        return { x0: out, eps: x.sub(out.mul(a)).div(s) };
      }
      case 'v': {
        // v = a·ε − s·x0 with a² + s² = 1: x0 = a·x − s·v, ε = s·x + a·v
        if (Math.abs(a * a + s * s - 1) > 1e-6) throw new Error(`toDenoised: v-prediction needs a variance-preserving process (a² + s² = 1), got a=${a}, s=${s}`);
        return { x0: x.mul(a).sub(out.mul(s)), eps: x.mul(s).add(out.mul(a)) };
      }
      case 'flow': {
        // rectified flow: a = 1 − t, s = t, u = dx/dt = ε − x0 → x0 = x − t·u, ε = x + (1 − t)·u
        if (Math.abs(a + s - 1) > 1e-9) throw new Error(`toDenoised: flow prediction needs a rectified-flow process (a + s = 1), got a=${a}, s=${s}`);
        return { x0: x.sub(out.mul(s)), eps: x.add(out.mul(a)) };
      }
      case 'score': {
        // score = −ε/s
        const eps = out.mul(-s);
        return { x0: x.sub(eps.mul(s)).div(a), eps };
      }
      default:
        throw new Error(`toDenoised: unknown prediction ${JSON.stringify(prediction)} (eps, x0, v, flow, score)`);
    }
  });
}

/** The training target of a parameterization for x_t = a·x0 + s·ε. */
export function target(prediction: Prediction, x0: Tensor, eps: Tensor, p: TimePoint): Tensor {
  return scope(() => {
    switch (prediction) {
      case 'eps': return eps.contiguousView();
      case 'x0': return x0.contiguousView();
      case 'v': return eps.mul(p.a).sub(x0.mul(p.s));
      case 'flow': return eps.sub(x0);
      case 'score': return eps.mul(-1 / p.s);
      default: throw new Error(`target: unknown prediction ${JSON.stringify(prediction)}`);
    }
  });
}
