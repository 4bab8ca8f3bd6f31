/** Training the 2D toy denoiser (`k.diffusion.ToyDenoiser`) by DDPM ε-prediction or rectified flow: the first diffusion models trained with kiln. */
import type { Prediction } from '../diffusion/predict.js';
import { DiscreteVP, RectifiedFlow, type NoiseProcess } from '../diffusion/process.js';
import { target } from '../diffusion/predict.js';
import { ToyDenoiser } from '../diffusion/toy.js';
import { addNoise, coefficients, drawTimes } from '../diffusion/training.js';
import { toy2d, type Toy2D } from '../data/toy2d.js';
import * as F from '../nn/functional.js';
import { AdamW, cosine, LRScheduler } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { manualSeed, randn, tensor, type Tensor } from '../tensor/index.js';
import { LossTrainer } from './trainer.js';

/** The `format` tag of toy-denoiser checkpoints. */
export const TOY_CHECKPOINT_FORMAT = 'kiln-toy-checkpoint/2';

/** Hyper-parameters of `ToyTrainer`. */
export interface ToyTrainConfig {
  objective: 'ddpm-eps' | 'flow';
  steps: number;
  lr: number;
}

/** Trains a `ToyDenoiser` on batches of 2D points [B, 2] with AdamW and cosine decay; `losses` holds every step's loss. */
export class ToyTrainer extends LossTrainer<[x0: Tensor]> {
  declare readonly model: ToyDenoiser;
  readonly process: NoiseProcess;
  readonly prediction: Prediction;
  readonly opt: AdamW;
  readonly sched: LRScheduler;
  constructor(readonly config: ToyTrainConfig) {
    const flow = config.objective === 'flow';
    super(TOY_CHECKPOINT_FORMAT, new ToyDenoiser({ timeScale: flow ? 1000 : 1 }), config);
    this.process = toyProcess(config.objective);
    this.prediction = flow ? 'flow' : 'eps';
    this.opt = new AdamW(this.model, { lr: config.lr, weightDecay: 0 });
    this.sched = new LRScheduler(this.opt, cosine(config.lr, config.steps, config.lr * 0.02));
  }

  /** The mean squared error of the prediction at times drawn uniformly, on points x0 [B, 2]. */
  loss(x0: Tensor): Tensor {
    const B = x0.shape[0]!;
    const points = drawTimes(this.process, B, 'uniform');
    return scope(() => {
      const eps = randn([B, 2]);
      const xt = addNoise(x0, eps, points);
      const { t } = coefficients(points, [B, 2]);
      const tgt = target(this.prediction, x0, eps, points.value[0]!); // eps and flow targets do not depend on t
      return F.mseLoss(this.model.forward(xt, t), tgt);
    });
  }
}

/** The noise process of a toy objective: rectified flow, or a 1,000-step DDPM with a linear β schedule. */
export function toyProcess(objective: 'ddpm-eps' | 'flow'): NoiseProcess {
  return objective === 'flow' ? new RectifiedFlow() : new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'linear' });
}

/** Defaults of `trainToy`, `kiln toy2d` and the page's toy panel: ~25 s on lavapipe, two sharp moons. */
export const TOY_TRAIN_DEFAULTS = { steps: 1500, batchSize: 256, lr: 1e-2 };

/** Options of `trainToy`. */
export interface ToyTrainOptions {
  dataset: Toy2D;
  objective: 'ddpm-eps' | 'flow';
  steps: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /**
   * Called at step `step` (0-based) with the loss of the step before (from step 1 on) and the trainer (its
   * model may be sampled between steps); training waits for a returned promise.
   */
  onStep?: (step: number, loss: number, trainer: ToyTrainer) => void | Promise<void>;
  /** Ends training early (after the step in flight) when aborted; the model learned so far is returned. */
  signal?: AbortSignal;
}

/** Trains a ToyDenoiser on fresh samples of a toy data set (seeded); returns it with its process, prediction type and the loss curve (one loss per step run). */
export async function trainToy(o: ToyTrainOptions): Promise<{ net: ToyDenoiser; process: NoiseProcess; prediction: Prediction; losses: number[] }> {
  manualSeed(o.seed ?? 0);
  const trainer = new ToyTrainer({ objective: o.objective, steps: o.steps, lr: o.lr ?? TOY_TRAIN_DEFAULTS.lr });
  const B = o.batchSize ?? TOY_TRAIN_DEFAULTS.batchSize;
  const data = toy2d(o.dataset, B * o.steps, (o.seed ?? 0) + 1);
  for (let i = 0; i < o.steps && !o.signal?.aborted; i++) {
    const x0 = tensor(data.subarray(2 * B * i, 2 * B * (i + 1)), { shape: [B, 2] });
    await trainer.trainStep(x0);
    x0.dispose();
    if (i > 0) await o.onStep?.(i, trainer.losses[i - 1]!, trainer);
  }
  await trainer.flush();
  return { net: trainer.model, process: trainer.process, prediction: trainer.prediction, losses: trainer.losses };
}
