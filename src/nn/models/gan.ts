/**
 * Adversarial pieces: a PatchGAN discriminator (the one latent-diffusion autoencoders train against),
 * the hinge and non-saturating losses, the generator term, the adaptive weight that balances a GAN
 * term against a reconstruction term at the decoder's last layer, the R1 gradient penalty (a double
 * backward), and a standalone small GAN (MLP generator and discriminator; `GANTrainer` in `src/train`
 * trains it).
 */
import { gradients } from '../../autograd/index.js';
import { noGrad } from '../../tensor/index.js';
import { scope } from '../../tensor/memory.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/index.js';
import { Layer, Sequential } from '../module.js';
import { Embedding, LeakyReLU, Linear } from '../layers.js';
import { Conv2d, GroupNorm } from '../norm-attention.js';

/** The `format` tag of GAN checkpoints (`GANTrainer` in `src/train` writes them). */
export const GAN_CHECKPOINT_FORMAT = 'kiln-gan-checkpoint/1';

/** Which adversarial loss the discriminator minimizes. */
export type GanLoss = 'hinge' | 'non-saturating';

/** Throws unless `kind` is a `GanLoss` (the message starts with `op`). */
export function checkLoss(op: string, kind: GanLoss): void {
  if (kind !== 'hinge' && kind !== 'non-saturating') throw new Error(`${op}: loss must be 'hinge' or 'non-saturating', got ${JSON.stringify(kind)}`);
}

/**
 * Discriminator loss from logits on real and fake data (any shapes, e.g. PatchGAN maps):
 * hinge ½[mean relu(1 − D(real)) + mean relu(1 + D(fake))], or non-saturating
 * ½[mean softplus(−D(real)) + mean softplus(D(fake))] (binary cross-entropy with logits).
 */
export function discriminatorLoss(logitsReal: Tensor, logitsFake: Tensor, kind: GanLoss = 'hinge'): Tensor {
  checkLoss('discriminatorLoss', kind);
  return scope(() => {
    if (kind === 'hinge') return logitsReal.neg().add(1).relu().mean().add(logitsFake.add(1).relu().mean()).mul(0.5);
    return logitsReal.neg().softplus().mean().add(logitsFake.softplus().mean()).mul(0.5);
  });
}

/**
 * The generator's adversarial term from logits on fake data: −mean D(fake) for 'hinge' (the term
 * latent-diffusion autoencoders use), or the non-saturating mean softplus(−D(fake)) = −mean log σ(D(fake)).
 */
export function generatorLoss(logitsFake: Tensor, kind: GanLoss = 'hinge'): Tensor {
  checkLoss('generatorLoss', kind);
  return scope(() => (kind === 'hinge' ? logitsFake.mean().neg() : logitsFake.neg().softplus().mean()));
}

/** Options of `adaptiveWeight`. */
export interface AdaptiveWeightOptions {
  /** Added to the GAN gradient norm (default 1e-4). */
  eps?: number;
  /** Upper clamp (default 1e4). */
  max?: number;
  /**
   * The loss scale of mixed precision (a `GradScaler`'s `scaleFactor`): the gradients are taken of the
   * scaled losses, so small ones do not flush to zero in an f16 backward pass, and their norms divided by it.
   */
  scale?: Tensor;
}

/**
 * The weight that balances a GAN term against a reconstruction term: ‖∇_W rec‖ / (‖∇_W gan‖ + eps)
 * clamped to [0, max], where W is the last layer's weight (of the decoder). Both losses' graphs are
 * kept, so the caller can still backpropagate through them; the result is a detached scalar.
 */
export function adaptiveWeight(recLoss: Tensor, ganLoss: Tensor, lastLayer: Tensor, opts: AdaptiveWeightOptions = {}): Tensor {
  for (const [name, t] of [['recLoss', recLoss], ['ganLoss', ganLoss]] as const) {
    if (t.size !== 1) throw new Error(`adaptiveWeight: ${name} must be a scalar, got shape ${fmt(t.shape)}`);
    if (!t.requiresGrad) throw new Error(`adaptiveWeight: ${name} does not depend on anything that requires grad`);
  }
  if (!lastLayer.requiresGrad) throw new Error(`adaptiveWeight: the last layer's weight ${fmt(lastLayer.shape)} must require grad`);
  const eps = opts.eps ?? 1e-4, max = opts.max ?? 1e4;
  const s = opts.scale;
  // the scaled losses are recorded (outside noGrad) so that gradients can start from them
  const scaled = s ? scope(() => [recLoss.mul(s.detach()), ganLoss.mul(s.detach())]) : null;
  const [rec, gan] = scaled ?? [recLoss, ganLoss];
  const w = noGrad(() => scope(() => {
    const [gRec] = gradients(rec!, [lastLayer], { retainGraph: true });
    const [gGan] = gradients(gan!, [lastLayer], { retainGraph: true });
    const norm = (g: Tensor) => (s ? g.square().sum().sqrt().div(s) : g.square().sum().sqrt());
    return norm(gRec!).div(norm(gGan!).add(eps)).clamp(0, max);
  }));
  for (const t of scaled ?? []) t.dispose();
  return w;
}

/** The factor of a term that starts at step `start`: `weight` from then on, 0 before (latent diffusion's `disc_start`). */
export function startAt(step: number, start: number, weight = 1): number {
  return step >= start ? weight : 0;
}

/**
 * The R1 penalty γ/2 · mean over the batch of ‖∇_x D(x)‖² at real data x (D's output summed per
 * example, so a PatchGAN map counts every patch). Differentiable with respect to D's parameters
 * (double backward); D must treat examples independently (no batch statistics).
 */
export function r1Penalty(discriminator: (x: Tensor) => Tensor, real: Tensor, gamma: number): Tensor {
  if (!(gamma >= 0)) throw new Error(`r1Penalty: gamma must be a non-negative number, got ${gamma}`);
  return scope(() => {
    const x = real.detach();
    x.requiresGrad = true;
    const out = discriminator(x);
    if (out.shape[0] !== x.shape[0]) throw new Error(`r1Penalty: the discriminator maps ${fmt(x.shape)} to ${fmt(out.shape)}; expected the batch dimension first`);
    const [g] = gradients(out.sum(), [x], { createGraph: true });
    const perExample = g!.square().reshape([x.shape[0]!, -1]).sum(1);
    return perExample.mean().mul(gamma / 2);
  });
}

/** Sizes of a PatchGAN discriminator. */
export interface PatchDiscriminatorConfig {
  /** Input image channels. */
  channels: number;
  /** Channels of the first convolution (doubling per layer, at most 8×). */
  width: number;
  /** Number of stride-2 4×4 convolutions. */
  layers: number;
  /** Normalization after the inner convolutions: GroupNorm (per example, so R1 stays exact) or none. */
  norm: 'group' | 'none';
  groups: number;
  /**
   * Classes of a class-conditional (projection) discriminator, 0 for none: a learned class embedding e(y)
   * adds ⟨e(y), mean over positions of the last features⟩ to every logit of an example (Miyato & Koyama).
   */
  numClasses: number;
}

/** The default MNIST discriminator: 28×28 → logits 5×5. */
export const PATCH_DISCRIMINATOR_DEFAULTS: PatchDiscriminatorConfig = { channels: 1, width: 32, layers: 2, norm: 'group', groups: 8, numClasses: 0 };

/**
 * The PatchGAN discriminator of pix2pix / latent diffusion (parameters under `main.<i>`, as there):
 * 4×4 convolutions with stride 2 and LeakyReLU 0.2, one stride-1 4×4 convolution, and a final 4×4
 * convolution to a 1-channel logit map (one logit per receptive-field patch). With `numClasses` it also
 * takes labels and adds the projection term under `embed.weight`.
 */
export class PatchDiscriminator extends Layer {
  readonly config: PatchDiscriminatorConfig;
  main: Sequential;
  embed: Embedding | null;
  constructor(config: Partial<PatchDiscriminatorConfig> = {}) {
    super();
    const c = (this.config = { ...PATCH_DISCRIMINATOR_DEFAULTS, ...config });
    if (!Number.isInteger(c.layers) || c.layers < 1) throw new Error(`PatchDiscriminator: layers must be a positive integer, got ${c.layers}`);
    if (c.norm !== 'group' && c.norm !== 'none') throw new Error(`PatchDiscriminator: norm must be 'group' or 'none', got ${JSON.stringify(c.norm)}`);
    const bias = c.norm === 'none';
    const seq: Layer[] = [new Conv2d(c.channels, c.width, 4, { stride: 2, padding: 1 }), new LeakyReLU(0.2)];
    let ch = c.width;
    const block = (out: number, stride: number) => {
      seq.push(new Conv2d(ch, out, 4, { stride, padding: 1, bias }));
      if (c.norm === 'group') seq.push(new GroupNorm(Math.min(c.groups, out), out));
      seq.push(new LeakyReLU(0.2));
      ch = out;
    };
    for (let n = 1; n < c.layers; n++) block(c.width * Math.min(2 ** n, 8), 2);
    block(c.width * Math.min(2 ** c.layers, 8), 1);
    seq.push(new Conv2d(ch, 1, 4, { stride: 1, padding: 1 }));
    this.main = new Sequential(...seq);
    if (!Number.isInteger(c.numClasses) || c.numClasses < 0) throw new Error(`PatchDiscriminator: numClasses must be a non-negative integer, got ${c.numClasses}`);
    this.embed = c.numClasses > 0 ? new Embedding(c.numClasses, ch) : null;
    if (this.embed) noGrad(() => this.embed!.weight.assign(this.embed!.weight.mul(1 / Math.sqrt(ch))));
  }
  /** Logit map [N, 1, h, w] of images [N, channels, H, W] (and their labels [N] i32 when class-conditional). */
  forward(x: Tensor, labels?: Tensor): Tensor {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== c.channels) throw new Error(`PatchDiscriminator: expected images [N, ${c.channels}, H, W], got ${fmt(x.shape)}`);
    if (!this.embed) {
      if (labels) throw new Error(`PatchDiscriminator: the discriminator is unconditional (numClasses 0); got labels ${fmt(labels.shape)}`);
      return this.main.forward(x);
    }
    if (!labels || labels.rank !== 1 || labels.shape[0] !== x.shape[0]) throw new Error(`PatchDiscriminator: class-conditional (${c.numClasses} classes): expected labels [${x.shape[0]}], got ${labels ? fmt(labels.shape) : 'none'}`);
    return scope(() => {
      let h = x;
      for (let i = 0; i + 1 < this.main.length; i++) h = this.main.at(i).forward(h);
      const proj = this.embed!.forward(labels).mul(h.mean([2, 3])).sum(1).reshape([x.shape[0]!, 1, 1, 1]);
      return this.main.at(-1).forward(h).add(proj);
    });
  }
}

/** An MLP: Linear–LeakyReLU(0.2) blocks and a final Linear (layers under `net.<i>`). */
function mlp(dims: number[]): Sequential {
  const layers: Layer[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    layers.push(new Linear(dims[i]!, dims[i + 1]!));
    if (i + 2 < dims.length) layers.push(new LeakyReLU(0.2));
  }
  return new Sequential(...layers);
}

/** An MLP generator: latent codes [N, latentDim] → samples [N, outDim]. */
export class MLPGenerator extends Layer {
  net: Sequential;
  constructor(readonly latentDim: number, readonly outDim: number, readonly hidden = 64, readonly depth = 2) {
    super();
    this.net = mlp([latentDim, ...Array<number>(depth).fill(hidden), outDim]);
  }
  forward(z: Tensor): Tensor {
    if (z.rank !== 2 || z.shape[1] !== this.latentDim) throw new Error(`MLPGenerator: expected codes [N, ${this.latentDim}], got ${fmt(z.shape)}`);
    return this.net.forward(z);
  }
}

/** An MLP discriminator: samples [N, inDim] → logits [N, 1]. */
export class MLPDiscriminator extends Layer {
  net: Sequential;
  constructor(readonly inDim: number, readonly hidden = 64, readonly depth = 2) {
    super();
    this.net = mlp([inDim, ...Array<number>(depth).fill(hidden), 1]);
  }
  forward(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.inDim) throw new Error(`MLPDiscriminator: expected samples [N, ${this.inDim}], got ${fmt(x.shape)}`);
    return this.net.forward(x);
  }
}
