/**
 * Consistency models (Song et al., ICML 2023; improved training of Song & Dhariwal, 2023): a network f maps
 * any point of a probability-flow ODE trajectory to the trajectory's start, so one evaluation samples.
 *
 * f(x, t) = c_skip(t)·x + c_out(t)·F(x, t) with the coefficients of the EDM form in the process's noise
 * scale s = s(t): c_skip = σd²/((s − s_min)² + σd²), c_out = σd·(s − s_min)/√(σd² + s²). At t_min they are
 * exactly 1 and 0 (computed in float64 on the host and uploaded), so f(x, t_min) = x holds bit for bit.
 * The 'velocity' form f(x, t) = x − (s − s_min)·F(x, t) is one Euler step of a velocity network F to t_min
 * (for rectified flow, s = t): a flow model's weights are a consistency model already (its one-step x̂0),
 * so a student initialized from a flow teacher starts from the teacher's one-step samples.
 *
 * Training pairs adjacent times t_lo < t_hi of a grid on [t_min, t_max] (spaced like Karras et al.'s σ with
 * exponent ρ), x_hi = a_hi·x0 + s_hi·ε, and a target point x_lo: one ODE step of a teacher from x_hi
 * (consistency distillation, Euler or Heun) or a_lo·x0 + s_lo·ε with the same ε (consistency training, no
 * teacher). The loss is the pseudo-Huber or squared distance between f_θ(x_hi, t_hi) and f_θ⁻(x_lo, t_lo),
 * θ⁻ an EMA of θ (decay 0: θ itself without gradient, as improved CT). `ConsistencyTrainer` of
 * `src/train/distill.ts` trains with it.
 */
import { keep, scope } from '../../tensor/memory.js';
import { Generator, noGrad, perCall, PerCall, randn, randomHost, realize, tensor, type Tensor } from '../../tensor/index.js';
import type { Prediction } from '../predict.js';
import type { NoiseProcess, TimePoint } from '../process.js';
import { affine, batchPoints, coefShape, ddimCoefficients, perSample, sumSquares, type BatchModel, type NetForward } from './common.js';

/** How a consistency model's output is made from its network's: the EDM skip/out form, or one Euler step of a velocity to t_min. */
export type ConsistencyForm = 'edm' | 'velocity';

/**
 * The consistency model's boundary parameterization at noise scale s (float64): exactly (1, 0) at s = s_min.
 * 'edm' (default): c_skip = σd²/((s − s_min)² + σd²), c_out = σd·(s − s_min)/√(σd² + s²); 'velocity': (1, −(s − s_min)).
 */
export function consistencyCoefficients(s: number, sMin: number, sigmaData = 0.5, form: ConsistencyForm = 'edm'): { cSkip: number; cOut: number } {
  const d = s - sMin, sd2 = sigmaData * sigmaData;
  if (form === 'velocity') return { cSkip: 1, cOut: -d };
  return { cSkip: sd2 / (d * d + sd2), cOut: (sigmaData * d) / Math.sqrt(sd2 + s * s) };
}

/** Where a consistency model's trajectories end and how its boundary coefficients are scaled. */
export interface ConsistencyBoundary {
  /** Noise scale s(t_min) at the boundary time t_min. */
  sMin: number;
  /** Data standard deviation σd of the coefficients (default 0.5). */
  sigmaData?: number;
  /** The form of the coefficients (default 'edm'; `consistencyCoefficients`). */
  form?: ConsistencyForm;
}

/**
 * f(x, t) = c_skip·x + c_out·F(x, t) at per-sample points: `pick(v)` of each value v (the values
 * themselves by default), given as a list or drawn per call of a compiled step.
 */
export function consistencyOutput<V = TimePoint>(net: NetForward, x: Tensor, values: V[] | PerCall<V[]>, boundary: ConsistencyBoundary, labels?: Tensor | null, pick: (v: V) => TimePoint = (v) => v as unknown as TimePoint): Tensor {
  const coef = (v: V) => consistencyCoefficients(pick(v).s, boundary.sMin, boundary.sigmaData, boundary.form);
  return scope(() => {
    const b = coefShape(x.shape);
    const out = net.forward(x, perSample(values, [x.shape[0]!], (v) => pick(v).t), labels);
    return x.mul(perSample(values, b, (v) => coef(v).cSkip)).add(out.mul(perSample(values, b, (v) => coef(v).cOut)));
  });
}

/**
 * The time grid of consistency training: `n` points t_i = (t_min^{1/ρ} + i/(n−1)·(t_max^{1/ρ} − t_min^{1/ρ}))^ρ,
 * ascending from t_min to t_max (Karras et al.'s spacing, here in the process's model time).
 */
export function consistencyGrid(process: NoiseProcess, n: number, tMin: number, tMax: number, rho = 7): TimePoint[] {
  if (!Number.isInteger(n) || n < 2) throw new Error(`consistencyGrid: need at least 2 points, got ${n}`);
  if (!(tMin >= 0 && tMax > tMin)) throw new Error(`consistencyGrid: need 0 ≤ tMin < tMax, got tMin = ${tMin}, tMax = ${tMax}`);
  const lo = tMin ** (1 / rho), hi = tMax ** (1 / rho);
  return Array.from({ length: n }, (_, i) => process.at(i === 0 ? tMin : i === n - 1 ? tMax : (lo + (i / (n - 1)) * (hi - lo)) ** rho));
}

/**
 * Improved consistency training's number of grid points at training step k of K: N(k) = min(s0·2^⌊k/K'⌋, s1) + 1
 * with K' = ⌊K/(log2⌊s1/s0⌋ + 1)⌋ (Song & Dhariwal 2023; s0 = 10, s1 = 1280 there).
 */
export function ictGridSize(k: number, K: number, s0 = 10, s1 = 1280): number {
  if (!(Number.isInteger(s0) && Number.isInteger(s1) && s0 >= 1 && s1 >= s0)) throw new Error(`ictGridSize: need integers 1 ≤ s0 ≤ s1, got s0 = ${s0}, s1 = ${s1}`);
  const Kp = Math.max(1, Math.floor(K / (Math.log2(Math.floor(s1 / s0)) + 1)));
  return Math.min(s0 * 2 ** Math.floor(k / Kp), s1) + 1;
}

/** A step from one point to another of each sample. */
export interface StepPair {
  from: TimePoint;
  to: TimePoint;
}

/**
 * One probability-flow ODE step of a teacher from each sample's `from` to its `to` point (no gradient):
 * Euler (= the DDIM step) or Heun, in t for rectified flow (velocity ε̂ − x̂0) and in σ = s/a with x/a
 * otherwise (dx̃/dσ = ε̂, as the 'heun' sampler).
 */
export function teacherStep(teacher: { model: BatchModel; prediction: Prediction; process: NoiseProcess }, x: Tensor, pairs: StepPair[] | PerCall<StepPair[]>, solver: 'euler' | 'heun', labels?: Tensor | null): Tensor {
  const tp = teacher.prediction, flow = teacher.process.kind === 'flow';
  const b = coefShape(x.shape);
  const coef = (f: (v: StepPair) => number) => perSample(pairs, b, f);
  return noGrad(() => scope(() => {
    const o1 = teacher.model(x, batchPoints(pairs, x.shape, (v) => v.from), labels);
    const xe = x.mul(coef((v) => ddimCoefficients(tp, v.from, v.to).A)).add(o1.mul(coef((v) => ddimCoefficients(tp, v.from, v.to).B)));
    if (solver === 'euler') return xe;
    const o2 = teacher.model(xe, batchPoints(pairs, x.shape, (v) => v.to), labels);
    // the correction: Heun − Euler = ½·h·(d2 − d1), each d affine in (x, o)
    const d = (xx: Tensor, o: Tensor, at: (v: StepPair) => TimePoint) => {
      const g = (v: StepPair) => affine(tp, at(v));
      return flow
        ? xx.mul(coef((v) => g(v).gamma - g(v).alpha)).add(o.mul(coef((v) => g(v).delta - g(v).beta)))
        : xx.mul(coef((v) => g(v).gamma)).add(o.mul(coef((v) => g(v).delta)));
    };
    const h = (v: StepPair) => (flow ? v.to.t - v.from.t : v.to.a * (v.to.s / v.to.a - v.from.s / v.from.a));
    return xe.add(d(xe, o2, (v) => v.to).sub(d(x, o1, (v) => v.from)).mul(coef((v) => 0.5 * h(v))));
  }));
}

/** Settings of consistency distillation and training (the optimizer's are the trainer's). */
export interface ConsistencyOptions {
  /** The boundary time (f(x, t_min) = x) and the start time of sampling. */
  tMin: number;
  tMax: number;
  /** Spacing exponent of the time grid (default 7). */
  rho?: number;
  /** σd of the boundary coefficients (default 0.5). */
  sigmaData?: number;
  /** The form of the boundary coefficients (default 'edm'; 'velocity' for a student that starts from a flow teacher's weights). */
  form?: ConsistencyForm;
  /** Distance: pseudo-Huber √(‖d‖² + c²) − c (default) or squared L2 ‖d‖². */
  loss?: 'pseudo-huber' | 'l2';
  /** Pseudo-Huber c (default 0.00054·√D·σd/0.5 for D values per sample: Song & Dhariwal's constant, scaled to the data). */
  huberC?: number;
  /** Per-pair weights: 'inverse-gap' (1/(t_hi − t_lo) in units of the mean gap; improved CT) or 'uniform' (default 'inverse-gap'). */
  weighting?: 'uniform' | 'inverse-gap';
  /** Distillation: the teacher's ODE solver (default 'heun'). */
  solver?: 'euler' | 'heun';
}

/** Checks `ConsistencyOptions`, naming `where` and the value. */
export function checkConsistencyOptions(where: string, o: ConsistencyOptions): void {
  if (!(o.tMin >= 0 && o.tMax > o.tMin)) throw new Error(`${where}: need 0 ≤ tMin < tMax, got tMin = ${o.tMin}, tMax = ${o.tMax}`);
  if (o.rho !== undefined && !(o.rho > 0)) throw new Error(`${where}: rho must be positive, got ${o.rho}`);
  if (o.sigmaData !== undefined && !(o.sigmaData > 0)) throw new Error(`${where}: sigmaData must be positive, got ${o.sigmaData}`);
  if (o.loss !== undefined && o.loss !== 'pseudo-huber' && o.loss !== 'l2') throw new Error(`${where}: loss must be 'pseudo-huber' or 'l2', got ${JSON.stringify(o.loss)}`);
  if (o.huberC !== undefined && !(o.huberC > 0)) throw new Error(`${where}: huberC must be positive, got ${o.huberC}`);
  if (o.weighting !== undefined && o.weighting !== 'uniform' && o.weighting !== 'inverse-gap') throw new Error(`${where}: weighting must be 'uniform' or 'inverse-gap', got ${JSON.stringify(o.weighting)}`);
  if (o.solver !== undefined && o.solver !== 'euler' && o.solver !== 'heun') throw new Error(`${where}: solver must be 'euler' or 'heun', got ${JSON.stringify(o.solver)}`);
  if (o.form !== undefined && o.form !== 'edm' && o.form !== 'velocity') throw new Error(`${where}: form must be 'edm' or 'velocity', got ${JSON.stringify(o.form)}`);
}

/** The boundary of a consistency model on `process` with these options. */
export function consistencyBoundary(process: NoiseProcess, o: ConsistencyOptions): Required<ConsistencyBoundary> {
  return { sMin: process.at(o.tMin).s, sigmaData: o.sigmaData ?? 0.5, form: o.form ?? 'edm' };
}

/** What a consistency loss works with besides the batch. */
export interface ConsistencySetup {
  process: NoiseProcess;
  /** The teacher of consistency distillation; none (null) for consistency training, whose x_lo uses the same noise as x_hi. */
  teacher: { model: BatchModel; prediction: Prediction } | null;
  /** The network holding θ⁻ (the online network itself for θ⁻ = θ without gradient). */
  target: NetForward;
  /** The time grid of this call, ascending (evaluated per call of a compiled step: it may grow during training). */
  grid: () => TimePoint[];
  options: ConsistencyOptions;
}

/**
 * The consistency loss of a batch x0 [N, …] (labels [N] for class-conditional networks): per sample a
 * uniformly drawn pair of adjacent grid times, x_hi = a_hi·x0 + s_hi·ε, x_lo by the teacher's ODE step or
 * with the same ε, and the weighted mean of d(f_θ(x_hi, t_hi), f_θ⁻(x_lo, t_lo)).
 */
export function consistencyLoss(net: NetForward, o: ConsistencySetup, x0: Tensor, labels?: Tensor | null): Tensor {
  const c = o.options, N = x0.shape[0]!, shape = x0.shape;
  const pairs = perCall(() => {
    const g = o.grid();
    const unit = (g[g.length - 1]!.t - g[0]!.t) / (g.length - 1);
    return Array.from(randomHost('int', N, [0, g.length - 1]), (i) => ({ from: g[i + 1]!, to: g[i]!, w: c.weighting === 'uniform' ? 1 : unit / (g[i + 1]!.t - g[i]!.t) }));
  });
  const boundary = consistencyBoundary(o.process, c);
  const D = shape.slice(1).reduce((a, b) => a * b, 1);
  const huber = c.huberC ?? 0.00054 * Math.sqrt(D) * (boundary.sigmaData / 0.5);
  return scope(() => {
    const hi = batchPoints(pairs, shape, (v) => v.from);
    const eps = randn(shape);
    const xHi = x0.mul(hi.a).add(eps.mul(hi.s));
    let xLo: Tensor;
    if (o.teacher) xLo = teacherStep({ ...o.teacher, process: o.process }, xHi, pairs, c.solver ?? 'heun', labels);
    else {
      const lo = batchPoints(pairs, shape, (v) => v.to);
      xLo = x0.mul(lo.a).add(eps.mul(lo.s));
    }
    const target = noGrad(() => consistencyOutput(o.target, xLo, pairs, boundary, labels, (v) => v.to));
    const online = consistencyOutput(net, xHi, pairs, boundary, labels, (v) => v.from);
    const sq = sumSquares(online.sub(target));
    const dist = (c.loss ?? 'pseudo-huber') === 'l2' ? sq : sq.add(huber * huber).sqrt().sub(huber);
    return dist.mul(perSample(pairs, [N], (v) => v.w)).mean();
  });
}

/** Options of `consistencySample`. */
export interface ConsistencySampleOptions extends ConsistencyBoundary {
  /** The consistency network (only its forward is called: once per time). */
  net: NetForward;
  process: NoiseProcess;
  /** Model times of the evaluations, descending; the first is where sampling starts (t_max), each later one re-noises to it. */
  times: number[];
  /** Standard normal noise of the output shape. */
  noise: Tensor;
  labels?: Tensor | null;
  /** Where the re-noising draws come from (default: the global generator). */
  generator?: Generator;
  /**
   * Called after each evaluation (step = 1…times.length of `total`) with its input `x` (x at model time
   * times[step − 1]: the scaled noise, then the re-noised estimate) and its output `x0`, the estimate of the
   * data; the last `x0` is the sample. Both belong to the sampler: read them during the call, do not dispose them.
   */
  onStep?: (info: { step: number; total: number; x: Tensor; x0: Tensor }) => void | Promise<void>;
}

/**
 * Multistep consistency sampling (Song et al. Algorithm 1): x = s(t₀)·noise, x̂0 = f(x, t₀); for each later
 * time τ: x = a(τ)·x̂0 + s(τ)·z with fresh noise z, x̂0 = f(x, τ). One evaluation per time; returns x̂0.
 */
export async function consistencySample(o: ConsistencySampleOptions): Promise<Tensor> {
  if (!o.times.length) throw new Error('consistencySample: times must hold at least one time');
  for (let i = 1; i < o.times.length; i++) if (!(o.times[i]! < o.times[i - 1]!)) throw new Error(`consistencySample: times must be descending, got [${o.times.join(', ')}]`);
  const N = o.noise.shape[0]!;
  let x0: Tensor | null = null;
  for (const [i, t] of o.times.entries()) {
    const p = o.process.at(t);
    const [next, input] = noGrad(() => scope(() => {
      const x = i === 0 ? o.noise.mul(p.s) : x0!.mul(p.a).add(randn(o.noise.shape, { device: o.noise.device, generator: o.generator }).mul(p.s));
      const { cSkip, cOut } = consistencyCoefficients(p.s, o.sMin, o.sigmaData, o.form);
      // the input is returned (kept) only for onStep: otherwise it stays inside the fused graph
      return [x.mul(cSkip).add(o.net.forward(x, tensor(new Float32Array(N).fill(t)), o.labels).mul(cOut)), o.onStep ? x : null] as const;
    }));
    x0?.dispose();
    x0 = keep(next);
    if (!input || !o.onStep) await realize(x0);
    else {
      try {
        await realize(x0, keep(input));
        await o.onStep({ step: i + 1, total: o.times.length, x: input, x0 });
      } finally {
        input.dispose();
      }
    }
  }
  return x0!;
}
