/** Alternating GAN training of any generator and discriminator (e.g. `k.nn.MLPGenerator`/`MLPDiscriminator`). */
import { noGrad } from '../tensor/index.js';
import { checkLoss, discriminatorLoss, generatorLoss, r1Penalty, type GanLoss } from '../nn/models/gan.js';
import type { Layer } from '../nn/module.js';
import { Adam } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { randn, type Tensor } from '../tensor/index.js';
import { optimizerState, restoreOptimizer, Trainer, type OptimizerMeta, type TrainerState } from './trainer.js';

/** Hyper-parameters of `GANTrainer`. */
export interface GANTrainConfig {
  loss: GanLoss;
  lr: number;
  /** Adam betas of both players (GAN practice: a low β₁). */
  betas: [number, number];
  /** R1 weight γ (0: none). */
  r1Gamma: number;
}

/** Defaults of `GANTrainConfig`. */
export const GAN_TRAIN_DEFAULTS: GANTrainConfig = { loss: 'non-saturating', lr: 2e-3, betas: [0.5, 0.9], r1Gamma: 0.1 };

/** The `format` tag of GAN checkpoints. */
export const GAN_CHECKPOINT_FORMAT = 'kiln-gan-checkpoint/1';

/**
 * Alternating GAN training of any generator (codes [N, latentDim] → samples) and discriminator
 * (samples → logits): one discriminator step (its loss + R1 at the real batch), then one generator step.
 * `history` holds [discriminator loss, generator loss] per step.
 */
export class GANTrainer extends Trainer<number[]> {
  readonly config: GANTrainConfig;
  readonly optG: Adam;
  readonly optD: Adam;
  constructor(readonly generator: Layer, readonly discriminator: Layer, readonly latentDim: number, config: Partial<GANTrainConfig> = {}) {
    super({ format: GAN_CHECKPOINT_FORMAT, historyKey: 'history' }, ['discriminator loss', 'generator loss']);
    const c = (this.config = { ...GAN_TRAIN_DEFAULTS, ...config });
    checkLoss('GANTrainer', c.loss);
    this.optG = new Adam(generator, { lr: c.lr, betas: c.betas });
    this.optD = new Adam(discriminator, { lr: c.lr, betas: c.betas });
  }

  /** Samples [n, …] from the generator (no gradients). */
  sample(n: number): Tensor {
    return noGrad(() => scope(() => this.generator.forward(randn([n, this.latentDim]))));
  }

  /** One discriminator and one generator update on a real batch. */
  async trainStep(real: Tensor): Promise<void> {
    const [dLoss, gLoss] = await this.update(real);
    this.step++;
    await this.record([dLoss!, gLoss!], (v) => v);
  }

  /** Both players' updates on a real batch (compiled); returns their losses. */
  private readonly update = this.compiledStep('trainStep', (real: Tensor) => {
    const c = this.config;
    const N = real.shape[0]!;
    const dLoss = this.optD.minimize(() => {
      const fake = noGrad(() => this.generator.forward(randn([N, this.latentDim])));
      const d = discriminatorLoss(this.discriminator.forward(real), this.discriminator.forward(fake), c.loss);
      return c.r1Gamma > 0 ? d.add(r1Penalty((x) => this.discriminator.forward(x), real, c.r1Gamma)) : d;
    });
    const gLoss = this.optG.minimize(() => generatorLoss(this.discriminator.forward(this.generator.forward(randn([N, this.latentDim]))), c.loss));
    // the generator step also left gradients on the discriminator's parameters
    this.optD.zeroGrad();
    return [dLoss, gLoss];
  });

  protected state(): TrainerState {
    const g = optimizerState(this.optG), d = optimizerState(this.optD);
    return {
      tensors: { 'generator.': this.generator.stateDict(), 'discriminator.': this.discriminator.stateDict(), 'optim_g.': g.tensors, 'optim_d.': d.tensors },
      meta: { train: this.config, latentDim: this.latentDim, optimizerG: g.meta, optimizerD: d.meta },
    };
  }

  protected restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    this.generator.loadStateDict(tensors('generator.'));
    this.discriminator.loadStateDict(tensors('discriminator.'));
    restoreOptimizer(this.optG, meta.optimizerG as OptimizerMeta, tensors('optim_g.'));
    restoreOptimizer(this.optD, meta.optimizerD as OptimizerMeta, tensors('optim_d.'));
  }
}
