/**
 * Training a gated PixelCNN by maximum likelihood: the loss is the exact NLL in nats per image (mean over
 * the batch) from one teacher-forced pass; `evaluateNll` gives the same on a held-out set. An exponential
 * moving average of the weights (Polyak averaging) is kept for evaluation and sampling. Its checkpoints
 * are what `k.nn.loadPixelCNN` reads.
 */
import { noGrad } from '../tensor/index.js';
import { scope } from '../tensor/memory.js';
import type { Tensor } from '../tensor/index.js';
import { PIXELCNN_CHECKPOINT_FORMAT, type PixelCNN } from '../nn/models/pixelcnn.js';
import { Adam, EMA, type LRScheduler } from '../nn/optim.js';
import { realize } from '../tensor/index.js';
import { LossTrainer, warmupCosine, type TrainerState } from './trainer.js';

/** Hyper-parameters of PixelCNN training. */
export interface PixelCNNTrainConfig {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  /** Max global gradient norm (0: no clipping). */
  clip: number;
  seed: number;
  /** How training images become pixels: dynamic or threshold binarization (bits 1), or 'grey' (bits 8). */
  data: 'dynamic' | 'threshold' | 'grey';
  /**
   * Decay of the exponential moving average of the weights that evaluation and sampling use (0: none).
   * Absent in checkpoints written before it existed, which have no average.
   */
  emaDecay?: number;
  /**
   * With dynamic binarization, score each pixel against its probability of being 1 (intensity / 255)
   * rather than against its drawn bit, the network still seeing drawn bits before it. Pixels are drawn
   * independently, so this is the loss's expectation over the draw of the pixel scored: the same expected
   * gradient with less noise (Rao–Blackwellization). Each batch then comes with its `target`, and only
   * then. Absent in older checkpoints (drawn bits).
   */
  softTargets?: boolean;
}

/**
 * Defaults of `PixelCNNTrainConfig`: the binarized-MNIST run of `kiln train-pixelcnn`. Small batches: per
 * image seen, batches of 2–4 learn far faster than 16 (more updates for the same images), and on this CPU
 * driver an image costs about the same in a step of 2 as in one of 16 (less when other jobs share the cores).
 */
export const PIXELCNN_TRAIN_DEFAULTS: PixelCNNTrainConfig = { steps: 6400, batchSize: 2, lr: 3e-3, warmup: 100, clip: 1, seed: 0, data: 'dynamic', emaDecay: 0.999, softTargets: true };

/**
 * Trains a PixelCNN on batches (x [N, 1, H, W] pixel values, and labels i32 [N] when class-conditional),
 * with Adam under linear warmup and cosine decay, and an EMA of the weights updated after every step when
 * `emaDecay` > 0; `losses` holds each step's NLL in nats per image. Checkpoints hold the average under `ema.`.
 */
export class PixelCNNTrainer extends LossTrainer<[x: Tensor] | [x: Tensor, labels: Tensor | null] | [x: Tensor, labels: Tensor | null, target: Tensor]> {
  readonly opt: Adam;
  readonly sched: LRScheduler;
  /** The average of the weights (null when `emaDecay` is 0 or absent). */
  readonly ema: EMA | null;
  constructor(readonly model: PixelCNN, readonly config: PixelCNNTrainConfig) {
    super(PIXELCNN_CHECKPOINT_FORMAT, model, config);
    const c = config;
    if (!Number.isInteger(c.steps) || c.steps < 1) throw new Error(`PixelCNNTrainer: steps must be a positive integer, got ${c.steps}`);
    if (!(c.lr > 0)) throw new Error(`PixelCNNTrainer: lr must be positive, got ${c.lr}`);
    if (!(c.clip >= 0)) throw new Error(`PixelCNNTrainer: clip must be ≥ 0, got ${c.clip}`);
    const decay = c.emaDecay ?? 0;
    if (!(decay >= 0 && decay < 1)) throw new Error(`PixelCNNTrainer: emaDecay must be in [0, 1) (0: no average), got ${c.emaDecay}`);
    const grey = c.data === 'grey';
    if ((model.config.bits === 8) !== grey) throw new Error(`PixelCNNTrainer: data '${c.data}' does not fit a ${model.config.bits}-bit PixelCNN (bits 1 takes 'dynamic' or 'threshold', bits 8 takes 'grey')`);
    if (c.softTargets && c.data !== 'dynamic') throw new Error(`PixelCNNTrainer: softTargets needs data 'dynamic' (the probabilities its bits are drawn from), got '${c.data}'`);
    this.opt = new Adam(model, { lr: c.lr });
    this.sched = warmupCosine(this.opt, c.lr, c.warmup, c.steps);
    this.clip = c.clip > 0 ? c.clip : undefined;
    this.ema = decay > 0 ? new EMA(model, decay) : null;
  }

  /** The NLL in nats per image, averaged over the batch (against per-pixel probabilities `target` when given). */
  loss(x: Tensor, labels?: Tensor | null, target?: Tensor): Tensor {
    const soft = this.config.softTargets ?? false;
    if (soft !== !!target) throw new Error(`PixelCNNTrainer: ${soft ? 'softTargets is on: pass each batch\'s target (PixelBatches made withTargets)' : 'softTargets is off: a batch takes no target'}`);
    return this.model.loss(x, labels ?? null, target ?? null);
  }

  protected async beforeUpdate(): Promise<void> {
    // lazy initial weights would otherwise be computed inside the first step's trace
    if (this.step === 0) await realize(...this.model.parameters(), ...(this.ema?.shadow.values() ?? []));
  }

  protected override alongsideUpdate(): Tensor[] {
    return this.ema?.stage() ?? [];
  }

  protected override state(): TrainerState {
    const s = super.state();
    if (this.ema) s.tensors['ema.'] = this.ema.stateDict();
    return { tensors: s.tensors, meta: { ...s.meta, pixelcnn: this.model.config } };
  }

  protected override restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    super.restore(meta, tensors);
    if (!this.ema) return;
    const avg = tensors('ema.');
    // a checkpoint written without an average starts one from its weights
    if (Object.keys(avg).length) this.ema.loadStateDict(avg);
    else this.ema.loadStateDict(tensors('model.'));
  }
}

/** The exact NLL of a PixelCNN on batches: nats per image and, dividing by pixels·ln 2, bits per dimension. */
export interface NllReport {
  images: number;
  natsPerImage: number;
  bitsPerDim: number;
}

/** The mean NLL of a PixelCNN over batches ({x, y}: y used as labels when the model is class-conditional); disposes the batches. */
export async function evaluateNll(model: PixelCNN, batches: Iterable<{ x: Tensor; y: Tensor }>): Promise<NllReport> {
  const wasTraining = model.training;
  model.eval();
  let sum = 0, n = 0, dims = 0;
  try {
    for (const { x, y } of batches) {
      try {
        sum += await noGrad(() => scope(() => model.nll(x, model.config.numClasses > 0 ? y : null).sum())).item();
        n += x.shape[0]!;
        dims = x.size / x.shape[0]!;
      } finally {
        x.dispose();
        y.dispose();
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  if (!n) throw new Error('evaluateNll: no images to evaluate');
  return { images: n, natsPerImage: sum / n, bitsPerDim: sum / n / dims / Math.LN2 };
}
