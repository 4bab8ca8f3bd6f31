/**
 * Training the KL-VAE of latent diffusion: the weighted negative ELBO, and from `discStart` on a
 * PatchGAN discriminator whose adversarial term is balanced by the adaptive weight at the decoder's last
 * layer. Its checkpoints are what `k.nn.loadVAE` reads.
 */
import { adaptiveWeight, discriminatorLoss, generatorLoss, PatchDiscriminator, r1Penalty, startAt, type GanLoss, type PatchDiscriminatorConfig } from '../nn/models/gan.js';
import { VAE_CHECKPOINT_FORMAT, type Reconstruction, type VAE } from '../nn/models/vae.js';
import type { GradScaler } from '../nn/grad-scaler.js';
import { Adam, type LRScheduler } from '../nn/optim.js';
import { scope } from '../tensor/memory.js';
import { autocast, full, perCall, realize, stack, type Tensor } from '../tensor/index.js';
import { optimizerState, restoreOptimizer, restoreScaler, scalerFor, Trainer, warmupCosine, type OptimizerMeta, type Precision, type TrainerState } from './trainer.js';

/** Hyper-parameters of VAE (+ discriminator) training. */
export interface VAETrainConfig {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  reconstruction: Reconstruction;
  /** β of the KL term. */
  klWeight: number;
  /** Step at which the discriminator and the adversarial term switch on (≥ steps: never). */
  discStart: number;
  /** Factor on the adaptive weight of the adversarial term. */
  discWeight: number;
  discLoss: GanLoss;
  /** R1 penalty weight γ on the discriminator (0: none). */
  r1Gamma: number;
  discLr: number;
  seed: number;
  /** 'f16': mixed precision (f16 activations under `k.autocast`, f32 master weights, a loss scaler per player); absent: 'f32'. */
  precision?: Precision;
}

/** Defaults of `VAETrainConfig`: the MNIST run of `kiln train-vae` (about 13 minutes on lavapipe). */
export const VAE_TRAIN_DEFAULTS: VAETrainConfig = { steps: 800, batchSize: 16, lr: 2e-3, warmup: 50, reconstruction: 'l1', klWeight: 1e-4, discStart: 533, discWeight: 0.5, discLoss: 'hinge', r1Gamma: 0, discLr: 2e-3, seed: 0 };

/** The metrics recorded per training step, in this order. */
export const VAE_METRICS = ['loss', 'rec', 'kl', 'nll', 'gan', 'weight', 'disc'] as const;

/**
 * Trains a VAE one batch at a time: the weighted negative ELBO, plus from `discStart` on the adversarial
 * term −mean D(x̂) scaled by discWeight × the adaptive weight at the decoder's last layer, and a
 * discriminator step (hinge or non-saturating, optional R1). `history` holds one row of `VAE_METRICS`
 * per step.
 */
export class VAETrainer extends Trainer<number[]> {
  protected override readonly optimizerKeys: readonly string[] = ['optimizer'];
  readonly opt: Adam;
  readonly optD: Adam | null;
  readonly sched: LRScheduler;
  readonly discriminator: PatchDiscriminator | null;
  /** With `precision: 'f16'`: the loss scalers of the VAE and of the discriminator (null in f32). */
  readonly scaler: GradScaler | null;
  readonly scalerDisc: GradScaler | null;

  constructor(readonly vae: VAE, readonly config: VAETrainConfig, discriminator: Partial<PatchDiscriminatorConfig> | null = {}) {
    super({ format: VAE_CHECKPOINT_FORMAT, historyKey: 'history' }, VAE_METRICS);
    const c = config;
    if (c.reconstruction !== 'l1' && c.reconstruction !== 'l2') throw new Error(`VAETrainer: reconstruction must be 'l1' or 'l2', got ${JSON.stringify(c.reconstruction)}`);
    this.opt = new Adam(vae, { lr: c.lr, betas: [0.5, 0.9] });
    this.sched = warmupCosine(this.opt, c.lr, c.warmup, c.steps);
    this.discriminator = discriminator && c.discStart < c.steps ? new PatchDiscriminator({ channels: vae.config.channels, ...discriminator }) : null;
    this.optD = this.discriminator ? new Adam(this.discriminator, { lr: c.discLr, betas: [0.5, 0.9] }) : null;
    // the ELBO sums over each image's pixels: its gradients are ~10³ times those of a mean loss, and at
    // PyTorch's first scale of 2¹⁶ the first updates of an MNIST VAE overflow in f16
    this.scaler = scalerFor('VAETrainer', c.precision, { initScale: 2 ** 10 });
    this.scalerDisc = this.scaler && this.discriminator ? scalerFor('VAETrainer', c.precision) : null;
  }

  /** One update of the VAE (and of the discriminator once it is on) on images x [N, C, H, W] in [−1, 1]. */
  async trainStep(x: Tensor): Promise<void> {
    const c = this.config;
    const D = this.discriminator;
    // lazy initial weights would otherwise be computed inside the first step (and the discriminator's inside
    // the first adversarial one), giving those steps kernels of their own to compile
    if (this.step === 0) await realize(...this.vae.parameters(), ...(D?.parameters() ?? []));
    const [row, dLoss] = await this.update(x, D !== null && startAt(this.step, c.discStart) > 0);
    this.step++;
    await this.record([row!, dLoss!], (v) => v);
  }

  /** The update of one batch (compiled; `adversarial` selects one of two traces): metrics row and discriminator loss. */
  private readonly update = this.compiledStep('trainStep', (x: Tensor, adversarial: boolean) => {
    const c = this.config;
    const D = this.discriminator;
    const scaler = this.scaler;
    const amp = <T>(fn: () => T): T => autocast({ enabled: scaler !== null }, fn);
    const [row, fake] = scope(() => {
      const t = amp(() => this.vae.loss(x, { reconstruction: c.reconstruction, klWeight: c.klWeight }));
      let total = t.loss;
      let g = full([], 0), w = full([], 0);
      if (adversarial) {
        g = amp(() => generatorLoss(D!.forward(t.recon), 'hinge'));
        w = adaptiveWeight(t.nll, g, this.vae.lastLayer, { scale: scaler?.scaleFactor }).mul(c.discWeight);
        total = total.add(w.mul(g));
      }
      (scaler ? scaler.scale(total) : total).backward();
      return [stack([total, t.rec, t.kl, t.nll, g, w]).detach(), t.recon.detach()];
    });
    void (scaler ? scaler.step(this.opt) : this.opt.step());
    scaler?.update();
    this.opt.zeroGrad();
    D?.zeroGrad();
    // R1 differentiates D twice: it stays in f32
    const dLoss = !adversarial ? full([], 0) : this.optD!.minimize(() => {
      const d = amp(() => discriminatorLoss(D!.forward(x), D!.forward(fake!), c.discLoss));
      return c.r1Gamma > 0 ? d.add(r1Penalty((xr) => D!.forward(xr), x, c.r1Gamma)) : d;
    }, { scaler: this.scalerDisc });
    fake!.dispose();
    perCall(() => this.sched.step());
    return [row!, dLoss];
  });

  protected state(): TrainerState {
    const o = optimizerState(this.opt);
    const od = this.optD ? optimizerState(this.optD) : null;
    const tensors: TrainerState['tensors'] = { 'vae.': this.vae.stateDict(), 'optim.': o.tensors };
    if (this.discriminator) tensors['disc.'] = this.discriminator.stateDict();
    if (od) tensors['optim_disc.'] = od.tensors;
    if (this.scaler) tensors['scaler.'] = this.scaler.stateDict();
    if (this.scalerDisc) tensors['scaler_disc.'] = this.scalerDisc.stateDict();
    return {
      tensors,
      meta: { vae: this.vae.config, discriminator: this.discriminator?.config ?? null, train: this.config, optimizer: o.meta, optimizerDisc: od?.meta ?? null, metrics: VAE_METRICS },
    };
  }

  protected restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>, source: string): void {
    this.vae.loadStateDict(tensors('vae.'));
    restoreOptimizer(this.opt, meta.optimizer as OptimizerMeta, tensors('optim.'));
    const od = meta.optimizerDisc as OptimizerMeta | null;
    if (this.discriminator && this.optD) {
      if (!meta.discriminator) throw new Error(`${source} holds no discriminator, but this run trains one`);
      this.discriminator.loadStateDict(tensors('disc.'));
      if (od) restoreOptimizer(this.optD, od, tensors('optim_disc.'));
    }
    this.sched.stepCount = this.step;
    restoreScaler(this.scaler, tensors('scaler.'), this.step);
    // the discriminator's scaler is updated once per step from discStart on
    restoreScaler(this.scalerDisc, tensors('scaler_disc.'), Math.max(0, this.step - this.config.discStart));
  }
}
