/**
 * Guidance distillation (Meng et al., "On distillation of guided diffusion models", CVPR 2023): a student
 * that takes the guidance scale w as an input learns the teacher's classifier-free-guided output
 * (1 + w)·cond − w·uncond (kiln's convention, as `classifierFreeGuidance` and `kiln sample --guidance`;
 * w = 0 is the conditional model), so guided sampling needs one network evaluation per step instead of a
 * doubled batch.
 *
 * A guidance student is a network that also takes w [N]: kiln's `UNet` and `DiT` with `guidanceInput`
 * (the embedding of w joins the time embedding). `atScales` binds per-sample scales to it, and
 * `drawScales` draws them, so progressive, consistency and reflow students take w as an input too
 * (the trainers' `scales` option; Meng et al.'s second stage).
 */
import * as F from '../../nn/functional.js';
import type { Module } from '../../nn/module.js';
import { scope } from '../../tensor/memory.js';
import { cat, full, noGrad, perCall, PerCall, randn, randomHost, tensor, type Tensor } from '../../tensor/index.js';
import type { Prediction } from '../predict.js';
import type { NoiseProcess, TimePoint } from '../process.js';
import type { Model } from '../samplers.js';
import { sampleTimes, type TimeSampling } from '../training.js';
import { batchPoints, checkPrediction, coefShape, convertCoefficients, netModel, perSample, type BatchModel, type NetForward } from './common.js';

/** A class-conditional network that also takes the guidance scale: x, times t [N], labels [N] i32, scales w [N]. */
export interface GuidedNet extends Module {
  forward(x: Tensor, t: Tensor, labels: Tensor, w: Tensor): Tensor;
}

/** The range of guidance scales a student that takes w as an input is trained on (w uniform in [wMin, wMax]). */
export interface ScaleRange {
  wMin: number;
  wMax: number;
}

/** Checks a `ScaleRange` (finite, wMin ≤ wMax). */
export function checkScaleRange(where: string, r: ScaleRange): void {
  if (!(Number.isFinite(r.wMin) && Number.isFinite(r.wMax) && r.wMax >= r.wMin)) throw new Error(`${where}: need finite wMin ≤ wMax, got wMin = ${r.wMin}, wMax = ${r.wMax}`);
}

/** Guidance scales of a batch of n, uniform in [wMin, wMax] and drawn per call of a compiled step, as a tensor [n]. */
export function drawScales(n: number, r: ScaleRange): Tensor {
  checkScaleRange('drawScales', r);
  const draw = perCall(() => Array.from(randomHost('uniform', n), (u) => r.wMin + (r.wMax - r.wMin) * u));
  return perSample(draw, [n], (w) => w);
}

/** A network that takes the guidance scale as an input, at per-sample scales w [N]: the forward the distillation losses call. */
export function atScales(net: GuidedNet, w: Tensor): NetForward {
  return {
    forward: (x, t, labels) => {
      if (!labels) throw new Error('atScales: a network that takes the guidance scale is class-conditional; pass labels');
      if (w.shape[0] !== x.shape[0]) throw new Error(`atScales: ${w.shape[0]} guidance scales for a batch of ${x.shape[0]}`);
      return net.forward(x, t, labels, w);
    },
  };
}

/** A teacher at per-sample guidance scales w [N] (a student that takes w as an input then learns it at every scale). */
export type ScaledTeacher = (w: Tensor) => BatchModel;

/**
 * The teacher of a student that takes w as an input: a class-conditional network guided at per-sample
 * scales w (`guidedTeacher`), or a network that itself takes w (a previous round's student, `takesScale`).
 */
export function scaledTeacher(net: NetForward | GuidedNet, o: { takesScale: true } | { takesScale: false; nullLabel: number }): ScaledTeacher {
  return (w) => (o.takesScale ? netModel(atScales(net as GuidedNet, w)) : guidedTeacher(net as NetForward, w, o.nullLabel));
}

/** The guided teacher of guidance distillation. */
export interface GuidanceTeacher {
  /** A class-conditional model (the null class `nullLabel` = unconditional). */
  model: BatchModel;
  prediction: Prediction;
  process: NoiseProcess;
  nullLabel: number;
}

/** A sample's time point and guidance scale. */
export interface GuidedPoint {
  p: TimePoint;
  w: number;
}

/**
 * The teacher's guided output (1 + w)·cond − w·uncond at x (one doubled batch: labels and null labels),
 * written in the student's parameterization `prediction` (no gradient). `points` gives each sample's time
 * point and scale, as a list or drawn per call of a compiled step.
 */
export function guidanceTarget(teacher: GuidanceTeacher, prediction: Prediction, x: Tensor, labels: Tensor, points: GuidedPoint[] | PerCall<GuidedPoint[]>): Tensor {
  checkPrediction('guidanceTarget', teacher.prediction);
  checkPrediction('guidanceTarget', prediction);
  const n = x.shape[0]!;
  if (labels.rank !== 1 || labels.shape[0] !== n) throw new Error(`guidanceTarget: expected labels of shape [${n}] for x of shape [${x.shape}], got [${labels.shape}]`);
  const b = coefShape(x.shape);
  return noGrad(() => scope(() => {
    const bp = batchPoints(points, x.shape, (v) => v.p);
    const both = teacher.model(cat([x, x], 0), { t: cat([bp.t, bp.t], 0), a: cat([bp.a, bp.a], 0), s: cat([bp.s, bp.s], 0) }, cat([labels, full([n], teacher.nullLabel, { dtype: labels.dtype })], 0));
    const w = perSample(points, b, (v) => v.w);
    const guided = both.slice(0, 0, n).mul(w.add(1)).sub(both.slice(0, n, 2 * n).mul(w));
    if (prediction === teacher.prediction) return guided;
    const conv = (v: GuidedPoint) => convertCoefficients(teacher.prediction, prediction, v.p);
    return x.mul(perSample(points, b, (v) => conv(v).P)).add(guided.mul(perSample(points, b, (v) => conv(v).Q)));
  }));
}

/** How guidance distillation draws its scales and times. */
export interface GuidanceOptions {
  /** Guidance scales are drawn uniformly from [wMin, wMax]. */
  wMin: number;
  wMax: number;
  /** What the student predicts (default: what the teacher predicts). */
  prediction?: Prediction;
  /** How training times are drawn (default 'uniform'). */
  times?: TimeSampling;
}

/**
 * The guidance-distillation loss of a batch x0 [N, …] with labels [N]: per sample a time from the
 * teacher's process and a scale w uniform in [wMin, wMax] (drawn per call), x_t = a·x0 + s·ε, and the mean
 * squared error between the student's output at (x_t, t, labels, w) and `guidanceTarget`.
 */
export function guidanceLoss(net: GuidedNet, teacher: GuidanceTeacher, o: GuidanceOptions, x0: Tensor, labels: Tensor): Tensor {
  if (!(Number.isFinite(o.wMin) && Number.isFinite(o.wMax) && o.wMax >= o.wMin)) throw new Error(`guidanceLoss: need finite wMin ≤ wMax, got wMin = ${o.wMin}, wMax = ${o.wMax}`);
  const N = x0.shape[0]!;
  const points = perCall(() => {
    const ps = sampleTimes(teacher.process, N, o.times ?? 'uniform');
    const u = randomHost('uniform', N);
    return ps.map((p, i) => ({ p, w: o.wMin + (o.wMax - o.wMin) * u[i]! }));
  });
  return scope(() => {
    const bp = batchPoints(points, x0.shape, (v) => v.p);
    const xt = x0.mul(bp.a).add(randn(x0.shape).mul(bp.s));
    const target = guidanceTarget(teacher, o.prediction ?? teacher.prediction, xt, labels, points);
    return F.mseLoss(net.forward(xt, bp.t, labels, perSample(points, [N], (v) => v.w)), target);
  });
}

/** A guidance student as a sampler model: labels [N] and one scale w for the batch (one evaluation per step). */
export function guidedModel(net: GuidedNet, labels: Tensor, w: number): Model {
  return (x, t) => scope(() => {
    const n = x.shape[0]!;
    return net.forward(x, tensor(new Float32Array(n).fill(t)), labels, tensor(new Float32Array(n).fill(w)));
  });
}

/**
 * A class-conditional network under classifier-free guidance as a teacher, at a fixed scale w or at
 * per-sample scales w [N]: at each evaluation the conditional and null-class passes share one doubled batch
 * and give (1 + w)·cond − w·uncond (w = 0: the conditional network alone, one pass). Students distilled
 * from it sample guided in one evaluation per step, with w baked in (or as their input).
 */
export function guidedTeacher(net: NetForward, w: number | Tensor, nullLabel: number): BatchModel {
  if (typeof w === 'number' && !Number.isFinite(w)) throw new Error(`guidedTeacher: the guidance scale must be a finite number, got ${w}`);
  if (typeof w !== 'number' && w.rank !== 1) throw new Error(`guidedTeacher: expected per-sample guidance scales of shape [N], got [${w.shape}]`);
  return (x, p, labels) => scope(() => {
    if (!labels) throw new Error('guidedTeacher: a class-conditional teacher needs labels');
    if (w === 0) return net.forward(x, p.t, labels);
    const n = x.shape[0]!;
    if (typeof w !== 'number' && w.shape[0] !== n) throw new Error(`guidedTeacher: ${w.shape[0]} guidance scales for a batch of ${n}`);
    const both = net.forward(cat([x, x], 0), cat([p.t, p.t], 0), cat([labels, full([n], nullLabel, { dtype: labels.dtype })], 0));
    const scale = typeof w === 'number' ? w : w.reshape(coefShape(x.shape));
    return both.slice(0, 0, n).mul(typeof scale === 'number' ? 1 + scale : scale.add(1)).sub(both.slice(0, n, 2 * n).mul(scale));
  });
}
