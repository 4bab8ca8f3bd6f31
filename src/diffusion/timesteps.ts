/**
 * Sampling paths: timestep spacings for discrete models (leading / trailing / linspace, diffusers'
 * definitions), Karras and exponential σ sequences, and uniform grids for continuous processes. A path
 * lists every point including the final one, so a sampler always reads the next point from the
 * sequence and never re-derives it.
 */
import { DiscreteVP, EDM, RectifiedFlow, type NoiseProcess, type TimePoint } from './process.js';

/** diffusers' timestep spacings. */
export type Spacing = 'leading' | 'trailing' | 'linspace';

/** `n` timesteps out of `T` (descending), as diffusers computes them. */
export function spacedTimesteps(T: number, n: number, spacing: Spacing = 'trailing', offset = 0): number[] {
  if (!Number.isInteger(n) || n < 1 || n > T) throw new Error(`timesteps: need 1 ≤ steps ≤ ${T}, got ${n}`);
  switch (spacing) {
    case 'leading': {
      const ratio = Math.floor(T / n);
      return Array.from({ length: n }, (_, i) => i * ratio + offset).reverse();
    }
    case 'trailing': {
      const ratio = T / n;
      const out: number[] = [];
      for (let t = T; t > 0 && out.length < n; t -= ratio) out.push(Math.round(t) - 1);
      return out;
    }
    case 'linspace':
      return Array.from({ length: n }, (_, i) => Math.round(((T - 1) * i) / Math.max(n - 1, 1))).reverse();
    default:
      throw new Error(`timesteps: unknown spacing ${JSON.stringify(spacing)} (leading, trailing, linspace)`);
  }
}

/** Karras et al. σ sequence (ρ = 7 by default), descending, without the final 0. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  const a = sigmaMax ** (1 / rho), b = sigmaMin ** (1 / rho);
  return Array.from({ length: n }, (_, i) => (a + (i / Math.max(n - 1, 1)) * (b - a)) ** rho);
}

/** σ evenly spaced in log σ, descending, without the final 0. */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.exp(Math.log(sigmaMax) + (i / Math.max(n - 1, 1)) * (Math.log(sigmaMin) - Math.log(sigmaMax))));
}

/** σ = s/a of a discrete VP model at each training timestep. */
export function discreteSigmas(p: DiscreteVP): Float64Array {
  return Float64Array.from(p.alphasCumprod, (ab) => Math.sqrt((1 - ab) / ab));
}

/** The (fractional) timestep where a discrete VP model has noise level σ (log-σ interpolation, as k-diffusion). */
export function timestepForSigma(p: DiscreteVP, sigma: number): number {
  const ls = Array.from(discreteSigmas(p), Math.log);
  const l = Math.log(sigma);
  if (l <= ls[0]!) return 0;
  if (l >= ls[ls.length - 1]!) return ls.length - 1;
  let lo = 0, hi = ls.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ls[mid]! <= l) lo = mid;
    else hi = mid;
  }
  return lo + (l - ls[lo]!) / (ls[hi]! - ls[lo]!);
}

/** Options of `samplingPath`. */
export interface PathOptions {
  steps: number;
  /** Discrete VP: timestep spacing (default 'trailing'), or a σ sequence. */
  spacing?: Spacing | 'karras' | 'exponential';
  /** diffusers' steps_offset for 'leading'. */
  offset?: number;
  /** Continuous VP/VE: the last time (score_sde samples down to ε = 1e-3). */
  eps?: number;
  /** Karras ρ. */
  rho?: number;
}

/**
 * The points a sampler visits, from the noisiest to the final one (clean data for discrete VP, EDM and
 * rectified flow; t = ε for continuous SDEs). `points.length === steps + 1`.
 */
export function samplingPath(process: NoiseProcess, opts: PathOptions): TimePoint[] {
  const n = opts.steps;
  if (!Number.isInteger(n) || n < 1) throw new Error(`samplingPath: steps must be a positive integer, got ${n}`);
  if (process instanceof DiscreteVP) {
    const spacing = opts.spacing ?? 'trailing';
    let ts: number[];
    if (spacing === 'karras' || spacing === 'exponential') {
      const sig = discreteSigmas(process);
      const seq = (spacing === 'karras' ? karrasSigmas : exponentialSigmas)(n, sig[0]!, sig[sig.length - 1]!, opts.rho);
      ts = seq.map((s) => timestepForSigma(process, s));
    } else ts = spacedTimesteps(process.T, n, spacing, opts.offset ?? 0);
    return [...ts.map((t) => process.at(t)), process.at(-1)];
  }
  if (process instanceof EDM) {
    return [...karrasSigmas(n, process.sigmaMin, process.sigmaMax, opts.rho ?? 7).map((s) => process.at(s)), { t: 0, a: 1, s: 0 }];
  }
  if (process instanceof RectifiedFlow) {
    return Array.from({ length: n + 1 }, (_, i) => process.at(process.shifted(1 - i / n)));
  }
  const eps = opts.eps ?? 1e-3;
  return Array.from({ length: n + 1 }, (_, i) => process.at(1 - (i / n) * (1 - eps)));
}
