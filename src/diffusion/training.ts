/**
 * Training helpers: noising with per-sample times, time sampling (uniform, logit-normal, EDM log-normal),
 * loss weights (min-SNR, EDM), label dropout for classifier-free guidance, and the training objectives of
 * class-conditional image denoisers (DDPM ε, v, rectified flow) with their loss.
 */
import type { Module } from '../nn/module.js';
import { TEXT_BOS_ID, TEXT_PAD_ID } from '../nn/models/text.js';
import { fmt } from '../tensor/shape.js';
import { scope } from '../tensor/memory.js';
import { arange, checkIndices, full, unchecked, PerCall, perCall, rand, randn, randomHost, tensor, where, type Tensor } from '../tensor/index.js';
import type { Prediction } from './predict.js';
import { DiscreteVP, RectifiedFlow, type NoiseProcess, type TimePoint } from './process.js';

/**
 * Per-sample coefficients as [N, 1, …] tensors broadcasting over a batch of shape `shape`. Points drawn
 * per call (`drawTimes`) give tensors a compiled training step uploads again at every call.
 */
export function coefficients(points: TimePoint[] | PerCall<TimePoint[]>, shape: number[]): { a: Tensor; s: Tensor; t: Tensor } {
  const n = shape[0]!;
  const now = points instanceof PerCall ? points.value : points;
  if (now.length !== n) throw new Error(`coefficients: ${now.length} time points for a batch of ${n}`);
  const bshape = [n, ...shape.slice(1).map(() => 1)];
  const make = (f: (p: TimePoint) => number, shape: number[]) => (points instanceof PerCall ? points.tensor((v) => v.map(f), { shape }) : tensor(now.map(f), { shape }));
  return { a: make((p) => p.a, bshape), s: make((p) => p.s, bshape), t: make((p) => p.t, [n]) };
}

/** Training times drawn for each call of a (compiled) step: `sampleTimes` as a per-call value (`k.perCall`). */
export function drawTimes(process: NoiseProcess, n: number, how: TimeSampling = 'uniform', opts: { mean?: number; std?: number; eps?: number } = {}): PerCall<TimePoint[]> {
  return perCall(() => sampleTimes(process, n, how, opts));
}

/** x_t = a·x0 + s·ε with per-sample coefficients. */
export function addNoise(x0: Tensor, eps: Tensor, points: TimePoint[] | PerCall<TimePoint[]>): Tensor {
  return scope(() => {
    const { a, s } = coefficients(points, x0.shape);
    return x0.mul(a).add(eps.mul(s));
  });
}

/** How training times are drawn. */
export type TimeSampling = 'uniform' | 'logit-normal' | 'log-normal';

/**
 * Draws `n` training time points of a process: discrete VP uniform over timesteps; continuous processes
 * uniform on [eps, 1] or logit-normal (rectified flow, SD3: t = σ(m + s·z)); EDM log-normal σ
 * (P_mean −1.2, P_std 1.2). Rectified-flow times get the process shift. The draws come from kiln's seeded
 * generator evaluated on the host (no GPU round trip per training step).
 */
export function sampleTimes(process: NoiseProcess, n: number, how: TimeSampling = 'uniform', opts: { mean?: number; std?: number; eps?: number } = {}): TimePoint[] {
  if (process.kind === 'vp-discrete') {
    const T = (process as unknown as { T: number }).T;
    return Array.from(randomHost('int', n, [0, T]), (t) => process.at(t));
  }
  if (how === 'log-normal') return Array.from(randomHost('normal', n), (v) => process.at(Math.exp((opts.mean ?? -1.2) + (opts.std ?? 1.2) * v)));
  let ts: number[];
  if (how === 'logit-normal') ts = Array.from(randomHost('normal', n), (v) => 1 / (1 + Math.exp(-((opts.mean ?? 0) + (opts.std ?? 1) * v))));
  else {
    const eps = opts.eps ?? (process.kind === 'flow' ? 0 : 1e-3);
    ts = Array.from(randomHost('uniform', n), (u) => eps + (1 - eps) * u);
  }
  const shift = (process as unknown as { shifted?: (t: number) => number }).shifted;
  return ts.map((t) => process.at(shift ? shift.call(process, t) : t));
}

/** Min-SNR-γ loss weight for ε-prediction: min(SNR, γ)/SNR (Hang et al.); SNR = a²/s². */
export function minSnrWeight(points: TimePoint[], gamma = 5, prediction: 'eps' | 'x0' | 'v' = 'eps'): number[] {
  return points.map(({ a, s }) => {
    const snr = (a * a) / (s * s);
    const m = Math.min(snr, gamma);
    return prediction === 'eps' ? m / snr : prediction === 'x0' ? m : m / (snr + 1);
  });
}

/** EDM loss weight (σ² + σd²)/(σ·σd)² for a denoiser trained on x0. */
export function edmWeight(sigmas: number[], sigmaData = 0.5): number[] {
  return sigmas.map((s) => (s * s + sigmaData * sigmaData) / (s * sigmaData) ** 2);
}

/** Replaces each label by `nullLabel` with probability p (classifier-free guidance training). */
export function dropLabels(labels: Tensor, p: number, nullLabel: number): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropLabels: p must be in [0, 1], got ${p}`);
  return scope(() => where(rand(labels.shape, { device: labels.device }).lt(p), nullLabel, labels));
}

/**
 * Replaces each row of token ids [N, L] by the empty caption's ids ([<bos>, <pad>, …], `unconditionalTokens`) with probability p:
 * caption dropout for classifier-free guidance of a text-conditioned model.
 */
export function dropCaptions(ids: Tensor, p: number): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropCaptions: p must be in [0, 1], got ${p}`);
  if (ids.rank !== 2 || ids.dtype !== 'i32') throw new Error(`dropCaptions: expected token ids [N, L] of dtype i32, got ${fmt(ids.shape)} ${ids.dtype}`);
  const [N, L] = ids.shape as [number, number];
  return scope(() => {
    // the empty caption made of constants (nothing to upload at each call of a compiled step)
    const o = { dtype: 'i32' as const, device: ids.device };
    const empty = where(arange(L, undefined, 1, o).eq(0), full([L], TEXT_BOS_ID, o), full([L], TEXT_PAD_ID, o)).reshape([1, L]);
    return where(rand([N, 1], { device: ids.device }).lt(p), empty, ids);
  });
}

/**
 * The model's forward on labels `y` after dropout of `labels`. For a text model the token ids are checked
 * against its vocabulary before dropout (on the host when they were uploaded) and the forward runs without
 * index checks: dropped rows are the empty caption, valid by construction, while a device-side check of ids
 * that depend on the dropout's random draw would make every call of a compiled step differ.
 */
function forwardDropped(model: Denoiser, xt: Tensor, t: Tensor, labels: Tensor, y: Tensor): Tensor {
  const text = model.config.text;
  if (!text || y === labels) return model.forward(xt, t, y);
  checkIndices(labels, { op: 'denoisingLoss', noun: 'token id', lo: 0, hi: text.encoder.vocabSize, context: `for a text encoder of ${text.encoder.vocabSize} token ids` });
  return unchecked(() => model.forward(xt, t, y));
}

/** What the network learns to predict, and on which process. */
export type Objective = 'eps' | 'v' | 'flow';

/**
 * A class-conditional denoiser: x [N, C, H, W], t [N], labels [N] (the null class = numClasses), or for a
 * text-conditioned one (`config.text`) token ids [N, L] (the empty caption = no text); a model with
 * `guidanceInput` (a guidance-distilled student) also takes the guidance scales w [N].
 */
export interface Denoiser extends Module {
  forward(x: Tensor, t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor;
  readonly config: { numClasses: number; guidanceInput?: boolean; text?: { encoder: { length: number; vocabSize: number } } };
}

/** The noise process and prediction type of an objective. */
export function objectiveSetup(objective: Objective): { process: NoiseProcess; prediction: Prediction } {
  switch (objective) {
    case 'eps': return { process: new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'squaredcos_cap_v2' }), prediction: 'eps' };
    case 'v': return { process: new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'squaredcos_cap_v2' }), prediction: 'v' };
    case 'flow': return { process: new RectifiedFlow(), prediction: 'flow' };
    default: throw new Error(`objective must be eps, v or flow, got ${JSON.stringify(objective)}`);
  }
}

/** Options of `denoisingLoss`: the process and prediction of an objective (`objectiveSetup`), how times are drawn, label dropout. */
export interface DenoisingLossOptions {
  process: NoiseProcess;
  prediction: Prediction;
  times?: TimeSampling;
  /** With `times` 'logit-normal': the mean m of the times t = σ(m + z), z ~ N(0, 1) (default 0; positive: nearer the noise of rectified flow, t = 1). */
  timeMean?: number;
  /** Probability of replacing a label by the null class, or a caption by the empty one (classifier-free guidance; default 0). */
  labelDropout?: number;
}

/**
 * The denoising loss of one batch x0 [N, C, H, W] with labels [N] i32: times drawn from the process,
 * x_t = a·x0 + s·ε, labels dropped to the null class (token ids of a text model: to the empty caption) with
 * probability `labelDropout`, and the mean
 * squared error of the model's prediction of ε, v = a·ε − s·x0, or the flow ε − x0.
 */
export function denoisingLoss(model: Denoiser, x0: Tensor, labels: Tensor, o: DenoisingLossOptions): Tensor {
  if (o.prediction !== 'eps' && o.prediction !== 'v' && o.prediction !== 'flow') throw new Error(`denoisingLoss: prediction must be eps, v or flow, got ${JSON.stringify(o.prediction)}`);
  const p = o.labelDropout ?? 0;
  if (o.timeMean !== undefined && o.times !== 'logit-normal') throw new Error(`denoisingLoss: timeMean is the mean of logit-normal times; pass times: 'logit-normal' (got ${JSON.stringify(o.times ?? 'uniform')})`);
  const points = drawTimes(o.process, x0.shape[0]!, o.times, { mean: o.timeMean });
  return scope(() => {
    const { a, s, t } = coefficients(points, x0.shape);
    const eps = randn(x0.shape);
    const xt = x0.mul(a).add(eps.mul(s));
    const y = p <= 0 ? labels : model.config.text ? dropCaptions(labels, p) : dropLabels(labels, p, model.config.numClasses);
    const target = o.prediction === 'eps' ? eps : o.prediction === 'v' ? eps.mul(a).sub(x0.mul(s)) : eps.sub(x0);
    return forwardDropped(model, xt, t, labels, y).sub(target).square().mean();
  });
}
