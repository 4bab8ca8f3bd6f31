/**
 * Trainers of the distillation methods of `k.diffusion` (progressive distillation, consistency distillation
 * and training, reflow, guidance distillation): each trains one student with AdamW (no weight decay) under
 * warmup + cosine decay as a compiled step, with kiln's loss history and resumable checkpoints. A
 * checkpoint's `train` metadata holds the config, whose `method` names the method (and, for progressive
 * distillation, `studentSteps` the student's steps).
 */
import { DISTILL_CHECKPOINT_FORMATS } from '../diffusion/checkpoint.js';
import { consistencyBoundary, consistencyGrid, consistencyLoss, checkConsistencyOptions, ictGridSize, type ConsistencyBoundary, type ConsistencyOptions } from '../diffusion/distill/consistency.js';
import { checkPrediction, netModel, type BatchModel, type DataBatch, type DistillNet, type NetForward } from '../diffusion/distill/common.js';
import { atScales, checkScaleRange, drawScales, guidanceLoss, scaledTeacher, type GuidanceOptions, type GuidanceTeacher, type GuidedNet, type ScaledTeacher, type ScaleRange } from '../diffusion/distill/guidance.js';
import { progressiveLoss, progressivePaths, type Teacher } from '../diffusion/distill/progressive.js';
import { reflowLoss } from '../diffusion/distill/reflow.js';
import type { Prediction } from '../diffusion/predict.js';
import type { NoiseProcess, RectifiedFlow, TimePoint } from '../diffusion/process.js';
import type { Spacing } from '../diffusion/timesteps.js';
import type { TimeSampling } from '../diffusion/training.js';
import type { Module } from '../nn/module.js';
import { AdamW, type LRScheduler } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { noGrad, realize, type Tensor } from '../tensor/index.js';
import { LossTrainer, warmupCosine, type TrainerState } from './trainer.js';

/** The `format` tags of the distillation checkpoints (defined beside the diffusion checkpoint format: `loadDenoiser` reads students). */
export { DISTILL_CHECKPOINT_FORMATS };

/** Optimizer settings every distillation trainer shares, and the guidance scales of a student that takes w as an input. */
export interface OptimConfig {
  /**
   * The student takes the guidance scale w as an input (`UNet`/`DiT` with `guidanceInput`): each sample of a
   * batch draws w uniform in [wMin, wMax], the student sees it, and the teacher (its `atScales`) is guided
   * at it. Unset: the student has no w input (a teacher's fixed guidance is baked in).
   */
  scales?: ScaleRange;
  /** Training steps (the length of the learning-rate schedule). */
  steps: number;
  lr: number;
  /** Linear warmup steps (default 0). */
  warmup?: number;
  /** Max global gradient norm (0 or undefined: no clipping). */
  clip?: number;
}

/** A student: a network with the denoisers' forward, or one that also takes the guidance scale (trained with `scales`). */
export type StudentNet = DistillNet | GuidedNet;

/**
 * The base of the distillation trainers: one student trained by AdamW (no weight decay) under warmup +
 * cosine decay, with compiled steps, loss history and checkpoints (`save`/`load` of `Trainer`).
 */
export abstract class DistillTrainer<Batch extends Tensor[]> extends LossTrainer<Batch> {
  readonly opt: AdamW;
  readonly sched: LRScheduler;
  constructor(format: string, readonly student: Module, config: OptimConfig & { method: string }) {
    super(format, student, config);
    const where = new.target.name, c = config;
    if (!Number.isInteger(c.steps) || c.steps < 1) throw new Error(`${where}: steps must be a positive integer, got ${c.steps}`);
    if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new Error(`${where}: lr must be a positive finite number, got ${c.lr}`);
    if (c.warmup !== undefined && !(Number.isInteger(c.warmup) && c.warmup >= 0)) throw new Error(`${where}: warmup must be a non-negative integer, got ${c.warmup}`);
    if (c.clip !== undefined && !(c.clip >= 0)) throw new Error(`${where}: clip must be ≥ 0, got ${c.clip}`);
    if (c.scales) checkScaleRange(where, c.scales);
    this.opt = new AdamW(student, { lr: c.lr, weightDecay: 0 });
    this.sched = warmupCosine(this.opt, c.lr, c.warmup ?? 0, c.steps);
    this.clip = c.clip || undefined;
  }

  protected override async beforeUpdate(): Promise<void> {
    // lazy initial weights computed inside the first step would give it kernels of its own
    if (this.step === 0) await realize(...this.student.parameters());
  }

  /**
   * The networks and teacher a loss of a batch of n sees: as given, or, with `scales`, at guidance scales
   * drawn for the batch (the student and `nets` bound to them, the teacher's `atScales` at them).
   */
  protected scaled<T extends { model: BatchModel; atScales?: ScaledTeacher } | null>(n: number, teacher: T, ...nets: StudentNet[]): { teacher: T; nets: NetForward[] } {
    const r = (this.config as OptimConfig).scales;
    if (!r) return { teacher, nets: nets as NetForward[] };
    const w = drawScales(n, r);
    if (teacher && !teacher.atScales) throw new Error(`${this.constructor.name}: a student that takes the guidance scale (config.scales) needs a teacher with atScales (k.diffusion.scaledTeacher)`);
    return { teacher: (teacher ? { ...teacher, model: teacher.atScales!(w) } : teacher) as T, nets: nets.map((net) => atScales(net as GuidedNet, w)) };
  }
}

// ------------------------------------------------------------------------------------------------
// Progressive distillation

/** Hyper-parameters of one round of progressive distillation. */
export interface ProgressiveConfig extends OptimConfig {
  /** Sampling steps of the student; the teacher takes twice as many. */
  studentSteps: number;
  /** What the student predicts (v, x0 or flow; ε is ill-conditioned at high noise). */
  prediction: Prediction;
  /** Timestep spacing of the paths (discrete VP; `samplingPath`). */
  spacing?: Spacing;
}

/** Trains a student to take in one DDIM step what the teacher takes in two (`k.diffusion.progressiveLoss`); batches are x0 [N, …] (and labels [N]). */
export class ProgressiveTrainer extends DistillTrainer<DataBatch> {
  declare readonly config: ProgressiveConfig & { method: 'progressive' };
  /** The teacher's path (2N steps). */
  readonly teacherPath: TimePoint[];
  /** The student's path (N steps): sample the student on it with the 'ddim' sampler ('flow_euler' for rectified flow takes the same steps). */
  readonly path: TimePoint[];

  constructor(readonly net: StudentNet, readonly teacher: Teacher, config: ProgressiveConfig) {
    super(DISTILL_CHECKPOINT_FORMATS.progressive, net, { method: 'progressive', ...config });
    checkPrediction('ProgressiveTrainer', config.prediction);
    checkPrediction('ProgressiveTrainer', teacher.prediction);
    ({ teacher: this.teacherPath, student: this.path } = progressivePaths(teacher.process, config.studentSteps, config.spacing));
  }

  /** The loss of a batch x0 [N, …] (labels [N] for class-conditional networks). */
  loss(x0: Tensor, labels?: Tensor): Tensor {
    const { teacher, nets: [net] } = this.scaled(x0.shape[0]!, this.teacher, this.net);
    return progressiveLoss(net!, { teacher, prediction: this.config.prediction, teacherPath: this.teacherPath }, x0, labels);
  }
}

/** Options of `progressiveDistillation`. */
export interface ProgressiveRounds {
  /** The first round's teacher. */
  teacher: Teacher;
  /** Steps of the first teacher (`finalSteps` times a power of two). */
  teacherSteps: number;
  /** Steps of the last student (default 1). */
  finalSteps?: number;
  /** A new student network (the same architecture each round). */
  newStudent: () => StudentNet;
  /** Initial weights of the first student (e.g. the teacher network; default: the student's own initialization). */
  init?: Module;
  /** Hyper-parameters of every round (the student's steps are set by the round). */
  config: Omit<ProgressiveConfig, 'studentSteps'>;
  /** Training steps of each round (default `config.steps` each): later rounds start from a student close to their teacher and need fewer. */
  roundSteps?: number[];
  /** The batch of a training step (its tensors are disposed after the step unless `disposeBatches` is false). */
  batch: (step: number, round: number) => DataBatch;
  /** Whether the batches are disposed after their step (default true: `batch` makes new tensors each step). */
  disposeBatches?: boolean;
  /** Called after each round with its trainer (e.g. to save a checkpoint or sample). */
  onRound?: (info: { round: number; studentSteps: number; trainer: ProgressiveTrainer }) => void | Promise<void>;
}

/**
 * Rounds of progressive distillation from `teacherSteps` down to `finalSteps`: each round trains a student
 * initialized from the previous one (the first from `init`) to halve its teacher's steps, and the student
 * becomes the next teacher. Returns the last student, its steps and path, and each round's losses.
 */
export async function progressiveDistillation(o: ProgressiveRounds): Promise<{ student: StudentNet; steps: number; path: TimePoint[]; losses: number[][] }> {
  const last = o.finalSteps ?? 1;
  const rounds = Math.log2(o.teacherSteps / last);
  if (!Number.isInteger(last) || last < 1 || !Number.isInteger(rounds) || rounds < 1) throw new Error(`progressiveDistillation: teacherSteps (${o.teacherSteps}) must be finalSteps (${last}) times a power of two ≥ 2`);
  if (o.roundSteps && o.roundSteps.length !== rounds) throw new Error(`progressiveDistillation: roundSteps has ${o.roundSteps.length} entries for ${rounds} rounds (${o.teacherSteps} → ${last} steps)`);
  let teacher = o.teacher, prev: StudentNet | null = null, path: TimePoint[] = [];
  const losses: number[][] = [];
  for (let r = 0; r < rounds; r++) {
    const studentSteps = o.teacherSteps / 2 ** (r + 1);
    const student = o.newStudent();
    const from = prev ?? o.init;
    if (from) student.loadStateDict(from.stateDict());
    const steps = o.roundSteps?.[r] ?? o.config.steps;
    const trainer = new ProgressiveTrainer(student, teacher, { ...o.config, steps, studentSteps });
    for (let i = 0; i < steps; i++) {
      const batch = o.batch(i, r);
      await trainer.trainStep(...batch);
      if (o.disposeBatches ?? true) batch.forEach((t) => t.dispose());
    }
    await trainer.flush();
    losses.push(trainer.losses.slice());
    path = trainer.path;
    await o.onRound?.({ round: r, studentSteps, trainer });
    // the previous student (this round's teacher) and this round's optimizer moments are no longer needed
    prev?.parameters().forEach((p) => p.dispose());
    Object.values(trainer.opt.stateDict().tensors).forEach((t) => t.dispose());
    prev = student;
    teacher = o.config.scales ? { model: teacher.model, prediction: o.config.prediction, process: teacher.process, atScales: scaledTeacher(student, { takesScale: true }) }
      : { model: netModel(student as DistillNet), prediction: o.config.prediction, process: teacher.process };
  }
  return { student: prev!, steps: last, path, losses };
}

// ------------------------------------------------------------------------------------------------
// Consistency distillation and training

/** Hyper-parameters of `ConsistencyTrainer`. */
export interface ConsistencyConfig extends OptimConfig, ConsistencyOptions {
  /** Decay μ of the target network θ⁻ ← μ·θ⁻ + (1 − μ)·θ after each update (default 0: θ⁻ = θ without gradient). */
  emaDecay?: number;
  /** Distillation: points of the fixed time grid (default 18). */
  gridSize?: number;
  /** Training without a teacher: s0, s1 of the growing grid (`ictGridSize`; defaults 10, 1280). */
  s0?: number;
  s1?: number;
}

/** What a consistency trainer works with besides the student. */
export interface ConsistencyTrainerSetup {
  process: NoiseProcess;
  /** The teacher (consistency distillation; `atScales` for a student that takes w); without one the trainer does consistency training. */
  teacher?: { model: BatchModel; prediction: Prediction; atScales?: ScaledTeacher };
  /** A second network of the student's architecture holding θ⁻ (needed when `emaDecay` > 0; set to the student's weights at the start). */
  target?: StudentNet;
}

/**
 * Trains a consistency model (`k.diffusion.consistencyLoss`): distillation when a teacher is given (fixed
 * grid of `gridSize` points), training from data alone otherwise (the grid grows by `ictGridSize`).
 * Batches are x0 [N, …] (and labels [N]); sample with `k.diffusion.consistencySample` and `boundary`.
 */
export class ConsistencyTrainer extends DistillTrainer<DataBatch> {
  declare readonly config: ConsistencyConfig & { method: 'consistency-distillation' | 'consistency-training' };
  readonly process: NoiseProcess;
  readonly teacher: { model: BatchModel; prediction: Prediction; atScales?: ScaledTeacher } | null;
  /** The network holding θ⁻ (the student itself when `emaDecay` is 0 and no target was given). */
  readonly target: StudentNet;
  private readonly grids = new Map<number, TimePoint[]>();

  constructor(readonly net: StudentNet, setup: ConsistencyTrainerSetup, config: ConsistencyConfig) {
    super(DISTILL_CHECKPOINT_FORMATS.consistency, net, { method: setup.teacher ? 'consistency-distillation' : 'consistency-training', ...config });
    const c = config, where = 'ConsistencyTrainer';
    checkConsistencyOptions(where, c);
    const mu = c.emaDecay ?? 0;
    if (!(mu >= 0 && mu < 1)) throw new Error(`${where}: emaDecay must be in [0, 1), got ${mu}`);
    if (mu > 0 && !setup.target) throw new Error(`${where}: emaDecay ${mu} needs a target network (setup.target, of the student's architecture) to hold the average`);
    if (c.gridSize !== undefined && !(Number.isInteger(c.gridSize) && c.gridSize >= 2)) throw new Error(`${where}: gridSize must be an integer ≥ 2, got ${c.gridSize}`);
    if (setup.teacher) checkPrediction(where, setup.teacher.prediction);
    this.process = setup.process;
    this.teacher = setup.teacher ?? null;
    this.target = setup.target ?? net;
    if (setup.target) setup.target.loadStateDict(net.stateDict());
  }

  /** The boundary of the model being trained (for `consistencyOutput` and `consistencySample`). */
  get boundary(): Required<ConsistencyBoundary> {
    return consistencyBoundary(this.process, this.config);
  }

  /** The time grid at training step k (default: the current step): fixed for distillation, growing for training. */
  grid(k: number = this.step): TimePoint[] {
    const c = this.config;
    const n = this.teacher ? c.gridSize ?? 18 : ictGridSize(k, c.steps, c.s0, c.s1);
    let g = this.grids.get(n);
    if (!g) this.grids.set(n, (g = consistencyGrid(this.process, n, c.tMin, c.tMax, c.rho)));
    return g;
  }

  /** The consistency loss of a batch x0 [N, …] (labels [N] for class-conditional networks). */
  loss(x0: Tensor, labels?: Tensor): Tensor {
    const { teacher, nets: [net, target] } = this.scaled(x0.shape[0]!, this.teacher, this.net, this.target);
    return consistencyLoss(net!, { process: this.process, teacher, target: target!, grid: () => this.grid(), options: this.config }, x0, labels);
  }

  protected override async beforeUpdate(): Promise<void> {
    await super.beforeUpdate();
    if (this.step === 0 && this.target !== this.net) await realize(...this.target.parameters());
  }

  protected override alongsideUpdate(): Tensor[] {
    if (this.target === this.net) return [];
    const mu = this.config.emaDecay ?? 0;
    const online = this.net.parameters();
    noGrad(() => scope(() => this.target.parameters().forEach((p, i) => p.assign(p.mul(mu).add(online[i]!.mul(1 - mu))))));
    return this.target.parameters();
  }

  protected override state(): TrainerState {
    const s = super.state();
    if (this.target !== this.net) s.tensors['target.'] = this.target.stateDict();
    return s;
  }

  protected override restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    super.restore(meta, tensors);
    if (this.target !== this.net) this.target.loadStateDict(tensors('target.'));
  }
}

// ------------------------------------------------------------------------------------------------
// Reflow

/** Hyper-parameters of `ReflowTrainer`. */
export interface ReflowConfig extends OptimConfig {
  /** How training times are drawn (default 'uniform'). */
  times?: TimeSampling;
}

/**
 * Trains a rectified flow on couples (`k.diffusion.reflowLoss`): batches (z, x) of noise and teacher samples
 * (and labels [N]; and, for a student that takes the guidance scale, the scale w [N] each couple was drawn at).
 */
export class ReflowTrainer extends DistillTrainer<[z: Tensor, x: Tensor] | [z: Tensor, x: Tensor, labels: Tensor] | [z: Tensor, x: Tensor, labels: Tensor, w: Tensor]> {
  declare readonly config: ReflowConfig & { method: 'reflow' };
  constructor(readonly net: StudentNet, readonly process: RectifiedFlow, config: ReflowConfig) {
    super(DISTILL_CHECKPOINT_FORMATS.reflow, net, { method: 'reflow', ...config });
    if (process.kind !== 'flow') throw new Error(`ReflowTrainer: reflow trains a rectified flow, got a ${(process as { constructor: { name: string } }).constructor.name} process`);
  }

  /** The flow-matching loss on couples z, x (labels; w: the couples' guidance scales, for a student that takes them). */
  loss(z: Tensor, x: Tensor, labels?: Tensor, w?: Tensor): Tensor {
    if (!w !== !this.config.scales) throw new Error(`ReflowTrainer: ${w ? 'couples with guidance scales need config.scales (a student that takes w)' : 'a student that takes the guidance scale (config.scales) trains on couples with their scales: batches (z, x, labels, w)'}`);
    return reflowLoss(w ? atScales(this.net as GuidedNet, w) : (this.net as DistillNet), this.process, z, x, labels, this.config.times);
  }
}

// ------------------------------------------------------------------------------------------------
// Guidance distillation

/** Hyper-parameters of `GuidanceTrainer`. */
export interface GuidanceConfig extends OptimConfig, GuidanceOptions {}

/** Trains a `GuidedNet` to reproduce the teacher's guided output (`k.diffusion.guidanceLoss`); batches are x0 [N, …] with labels [N]. */
export class GuidanceTrainer extends DistillTrainer<[x0: Tensor, labels: Tensor]> {
  declare readonly config: GuidanceConfig & { method: 'guidance' };
  constructor(readonly net: GuidedNet, readonly teacher: GuidanceTeacher, config: GuidanceConfig) {
    super(DISTILL_CHECKPOINT_FORMATS.guidance, net, { method: 'guidance', ...config });
    if (!(Number.isFinite(config.wMin) && Number.isFinite(config.wMax) && config.wMax >= config.wMin)) throw new Error(`GuidanceTrainer: need finite wMin ≤ wMax, got wMin = ${config.wMin}, wMax = ${config.wMax}`);
    checkPrediction('GuidanceTrainer', teacher.prediction);
    if (config.prediction) checkPrediction('GuidanceTrainer', config.prediction);
  }

  /** What the student predicts. */
  get prediction(): Prediction {
    return this.config.prediction ?? this.teacher.prediction;
  }

  /** The loss of x0 [N, …] with labels [N]. */
  loss(x0: Tensor, labels: Tensor): Tensor {
    return guidanceLoss(this.net, this.teacher, this.config, x0, labels);
  }
}
