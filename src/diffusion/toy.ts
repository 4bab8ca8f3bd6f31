/**
 * A small MLP denoiser for 2D toy data and its training loop (DDPM ε-prediction or rectified flow),
 * the first diffusion models trained with kiln.
 */
import * as F from '../nn/functional.js';
import { Linear, SiLU } from '../nn/layers.js';
import { Layer, Module } from '../nn/module.js';
import { timestepEmbedding } from '../nn/embeddings.js';
import { AdamW, cosine, LRScheduler } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { cat, manualSeed, randn, tensor, type Tensor } from '../tensor/index.js';
import { toy2d, type Toy2D } from '../data/toy2d.js';
import { addNoise, coefficients, sampleTimes } from './training.js';
import { target, type Prediction } from './predict.js';
import { DiscreteVP, RectifiedFlow, type NoiseProcess } from './process.js';
import type { Model } from './samplers.js';

/** MLP denoiser: [x, sinusoidal(t)] → hidden → hidden → output, SiLU activations. */
export class ToyDenoiser extends Module {
  l1: Linear;
  l2: Linear;
  l3: Linear;
  act: Layer = new SiLU();
  constructor(readonly dims = 2, readonly hidden = 128, readonly embDim = 32, readonly timeScale = 1) {
    super();
    this.l1 = new Linear(dims + embDim, hidden);
    this.l2 = new Linear(hidden, hidden);
    this.l3 = new Linear(hidden, dims);
  }
  /** Output for points x [N, dims] at model times t [N]. */
  forward(x: Tensor, t: Tensor): Tensor {
    return scope(() => {
      const h = cat([x, timestepEmbedding(t.mul(this.timeScale), this.embDim)], 1);
      return this.l3.forward(this.act.forward(this.l2.forward(this.act.forward(this.l1.forward(h)))));
    });
  }
  /** The denoiser as a sampler model (one time for the batch). */
  asModel(): Model {
    return (x, t) => scope(() => this.forward(x, tensor(new Float32Array(x.shape[0]!).fill(t))));
  }
}

/** Options of `trainToy`. */
export interface ToyTrainOptions {
  dataset: Toy2D;
  objective: 'ddpm-eps' | 'flow';
  steps: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  onStep?: (step: number, loss: number) => void;
}

/** Trains a ToyDenoiser; returns it with its process, prediction type and the loss curve. */
export async function trainToy(o: ToyTrainOptions): Promise<{ net: ToyDenoiser; process: NoiseProcess; prediction: Prediction; losses: number[] }> {
  manualSeed(o.seed ?? 0);
  const process: NoiseProcess = o.objective === 'flow' ? new RectifiedFlow() : new DiscreteVP({ numTrainTimesteps: 1000, schedule: 'linear' });
  const prediction: Prediction = o.objective === 'flow' ? 'flow' : 'eps';
  const net = new ToyDenoiser(2, 128, 32, o.objective === 'flow' ? 1000 : 1);
  const lr = o.lr ?? 5e-3;
  const opt = new AdamW(net, { lr, weightDecay: 0 });
  const sched = new LRScheduler(opt, cosine(lr, o.steps, lr * 0.02));
  const B = o.batchSize ?? 256;
  const data = toy2d(o.dataset, B * o.steps, (o.seed ?? 0) + 1);
  const losses: number[] = [];
  let pending: Promise<number> | null = null;
  for (let i = 0; i < o.steps; i++) {
    const points = sampleTimes(process, B, 'uniform');
    const loss = opt.minimize(() => {
      const x0 = tensor(data.subarray(2 * B * i, 2 * B * (i + 1)), { shape: [B, 2] });
      const eps = randn([B, 2]);
      const xt = addNoise(x0, eps, points);
      const { t } = coefficients(points, [B, 2]);
      const tgt = target(prediction, x0, eps, points[0]!); // eps and flow targets do not depend on t
      return F.mseLoss(net.forward(xt, t), tgt);
    });
    sched.step();
    if (pending) {
      const v = await pending;
      losses.push(v);
      o.onStep?.(i, v);
    }
    pending = loss.item().finally(() => loss.dispose());
  }
  if (pending) losses.push(await pending);
  return { net, process, prediction, losses };
}

