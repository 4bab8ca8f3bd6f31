/**
 * What the distillation methods share: networks evaluated at per-sample times (a batch mixes noise levels),
 * parameterizations as affine maps of the network output with float64 host coefficients (so every step and
 * every target is one fused expression with per-sample coefficient tensors, and a compiled training step
 * uploads them again at each call), and the deterministic DDIM/Euler step. The trainers of the methods
 * (checkpoints, compiled steps) are in `src/train/distill.ts`.
 */
import type { Module } from '../../nn/module.js';
import { scope } from '../../tensor/memory.js';
import { PerCall, tensor, type Tensor } from '../../tensor/index.js';
import type { Prediction } from '../predict.js';
import type { TimePoint } from '../process.js';
import type { Model } from '../samplers.js';

/**
 * Per-sample points of a batch: model times `t` [N] and the coefficients `a`, `s` of x_t = a·x0 + s·z as
 * [N, 1, …] tensors broadcasting over the batch.
 */
export interface BatchPoints {
  t: Tensor;
  a: Tensor;
  s: Tensor;
}

/** A model evaluated at per-sample points: its output for x at `p` (labels for class-conditional models). */
export type BatchModel = (x: Tensor, p: BatchPoints, labels?: Tensor | null) => Tensor;

/** What the distillation losses call of a network: its output for x at times t [N] (labels [N] for class-conditional networks). */
export interface NetForward {
  forward(x: Tensor, t: Tensor, labels?: Tensor | null): Tensor;
}

/** A trainable network with the forward of kiln's denoisers (`ToyDenoiser`, `UNet`, `DiT`): x, times t [N], optional labels [N]. */
export interface DistillNet extends Module, NetForward {}

/** A network as a `BatchModel` (it sees the model times; labels are passed through). */
export function netModel(net: NetForward): BatchModel {
  return (x, p, labels) => net.forward(x, p.t, labels);
}

/** A network as a sampler model (`sample`'s `Model`: one time for the batch; labels [N] for class-conditional networks). */
export function studentModel(net: NetForward, labels?: Tensor | null): Model {
  return (x, t) => scope(() => net.forward(x, tensor(new Float32Array(x.shape[0]!).fill(t)), labels));
}

/** Per-sample host values (a list, or one drawn per call of a compiled step) as a tensor of `shape`, one value f(v) per sample. */
export function perSample<V>(values: V[] | PerCall<V[]>, shape: number[], f: (v: V) => number): Tensor {
  const now = values instanceof PerCall ? values.value : values;
  if (now.length !== shape[0]) throw new Error(`perSample: ${now.length} values for a batch of ${shape[0]}`);
  return values instanceof PerCall ? values.tensor((v) => v.map(f), { shape }) : tensor(now.map(f), { shape });
}

/** [N, 1, …]: the shape of per-sample coefficients broadcasting over a batch of shape `shape`. */
export function coefShape(shape: number[]): number[] {
  return [shape[0]!, ...shape.slice(1).map(() => 1)];
}

/** `BatchPoints` of a batch of shape `shape` at the per-sample points `pick(v)` of values v (points themselves by default). */
export function batchPoints<V = TimePoint>(values: V[] | PerCall<V[]>, shape: number[], pick: (v: V) => TimePoint = (v) => v as unknown as TimePoint): BatchPoints {
  const b = coefShape(shape);
  return { t: perSample(values, [shape[0]!], (v) => pick(v).t), a: perSample(values, b, (v) => pick(v).a), s: perSample(values, b, (v) => pick(v).s) };
}

/**
 * A parameterization at point p as an affine map of the output o: x̂0 = α·x + β·o, ε̂ = γ·x + δ·o
 * (float64). ε: x0 = (x − s·o)/a; x0: ε = (x − a·o)/s; v (VP): x0 = a·x − s·o, ε = s·x + a·o; flow
 * (a = 1 − t, s = t): x0 = x − t·o, ε = x + (1 − t)·o; score: ε = −s·o.
 */
export function affine(prediction: Prediction, p: TimePoint): { alpha: number; beta: number; gamma: number; delta: number } {
  const { a, s } = p;
  switch (prediction) {
    case 'eps': return { alpha: 1 / a, beta: -s / a, gamma: 0, delta: 1 };
    case 'x0': return { alpha: 0, beta: 1, gamma: 1 / s, delta: -a / s };
    case 'v': return { alpha: a, beta: -s, gamma: s, delta: a };
    case 'flow': return { alpha: 1, beta: -s, gamma: 1, delta: a };
    case 'score': return { alpha: 1 / a, beta: (s * s) / a, gamma: 0, delta: -s };
    default: throw new Error(`affine: unknown prediction ${JSON.stringify(prediction)} (eps, x0, v, flow, score)`);
  }
}

/**
 * The deterministic DDIM step from point c to point n for a model output o at c, as x_n = A·x_c + B·o
 * (x_n = a_n·x̂0 + s_n·ε̂; for rectified flow this is the Euler step x_c + (t_n − t_c)·o of a velocity).
 */
export function ddimCoefficients(prediction: Prediction, c: TimePoint, n: TimePoint): { A: number; B: number } {
  const f = affine(prediction, c);
  return { A: n.a * f.alpha + n.s * f.gamma, B: n.a * f.beta + n.s * f.delta };
}

/**
 * The output of parameterization `to` that means the same (x̂0, ε̂) at point p as output o of
 * parameterization `from`, as o' = P·x + Q·o (float64; solved through x̂0 or ε̂, whichever is better
 * conditioned at p).
 */
export function convertCoefficients(from: Prediction, to: Prediction, p: TimePoint): { P: number; Q: number } {
  const f = affine(from, p), g = affine(to, p);
  if (Math.abs(g.beta) >= Math.abs(g.delta)) return { P: (f.alpha - g.alpha) / g.beta, Q: f.beta / g.beta };
  return { P: (f.gamma - g.gamma) / g.delta, Q: f.delta / g.delta };
}

/** Checks that a parameterization is one a distillation target can be written in. */
export function checkPrediction(where: string, prediction: Prediction): void {
  if (!['eps', 'x0', 'v', 'flow'].includes(prediction)) throw new Error(`${where}: prediction must be eps, x0, v or flow, got ${JSON.stringify(prediction)}`);
}

/** A batch: data x0 [N, …], with class labels [N] i32 for class-conditional models. */
export type DataBatch = [x0: Tensor] | [x0: Tensor, labels: Tensor];

/** Sum of squares over every axis but the first: [N]. */
export function sumSquares(d: Tensor): Tensor {
  const axes = d.shape.slice(1).map((_, i) => i + 1);
  return axes.length ? d.square().sum(axes) : d.square();
}
