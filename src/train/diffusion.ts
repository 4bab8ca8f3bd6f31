/**
 * Training a class-conditional image denoiser: the objective (DDPM ε-prediction or v-prediction on a
 * cosine discrete VP process, or rectified flow with logit-normal times), classifier-free-guidance label
 * dropout, AdamW with warmup + cosine decay, gradient clipping and EMA weights, all seeded. Its
 * checkpoints (model, EMA, optimizer moments, step, generator state, config, losses) are what
 * `k.diffusion.loadDenoiser` reads.
 */
import { DIFFUSION_CHECKPOINT_FORMAT } from '../diffusion/checkpoint.js';
import type { Prediction } from '../diffusion/predict.js';
import type { NoiseProcess } from '../diffusion/process.js';
import { denoisingLoss, objectiveSetup, type Denoiser, type Objective } from '../diffusion/training.js';
import { AdamW, EMA, type LRScheduler } from '../nn/optim.js';
import { realize, type Tensor } from '../tensor/index.js';
import { LossTrainer, warmupCosine, type Precision, type TrainerState } from './trainer.js';

/** Hyper-parameters of a training run. */
export interface TrainConfig {
  objective: Objective;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  /** Max global gradient norm (0: no clipping). */
  clip: number;
  emaDecay: number;
  /** Probability of replacing a label by the null class (classifier-free guidance). */
  labelDropout: number;
  seed: number;
  /** 'f16': mixed precision (f16 activations under `k.autocast`, f32 master weights, dynamic loss scaling); absent: 'f32'. */
  precision?: Precision;
  /**
   * Rectified flow only: the mean m of the logit-normal training times t = σ(m + z), z ~ N(0, 1); positive
   * trains more near the noise (t = 1), where the layout of a sample is decided. Absent: 0 (SD3's choice).
   */
  timeMean?: number;
}

/** Defaults of `TrainConfig`. */
export const TRAIN_DEFAULTS: TrainConfig = { objective: 'flow', steps: 2000, batchSize: 64, lr: 2e-3, warmup: 100, weightDecay: 0, clip: 1, emaDecay: 0.995, labelDropout: 0.1, seed: 0 };

/** Trains a denoiser one batch at a time (x0 [N, C, H, W] in [−1, 1], labels [N] i32); `losses` holds the loss of every completed step. */
export class DiffusionTrainer extends LossTrainer<[x0: Tensor, labels: Tensor]> {
  readonly opt: AdamW;
  readonly ema: EMA;
  readonly sched: LRScheduler;
  readonly process: NoiseProcess;
  readonly prediction: Prediction;

  constructor(readonly model: Denoiser, readonly config: TrainConfig) {
    super(DIFFUSION_CHECKPOINT_FORMAT, model, config);
    const c = config;
    // checked here rather than first in the EMA or in the first step's label dropout
    if (!(c.labelDropout >= 0 && c.labelDropout <= 1)) throw new Error(`DiffusionTrainer: labelDropout is a probability in [0, 1], got ${c.labelDropout}`);
    if (!(c.emaDecay >= 0 && c.emaDecay <= 1)) throw new Error(`DiffusionTrainer: emaDecay must be in [0, 1], got ${c.emaDecay}`);
    if (c.timeMean !== undefined) {
      if (!Number.isFinite(c.timeMean)) throw new Error(`DiffusionTrainer: timeMean must be a finite number (the mean of the logit-normal times), got ${c.timeMean}`);
      if (c.objective !== 'flow') throw new Error(`DiffusionTrainer: timeMean applies to objective 'flow' (its logit-normal times), not '${c.objective}'`);
    }
    ({ process: this.process, prediction: this.prediction } = objectiveSetup(c.objective));
    this.opt = new AdamW(model, { lr: c.lr, weightDecay: c.weightDecay });
    this.sched = warmupCosine(this.opt, c.lr, c.warmup, c.steps);
    this.ema = new EMA(model, c.emaDecay);
    this.clip = c.clip || undefined;
    this.setPrecision(c.precision);
  }

  /** The loss of one batch: x0 [N, C, H, W] in [−1, 1], labels [N] i32. */
  loss(x0: Tensor, labels: Tensor): Tensor {
    const c = this.config;
    return denoisingLoss(this.model, x0, labels, { process: this.process, prediction: this.prediction, times: c.objective === 'flow' ? 'logit-normal' : 'uniform', timeMean: c.timeMean, labelDropout: c.labelDropout });
  }

  protected override async beforeUpdate(): Promise<void> {
    // initial weights are lazy: computed inside the first step, they would give it other kernels (and
    // other pipelines to compile) than every later step
    if (this.step === 0) await realize(...this.model.parameters(), ...this.ema.shadow.values());
  }

  protected override alongsideUpdate(): Tensor[] {
    return this.ema.stage();
  }

  protected override state(): TrainerState {
    const s = super.state();
    s.tensors['ema.'] = this.ema.stateDict();
    return s;
  }

  protected override restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    super.restore(meta, tensors);
    this.ema.loadStateDict(tensors('ema.'));
  }
}
