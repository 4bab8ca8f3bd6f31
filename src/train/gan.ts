/**
 * Alternating GAN training of any generator and discriminator (e.g. `k.nn.MLPGenerator`/`MLPDiscriminator`,
 * or `k.nn.StyleGenerator` against a class-conditional `k.nn.PatchDiscriminator`).
 */
import { noGrad, realize } from '../tensor/index.js';
import { checkLoss, discriminatorLoss, GAN_CHECKPOINT_FORMAT, generatorLoss, r1Penalty, type GanLoss } from '../nn/models/gan.js';
import type { Module } from '../nn/module.js';
import { Adam, EMA } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { randn, type Tensor } from '../tensor/index.js';
import { optimizerState, restoreOptimizer, Trainer, type OptimizerMeta, type TrainerState } from './trainer.js';

export { GAN_CHECKPOINT_FORMAT };

/** A GAN player: a module whose forward takes a batch (codes or samples) and, when class-conditional, labels [N] i32. */
export interface GANPlayer extends Module {
  forward(x: Tensor, labels?: Tensor): Tensor;
}

/** Hyper-parameters of `GANTrainer`. */
export interface GANTrainConfig {
  loss: GanLoss;
  lr: number;
  /** Learning rate of the discriminator (`lr` unless given: two time-scale updates when larger). */
  lrD?: number;
  /** Adam betas of both players (GAN practice: a low β₁). */
  betas: [number, number];
  /** R1 weight γ (0: none). */
  r1Gamma: number;
  /** R1 every this many steps, weighted γ·r1Every (lazy regularization, as StyleGAN2; 1: every step). */
  r1Every: number;
  /** Decay of an exponential moving average of the generator's weights kept for sampling (0: none). */
  emaDecay: number;
}

/** Defaults of `GANTrainConfig`. */
export const GAN_TRAIN_DEFAULTS: GANTrainConfig = { loss: 'non-saturating', lr: 2e-3, betas: [0.5, 0.9], r1Gamma: 0.1, r1Every: 1, emaDecay: 0 };

/**
 * Alternating GAN training of any generator (codes [N, latentDim] → samples) and discriminator
 * (samples → logits): one discriminator step (its loss, + R1 at the real batch every `r1Every` steps),
 * then one generator step (and the update of the weights' EMA, if kept). Class-conditional players get
 * the real batch's labels, and the fakes of a step are drawn for the same labels.
 * `history` holds [discriminator loss, generator loss] per step.
 */
export class GANTrainer extends Trainer<number[]> {
  protected override readonly optimizerKeys: readonly string[] = ['optimizerG', 'optimizerD'];
  readonly config: GANTrainConfig;
  readonly optG: Adam;
  readonly optD: Adam;
  /** The average of the generator's weights (null when `emaDecay` is 0). */
  readonly ema: EMA | null;
  constructor(readonly generator: GANPlayer, readonly discriminator: GANPlayer, readonly latentDim: number, config: Partial<GANTrainConfig> = {}) {
    super({ format: GAN_CHECKPOINT_FORMAT, historyKey: 'history' }, ['discriminator loss', 'generator loss']);
    const c = (this.config = { ...GAN_TRAIN_DEFAULTS, ...config });
    checkLoss('GANTrainer', c.loss);
    if (!Number.isInteger(c.r1Every) || c.r1Every < 1) throw new Error(`GANTrainer: r1Every must be a positive integer, got ${c.r1Every}`);
    if (!(c.emaDecay >= 0 && c.emaDecay < 1)) throw new Error(`GANTrainer: emaDecay must be in [0, 1), got ${c.emaDecay}`);
    this.optG = new Adam(generator, { lr: c.lr, betas: c.betas });
    this.optD = new Adam(discriminator, { lr: c.lrD ?? c.lr, betas: c.betas });
    this.ema = c.emaDecay > 0 ? new EMA(generator, c.emaDecay) : null;
  }

  /** Samples [n, …] from the generator (no gradients; labels [n] i32 when class-conditional). */
  sample(n: number, labels?: Tensor): Tensor {
    return noGrad(() => scope(() => this.generator.forward(randn([n, this.latentDim]), labels)));
  }

  /** One discriminator and one generator update on a real batch (with its labels [N] i32 for class-conditional players). */
  async trainStep(real: Tensor, labels?: Tensor): Promise<void> {
    if (labels && (labels.rank !== 1 || labels.shape[0] !== real.shape[0])) throw new Error(`GANTrainer.trainStep: expected labels [${real.shape[0]}] for the batch ${fmt(real.shape)}, got ${fmt(labels.shape)}`);
    // initial weights are lazy: computed inside the first step, they would give it kernels of its own
    if (this.step === 0) await realize(...this.generator.parameters(), ...this.discriminator.parameters(), ...(this.ema?.shadow.values() ?? []));
    const r1 = this.config.r1Gamma > 0 && this.step % this.config.r1Every === 0;
    const [dLoss, gLoss] = await this.update(real, labels ?? null, r1);
    this.step++;
    await this.record([dLoss!, gLoss!], (v) => v);
  }

  /** Both players' updates on a real batch (compiled; with and without R1 are two traces); returns their losses. */
  private readonly update = this.compiledStep('trainStep', (real: Tensor, labels: Tensor | null, r1: boolean) => {
    const c = this.config;
    const N = real.shape[0]!;
    const y = labels ?? undefined;
    const D = (x: Tensor) => this.discriminator.forward(x, y);
    const dLoss = this.optD.minimize(() => {
      const fake = noGrad(() => this.generator.forward(randn([N, this.latentDim]), y));
      const d = discriminatorLoss(D(real), D(fake), c.loss);
      return r1 ? d.add(r1Penalty(D, real, c.r1Gamma * c.r1Every)) : d;
    });
    const gLoss = this.optG.minimize(() => generatorLoss(D(this.generator.forward(randn([N, this.latentDim]), y)), c.loss));
    // the generator step also left gradients on the discriminator's parameters
    this.optD.zeroGrad();
    void this.ema?.update(); // queued after the update (a failure is reported when the averages are next used)
    return [dLoss, gLoss];
  });

  protected state(): TrainerState {
    const g = optimizerState(this.optG), d = optimizerState(this.optD);
    const tensors: TrainerState['tensors'] = { 'generator.': this.generator.stateDict(), 'discriminator.': this.discriminator.stateDict(), 'optim_g.': g.tensors, 'optim_d.': d.tensors };
    if (this.ema) tensors['ema.'] = this.ema.stateDict();
    return { tensors, meta: { train: this.config, latentDim: this.latentDim, optimizerG: g.meta, optimizerD: d.meta } };
  }

  protected restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    this.generator.loadStateDict(tensors('generator.'));
    this.discriminator.loadStateDict(tensors('discriminator.'));
    restoreOptimizer(this.optG, meta.optimizerG as OptimizerMeta, tensors('optim_g.'));
    restoreOptimizer(this.optD, meta.optimizerD as OptimizerMeta, tensors('optim_d.'));
    if (this.ema) this.ema.loadStateDict(tensors('ema.'));
  }
}
