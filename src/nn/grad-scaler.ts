/**
 * Dynamic loss scaling for mixed-precision training (PyTorch's `torch.cuda.amp.GradScaler`). f16 holds
 * magnitudes from 6·10⁻⁸ to 65504: gradients of an f16 backward pass below that flush to zero. The scaler
 * multiplies the loss by a large factor before backward and divides the gradients by it before the update;
 * when a step's gradients overflow (inf or NaN) the update is skipped and the factor halves, and after
 * `growthInterval` good steps in a row it doubles.
 *
 * Everything stays on the GPU (the factor, the overflow flag, the counters): skipping is a select between
 * the old and the new values of every parameter and optimizer state, so no step waits for a readback and
 * the whole step can be a compiled one. One difference from PyTorch follows: optimizers count a skipped
 * step in their host-side step counts (Adam's bias correction), as if it had been taken with no effect.
 */
import { keep, scope } from '../tensor/memory.js';
import { full, noGrad, perCall, realize, where, type Tensor } from '../tensor/index.js';
import { squaredSum, type Optimizer } from './optim.js';

/** Options of `GradScaler` (PyTorch's defaults). */
export interface GradScalerOptions {
  /** The first scale factor (2¹⁶). */
  initScale: number;
  /** Factor applied after `growthInterval` steps without overflow (2). */
  growthFactor: number;
  /** Factor applied after an overflow (0.5). */
  backoffFactor: number;
  /** Good steps in a row before the scale grows (2000). */
  growthInterval: number;
  /** false makes every method a pass-through (f32 training with the same code). */
  enabled: boolean;
}

/** The largest finite f32: a gradient sum of squares above it overflowed. */
const F32_MAX = 3.4028234663852886e38;

/** Dynamic loss scaling: `scale(loss).backward()`, then `step(opt)` and `update()`; or `opt.minimize(fn, { scaler })`. */
export class GradScaler {
  readonly options: GradScalerOptions;
  /** The current scale factor ([] f32). */
  readonly scaleFactor: Tensor;
  /** Good steps since the last overflow or growth ([] f32). */
  readonly growthTracker: Tensor;
  /** Steps skipped so far ([] f32). */
  readonly skippedSteps: Tensor;
  /** The number (1-based count of `update` calls) of the last skipped step, 0 if none ([] f32). */
  readonly lastSkippedStep: Tensor;
  /** This step's overflow flag (1 or 0), from `unscale` until `update`. */
  private found: Tensor | null = null;
  private updates = 0;

  constructor(opts: Partial<GradScalerOptions> = {}) {
    const o = (this.options = { initScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, enabled: true, ...opts });
    const positive = (name: keyof GradScalerOptions, v: number) => {
      if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new Error(`GradScaler: ${name} must be a positive finite number, got ${v}`);
    };
    positive('initScale', o.initScale);
    positive('growthInterval', o.growthInterval);
    if (!(o.growthFactor > 1)) throw new Error(`GradScaler: growthFactor must be > 1, got ${o.growthFactor}`);
    if (!(o.backoffFactor > 0 && o.backoffFactor < 1)) throw new Error(`GradScaler: backoffFactor must be in (0, 1), got ${o.backoffFactor}`);
    if (!Number.isInteger(o.growthInterval)) throw new Error(`GradScaler: growthInterval must be an integer, got ${o.growthInterval}`);
    [this.scaleFactor, this.growthTracker, this.skippedSteps, this.lastSkippedStep] = noGrad(() =>
      [o.initScale, 0, 0, 0].map((v) => keep(full([], v))),
    ) as [Tensor, Tensor, Tensor, Tensor];
    void realize(this.scaleFactor, this.growthTracker, this.skippedSteps, this.lastSkippedStep).catch(() => undefined);
  }

  /** The loss multiplied by the scale factor (backpropagate this one). */
  scale(loss: Tensor): Tensor {
    if (!this.options.enabled) return loss;
    return loss.mul(this.scaleFactor.detach());
  }

  /**
   * Divides the gradients of `opt`'s parameters by the scale factor in place and notes whether any is
   * inf or NaN. Call it before clipping or reading gradients; `step` calls it if you did not. Returns the
   * unscaled gradients' sum of squares (a lazy [] tensor; `minimize` clips by it), or null when disabled.
   */
  unscale(opt: Optimizer<{ lr: number }>): Tensor | null {
    if (!this.options.enabled) return null;
    if (this.found) throw new Error('GradScaler.unscale: already called since the last update(); call update() after each step');
    const grads = opt.paramGroups.flatMap((g) => g.params.flatMap((p) => (p.grad ? [p] : [])));
    return noGrad(() => {
      const inv = scope(() => this.scaleFactor.recip());
      for (const p of grads) p.grad!.assign(scope(() => p.grad!.mul(inv)));
      inv.dispose();
      // a sum of squares is finite only when every gradient is (the inf or NaN of one carries through)
      const ss = squaredSum(grads.map((p) => p.grad!));
      this.found = keep(scope(() => where(ss.isnan().logicalOr(ss.gt(F32_MAX)), 1, 0).cast('f32')));
      return ss;
    });
  }

  /**
   * Unscales if needed, then applies `opt`'s update unless this step's gradients overflowed (`alongside`:
   * as in `Optimizer.step`).
   */
  step(opt: Optimizer<{ lr: number }>, alongside?: () => Tensor[]): Promise<void> {
    if (!this.options.enabled) return opt.step({ alongside });
    if (!this.found) this.unscale(opt);
    return opt.step({ skipIf: this.found!, alongside });
  }

  /** Adjusts the scale factor after a step: back off after an overflow, grow after `growthInterval` good steps. */
  update(): void {
    if (!this.options.enabled) return;
    const found = this.found;
    if (!found) throw new Error('GradScaler.update: no step since the last update (call step(opt) or unscale(opt) first)');
    this.found = null;
    const { growthFactor, backoffFactor, growthInterval } = this.options;
    const n = perCall(() => ++this.updates);
    noGrad(() => scope(() => {
      const bad = found.gt(0);
      const tracker = where(bad, 0, this.growthTracker.add(1));
      const grow = tracker.ge(growthInterval);
      this.scaleFactor.assign(where(bad, this.scaleFactor.mul(backoffFactor), where(grow, this.scaleFactor.mul(growthFactor), this.scaleFactor)));
      this.growthTracker.assign(where(grow, 0, tracker));
      this.skippedSteps.assign(this.skippedSteps.add(found));
      this.lastSkippedStep.assign(where(bad, n.scalar((v) => v), this.lastSkippedStep));
    }));
    found.dispose();
    void realize(this.scaleFactor, this.growthTracker, this.skippedSteps, this.lastSkippedStep).catch(() => undefined);
  }

  /** The scale factor, skipped steps and last skipped step, read back. */
  async stats(): Promise<{ scale: number; skippedSteps: number; lastSkippedStep: number }> {
    const [scale, skippedSteps, lastSkippedStep] = await Promise.all([this.scaleFactor, this.skippedSteps, this.lastSkippedStep].map((t) => t.item()));
    return { scale: scale!, skippedSteps: skippedSteps!, lastSkippedStep: lastSkippedStep! };
  }

  /** The scaler's state: its tensors (scale factor, growth tracker, counters). */
  stateDict(): Record<string, Tensor> {
    return { scale: this.scaleFactor, growthTracker: this.growthTracker, skippedSteps: this.skippedSteps, lastSkippedStep: this.lastSkippedStep };
  }

  /** Restores `stateDict()` output; `updates` is how many steps were taken before it (numbering later skipped steps). */
  loadStateDict(sd: Record<string, Tensor>, updates = 0): void {
    for (const [name, t] of Object.entries(this.stateDict())) {
      const v = sd[name];
      if (!v) throw new Error(`GradScaler.loadStateDict: missing '${name}'`);
      if (v.size !== 1) throw new Error(`GradScaler.loadStateDict: '${name}' must hold one value, got shape [${v.shape.join(', ')}]`);
      noGrad(() => t.assign(v.reshape([])));
    }
    this.updates = updates;
    this.found?.dispose();
    this.found = null;
  }
}
