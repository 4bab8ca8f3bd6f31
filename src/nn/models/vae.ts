/**
 * A convolutional KL-VAE in the style of latent diffusion's autoencoder: an encoder of residual
 * GroupNorm–SiLU–conv blocks with stride-2 downsampling produces the mean and log-variance of a
 * diagonal Gaussian posterior over a latent image, a mirrored decoder (nearest ×2 + conv up) maps
 * latents back to pixels, and a scalar output log-variance (learned or fixed) turns the reconstruction
 * error into a likelihood, so the loss is a weighted negative ELBO. `LatentCodec` freezes a trained VAE
 * for latent diffusion (latents shifted and scaled to unit variance). Its trainer (with a PatchGAN
 * discriminator) is `VAETrainer` in `src/train`.
 */
import { noGrad } from '../../tensor/index.js';
import { scope } from '../../tensor/memory.js';
import { fmt } from '../../tensor/shape.js';
import { full, randn, tensor, type Tensor } from '../../tensor/index.js';
import { klDivGaussian } from '../functional.js';
import { interpolate, pixelShuffle, pixelUnshuffle } from '../conv.js';
import { blockForward, Layer, Module, ModuleList, Parameter } from '../module.js';
import { Conv2d, GroupNorm } from '../norm-attention.js';
import { readCheckpointMeta, withoutPrefix } from '../checkpoint.js';
import { loadWithMetadata } from '../safetensors.js';

/** Sizes of a VAE. */
export interface VAEConfig {
  /** Image channels. */
  channels: number;
  /** Image side (square images). */
  size: number;
  /** Pixel-unshuffle factor of the stem (1: none); the encoder's first level runs at size/patch. */
  patch: number;
  /** Feature channels per resolution level; each level after the first halves the resolution. */
  widths: number[];
  /** Residual blocks per level in the encoder (the decoder has one more). */
  depth: number;
  /** Channels of the latent image. */
  latentChannels: number;
  groups: number;
  /** Learn the scalar output log-variance (latent diffusion's `logvar`); otherwise it stays at `logvarInit`. */
  learnLogvar: boolean;
  logvarInit: number;
}

/** The default MNIST VAE: 1×28×28 → 4×7×7 (a pixel-unshuffle stem to 14×14, then one stride-2 level). */
export const VAE_DEFAULTS: VAEConfig = { channels: 1, size: 28, patch: 2, widths: [16, 32], depth: 1, latentChannels: 4, groups: 8, learnLogvar: true, logvarInit: 0 };

/** The reconstruction likelihood: L1 (Laplace with scale e^logvar) or L2 (Gaussian with variance e^logvar). */
export type Reconstruction = 'l1' | 'l2';

/** GroupNorm–SiLU–conv3 twice with a residual connection (a 1×1 `nin_shortcut` when widths differ). */
export class VAEResBlock extends Layer {
  norm1: GroupNorm;
  conv1: Conv2d;
  norm2: GroupNorm;
  conv2: Conv2d;
  nin_shortcut: Conv2d | null;
  constructor(inCh: number, outCh: number, groups: number) {
    super();
    this.norm1 = new GroupNorm(Math.min(groups, inCh), inCh);
    this.conv1 = new Conv2d(inCh, outCh, 3, { padding: 1 });
    this.norm2 = new GroupNorm(Math.min(groups, outCh), outCh);
    this.conv2 = new Conv2d(outCh, outCh, 3, { padding: 1 });
    this.nin_shortcut = inCh === outCh ? null : new Conv2d(inCh, outCh, 1);
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = this.conv2.forward(this.norm2.forward(this.conv1.forward(this.norm1.forward(x).silu())).silu());
      return (this.nin_shortcut ? this.nin_shortcut.forward(x) : x).add(h);
    });
  }
}

/** The residual blocks of one resolution level, and its resampling convolution. */
class VAELevel extends Module {
  block = new ModuleList<VAEResBlock>();
  downsample: Conv2d | null = null;
  upsample: Conv2d | null = null;
}

/** Two residual blocks at the lowest resolution. */
class VAEMid extends Module {
  constructor(public block_1: VAEResBlock, public block_2: VAEResBlock) {
    super();
  }
}

function checkGroups(model: string, widths: number[], groups: number): void {
  for (const w of widths) if (w % Math.min(groups, w)) throw new Error(`${model}: width ${w} must be divisible by groups ${groups}`);
}

/** Images [N, channels, size, size] → posterior moments [N, 2·latentChannels, size/(patch·2^(L−1)), …]. */
export class VAEEncoder extends Layer {
  conv_in: Conv2d;
  down = new ModuleList<VAELevel>();
  mid: VAEMid;
  norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(readonly config: VAEConfig) {
    super();
    const c = config;
    this.conv_in = new Conv2d(c.channels * c.patch * c.patch, c.widths[0]!, 3, { padding: 1 });
    let ch = c.widths[0]!;
    c.widths.forEach((w, l) => {
      const level = new VAELevel();
      for (let i = 0; i < c.depth; i++) {
        level.block.push(new VAEResBlock(ch, w, c.groups));
        ch = w;
      }
      if (l < c.widths.length - 1) level.downsample = new Conv2d(ch, ch, 3, { stride: 2, padding: 1 });
      this.down.push(level);
    });
    this.mid = new VAEMid(new VAEResBlock(ch, ch, c.groups), new VAEResBlock(ch, ch, c.groups));
    this.norm_out = new GroupNorm(Math.min(c.groups, ch), ch);
    this.conv_out = new Conv2d(ch, 2 * c.latentChannels, 3, { padding: 1 });
  }
  /** Gradient checkpointing per residual block while training (set through `VAE.gradientCheckpointing`). */
  gradientCheckpointing = false;
  forward(x: Tensor): Tensor {
    const ck = this.gradientCheckpointing && this.training;
    return scope(() => {
      let h = this.conv_in.forward(this.config.patch > 1 ? pixelUnshuffle(x, this.config.patch) : x);
      for (const level of this.down) {
        for (const b of level.block) h = blockForward(ck, b, h);
        if (level.downsample) h = level.downsample.forward(h);
      }
      h = blockForward(ck, this.mid.block_2, blockForward(ck, this.mid.block_1, h));
      return this.conv_out.forward(this.norm_out.forward(h).silu());
    });
  }
}

/** Latents [N, latentChannels, h, w] → images [N, channels, size, size] (no output squashing). */
export class VAEDecoder extends Layer {
  conv_in: Conv2d;
  mid: VAEMid;
  /** `up.<l>` is level l (0 = full resolution), as in latent diffusion. */
  up = new ModuleList<VAELevel>();
  norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(readonly config: VAEConfig) {
    super();
    const c = config;
    const L = c.widths.length;
    let ch = c.widths[L - 1]!;
    this.conv_in = new Conv2d(c.latentChannels, ch, 3, { padding: 1 });
    this.mid = new VAEMid(new VAEResBlock(ch, ch, c.groups), new VAEResBlock(ch, ch, c.groups));
    const levels: VAELevel[] = [];
    for (let l = L - 1; l >= 0; l--) {
      const w = c.widths[l]!;
      const level = new VAELevel();
      for (let i = 0; i <= c.depth; i++) {
        level.block.push(new VAEResBlock(ch, w, c.groups));
        ch = w;
      }
      if (l > 0) level.upsample = new Conv2d(ch, ch, 3, { padding: 1 });
      levels[l] = level;
    }
    for (const level of levels) this.up.push(level);
    this.norm_out = new GroupNorm(Math.min(c.groups, ch), ch);
    this.conv_out = new Conv2d(ch, c.channels * c.patch * c.patch, 3, { padding: 1 });
  }
  /** Gradient checkpointing per residual block while training (set through `VAE.gradientCheckpointing`). */
  gradientCheckpointing = false;
  forward(z: Tensor): Tensor {
    const ck = this.gradientCheckpointing && this.training;
    return scope(() => {
      let h = blockForward(ck, this.mid.block_2, blockForward(ck, this.mid.block_1, this.conv_in.forward(z)));
      for (let l = this.up.length - 1; l >= 0; l--) {
        const level = this.up.at(l);
        for (const b of level.block) h = blockForward(ck, b, h);
        if (level.upsample) h = level.upsample.forward(interpolate(h, { scaleFactor: 2, mode: 'nearest' }));
      }
      const out = this.conv_out.forward(this.norm_out.forward(h).silu());
      return this.config.patch > 1 ? pixelShuffle(out, this.config.patch) : out;
    });
  }
}

/** z = mean + e^(logvar/2)·noise, noise ~ N(0, I) unless given (the reparameterization trick). */
export function reparameterize(mean: Tensor, logvar: Tensor, noise?: Tensor): Tensor {
  const same = (a: Tensor, b: Tensor) => a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
  if (!same(mean, logvar)) throw new Error(`reparameterize: mean ${fmt(mean.shape)} and logvar ${fmt(logvar.shape)} must have the same shape`);
  if (noise && !same(mean, noise)) throw new Error(`reparameterize: noise ${fmt(noise.shape)} must have the shape of mean ${fmt(mean.shape)}`);
  return scope(() => mean.add(logvar.mul(0.5).exp().mul(noise ?? randn(mean.shape, { device: mean.device }))));
}

/** The scalar terms of the VAE objective (per image, averaged over the batch, except `rec`). */
export interface VAELossTerms {
  /** What training minimizes: nll + klWeight·kl. */
  loss: Tensor;
  /** −log p(x | z) summed over pixels (nats per image), under the output distribution. */
  nll: Tensor;
  /** KL(q(z | x) ‖ N(0, I)) summed over latent elements (nats per image). */
  kl: Tensor;
  /** The evidence lower bound −(nll + kl) (nats per image; a one-sample estimate when z was sampled). */
  elbo: Tensor;
  /** Mean per-pixel reconstruction error: |x − x̂| for 'l1', (x − x̂)² for 'l2'. */
  rec: Tensor;
}

/** Options of `vaeLoss`. */
export interface VAELossOptions {
  reconstruction?: Reconstruction;
  /** β, the weight of the KL term in `loss` (default 1: the negative ELBO). */
  klWeight?: number;
}

/**
 * The VAE objective from images x, reconstructions x̂, the posterior moments and the output
 * log-variance s (a scalar tensor): per pixel, L1 gives the Laplace NLL |x − x̂|·e^(−s) + s + ln 2 and L2
 * the Gaussian NLL ½((x − x̂)²·e^(−s) + s + ln 2π); the KL is the closed form for diagonal Gaussians.
 */
export function vaeLoss(x: Tensor, recon: Tensor, mean: Tensor, logvar: Tensor, outputLogvar: Tensor, opts: VAELossOptions = {}): VAELossTerms {
  if (x.rank !== recon.rank || x.shape.some((d, i) => d !== recon.shape[i])) throw new Error(`vaeLoss: images ${fmt(x.shape)} and reconstructions ${fmt(recon.shape)} must have the same shape`);
  if (mean.shape[0] !== x.shape[0]) throw new Error(`vaeLoss: posterior mean ${fmt(mean.shape)} and images ${fmt(x.shape)} must have the same batch size`);
  if (outputLogvar.size !== 1) throw new Error(`vaeLoss: the output log-variance must be a scalar, got shape ${fmt(outputLogvar.shape)}`);
  const kind = opts.reconstruction ?? 'l1';
  if (kind !== 'l1' && kind !== 'l2') throw new Error(`vaeLoss: reconstruction must be 'l1' or 'l2', got ${JSON.stringify(kind)}`);
  const beta = opts.klWeight ?? 1;
  if (!(beta >= 0)) throw new Error(`vaeLoss: klWeight must be a non-negative number, got ${beta}`);
  return scope(() => {
    const N = x.shape[0]!;
    const D = x.size / N;
    const e = x.sub(recon);
    const err = kind === 'l1' ? e.abs() : e.square();
    const s = outputLogvar.reshape([]);
    const errSum = err.sum().div(N);
    // per image: Σ err·e^(−s) (×½ for L2) + D·(s + const)
    const nll = kind === 'l1'
      ? errSum.mul(s.neg().exp()).add(s.add(Math.LN2).mul(D))
      : errSum.mul(s.neg().exp()).add(s.add(Math.log(2 * Math.PI)).mul(D)).mul(0.5);
    const kl = klDivGaussian(mean, logvar, { reduction: 'batchmean' });
    return { loss: beta === 1 ? nll.add(kl) : nll.add(kl.mul(beta)), nll, kl, elbo: nll.add(kl).neg(), rec: err.mean() };
  });
}

/** What `VAE.forward` returns. */
export interface VAEOutput {
  recon: Tensor;
  mean: Tensor;
  logvar: Tensor;
  /** The latent that was decoded (sampled, or the mean). */
  z: Tensor;
}

/**
 * The KL-VAE. Parameters follow latent diffusion's names (`encoder.down.0.block.0.conv1.weight`,
 * `quant_conv`, `post_quant_conv`, `decoder.up.1.upsample.weight`, the scalar `logvar`).
 */
export class VAE extends Module {
  readonly config: VAEConfig;
  encoder: VAEEncoder;
  decoder: VAEDecoder;
  quant_conv: Conv2d;
  post_quant_conv: Conv2d;
  declare logvar: Parameter | Tensor;
  constructor(config: Partial<VAEConfig> = {}) {
    super();
    const c = (this.config = { ...VAE_DEFAULTS, ...config, widths: [...(config.widths ?? VAE_DEFAULTS.widths)] });
    if (!c.widths.length || c.widths.some((w) => !Number.isInteger(w) || w < 1)) throw new Error(`VAE: widths must be positive integers, got ${JSON.stringify(c.widths)}`);
    for (const [name, v] of [['channels', c.channels], ['size', c.size], ['patch', c.patch], ['latentChannels', c.latentChannels], ['depth', c.depth], ['groups', c.groups]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`VAE: ${name} must be a positive integer, got ${v}`);
    }
    const down = c.patch * 2 ** (c.widths.length - 1);
    if (c.size % down) throw new Error(`VAE: image size ${c.size} must be divisible by patch ${c.patch} × 2^${c.widths.length - 1} = ${down} for ${c.widths.length} levels`);
    checkGroups('VAE', c.widths, c.groups);
    this.encoder = new VAEEncoder(c);
    this.decoder = new VAEDecoder(c);
    this.quant_conv = new Conv2d(2 * c.latentChannels, 2 * c.latentChannels, 1);
    this.post_quant_conv = new Conv2d(c.latentChannels, c.latentChannels, 1);
    const lv = full([], c.logvarInit);
    if (c.learnLogvar) this.logvar = new Parameter(lv);
    else this.registerBuffer('logvar', lv);
  }

  /** Gradient checkpointing per residual block of the encoder and the decoder while training. */
  get gradientCheckpointing(): boolean {
    return this.encoder.gradientCheckpointing;
  }
  set gradientCheckpointing(on: boolean) {
    this.encoder.gradientCheckpointing = this.decoder.gradientCheckpointing = on;
  }

  /** The latent shape [latentChannels, h, w] of one image. */
  get latentShape(): [number, number, number] {
    const c = this.config;
    const s = c.size / (c.patch * 2 ** (c.widths.length - 1));
    return [c.latentChannels, s, s];
  }

  /** The weight of the decoder's last convolution (where the adaptive GAN weight is measured). */
  get lastLayer(): Parameter {
    return this.decoder.conv_out.weight;
  }

  /** Posterior moments of images [N, channels, size, size]: mean and log-variance (clamped to [−30, 20]), each [N, …latentShape]. */
  encode(x: Tensor): { mean: Tensor; logvar: Tensor } {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== c.channels || x.shape[2] !== c.size || x.shape[3] !== c.size) {
      throw new Error(`VAE.encode: expected images [N, ${c.channels}, ${c.size}, ${c.size}], got ${fmt(x.shape)}`);
    }
    const [mean, logvar] = scope(() => {
      const [m, lv] = this.quant_conv.forward(this.encoder.forward(x)).chunk(2, 1) as [Tensor, Tensor];
      return [m.contiguous(), lv.clamp(-30, 20)];
    });
    return { mean: mean!, logvar: logvar! };
  }

  /** Images [N, channels, size, size] decoded from latents [N, …latentShape]. */
  decode(z: Tensor): Tensor {
    const [zc, zh, zw] = this.latentShape;
    if (z.rank !== 4 || z.shape[1] !== zc || z.shape[2] !== zh || z.shape[3] !== zw) throw new Error(`VAE.decode: expected latents [N, ${zc}, ${zh}, ${zw}], got ${fmt(z.shape)}`);
    return scope(() => this.decoder.forward(this.post_quant_conv.forward(z)));
  }

  /** Encodes, draws z from the posterior (or takes its mean when `sample` is false) and decodes. */
  forward(x: Tensor, opts: { sample?: boolean; noise?: Tensor } = {}): VAEOutput {
    const { mean, logvar } = this.encode(x);
    const z = opts.sample === false ? mean : reparameterize(mean, logvar, opts.noise);
    return { recon: this.decode(z), mean, logvar, z };
  }

  /** The loss terms of a batch (z sampled from the posterior; `noise` fixes the draw). */
  loss(x: Tensor, opts: VAELossOptions & { noise?: Tensor } = {}): VAELossTerms & { recon: Tensor } {
    return scope(() => {
      const out = this.forward(x, { noise: opts.noise });
      return { ...vaeLoss(x, out.recon, out.mean, out.logvar, this.logvar, opts), recon: out.recon };
    });
  }

  /** `n` images decoded from latents drawn from the prior N(0, I). */
  sample(n: number): Tensor {
    if (!Number.isInteger(n) || n < 1) throw new Error(`VAE.sample: n must be a positive integer, got ${n}`);
    return noGrad(() => scope(() => this.decode(randn([n, ...this.latentShape]))));
  }
}

/**
 * `steps` points from a to b (same shapes [N, …]), as [steps, N, …]: 'linear' blends (1 − t)·a + t·b;
 * 'slerp' moves along the great circle per example, sin((1 − t)ω)/sin ω · a + sin(tω)/sin ω · b with
 * cos ω = ⟨a, b⟩ / (‖a‖‖b‖) (the angles are computed on the host in float64; linear when ω ≈ 0).
 */
export async function interpolateLatents(a: Tensor, b: Tensor, steps: number, mode: 'linear' | 'slerp' = 'slerp'): Promise<Tensor> {
  if (a.rank < 1 || a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) throw new Error(`interpolateLatents: endpoints ${fmt(a.shape)} and ${fmt(b.shape)} must have the same shape [N, …]`);
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`interpolateLatents: steps must be an integer ≥ 2, got ${steps}`);
  if (mode !== 'linear' && mode !== 'slerp') throw new Error(`interpolateLatents: mode must be 'linear' or 'slerp', got ${JSON.stringify(mode)}`);
  const N = a.shape[0]!;
  const ts = Array.from({ length: steps }, (_, i) => i / (steps - 1));
  let omega = new Float64Array(N);
  if (mode === 'slerp') {
    const [dot, na, nb] = await Promise.all([
      scope(() => a.mul(b).reshape([N, -1]).sum(1)).data(),
      scope(() => a.square().reshape([N, -1]).sum(1)).data(),
      scope(() => b.square().reshape([N, -1]).sum(1)).data(),
    ]);
    omega = Float64Array.from({ length: N }, (_, n) => Math.acos(Math.max(-1, Math.min(1, dot[n]! / Math.sqrt(na[n]! * nb[n]! || 1)))));
  }
  const wa = new Float32Array(steps * N), wb = new Float32Array(steps * N);
  ts.forEach((t, i) => {
    for (let n = 0; n < N; n++) {
      const w = omega[n]!;
      const linear = Math.abs(Math.sin(w)) < 1e-6;
      wa[i * N + n] = linear ? 1 - t : Math.sin((1 - t) * w) / Math.sin(w);
      wb[i * N + n] = linear ? t : Math.sin(t * w) / Math.sin(w);
    }
  });
  return scope(() => {
    const shape = [steps, N, ...a.shape.slice(1).map(() => 1)];
    const ta = tensor(wa, { shape, device: a.device }), tb = tensor(wb, { shape, device: a.device });
    return a.unsqueeze(0).mul(ta).add(b.unsqueeze(0).mul(tb));
  });
}

/**
 * A frozen VAE used by latent diffusion: `encode` maps images to normalized latents (z − shift)·scale
 * (sampled from the posterior, or its mean) and `decode` inverts the normalization and decodes.
 */
export class LatentCodec {
  constructor(readonly vae: VAE, readonly scale: number, readonly shift = 0) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`LatentCodec: scale must be a positive finite number, got ${scale}`);
    if (!Number.isFinite(shift)) throw new Error(`LatentCodec: shift must be finite, got ${shift}`);
    vae.eval();
  }
  /** The shape [C, h, w] of one normalized latent. */
  get latentShape(): [number, number, number] {
    return this.vae.latentShape;
  }
  /** Normalized latents of images (posterior samples unless `sample` is false). */
  encode(x: Tensor, opts: { sample?: boolean } = {}): Tensor {
    return noGrad(() => scope(() => {
      const { mean, logvar } = this.vae.encode(x);
      const z = opts.sample === false ? mean : reparameterize(mean, logvar);
      return z.sub(this.shift).mul(this.scale);
    }));
  }
  /** Images decoded from normalized latents. */
  decode(z: Tensor): Tensor {
    return noGrad(() => scope(() => this.vae.decode(z.div(this.scale).add(this.shift))));
  }
}

/**
 * The shift and scale that give latents z = mean + σ·ε zero mean and unit variance over a data set,
 * from the posterior moments of every example (flat arrays): shift = E[mean], and the variance is
 * Var(mean) + E[σ²] (exact for the mixture of the posteriors, no sampling noise).
 */
export function latentNormalization(means: ArrayLike<number>, logvars: ArrayLike<number>): { shift: number; scale: number } {
  if (means.length !== logvars.length || !means.length) throw new Error(`latentNormalization: got ${means.length} means and ${logvars.length} log-variances; expected the same non-zero count`);
  let s = 0, s2 = 0, v = 0;
  for (let i = 0; i < means.length; i++) {
    const m = means[i]!;
    s += m;
    s2 += m * m;
    v += Math.exp(logvars[i]!);
  }
  const n = means.length;
  const shift = s / n;
  const variance = s2 / n - shift * shift + v / n;
  return { shift, scale: 1 / Math.sqrt(variance) };
}

/** Builds a VAE from its config and loads weights stored under `prefix` (eval mode). */
export function vaeFromTensors(config: Partial<VAEConfig>, tensors: Record<string, Tensor>, prefix = 'vae.'): VAE {
  const vae = new VAE(config);
  vae.loadStateDict(withoutPrefix(tensors, prefix));
  return vae.eval();
}

/** The `format` tag in the metadata of VAE checkpoints. */
export const VAE_CHECKPOINT_FORMAT = 'kiln-vae-checkpoint/1';

/** Loads the VAE of a VAE checkpoint (written by `VAETrainer.save` of `src/train`; a path in Node, or its bytes), in eval mode, with its metadata. */
export async function loadVAE(src: string | Uint8Array | ArrayBuffer | Blob): Promise<{ vae: VAE; meta: Record<string, unknown> }> {
  const name = typeof src === 'string' ? src : 'checkpoint';
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const meta = readCheckpointMeta(name, metadata, VAE_CHECKPOINT_FORMAT);
    return { vae: vaeFromTensors(meta.vae as VAEConfig, tensors), meta };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
