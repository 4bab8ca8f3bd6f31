/**
 * Progressive distillation (Salimans & Ho, ICLR 2022): a student learns to take in one deterministic step
 * what its teacher takes in two; rounds halve the number of steps, each round's student becoming the next
 * round's teacher and the initial weights of the next student.
 *
 * The target is in closed form. With the teacher's two DDIM steps z_c → z_m → z_n (for rectified flow:
 * two Euler steps), the student's target output o is the one whose single DDIM step from z_c lands on z_n:
 * with the step written x_n = A·z_c + B·o (`ddimCoefficients`), o = (z_n − A·z_c)/B. For an x0 student this
 * is the paper's x̃ = (z_n − (s_n/s_c)·z_c)/(a_n − (s_n/s_c)·a_c); for a velocity student it is
 * (z_c − z_n)/(t_c − t_n); ε and v students get the same step in their own parameterization.
 * `ProgressiveTrainer` and `progressiveDistillation` (rounds) of `src/train/distill.ts` train with it.
 */
import * as F from '../../nn/functional.js';
import { scope } from '../../tensor/memory.js';
import { noGrad, perCall, PerCall, randn, randomHost, type Tensor } from '../../tensor/index.js';
import type { Prediction } from '../predict.js';
import type { NoiseProcess, TimePoint } from '../process.js';
import { samplingPath, type Spacing } from '../timesteps.js';
import type { ScaledTeacher } from './guidance.js';
import { batchPoints, checkPrediction, coefShape, ddimCoefficients, perSample, type BatchModel, type NetForward } from './common.js';

/** A teacher: a model, what it predicts, and its noise process. */
export interface Teacher {
  model: BatchModel;
  prediction: Prediction;
  process: NoiseProcess;
  /** The teacher at per-sample guidance scales, for a student that takes w as an input (`scaledTeacher`). */
  atScales?: ScaledTeacher;
}

/** The three points of one student step: its start c, the teacher's midpoint m, and the end n. */
export interface StepPoints {
  c: TimePoint;
  m: TimePoint;
  n: TimePoint;
}

/**
 * The teacher's path of 2N steps and the student's of N (its even points), for N student steps. Sample a
 * student with `sample({ sampler: 'ddim', path })` on the student's path (for rectified flow 'flow_euler'
 * takes the same steps).
 */
export function progressivePaths(process: NoiseProcess, studentSteps: number, spacing?: Spacing): { teacher: TimePoint[]; student: TimePoint[] } {
  if (!Number.isInteger(studentSteps) || studentSteps < 1) throw new Error(`progressivePaths: studentSteps must be a positive integer, got ${studentSteps}`);
  const teacher = samplingPath(process, { steps: 2 * studentSteps, ...(spacing ? { spacing } : {}) });
  return { teacher, student: teacher.filter((_, i) => i % 2 === 0) };
}

/**
 * The student's target output at z (the batch at each sample's start point c) for one step to n: the
 * teacher's two DDIM steps c → m → n, then o = (z_n − A·z)/B for the student's step (no gradient).
 * `points` gives each sample's (c, m, n), as a list or drawn per call of a compiled step.
 */
export function progressiveTarget(teacher: Teacher, prediction: Prediction, z: Tensor, points: StepPoints[] | PerCall<StepPoints[]>, labels?: Tensor | null): Tensor {
  checkPrediction('progressiveTarget', teacher.prediction);
  checkPrediction('progressiveTarget', prediction);
  const now = points instanceof PerCall ? points.value : points;
  if (now.length !== z.shape[0]) throw new Error(`progressiveTarget: ${now.length} step points for a batch of ${z.shape[0]} (shape [${z.shape}])`);
  for (const { c, m, n } of now) {
    if (!(c.s > m.s && m.s > n.s)) throw new Error(`progressiveTarget: each step must go to lower noise, c → m → n, got s = ${c.s}, ${m.s}, ${n.s}`);
  }
  const b = coefShape(z.shape), tp = teacher.prediction;
  const coef = (f: (v: StepPoints) => number) => perSample(points, b, f);
  return noGrad(() => scope(() => {
    const z1 = z.mul(coef((v) => ddimCoefficients(tp, v.c, v.m).A)).add(teacher.model(z, batchPoints(points, z.shape, (v) => v.c), labels).mul(coef((v) => ddimCoefficients(tp, v.c, v.m).B)));
    const z2 = z1.mul(coef((v) => ddimCoefficients(tp, v.m, v.n).A)).add(teacher.model(z1, batchPoints(points, z.shape, (v) => v.m), labels).mul(coef((v) => ddimCoefficients(tp, v.m, v.n).B)));
    return z2.sub(z.mul(coef((v) => ddimCoefficients(prediction, v.c, v.n).A))).mul(coef((v) => 1 / ddimCoefficients(prediction, v.c, v.n).B));
  }));
}

/** What a round of progressive distillation trains: the teacher, the student's parameterization, and the teacher's path. */
export interface ProgressiveSetup {
  teacher: Teacher;
  /** What the student predicts (v, x0 or flow train well; ε is ill-conditioned at high noise, see the paper). */
  prediction: Prediction;
  /** The teacher's path of 2N steps (`progressivePaths`). */
  teacherPath: TimePoint[];
}

/**
 * The loss of one round of progressive distillation on data x0 [N, …] (labels [N] for class-conditional
 * models): each sample gets a uniformly drawn student step c → n of the path (drawn per call of a compiled
 * step), z = a_c·x0 + s_c·ε, and the loss is the mean squared error between the student's output at
 * (z, t_c) and `progressiveTarget`.
 */
export function progressiveLoss(student: NetForward, o: ProgressiveSetup, x0: Tensor, labels?: Tensor | null): Tensor {
  const tp = o.teacherPath, steps = (tp.length - 1) / 2;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`progressiveLoss: the teacher's path needs 2N + 1 points (N ≥ 1 student steps), got ${tp.length}`);
  const N = x0.shape[0]!;
  const points = perCall(() => Array.from(randomHost('int', N, [0, steps]), (i) => ({ c: tp[2 * i]!, m: tp[2 * i + 1]!, n: tp[2 * i + 2]! })));
  return scope(() => {
    const pc = batchPoints(points, x0.shape, (v) => v.c);
    const z = x0.mul(pc.a).add(randn(x0.shape).mul(pc.s));
    const target = progressiveTarget(o.teacher, o.prediction, z, points, labels);
    return F.mseLoss(student.forward(z, pc.t, labels), target);
  });
}
