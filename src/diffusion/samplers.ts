/**
 * Samplers. Every sampler walks a path of points (see `samplingPath`) and turns model outputs into
 * (x̂0, ε̂) first, so any sampler drives any parameterization. Coefficients are float64 JS numbers and
 * become uniforms, so each step's arithmetic fuses into one kernel without recompiling per step.
 * Randomness comes from kiln's seeded generator: a seed gives the same samples on every device.
 */
import { keep, scope } from '../tensor/memory.js';
import { cat, Generator, randn, realize, Tensor, where } from '../tensor/index.js';
import { noGrad } from '../tensor/index.js';
import { toDenoised, type Denoised, type Prediction } from './predict.js';
import { DiscreteVP, EDM, RectifiedFlow, VESDE, VPSDE, type NoiseProcess, type TimePoint } from './process.js';
import { samplingPath } from './timesteps.js';

/** A model: output for input x at model time t (the same t for the whole batch). */
export type Model = (x: Tensor, t: number) => Tensor;

/** The samplers. */
export type SamplerName =
  | 'ddpm' | 'ddim' | 'euler' | 'euler_ancestral' | 'heun' | 'dpmpp_2m' | 'dpmpp_2m_sde'
  | 'edm_heun' | 'flow_euler' | 'flow_heun' | 'sde_euler_maruyama' | 'pc_langevin' | 'pf_ode_rk45' | 'unipc';

/** Options of `sample`. */
export interface SampleOptions {
  model: Model;
  prediction: Prediction;
  process: NoiseProcess;
  /** Points from the noisiest to the last (`samplingPath`). */
  path: TimePoint[];
  /** Standard normal noise of the output shape (the start is s(t₀)·noise). */
  noise: Tensor;
  sampler: SamplerName;
  /** DDIM / DPM++ SDE stochasticity (DDIM default 0, DPM++ SDE default 1). */
  eta?: number;
  /** DDPM variance: 'fixed_small' (posterior, default) or 'fixed_large' (β). */
  variance?: 'fixed_small' | 'fixed_large';
  /** Clip x̂0 to [−clip, clip] (DDPM/DDIM `clip_sample`). */
  clip?: number;
  /** Dynamic thresholding (Imagen): per sample s = clamp(quantile(|x̂0|, ratio), 1, maxValue); x̂0 ← clamp(x̂0, −s, s)/s. */
  threshold?: { ratio?: number; maxValue?: number };
  /** EDM churn (Karras et al. Algorithm 2). */
  churn?: { sChurn: number; sTmin?: number; sTmax?: number; sNoise?: number };
  /** Predictor–corrector: Langevin signal-to-noise ratio (score_sde default 0.16) and corrector steps. */
  snr?: number;
  correctorSteps?: number;
  /** RK45 tolerances. */
  rtol?: number;
  atol?: number;
  /**
   * Where the sampler's noise comes from: a generator of its own (`generator`, or a new one seeded with
   * `seed`), so that samplers running at once give the same samples as run one after the other. Without
   * either, the global generator (`manualSeed`) is used.
   */
  generator?: Generator;
  seed?: number;
  /** Called after each step with the step index, the current x and the denoised estimate. */
  onStep?: (info: { step: number; total: number; x: Tensor; x0: Tensor }) => void | Promise<void>;
}

/** The result of a sampling run. */
export interface SampleResult {
  x: Tensor;
  /** Model evaluations. */
  nfe: number;
}

/** Evaluates the model at point p and converts its output (counting evaluations). */
class Denoiser {
  nfe = 0;
  constructor(private readonly model: Model, private readonly prediction: Prediction, private readonly clip?: number, private readonly threshold?: { ratio?: number; maxValue?: number }) {}
  at(x: Tensor, p: TimePoint): Denoised {
    this.nfe++;
    return scope(() => {
      const out = this.model(x, p.t);
      if (out.shape.join() !== x.shape.join()) throw new Error(`sample: the model returned shape [${out.shape}] for input [${x.shape}]`);
      const d = toDenoised(out, x, p, this.prediction);
      let x0: Tensor | null = null;
      if (this.threshold) x0 = dynamicThreshold(d.x0, this.threshold.ratio ?? 0.995, this.threshold.maxValue ?? 1);
      else if (this.clip !== undefined) x0 = d.x0.clamp(-this.clip, this.clip);
      if (x0) return { x0, eps: p.s === 0 ? d.eps : x.sub(x0.mul(p.a)).div(p.s) };
      return d;
    });
  }
}

/**
 * Imagen's dynamic thresholding without sorting: the per-sample quantile of |x̂0| is found by 24 bisection
 * steps on the fraction of elements below a threshold (all on the device, no readback).
 */
export function dynamicThreshold(x0: Tensor, ratio: number, maxValue: number): Tensor {
  return scope(() => {
    const axes = x0.shape.slice(1).map((_, i) => i + 1);
    const ax = x0.abs();
    let lo = ax.mul(0).sum(axes, { keepDim: true });
    let hi = ax.max(axes, { keepDim: true });
    for (let i = 0; i < 24; i++) {
      const mid = lo.add(hi).mul(0.5);
      const below = ax.le(mid).float().mean(axes, { keepDim: true }).lt(ratio);
      lo = where(below, mid, lo);
      hi = where(below, hi, mid);
    }
    const s = hi.clamp(1, maxValue);
    return x0.maximum(s.neg()).minimum(s).div(s);
  });
}

const sigmaOf = (p: TimePoint) => (p.a === 0 ? Infinity : p.s / p.a);

/** Runs a sampler along the path and returns the final sample (and the number of model evaluations). */
export async function sample(o: SampleOptions): Promise<SampleResult> {
  const path = o.path;
  if (path.length < 2) throw new Error('sample: the path needs at least 2 points (steps ≥ 1)');
  // a sampler that cannot drive the process fails here, naming the ones that can (not with NaN samples)
  const misfit = samplerMismatch(o.sampler, o.process, path[0]);
  if (misfit) throw new Error(`sample: ${misfit}; the samplers for ${o.process.constructor.name} are ${samplersFor(o.process).join(', ')}`);
  if (o.generator !== undefined && o.seed !== undefined) throw new Error('sample: give either `generator` or `seed`, not both');
  if (o.seed !== undefined) o = { ...o, generator: new Generator(o.seed) };
  const den = new Denoiser(o.model, o.prediction, o.clip, o.threshold);
  let x = keep(noGrad(() => o.noise.mul(path[0]!.s)));
  const replace = (next: Tensor) => {
    const k = keep(next);
    x.dispose();
    x = k;
  };
  if (o.sampler === 'pf_ode_rk45') return pfOdeRk45(o, den, x);
  if (o.sampler === 'unipc') return uniPc(o, den, x);
  let prevX0: Tensor | null = null;
  let prevH = 0;
  const total = path.length - 1;
  for (let i = 0; i < total; i++) {
    const c = path[i]!, n = path[i + 1]!;
    const step = noGrad(() => scope(() => {
      const r = stepOnce(o, den, x, c, n, i, prevX0, prevH);
      return { x: r.x, x0: keep(r.x0) };
    }));
    replace(step.x);
    // submit each step: the graph stays one step deep (the GPU still runs ahead of the host)
    await realize(x, ...(o.sampler === 'dpmpp_2m' || o.sampler === 'dpmpp_2m_sde' ? [step.x0] : []));
    const x0 = step.x0;
    if (o.onStep) await o.onStep({ step: i + 1, total, x, x0 });
    if (o.sampler === 'dpmpp_2m' || o.sampler === 'dpmpp_2m_sde') {
      prevX0?.dispose();
      prevX0 = x0;
      prevH = Math.log(sigmaOf(c)) - Math.log(sigmaOf(n));
    } else x0.dispose();
  }
  prevX0?.dispose();
  return { x, nfe: den.nfe };
}

function stepOnce(o: SampleOptions, den: Denoiser, x: Tensor, c: TimePoint, n: TimePoint, i: number, prevX0: Tensor | null, prevH: number): { x: Tensor; x0: Tensor } {
  const last = n.s === 0;
  switch (o.sampler) {
    case 'ddim':
    case 'ddpm':
    case 'euler':
    case 'euler_ancestral': {
      const { x0, eps } = den.at(x, c);
      // DDIM in x-space; η = 1 is DDPM's posterior (= Euler ancestral), η = 0 deterministic (= Euler in σ)
      const eta = o.sampler === 'ddim' ? o.eta ?? 0 : o.sampler === 'euler' ? 0 : 1;
      const sc = sigmaOf(c), sn = sigmaOf(n);
      let sigEta = last || !Number.isFinite(sc) ? 0 : eta * n.s * Math.sqrt(Math.max(0, 1 - (sn * sn) / (sc * sc)));
      let out = x0.mul(n.a).add(eps.mul(Math.sqrt(Math.max(0, n.s * n.s - sigEta * sigEta))));
      if (o.sampler === 'ddpm' && o.variance === 'fixed_large' && !last) sigEta = Math.sqrt(Math.max(0, 1 - (c.a * c.a) / (n.a * n.a)));
      if (sigEta > 0) out = out.add(randn(x.shape, { device: x.device, generator: o.generator }).mul(sigEta));
      return { x: out, x0 };
    }
    case 'heun':
    case 'edm_heun':
    case 'flow_heun': {
      let xc = x, pc = c;
      if (o.sampler === 'edm_heun' && o.churn && o.churn.sChurn > 0) {
        if (!(o.process instanceof EDM)) throw new Error('sample: churn needs the EDM process (its model time is σ)');
        const { sChurn, sTmin = 0, sTmax = Infinity, sNoise = 1 } = o.churn;
        const steps = o.path.length - 1;
        const gamma = c.s >= sTmin && c.s <= sTmax ? Math.min(sChurn / steps, Math.SQRT2 - 1) : 0;
        if (gamma > 0) {
          const sHat = c.s * (1 + gamma);
          xc = x.add(randn(x.shape, { device: x.device, generator: o.generator }).mul(Math.sqrt(sHat * sHat - c.s * c.s) * sNoise));
          pc = o.process.at(sHat);
        }
      }
      const d1 = den.at(xc, pc);
      if (o.sampler === 'flow_heun') {
        // velocity u = ε̂ − x̂0 in rectified-flow time
        const u1 = d1.eps.sub(d1.x0);
        const xe = xc.add(u1.mul(n.t - pc.t));
        if (last) return { x: xe, x0: d1.x0 };
        const d2 = den.at(xe, n);
        return { x: xc.add(u1.add(d2.eps.sub(d2.x0)).mul(0.5 * (n.t - pc.t))), x0: d1.x0 };
      }
      // σ-space: x̃ = x/a, dx̃/dσ = ε̂
      const sc = sigmaOf(pc), sn = sigmaOf(n);
      const xt = xc.div(pc.a);
      const xe = xt.add(d1.eps.mul(sn - sc));
      if (last) return { x: xe.mul(n.a), x0: d1.x0 };
      const d2 = den.at(xe.mul(n.a), n);
      return { x: xt.add(d1.eps.add(d2.eps).mul(0.5 * (sn - sc))).mul(n.a), x0: d1.x0 };
    }
    case 'dpmpp_2m': {
      const { x0 } = den.at(x, c);
      if (last) return { x: x0.mul(n.a), x0 };
      const sc = sigmaOf(c), sn = sigmaOf(n);
      const h = Math.log(sc) - Math.log(sn);
      let D = x0;
      // diffusers' lower_order_final: with fewer than 15 steps the step before the last is first order
      const lowerFinal = o.path.length - 1 < 15 && i === o.path.length - 3;
      if (prevX0 && Number.isFinite(sc) && i > 0 && !lowerFinal) {
        const r = prevH / h;
        D = x0.mul(1 + 1 / (2 * r)).sub(prevX0.mul(1 / (2 * r)));
      }
      // x̃_n = (σn/σc)·x̃_c − expm1(−h)·D with x̃ = x/a, written as x_n = (s_n/s_c)·x − a_n·expm1(−h)·D so that
      // a start at pure noise (a_c = 0, σ_c = ∞, as in rectified flow at t = 1) is its finite limit
      return { x: x.mul(n.s / c.s).add(D.mul(-n.a * Math.expm1(-h))), x0 };
    }
    case 'dpmpp_2m_sde': {
      const { x0 } = den.at(x, c);
      if (last) return { x: x0.mul(n.a), x0 };
      const eta = o.eta ?? 1;
      const sc = sigmaOf(c), sn = sigmaOf(n);
      const h = Math.log(sc) - Math.log(sn);
      const etaH = eta === 0 ? 0 : eta * h;
      // in x-space (x̃ = x/a) as for dpmpp_2m: finite at a_c = 0
      let xt = x.mul(((n.s / c.s) * Math.exp(-etaH)) / n.a).add(x0.mul(-Math.expm1(-h - etaH)));
      if (prevX0 && i > 0 && !(o.path.length - 1 < 15 && i === o.path.length - 3)) {
        const r = prevH / h;
        xt = xt.add(x0.sub(prevX0).mul(0.5 * -Math.expm1(-h - etaH) * (1 / r)));
      }
      if (eta > 0) xt = xt.add(randn(x.shape, { device: x.device, generator: o.generator }).mul(sn * Math.sqrt(-Math.expm1(-2 * etaH))));
      return { x: xt.mul(n.a), x0 };
    }
    case 'flow_euler': {
      const { x0, eps } = den.at(x, c);
      return { x: x.add(eps.sub(x0).mul(n.t - c.t)), x0 };
    }
    case 'sde_euler_maruyama':
    case 'pc_langevin': {
      const proc = o.process;
      if (!(proc instanceof VPSDE) && !(proc instanceof VESDE)) throw new Error(`sample: '${o.sampler}' needs a continuous VP, sub-VP or VE SDE process`);
      let xc = x;
      if (o.sampler === 'pc_langevin') xc = langevin(o, den, x, c, proc);
      const { x0, eps } = den.at(xc, c);
      const score = eps.div(-c.s);
      const dt = c.t - n.t;
      const f = proc.driftCoef(c.t), g = proc.diffusion(c.t);
      // reverse SDE: dx = [f·x − g²·score] dt + g dw̄, integrated backward by dt
      let out = xc.sub(xc.mul(f).sub(score.mul(g * g)).mul(dt));
      if (i < o.path.length - 2) out = out.add(randn(x.shape, { device: x.device, generator: o.generator }).mul(g * Math.sqrt(dt)));
      return { x: out, x0 };
    }
    case 'pf_ode_rk45':
      throw new Error('internal: rk45 is driven separately');
    default:
      throw new Error(`sample: unknown sampler ${JSON.stringify(o.sampler)}`);
  }
}

/** Langevin corrector steps at point c (score_sde's LangevinCorrector: the step size follows the signal-to-noise ratio). */
function langevin(o: SampleOptions, den: Denoiser, x: Tensor, c: TimePoint, proc: VPSDE | VESDE): Tensor {
  const snr = o.snr ?? 0.16;
  let xc = x;
  const alpha = proc instanceof VPSDE ? 1 - proc.beta(c.t) / Math.max(o.path.length - 1, 1) : 1;
  for (let k = 0; k < (o.correctorSteps ?? 1); k++) {
    const { eps } = den.at(xc, c);
    const grad = eps.div(-c.s);
    const z = randn(x.shape, { device: x.device, generator: o.generator });
    // norms per sample, averaged over the batch (score_sde): one step size for the whole batch
    const axes = x.shape.slice(1).map((_, i) => i + 1);
    const gn = grad.mul(grad).sum(axes).sqrt().mean();
    const zn = z.mul(z).sum(axes).sqrt().mean();
    const step = zn.div(gn).mul(snr).pow(2).mul(2 * alpha);
    xc = xc.add(grad.mul(step)).add(z.mul(step.mul(2).sqrt()));
  }
  return xc;
}

/**
 * Probability-flow ODE dx/dt = f(t)·x − ½g(t)²·score with adaptive Dormand–Prince 5(4) steps from the
 * first to the last point of the path (errors measured as an RMS norm against atol + rtol·|x|).
 */
async function pfOdeRk45(o: SampleOptions, den: Denoiser, x0In: Tensor): Promise<SampleResult> {
  const proc = o.process;
  const t0 = o.path[0]!.t, last = o.path[o.path.length - 1]!;
  // A discrete VP model is only defined on timesteps [0, T−1]; its clean point (t = −1, s = 0) lies off
  // that range (ᾱ jumps there). Integrate to timestep 0 and finish with one exact step x = a·x̂0 + s·ε̂ to
  // the path's end, as the other samplers take their last step.
  const t1 = proc instanceof DiscreteVP ? Math.max(last.t, 0) : last.t;
  const lo = Math.min(t0, t1), hi = Math.max(t0, t1);
  // every time the solver evaluates stays in [lo, hi]: floating-point overshoots of t + c·h are clamped
  const clampT = (t: number) => Math.min(hi, Math.max(lo, t));
  const rtol = o.rtol ?? 1e-5, atol = o.atol ?? 1e-5;
  const drift = (x: Tensor, tIn: number): Tensor => {
    const t = clampT(tIn);
    const p = proc.at(t);
    const { x0, eps } = den.at(x, p);
    if (proc instanceof VPSDE || proc instanceof VESDE) {
      const f = proc.driftCoef(t), g = proc.diffusion(t);
      return x.mul(f).sub(eps.div(-p.s).mul(0.5 * g * g));
    }
    // generic process: dx/dt = a'·x̂0 + s'·ε̂ (= a'/a·x + (s' − a'·s/a)·ε̂, finite at a = 0), with a', s' by
    // differences of a, s in t taken inside [lo, hi] (one-sided at the ends)
    const hgt = 1e-6;
    const ta = clampT(t + hgt), tb = clampT(t - hgt);
    const pa = proc.at(ta), pb = proc.at(tb);
    const da = (pa.a - pb.a) / (ta - tb), ds = (pa.s - pb.s) / (ta - tb);
    return x0.mul(da).add(eps.mul(ds));
  };
  const A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9], [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729], [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656], [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]];
  const Cc = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1];
  const B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
  const B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40];
  let x = x0In;
  let t = t0;
  let h = (t1 - t0) / 16;
  let steps = 0;
  while ((t1 - t) * Math.sign(t1 - t0) > 1e-12) {
    if ((t + h - t1) * Math.sign(h) > 0) h = t1 - t;
    const [xNew, err] = noGrad(() => scope(() => {
      const ks: Tensor[] = [];
      for (let s = 0; s < 7; s++) {
        let xi = x;
        for (let j = 0; j < s; j++) if (A[s]![j]) xi = xi.add(ks[j]!.mul(h * A[s]![j]!));
        ks.push(drift(xi, t + Cc[s]! * h));
      }
      let y5 = x, e = x.mul(0);
      for (let s = 0; s < 7; s++) {
        if (B5[s]) y5 = y5.add(ks[s]!.mul(h * B5[s]!));
        if (B5[s]! - B4[s]!) e = e.add(ks[s]!.mul(h * (B5[s]! - B4[s]!)));
      }
      const scale = x.abs().maximum(y5.abs()).mul(rtol).add(atol);
      return [keep(y5), keep(e.div(scale).pow(2).mean().sqrt())];
    }));
    const errNorm = await err.item();
    err.dispose();
    steps++;
    if (errNorm <= 1 || Math.abs(h) < 1e-10) {
      if (x !== x0In) x.dispose();
      x = xNew;
      t += h;
      if (o.onStep) await o.onStep({ step: steps, total: 0, x, x0: x });
    } else xNew.dispose();
    h *= Math.min(5, Math.max(0.2, 0.9 * Math.pow(Math.max(errNorm, 1e-10), -1 / 5)));
    if (steps > 10000) throw new Error('sample: rk45 took more than 10,000 steps (tolerances too tight?)');
  }
  if (t1 !== last.t) {
    const xEnd = noGrad(() => scope(() => {
      const { x0, eps } = den.at(x, proc.at(t1));
      return keep(last.s === 0 ? x0.mul(last.a) : x0.mul(last.a).add(eps.mul(last.s)));
    }));
    if (x !== x0In) x.dispose();
    x = xEnd;
  }
  if (x === x0In) x = keep(x.contiguousView());
  x0In.dispose();
  return { x, nfe: den.nfe };
}

/**
 * UniPC (Zhao et al. 2023) of order 2 in data-prediction form with the B(h) = e^{h}−1 variant ('bh2'):
 * a multistep predictor and a corrector that reuses the model evaluation of the next step (no extra
 * evaluations); the last step is first order. Works in λ = log(a/s); a start at pure noise (a = 0, λ = −∞) takes the limits of the coefficients.
 */
async function uniPc(o: SampleOptions, den: Denoiser, xIn: Tensor): Promise<SampleResult> {
  const path = o.path;
  const N = path.length - 1;
  const lam = (p: TimePoint) => (p.s === 0 ? Infinity : Math.log(p.a) - Math.log(p.s));
  let x = xIn;
  let prevX0: Tensor | null = null; // model output (x̂0) at the previous point
  let lastSample: Tensor | null = null; // the sample at the previous point, before its prediction
  let prevOrder = 1;
  let older: { x0: Tensor; lam: number } | null = null; // the output two points back
  // coefficient helper: h_phi_1, B_h and b-vector terms for data prediction
  const coef = (h: number) => {
    const hh = -h;
    const hPhi1 = Math.expm1(hh);
    const Bh = Math.expm1(hh);
    const hPhiK1 = hPhi1 / hh - 1; // for i = 1
    const hPhiK2 = hPhiK1 / hh - 1 / 2; // for i = 2
    return { hPhi1, Bh, b1: hPhiK1 / Bh, b2: (hPhiK2 * 2) / Bh };
  };
  for (let i = 0; i < N; i++) {
    const c = path[i]!, n = path[i + 1]!;
    const step = noGrad(() => scope(() => {
      const { x0 } = den.at(x, c);
      let xc = x;
      if (prevX0 && lastSample) {
        // corrector UniC: refines the current sample with the output just computed
        const p = path[i - 1]!;
        const h = lam(c) - lam(p);
        const { hPhi1, Bh, b1, b2 } = coef(h);
        const base = lastSample.mul(c.s / p.s).sub(prevX0.mul(c.a * hPhi1));
        const D1t = x0.sub(prevX0);
        if (prevOrder === 2 && older) {
          const rk = (older.lam - lam(p)) / h;
          if (Number.isFinite(rk)) {
            const D1 = older.x0.sub(prevX0).div(rk);
            // solve [[1, 1], [rk, 1]] · ρ = [b1, b2]
            const det = 1 - rk;
            const rho0 = (b1 - b2) / det, rho1 = (b2 - rk * b1) / det;
            xc = base.sub(D1.mul(rho0).add(D1t.mul(rho1)).mul(c.a * Bh));
          } else xc = base.sub(D1t.mul(b1 * c.a * Bh)); // older point at λ = −∞ (pure noise): the limit rk → −∞
        } else xc = base.sub(D1t.mul(0.5 * c.a * Bh));
      }
      // predictor UniP
      const order = Math.min(2, N - i, (prevX0 ? 1 : 0) + 1);
      const h = lam(n) - lam(c);
      const { hPhi1, Bh } = coef(h);
      let xn = (n.s === 0 ? xc.mul(0) : xc.mul(n.s / c.s)).sub(x0.mul(n.a * hPhi1));
      if (order === 2 && prevX0) {
        const rk = (lam(path[i - 1]!) - lam(c)) / h;
        xn = xn.sub(prevX0.sub(x0).div(rk).mul(0.5 * n.a * Bh));
      }
      return { xn: keep(xn), xc: keep(xc), x0: keep(x0), order };
    }));
    older?.x0.dispose();
    older = prevX0 ? { x0: prevX0, lam: lam(path[i - 1]!) } : null;
    lastSample?.dispose();
    lastSample = step.xc;
    prevX0 = step.x0;
    prevOrder = step.order;
    if (x !== xIn) x.dispose();
    x = step.xn;
    await realize(x, step.xc, step.x0);
    if (o.onStep) await o.onStep({ step: i + 1, total: N, x, x0: step.x0 });
  }
  older?.x0.dispose();
  prevX0?.dispose();
  lastSample?.dispose();
  xIn.dispose();
  return { x, nfe: den.nfe };
}

/**
 * DDIM inversion: runs the deterministic DDIM map from clean data toward noise along the reversed path
 * (the model's ε̂ at the current point stands in for the one at the next), returning the latent x_T.
 */
export async function ddimInvert(o: { model: Model; prediction: Prediction; path: TimePoint[]; x0: Tensor }): Promise<Tensor> {
  const den = new Denoiser(o.model, o.prediction);
  const rev = [...o.path].reverse();
  let x = keep(o.x0.contiguousView());
  for (let i = 0; i < rev.length - 1; i++) {
    const c = rev[i]!, n = rev[i + 1]!;
    const next = noGrad(() => scope(() => {
      // at the clean end ε̂ is undefined: take it at the next (noisier) point, evaluated on the current x
      if (c.s === 0) return x.mul(n.a).add(den.at(x, n).eps.mul(n.s));
      const { x0, eps } = den.at(x, c);
      return x0.mul(n.a).add(eps.mul(n.s));
    }));
    x.dispose();
    x = keep(next);
    await realize(x);
  }
  return x;
}

/**
 * Classifier-free guidance: one doubled batch per evaluation, out = (1 + w)·out_y − w·out_∅, with optional
 * guidance rescale φ (Lin et al.) matching each sample's std to the conditional output's.
 */
export function classifierFreeGuidance(model: (x: Tensor, t: number, labels: Tensor) => Tensor, opts: { scale: number; labels: Tensor; nullLabels: Tensor; rescale?: number }): Model {
  const { scale: w, labels, nullLabels, rescale = 0 } = opts;
  return (x: Tensor, t: number) => scope(() => {
    const both = model(cat([x, x], 0), t, cat([labels, nullLabels], 0));
    const n = x.shape[0]!;
    const condOut = both.slice(0, 0, n), uncond = both.slice(0, n, 2 * n);
    let out = condOut.mul(1 + w).sub(uncond.mul(w));
    if (rescale > 0) {
      const axes = x.shape.slice(1).map((_, i) => i + 1);
      const ratio = condOut.std(axes, { keepDim: true, correction: 0 }).div(out.std(axes, { keepDim: true, correction: 0 }));
      out = out.mul(ratio).mul(rescale).add(out.mul(1 - rescale));
    }
    return out;
  });
}

/** Why a sampler cannot drive a process whose sampling path starts at `start`, or null when it can. */
type Fit = (sampler: SamplerName, process: NoiseProcess, start: TimePoint) => string | null;
const anyProcess: Fit = () => null;
const rectifiedFlow: Fit = (s, p) => (p instanceof RectifiedFlow ? null : `'${s}' integrates the rectified-flow velocity and needs the RectifiedFlow process, got ${p.constructor.name}`);
const continuousSde: Fit = (s, p) => (p instanceof VPSDE || p instanceof VESDE ? null : `'${s}' needs a continuous VP, sub-VP or VE SDE process, got ${p.constructor.name}`);
// Heun steps x/a in σ = s/a: infinite where the path starts at pure noise (a = 0, e.g. rectified flow at t = 1), and the samples are NaN
const finiteSigma: Fit = (s, p, start) => (start.a > 0 ? null : `'${s}' steps in σ = s/a, which is infinite at the start of the ${p.constructor.name} path (a = 0)`);

/** Which processes each sampler drives (measured on the Gaussian-mixture oracle: the others fail or give NaN). */
const FITS: Record<SamplerName, Fit> = {
  ddpm: anyProcess, ddim: anyProcess, euler: anyProcess, euler_ancestral: anyProcess, heun: finiteSigma, dpmpp_2m: anyProcess, dpmpp_2m_sde: anyProcess,
  edm_heun: finiteSigma, flow_euler: rectifiedFlow, flow_heun: rectifiedFlow, sde_euler_maruyama: continuousSde, pc_langevin: continuousSde, pf_ode_rk45: anyProcess, unipc: anyProcess,
};

/** Every sampler of `sample`, in the order listings show them. */
export const SAMPLER_NAMES = Object.keys(FITS) as readonly SamplerName[];

/**
 * Why `sampler` cannot drive `process`, or null when it can: the flow samplers need rectified flow, the
 * SDE samplers a continuous VP/VE SDE, and Heun (also `edm_heun`) a path that does not start at a = 0.
 * `start` is the path's first point (by default that of `samplingPath`).
 */
export function samplerMismatch(sampler: SamplerName, process: NoiseProcess, start: TimePoint = samplingPath(process, { steps: 1 })[0]!): string | null {
  const fit = FITS[sampler];
  if (!fit) throw new Error(`unknown sampler ${JSON.stringify(sampler)}; the samplers are ${SAMPLER_NAMES.join(', ')}`);
  return fit(sampler, process, start);
}

/** The samplers that can drive `process` (in `SAMPLER_NAMES` order). */
export function samplersFor(process: NoiseProcess): SamplerName[] {
  const start = samplingPath(process, { steps: 1 })[0]!;
  return SAMPLER_NAMES.filter((s) => FITS[s](s, process, start) === null);
}
