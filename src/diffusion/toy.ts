/** A small MLP denoiser for 2D toy data (trained by `trainToy` of `src/train`). */
import { Linear, SiLU } from '../nn/layers.js';
import { Layer, Module } from '../nn/module.js';
import { timestepEmbedding } from '../nn/embeddings.js';
import { scope } from '../tensor/memory.js';
import { cat, tensor, type Tensor } from '../tensor/index.js';
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
