/**
 * Training a denoiser on images: the objective (DDPM ε-prediction or v-prediction on a cosine discrete
 * VP process, or rectified flow with logit-normal times), classifier-free-guidance label dropout,
 * AdamW with warmup + cosine decay, gradient clipping and EMA weights, all seeded. A checkpoint
 * (model, EMA, optimizer moments, step, RNG state and config) is one safetensors file written
 * atomically, so a killed run resumes with exactly the loss curve it would have had.
 */
import { AdamW, EMA, LRScheduler, cosine, warmup } from '../nn/optim.js';
import type { Module } from '../nn/module.js';
import { loadWithMetadata, save } from '../nn/safetensors.js';
import { scope } from '../tensor/memory.js';
import { getRngState, randn, realize, setRngState, type Tensor } from '../tensor/index.js';
import { DiscreteVP, RectifiedFlow, type NoiseProcess } from './process.js';
import type { Prediction } from './predict.js';
import { coefficients, dropLabels, sampleTimes } from './training.js';

/** What the network learns to predict, and on which process. */
export type Objective = 'eps' | 'v' | 'flow';

/** A class-conditional denoiser: x [N, C, H, W], t [N], labels [N] (the null class = numClasses). */
export interface Denoiser extends Module {
  forward(x: Tensor, t: Tensor, labels?: Tensor | null): Tensor;
  readonly config: { numClasses: number };
}

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
}

/** Defaults of `TrainConfig`. */
export const TRAIN_DEFAULTS: TrainConfig = { objective: 'flow', steps: 2000, batchSize: 64, lr: 2e-3, warmup: 100, weightDecay: 0, clip: 1, emaDecay: 0.995, labelDropout: 0.1, seed: 0 };

/** The noise process and prediction type of an objective. */
export function objectiveSetup(objective: Objective): { process: NoiseProcess; prediction: Prediction } {
  switch (objective) {
    case 'eps': return { process: new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'squaredcos_cap_v2' }), prediction: 'eps' };
    case 'v': return { process: new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'squaredcos_cap_v2' }), prediction: 'v' };
    case 'flow': return { process: new RectifiedFlow(), prediction: 'flow' };
    default: throw new Error(`objective must be eps, v or flow, got ${JSON.stringify(objective)}`);
  }
}

/** Trains a denoiser one batch at a time; `save`/`load` checkpoint everything needed to resume. */
export class DiffusionTrainer {
  readonly opt: AdamW;
  readonly ema: EMA;
  readonly sched: LRScheduler;
  readonly process: NoiseProcess;
  readonly prediction: Prediction;
  step = 0;
  /** Loss of every completed step (read back one step late, so it never stalls the GPU). */
  readonly losses: number[] = [];
  private pending: Promise<number> | null = null;

  constructor(readonly model: Denoiser, readonly config: TrainConfig) {
    const c = config;
    ({ process: this.process, prediction: this.prediction } = objectiveSetup(c.objective));
    this.opt = new AdamW(model, { lr: c.lr, weightDecay: c.weightDecay });
    this.sched = new LRScheduler(this.opt, warmup(c.lr, c.warmup, cosine(c.lr, Math.max(1, c.steps - c.warmup), c.lr * 0.05)));
    this.ema = new EMA(model, c.emaDecay);
  }

  /** The loss of one batch: x0 [N, C, H, W] in [−1, 1], labels [N] i32. */
  loss(x0: Tensor, labels: Tensor): Tensor {
    const c = this.config;
    const N = x0.shape[0]!;
    const points = sampleTimes(this.process, N, c.objective === 'flow' ? 'logit-normal' : 'uniform');
    return scope(() => {
      const { a, s, t } = coefficients(points, x0.shape);
      const eps = randn(x0.shape);
      const xt = x0.mul(a).add(eps.mul(s));
      const y = c.labelDropout > 0 ? dropLabels(labels, c.labelDropout, this.model.config.numClasses) : labels;
      const target = this.prediction === 'eps' ? eps : this.prediction === 'v' ? eps.mul(a).sub(x0.mul(s)) : eps.sub(x0);
      return this.model.forward(xt, t, y).sub(target).square().mean();
    });
  }

  /** One optimizer step on a batch (lazy; the loss is collected later into `losses`). */
  async trainStep(x0: Tensor, labels: Tensor): Promise<void> {
    // initial weights are lazy: computed inside the first step, they would give it other kernels (and
    // other pipelines to compile) than every later step
    if (this.step === 0) await realize(...this.model.parameters(), ...this.ema.shadow.values());
    const loss = this.opt.minimize(() => this.loss(x0, labels), { clipGradNorm: this.config.clip || undefined });
    this.sched.step();
    await this.ema.update();
    this.step++;
    if (this.pending) this.losses.push(await this.pending);
    this.pending = loss.item().finally(() => loss.dispose());
  }

  /** Waits for the last step's loss. */
  async flush(): Promise<void> {
    if (this.pending) this.losses.push(await this.pending);
    this.pending = null;
  }

  /**
   * Writes the checkpoint atomically (the previous file stays intact if anything fails). `extra` goes
   * into the metadata; `extraTensors` are stored beside the model (e.g. a latent model's frozen VAE
   * under `vae.`) and must not use the trainer's prefixes `model.`, `ema.`, `optim.`.
   */
  async save(path: string, extra: Record<string, unknown> = {}, extraTensors: Record<string, Tensor> = {}): Promise<void> {
    await this.flush();
    const tensors: Record<string, Tensor> = {};
    for (const [n, t] of Object.entries(extraTensors)) {
      if (/^(model|ema|optim)\./.test(n)) throw new Error(`DiffusionTrainer.save: extra tensor '${n}' uses a prefix reserved for the trainer (model., ema., optim.)`);
      tensors[n] = t;
    }
    for (const [n, t] of Object.entries(this.model.stateDict())) tensors[`model.${n}`] = t;
    for (const [n, t] of Object.entries(this.ema.stateDict())) tensors[`ema.${n}`] = t;
    const os = this.opt.stateDict();
    for (const [n, t] of Object.entries(os.tensors)) tensors[`optim.${n}`] = t;
    const meta = {
      format: 'kiln-diffusion-checkpoint/1',
      step: this.step,
      train: this.config,
      rng: getRngState(),
      optimizer: { step: os.step, steps: os.steps, groups: os.groups },
      losses: this.losses,
      ...extra,
    };
    await save(tensors, path, { metadata: { kiln: JSON.stringify(meta) } });
  }

  /** Restores a checkpoint written by `save` into this trainer (same model structure). */
  async load(path: string): Promise<Record<string, unknown>> {
    const { tensors, metadata } = await loadWithMetadata(path);
    const meta = readMeta(path, metadata);
    const pick = (prefix: string) => Object.fromEntries(Object.entries(tensors).filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n.slice(prefix.length), t]));
    this.model.loadStateDict(pick('model.'));
    this.ema.loadStateDict(pick('ema.'));
    const o = meta.optimizer as { step: number; steps: number[]; groups: { lr: number }[] };
    this.opt.loadStateDict({ step: o.step, steps: o.steps, groups: o.groups as never, tensors: pick('optim.') });
    for (const t of Object.values(tensors)) t.dispose();
    this.step = meta.step as number;
    this.sched.stepCount = this.step;
    this.opt.lr = this.sched.schedule(this.step);
    this.losses.splice(0, this.losses.length, ...(meta.losses as number[]));
    setRngState(meta.rng as { seed: number; counter: number });
    return meta;
  }
}

/** The JSON metadata of a kiln diffusion checkpoint, or a clear error. */
export function readMeta(path: string, metadata: Record<string, string>): Record<string, unknown> {
  if (!metadata.kiln) throw new Error(`${path} is not a kiln diffusion checkpoint (no 'kiln' metadata)`);
  const meta = JSON.parse(metadata.kiln) as Record<string, unknown>;
  if (meta.format !== 'kiln-diffusion-checkpoint/1') throw new Error(`${path}: unknown checkpoint format ${JSON.stringify(meta.format)}`);
  return meta;
}
