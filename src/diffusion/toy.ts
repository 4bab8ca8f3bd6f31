/** A small MLP denoiser for 2D toy data (trained by `trainToy` of `src/train`). */
import { Linear, SiLU } from '../nn/layers.js';
import { Layer, Module, ModuleList } from '../nn/module.js';
import { timestepEmbedding } from '../nn/embeddings.js';
import { scope } from '../tensor/memory.js';
import { cat, tensor, type Tensor } from '../tensor/index.js';
import type { Model } from './samplers.js';

/** Sizes of a `ToyDenoiser`. */
export interface ToyDenoiserConfig {
  /** Coordinates per point. */
  dims: number;
  /** Width of the hidden layers. */
  hidden: number;
  /** Hidden layers (SiLU after each). */
  depth: number;
  /** Sinusoidal features per coordinate (0: the raw coordinates). */
  pointFeatures: number;
  /** Coordinates are multiplied by this before their sinusoidal features (sets the finest detail resolved). */
  pointScale: number;
  /** Sinusoidal features of the time. */
  timeFeatures: number;
  /** Times are multiplied by this before their features (1000 for times in [0, 1], 1 for timesteps). */
  timeScale: number;
}

/** The toy denoiser's defaults: 3 × 128 hidden units, 64 features per coordinate at scale 25, 32 time features. */
export const TOY_DENOISER_DEFAULTS: ToyDenoiserConfig = { dims: 2, hidden: 128, depth: 3, pointFeatures: 64, pointScale: 25, timeFeatures: 32, timeScale: 1 };

/**
 * MLP denoiser: [sinusoidal(scale · x_i) for each coordinate, sinusoidal(t)] → hidden layers → output.
 * The sinusoidal features of the coordinates and the depth matter: a small MLP fed the raw 2D coordinates
 * is too smooth to fit thin structures (two moons come out as one blob filling the space between them).
 */
export class ToyDenoiser extends Module {
  readonly config: ToyDenoiserConfig;
  input: Linear;
  hidden: ModuleList<Linear>;
  out: Linear;
  act: Layer = new SiLU();
  constructor(config: Partial<ToyDenoiserConfig> = {}) {
    super();
    const c = (this.config = { ...TOY_DENOISER_DEFAULTS, ...config });
    this.input = new Linear((c.pointFeatures ? c.dims * c.pointFeatures : c.dims) + c.timeFeatures, c.hidden);
    this.hidden = new ModuleList(Array.from({ length: c.depth - 1 }, () => new Linear(c.hidden, c.hidden)));
    this.out = new Linear(c.hidden, c.dims);
  }
  /** Output for points x [N, dims] at model times t [N]. */
  forward(x: Tensor, t: Tensor): Tensor {
    const c = this.config;
    if (x.rank !== 2 || x.shape[1] !== c.dims) throw new Error(`ToyDenoiser: expected points of shape [N, ${c.dims}], got [${x.shape}]`);
    return scope(() => {
      const n = x.shape[0]!;
      const point = c.pointFeatures
        ? Array.from({ length: c.dims }, (_, i) => timestepEmbedding(x.slice(1, i, i + 1).reshape([n]).mul(c.pointScale), c.pointFeatures))
        : [x];
      let h = this.act.forward(this.input.forward(cat([...point, timestepEmbedding(t.mul(c.timeScale), c.timeFeatures)], 1)));
      for (const layer of this.hidden) h = this.act.forward(layer.forward(h));
      return this.out.forward(h);
    });
  }
  /** The denoiser as a sampler model (one time for the batch). */
  asModel(): Model {
    return (x, t) => scope(() => this.forward(x, tensor(new Float32Array(x.shape[0]!).fill(t))));
  }
}
