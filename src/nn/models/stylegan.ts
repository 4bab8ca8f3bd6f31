/**
 * A style-based generator after Karras et al. ("A Style-Based Generator Architecture for GANs", 2019),
 * sized for 28×28 MNIST: a mapping network z (and, class-conditional, a learned class embedding) → w, a
 * learned constant input, and per resolution (7 → 14 → 28 by default) a nearest ×2 upsampling, two 3×3
 * convolutions, each followed by per-pixel noise with a learned per-channel scale, a bias, LeakyReLU 0.2 and
 * AdaIN with a learned affine map from w; a 1×1 convolution and tanh make the grey image in [−1, 1]. In training mode the
 * forward pass tracks w̄ (an average of the mapped w, per class when conditional) for truncation
 * w = w̄ + ψ·(w − w̄) at sampling, and mixes styles: with probability `mixing` an example takes its styles
 * from a second w after a random layer. Trained with `GANTrainer` (`src/train/gan.ts`).
 */
import { fmt } from '../../tensor/shape.js';
import { noGrad } from '../../tensor/index.js';
import { scope } from '../../tensor/memory.js';
import { cat, rand, randn, where, zeros, type Tensor } from '../../tensor/index.js';
import { kaimingNormal_, normal_ } from '../init.js';
import { Embedding, LeakyReLU, Linear } from '../layers.js';
import { Module, ModuleList, Parameter, Sequential, type Layer } from '../module.js';
import { AdaIN, Conv2d } from '../norm-attention.js';
import { readCheckpointMeta, withoutPrefix } from '../checkpoint.js';
import { GAN_CHECKPOINT_FORMAT } from './gan.js';
import { loadWithMetadata } from '../safetensors.js';

/** Sizes of a `StyleGenerator`. */
export interface StyleGeneratorConfig {
  /** Dimension of the latent code z. */
  latentDim: number;
  /** Dimension of the intermediate latent w (the styles). */
  wDim: number;
  /** Linear layers of the mapping network. */
  mappingLayers: number;
  /** Classes of a class-conditional generator (0: unconditional). */
  numClasses: number;
  /** Side of the learned constant input; the output side is base · 2^(channels.length − 1). */
  base: number;
  /** Channels per resolution, from the constant's up. */
  channels: number[];
  /** Probability of style mixing per example in training-mode forward passes (0: none). */
  mixing: number;
  /** Decay of the running average w̄ of mapped w (updated in training-mode forward passes). */
  wAvgDecay: number;
}

/** The default MNIST generator: 7×7 constant → 14 → 28, class-conditional. */
export const STYLE_GENERATOR_DEFAULTS: StyleGeneratorConfig = {
  latentDim: 64, wDim: 64, mappingLayers: 4, numClasses: 10, base: 7, channels: [64, 32, 16], mixing: 0.5, wAvgDecay: 0.995,
};

/** z / √(mean z² + 1e-8) per row (StyleGAN's pixel norm of the latent). */
function pixelNorm(z: Tensor): Tensor {
  return scope(() => z.mul(z.square().mean(1, { keepDim: true }).add(1e-8).rsqrt()));
}

/** The mapping network: normalized z (concatenated with a normalized class embedding when conditional) → w by an MLP with LeakyReLU 0.2. */
export class MappingNetwork extends Module {
  embed: Embedding | null;
  net: Sequential;
  constructor(readonly latentDim: number, readonly wDim: number, readonly layers: number, readonly numClasses: number) {
    super();
    if (!Number.isInteger(layers) || layers < 1) throw new Error(`MappingNetwork: layers must be a positive integer, got ${layers}`);
    this.embed = numClasses > 0 ? new Embedding(numClasses, latentDim) : null;
    const seq: Layer[] = [];
    let d = numClasses > 0 ? 2 * latentDim : latentDim;
    for (let i = 0; i < layers; i++) {
      const l = new Linear(d, wDim);
      // He init for LeakyReLU 0.2 (zero biases), so that w keeps the scale of the normalized input through the layers
      kaimingNormal_(l.weight, { a: 0.2, nonlinearity: 'leaky_relu' });
      noGrad(() => l.bias!.assign(zeros([wDim])));
      seq.push(l, new LeakyReLU(0.2));
      d = wDim;
    }
    this.net = new Sequential(...seq);
  }
  /** w [N, wDim] of codes z [N, latentDim] (and labels [N] i32 when conditional). */
  forward(z: Tensor, labels?: Tensor): Tensor {
    if (z.rank !== 2 || z.shape[1] !== this.latentDim) throw new Error(`MappingNetwork: expected codes [N, ${this.latentDim}], got ${fmt(z.shape)}`);
    checkLabels('MappingNetwork', this.numClasses, z.shape[0]!, labels);
    return scope(() => {
      const h = this.embed ? cat([pixelNorm(z), pixelNorm(this.embed.forward(labels!))], 1) : pixelNorm(z);
      return this.net.forward(h);
    });
  }
}

/** Throws unless `labels` fit a model with `numClasses` classes (required [N] when conditional, absent otherwise). */
function checkLabels(op: string, numClasses: number, n: number, labels?: Tensor): void {
  if (numClasses > 0) {
    if (!labels) throw new Error(`${op}: the model is class-conditional (${numClasses} classes); pass labels [${n}]`);
    if (labels.rank !== 1 || labels.shape[0] !== n) throw new Error(`${op}: expected labels [${n}], got ${fmt(labels.shape)}`);
  } else if (labels) throw new Error(`${op}: the model is unconditional; got labels ${fmt(labels.shape)}`);
}

/** Per-pixel noise with a learned per-channel scale (starting at 0): x + weight[c]·noise, noise [N, 1, H, W] shared by the channels. */
export class NoiseInjection extends Module {
  weight: Parameter;
  constructor(readonly channels: number) {
    super();
    this.weight = new Parameter(zeros([channels]));
  }
  /** x [N, channels, H, W] plus scaled noise (N(0, 1) drawn here unless given; null: none). */
  forward(x: Tensor, noise?: Tensor | null): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels) throw new Error(`NoiseInjection: expected x [N, ${this.channels}, H, W], got ${fmt(x.shape)}`);
    if (noise === null) return x;
    const [N, , H, W] = x.shape as [number, number, number, number];
    if (noise && (noise.rank !== 4 || noise.shape[0] !== N || noise.shape[1] !== 1 || noise.shape[2] !== H || noise.shape[3] !== W)) {
      throw new Error(`NoiseInjection: expected noise [${N}, 1, ${H}, ${W}], got ${fmt(noise.shape)}`);
    }
    return scope(() => x.add((noise ?? randn([N, 1, H, W])).mul(this.weight.reshape([1, this.channels, 1, 1]))));
  }
}

/**
 * Nearest-neighbour ×2 upsampling of [N, C, H, W] as a broadcast (equal to `interpolate` with scale 2,
 * 'nearest'): its gradient is a sum over each 2×2 block, where an index gather's would scan whole rows.
 */
export function upsample2x(x: Tensor): Tensor {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  return scope(() => x.reshape([N, C, H, 1, W, 1]).expand([N, C, H, 2, W, 2]).reshape([N, C, 2 * H, 2 * W]));
}

/** One styled layer: [nearest ×2 upsampling,] [3×3 convolution,] noise, bias, LeakyReLU 0.2, AdaIN from w. */
export class StyleLayer extends Module {
  conv: Conv2d | null;
  noise: NoiseInjection;
  bias: Parameter;
  adain: AdaIN;
  constructor(inChannels: number, readonly outChannels: number, wDim: number, readonly opts: { conv: boolean; up: boolean }) {
    super();
    if (!opts.conv && inChannels !== outChannels) throw new Error(`StyleLayer: without a convolution the channels stay ${inChannels}, got ${outChannels}`);
    this.conv = opts.conv ? new Conv2d(inChannels, outChannels, 3, { padding: 1, bias: false }) : null;
    this.noise = new NoiseInjection(outChannels);
    this.bias = new Parameter(zeros([outChannels]));
    this.adain = new AdaIN(outChannels, wDim);
    // styles that vary by about ±1 around scale 1 from the start (StyleGAN's N(0, 1/wDim) affine weights)
    normal_(this.adain.affine.weight, 0, 1 / Math.sqrt(wDim));
  }
  /** The layer on x [N, C, H, W] with style w [N, wDim] (noise: as `NoiseInjection.forward`). */
  forward(x: Tensor, w: Tensor, noise?: Tensor | null): Tensor {
    return scope(() => {
      let h = this.opts.up ? upsample2x(x) : x;
      if (this.conv) h = this.conv.forward(h);
      h = this.noise.forward(h, noise).add(this.bias.reshape([1, this.outChannels, 1, 1])).leakyRelu(0.2);
      return this.adain.forward(h, w);
    });
  }
}

/** How `StyleGenerator.synthesis` draws the per-pixel noise: fresh N(0, 1) ('random'), none, or given per layer. */
export type NoiseMode = 'random' | 'none' | (Tensor | null)[];

/** Options of `StyleGenerator.generate`. */
export interface GenerateOptions {
  /** Truncation ψ: w = w̄ + ψ·(w − w̄) (1: none; 0: every sample gets w̄). */
  psi?: number;
  noise?: NoiseMode;
}

/** The style-based generator (see the file comment); parameters under `mapping.`, `constant`, `layers.<i>.` and `to_img.`. */
export class StyleGenerator extends Module {
  readonly config: StyleGeneratorConfig;
  mapping: MappingNetwork;
  constant: Parameter;
  layers: ModuleList<StyleLayer>;
  to_img: Conv2d;
  declare w_avg: Tensor;
  constructor(config: Partial<StyleGeneratorConfig> = {}) {
    super();
    const c = (this.config = { ...STYLE_GENERATOR_DEFAULTS, ...config });
    const posInt = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new Error(`StyleGenerator: ${name} must be a positive integer, got ${v}`);
    };
    posInt('latentDim', c.latentDim);
    posInt('wDim', c.wDim);
    posInt('base', c.base);
    if (!Number.isInteger(c.numClasses) || c.numClasses < 0) throw new Error(`StyleGenerator: numClasses must be a non-negative integer, got ${c.numClasses}`);
    if (!Array.isArray(c.channels) || !c.channels.length) throw new Error(`StyleGenerator: channels must list the channels of at least one resolution, got ${JSON.stringify(c.channels)}`);
    c.channels.forEach((v, i) => posInt(`channels[${i}]`, v));
    if (!(c.mixing >= 0 && c.mixing <= 1)) throw new Error(`StyleGenerator: mixing is a probability in [0, 1], got ${c.mixing}`);
    if (!(c.wAvgDecay >= 0 && c.wAvgDecay < 1)) throw new Error(`StyleGenerator: wAvgDecay must be in [0, 1), got ${c.wAvgDecay}`);
    this.mapping = new MappingNetwork(c.latentDim, c.wDim, c.mappingLayers, c.numClasses);
    // N(0, 1), not a constant map: instance norm of a spatially constant input is 0
    this.constant = new Parameter(randn([1, c.channels[0]!, c.base, c.base]));
    const layers: StyleLayer[] = [];
    c.channels.forEach((ch, i) => {
      const prev = i ? c.channels[i - 1]! : ch;
      layers.push(new StyleLayer(prev, ch, c.wDim, { conv: i > 0, up: i > 0 }));
      layers.push(new StyleLayer(ch, ch, c.wDim, { conv: true, up: false }));
    });
    this.layers = new ModuleList(layers);
    this.to_img = new Conv2d(c.channels.at(-1)!, 1, 1);
    this.registerBuffer('w_avg', zeros([Math.max(1, c.numClasses), c.wDim]));
  }

  /** Side of the images. */
  get size(): number {
    return this.config.base * 2 ** (this.config.channels.length - 1);
  }

  /** Number of styles (AdaIN layers) a synthesis pass takes. */
  get numStyles(): number {
    return this.layers.length;
  }

  /** w [N, wDim] of codes z [N, latentDim] (and labels [N] when conditional). */
  map(z: Tensor, labels?: Tensor): Tensor {
    return this.mapping.forward(z, labels);
  }

  /** w̄ for each example [N, wDim]: the class's average when conditional. */
  wAverage(n: number, labels?: Tensor): Tensor {
    checkLabels('StyleGenerator.wAverage', this.config.numClasses, n, labels);
    return scope(() => (labels ? this.w_avg.indexSelect(0, labels) : this.w_avg.expand([n, this.config.wDim])));
  }

  /** w̄ + ψ·(w − w̄) (the truncation trick). */
  truncate(w: Tensor, psi: number, labels?: Tensor): Tensor {
    if (!Number.isFinite(psi)) throw new Error(`StyleGenerator.truncate: psi must be a finite number, got ${psi}`);
    if (psi === 1) return w;
    return scope(() => {
      const avg = this.wAverage(w.shape[0]!, labels);
      return avg.add(w.sub(avg).mul(psi));
    });
  }

  /** Moves w̄ toward the mean of the detached w [N, wDim] (per class when conditional), as a training-mode forward pass does. */
  updateWAverage(w: Tensor, labels?: Tensor): void {
    const K = Math.max(1, this.config.numClasses), rate = 1 - this.config.wAvgDecay;
    noGrad(() => scope(() => {
      const wd = w.detach();
      if (!labels) {
        this.w_avg.assign(this.w_avg.add(wd.mean(0, { keepDim: true }).sub(this.w_avg).mul(rate)));
        return;
      }
      const oh = labels.oneHot(K, { dtype: 'f32' });
      const counts = oh.sum(0).reshape([K, 1]);
      const mean = oh.T.matmul(wd).div(counts.maximum(1));
      const step = where(counts.gt(0), mean.sub(this.w_avg).mul(rate), 0);
      this.w_avg.assign(this.w_avg.add(step));
    }));
  }

  /** Images [N, 1, size, size] in [−1, 1] from one style per layer (`numStyles` tensors [N, wDim]) or one style [N, wDim] for all. */
  synthesis(styles: Tensor | Tensor[], noise: NoiseMode = 'random'): Tensor {
    const ws = Array.isArray(styles) ? styles : Array<Tensor>(this.numStyles).fill(styles);
    if (ws.length !== this.numStyles) throw new Error(`StyleGenerator.synthesis: expected ${this.numStyles} styles, got ${ws.length}`);
    const N = ws[0]!.shape[0]!;
    for (const w of ws) if (w.rank !== 2 || w.shape[0] !== N || w.shape[1] !== this.config.wDim) throw new Error(`StyleGenerator.synthesis: expected styles [${N}, ${this.config.wDim}], got ${fmt(w.shape)}`);
    if (Array.isArray(noise) && noise.length !== this.numStyles) throw new Error(`StyleGenerator.synthesis: expected ${this.numStyles} noise maps (or null), got ${noise.length}`);
    return scope(() => {
      const c = this.config;
      let x = this.constant.expand([N, c.channels[0]!, c.base, c.base]);
      for (let i = 0; i < this.numStyles; i++) {
        const n = noise === 'none' ? null : noise === 'random' ? undefined : noise[i];
        x = this.layers.at(i).forward(x, ws[i]!, n);
      }
      // tanh: MNIST's background sits at −1 and its strokes near +1, which a tanh output reaches by saturating
      return this.to_img.forward(x).tanh();
    });
  }

  /**
   * Images [N, 1, size, size] of codes z [N, latentDim] (and labels [N] i32 when conditional). In training
   * mode it also updates w̄ and mixes styles (see `mixing`); in eval mode it is `generate(z, labels)`.
   */
  forward(z: Tensor, labels?: Tensor): Tensor {
    if (!this.training) return this.generate(z, labels);
    return scope(() => {
      const w = this.map(z, labels);
      this.updateWAverage(w, labels);
      const L = this.numStyles, N = z.shape[0]!;
      if (!(this.config.mixing > 0) || L < 2) return this.synthesis(w);
      const w2 = this.map(randn(z.shape), labels);
      // the first layer that takes w2: uniform in 1..L−1 for a mixed example, L (none) otherwise
      const cut = where(rand([N, 1]).lt(this.config.mixing), rand([N, 1]).mul(L - 1).floor().add(1), L);
      return this.synthesis(Array.from({ length: L }, (_, i) => where(cut.gt(i), w, w2)));
    });
  }

  /** Images of codes z (and labels) with truncation ψ and a noise mode, without touching w̄. */
  generate(z: Tensor, labels?: Tensor, opts: GenerateOptions = {}): Tensor {
    return scope(() => this.synthesis(this.truncate(this.map(z, labels), opts.psi ?? 1, labels), opts.noise ?? 'random'));
  }
}

/** The key of the generator's config in the metadata of GAN checkpoints written by `kiln train-gan`. */
export const STYLEGAN_META_KEY = 'stylegan';

/**
 * Loads the generator of a GAN checkpoint written by `kiln train-gan` (a path in Node, or its bytes), in
 * eval mode, with its metadata: the EMA of its weights when the checkpoint has one and `ema` is true.
 */
export async function loadStyleGenerator(src: string | Uint8Array | ArrayBuffer | Blob, opts: { ema?: boolean } = {}): Promise<{ generator: StyleGenerator; meta: Record<string, unknown>; ema: boolean }> {
  const name = typeof src === 'string' ? src : 'checkpoint';
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const meta = readCheckpointMeta(name, metadata, GAN_CHECKPOINT_FORMAT);
    const config = meta[STYLEGAN_META_KEY] as StyleGeneratorConfig | undefined;
    if (!config) throw new Error(`loadStyleGenerator: ${name} is a GAN checkpoint without a style generator (no '${STYLEGAN_META_KEY}' in its metadata)`);
    const g = new StyleGenerator(config);
    const sd = withoutPrefix(tensors, 'generator.');
    const avg = withoutPrefix(tensors, 'ema.');
    const useEma = (opts.ema ?? true) && Object.keys(avg).length > 0;
    g.loadStateDict(useEma ? { ...sd, ...avg } : sd);
    return { generator: g.eval(), meta, ema: useEma };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
