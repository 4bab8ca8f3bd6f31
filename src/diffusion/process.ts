/**
 * Noise processes, all written as x_t = a(t)·x0 + s(t)·z: discrete VP (DDPM β schedules), continuous
 * VP / sub-VP / VE SDEs, EDM (σ), and rectified flow. Scalars are float64 JS numbers; tensors are only
 * touched by the samplers and training helpers.
 */

/** One point of a sampling path: the model's time input and the process coefficients there. */
export interface TimePoint {
  /** What the model is conditioned on (discrete timestep, continuous t, or σ). */
  t: number;
  /** Signal scale a(t). */
  a: number;
  /** Noise scale s(t). */
  s: number;
}

/** A process x_t = a(t)·x0 + s(t)·z. */
export interface NoiseProcess {
  readonly kind: 'vp-discrete' | 'vp' | 'subvp' | 've' | 'edm' | 'flow';
  /** Coefficients at model time t. */
  at(t: number): TimePoint;
  /** True when a² + s² = 1 (variance preserving: v-prediction is defined). */
  readonly variancePreserving: boolean;
}

// ------------------------------------------------------------------------------------------------
// Discrete VP (DDPM)

/** β schedules of diffusers. */
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'cosine' | 'sigmoid';

/** Options of `DiscreteVP`. */
export interface DiscreteVPOptions {
  numTrainTimesteps?: number;
  betaStart?: number;
  betaEnd?: number;
  schedule?: BetaSchedule;
  /** Rescale so the last step has zero SNR (Lin et al. 2023). */
  rescaleZeroTerminalSnr?: boolean;
}

/** β_t for t = 0..T-1 (float64). */
export function betas(schedule: BetaSchedule, T: number, betaStart = 1e-4, betaEnd = 0.02): Float64Array {
  const out = new Float64Array(T);
  switch (schedule) {
    case 'linear':
      for (let i = 0; i < T; i++) out[i] = betaStart + ((betaEnd - betaStart) * i) / Math.max(T - 1, 1);
      break;
    case 'scaled_linear': {
      const a = Math.sqrt(betaStart), b = Math.sqrt(betaEnd);
      for (let i = 0; i < T; i++) out[i] = (a + ((b - a) * i) / Math.max(T - 1, 1)) ** 2;
      break;
    }
    case 'squaredcos_cap_v2':
    case 'cosine': {
      const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      for (let i = 0; i < T; i++) out[i] = Math.min(1 - f((i + 1) / T) / f(i / T), 0.999);
      break;
    }
    case 'sigmoid':
      for (let i = 0; i < T; i++) {
        const x = -6 + (12 * i) / Math.max(T - 1, 1);
        out[i] = (1 / (1 + Math.exp(-x))) * (betaEnd - betaStart) + betaStart;
      }
      break;
    default:
      throw new Error(`betas: unknown schedule ${JSON.stringify(schedule)} (linear, scaled_linear, squaredcos_cap_v2, sigmoid)`);
  }
  return out;
}

/** Cumulative products ᾱ_t = Π(1 − β). */
export function alphasCumprod(b: Float64Array): Float64Array {
  const out = new Float64Array(b.length);
  let p = 1;
  for (let i = 0; i < b.length; i++) out[i] = p *= 1 - b[i]!;
  return out;
}

/** Rescales ᾱ so the final SNR is exactly zero while keeping the first (Lin et al., "Common diffusion noise schedules are flawed"). */
export function rescaleZeroTerminalSnr(ac: Float64Array): Float64Array {
  const sq = Array.from(ac, Math.sqrt);
  const first = sq[0]!, last = sq[sq.length - 1]!;
  return Float64Array.from(sq, (v) => ((v - last) * first) / (first - last)).map((v) => v * v);
}

/** DDPM: discrete timesteps 0..T-1 with a β schedule; a = √ᾱ_t, s = √(1 − ᾱ_t). */
export class DiscreteVP implements NoiseProcess {
  readonly kind = 'vp-discrete';
  readonly variancePreserving = true;
  readonly T: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  constructor(opts: DiscreteVPOptions = {}) {
    this.T = opts.numTrainTimesteps ?? 1000;
    if (!Number.isInteger(this.T) || this.T < 1) throw new Error(`DiscreteVP: numTrainTimesteps must be a positive integer, got ${this.T}`);
    this.betas = betas(opts.schedule ?? 'linear', this.T, opts.betaStart ?? 1e-4, opts.betaEnd ?? 0.02);
    let ac = alphasCumprod(this.betas);
    if (opts.rescaleZeroTerminalSnr) {
      ac = rescaleZeroTerminalSnr(ac);
      this.betas = Float64Array.from(ac, (v, i) => 1 - v / (i ? ac[i - 1]! : 1));
    }
    this.alphasCumprod = ac;
  }
  /** ᾱ at a (possibly fractional) timestep, interpolated linearly; t = −1 means ᾱ = 1 (clean data). */
  alphaBar(t: number): number {
    if (t < 0) return 1;
    if (t > this.T - 1) throw new RangeError(`DiscreteVP: timestep ${t} is beyond ${this.T - 1}`);
    const i = Math.floor(t), f = t - i;
    const a0 = this.alphasCumprod[i]!;
    return f ? a0 + f * (this.alphasCumprod[Math.min(i + 1, this.T - 1)]! - a0) : a0;
  }
  at(t: number): TimePoint {
    const ab = this.alphaBar(t);
    return { t, a: Math.sqrt(ab), s: Math.sqrt(1 - ab) };
  }
}

// ------------------------------------------------------------------------------------------------
// Continuous SDEs (score_sde), t ∈ [0, 1]

/** Variance-preserving SDE with linear β(t) from βmin to βmax (score_sde defaults 0.1, 20). */
export class VPSDE implements NoiseProcess {
  readonly kind: 'vp' | 'subvp' = 'vp';
  readonly variancePreserving: boolean = true;
  constructor(readonly betaMin = 0.1, readonly betaMax = 20) {}
  /** β(t). */
  beta(t: number): number {
    return this.betaMin + t * (this.betaMax - this.betaMin);
  }
  /** log a(t) = −¼t²(βmax − βmin) − ½t·βmin. */
  logMean(t: number): number {
    return -0.25 * t * t * (this.betaMax - this.betaMin) - 0.5 * t * this.betaMin;
  }
  at(t: number): TimePoint {
    const a = Math.exp(this.logMean(t));
    return { t, a, s: Math.sqrt(-Math.expm1(2 * this.logMean(t))) };
  }
  /** Drift coefficient f(t) in dx = f(t)·x dt + g(t) dw. */
  driftCoef(t: number): number {
    return -0.5 * this.beta(t);
  }
  /** Diffusion g(t). */
  diffusion(t: number): number {
    return Math.sqrt(this.beta(t));
  }
}

/** Sub-VP SDE: same drift as VP, diffusion g² = β(t)(1 − e^{−2∫β}); s(t) = 1 − e^{−∫β}. */
export class SubVPSDE extends VPSDE {
  override readonly kind = 'subvp';
  override readonly variancePreserving = false;
  override at(t: number): TimePoint {
    const lm = this.logMean(t);
    return { t, a: Math.exp(lm), s: -Math.expm1(2 * lm) };
  }
  override diffusion(t: number): number {
    const integral = -2 * this.logMean(t); // ∫β
    return Math.sqrt(this.beta(t) * -Math.expm1(-2 * integral));
  }
}

/** Variance-exploding SDE: σ(t) = σmin·(σmax/σmin)^t, a = 1. */
export class VESDE implements NoiseProcess {
  readonly kind = 've';
  readonly variancePreserving = false;
  constructor(readonly sigmaMin = 0.01, readonly sigmaMax = 50) {}
  sigma(t: number): number {
    return this.sigmaMin * (this.sigmaMax / this.sigmaMin) ** t;
  }
  at(t: number): TimePoint {
    return { t, a: 1, s: this.sigma(t) };
  }
  driftCoef(): number {
    return 0;
  }
  diffusion(t: number): number {
    return this.sigma(t) * Math.sqrt(2 * Math.log(this.sigmaMax / this.sigmaMin));
  }
}

/** EDM (Karras et al.): the model time is σ itself; a = 1, s = σ. */
export class EDM implements NoiseProcess {
  readonly kind = 'edm';
  readonly variancePreserving = false;
  constructor(readonly sigmaMin = 0.002, readonly sigmaMax = 80, readonly sigmaData = 0.5) {}
  at(sigma: number): TimePoint {
    return { t: sigma, a: 1, s: sigma };
  }
  /** EDM preconditioning: c_skip, c_out, c_in, c_noise at σ. */
  precondition(sigma: number): { cSkip: number; cOut: number; cIn: number; cNoise: number } {
    const sd2 = this.sigmaData ** 2, s2 = sigma * sigma;
    return { cSkip: sd2 / (s2 + sd2), cOut: (sigma * this.sigmaData) / Math.sqrt(s2 + sd2), cIn: 1 / Math.sqrt(s2 + sd2), cNoise: Math.log(sigma) / 4 };
  }
}

/**
 * Rectified flow: x_t = (1 − t)·x0 + t·z. `shift` (SD3's resolution shift) maps t ↦ shift·t / (1 + (shift − 1)·t);
 * it is applied once, here, when building sampling points and training times — never again by a sampler.
 */
export class RectifiedFlow implements NoiseProcess {
  readonly kind = 'flow';
  readonly variancePreserving = false;
  constructor(readonly shift = 1) {
    if (!(shift > 0)) throw new Error(`RectifiedFlow: shift must be positive, got ${shift}`);
  }
  /** The shifted time. */
  shifted(t: number): number {
    return this.shift === 1 ? t : (this.shift * t) / (1 + (this.shift - 1) * t);
  }
  /** Coefficients at (already shifted) time t. */
  at(t: number): TimePoint {
    return { t, a: 1 - t, s: t };
  }
}
