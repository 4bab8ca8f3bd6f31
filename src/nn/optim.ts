/**
 * Optimizers, gradient clipping, learning-rate schedules and an exponential moving average of
 * parameters. Updates are lazy Tensor expressions realized at the end of `step()`; the scheduler fuses
 * each parameter's update and its moment updates into one kernel (parameters of the same size share one).
 */
import { noGrad } from '../tensor/index.js';
import { keep, scope } from '../tensor/memory.js';
import { cat, full, perCall, realize, Tensor, where, zerosLike } from '../tensor/index.js';
import { scheduleConfig } from '../tensor/plan.js';
import type { GradScaler } from './grad-scaler.js';
import type { Module } from './module.js';

/** What `Optimizer.stateDict()` returns. */
export interface OptimizerState<O> {
  step: number;
  /** Per-parameter update counts (default: `step` for every parameter). */
  steps?: number[];
  groups: O[];
  tensors: Record<string, Tensor>;
}

/** Hyper-parameters shared by a group of parameters. */
export interface ParamGroup<O> {
  params: Tensor[];
  options: O;
}

/** Base class: parameter groups, per-parameter state, `zeroGrad`, state dicts. */
export abstract class Optimizer<O extends { lr: number }> {
  readonly paramGroups: ParamGroup<O>[];
  protected state = new Map<Tensor, Record<string, Tensor>>();
  /** Updates applied to each parameter (PyTorch's per-parameter `step`, used for bias correction). */
  protected steps = new Map<Tensor, number>();
  /** Number of `step()` calls so far. */
  stepCount = 0;

  constructor(params: Tensor[] | Module | { params: Tensor[] | Module; options?: Partial<O> }[], defaults: O) {
    const asList = (p: Tensor[] | Module) => (Array.isArray(p) ? p : p.parameters());
    const groups = Array.isArray(params) && params.length && !(params[0] instanceof Tensor)
      ? (params as { params: Tensor[] | Module; options?: Partial<O> }[]).map((g) => ({ params: asList(g.params), options: { ...defaults, ...g.options } }))
      : [{ params: asList(params as Tensor[] | Module), options: { ...defaults } }];
    const name = this.constructor.name;
    if (!groups.some((g) => g.params.length)) throw new Error(`${name}: optimizer got an empty parameter list`);
    const seen = new Set<Tensor>();
    for (const g of groups) {
      this.checkOptions(g.options);
      for (const p of g.params) {
        if (!(p instanceof Tensor)) throw new TypeError(`${name}: parameters must be Tensors, got ${p === null ? 'null' : typeof p}`);
        if (p.disposed) throw new Error(`${name}: a parameter of shape [${p.shape.join(', ')}] was disposed`);
        if (!p.requiresGrad) throw new Error(`${name}: parameter of shape [${p.shape.join(', ')}] does not require grad`);
        if (seen.has(p) && groups.length > 1) throw new Error(`${name}: a parameter of shape [${p.shape.join(', ')}] appears in more than one parameter group`);
        seen.add(p);
      }
    }
    this.paramGroups = groups;
    for (const g of groups) for (const p of g.params) this.groupOf.set(p, g);
  }

  /** The group of each parameter. */
  private readonly groupOf = new Map<Tensor, ParamGroup<O>>();

  /** The current options of the group holding `p` (read at every call of a compiled step: `loadStateDict` replaces them). */
  protected optionsOf(p: Tensor): O {
    const g = this.groupOf.get(p);
    if (!g) throw new Error(`${this.constructor.name}: a tensor of shape [${p.shape.join(', ')}] is not one of its parameters`);
    return g.options;
  }

  /**
   * Checks hyper-parameters (PyTorch's rules, and finite): lr ≥ 0; subclasses add their own.
   * Throws an error naming the optimizer and the value.
   */
  protected checkOptions(o: O): void {
    checkNumber(this.constructor.name, 'lr', o.lr, 0);
  }

  /** The learning rate of the first group (setting it sets every group's). */
  get lr(): number {
    return this.paramGroups[0]!.options.lr;
  }
  set lr(v: number) {
    checkNumber(this.constructor.name, 'lr', v, 0);
    for (const g of this.paramGroups) g.options.lr = v;
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  protected stateOf(p: Tensor, names: string[]): Record<string, Tensor> {
    let s = this.state.get(p);
    if (!s) {
      s = {};
      for (const n of names) s[n] = keep(noGrad(() => zerosLike(p)));
      // stored zeros, not a constant folded into the first update: the first update then runs the kernel of
      // every later one instead of compiling pipelines of its own
      realize(...Object.values(s)).catch(() => undefined);
      this.state.set(p, s);
    }
    return s;
  }

  /** The update of one parameter; assigns new values to `p` and its state tensors. */
  protected abstract update(p: Tensor, g: Tensor, o: O): void;

  /**
   * Applies one update to every parameter that has a gradient. The work is submitted to the GPU before
   * the returned promise resolves; later reads see the updated values even if it is not awaited.
   * `skipIf` (a [] tensor, e.g. a `GradScaler`'s overflow flag) keeps every parameter and state as it was
   * where it is non-zero, decided on the GPU (the host step counts still advance). `alongside` builds lazy
   * tensors that read the new values (e.g. `EMA.stage()`); they are computed in the same submit, so their
   * elementwise work shares the update's kernels instead of running kernels of its own.
   */
  step(opts: { skipIf?: Tensor; alongside?: () => Tensor[] } = {}): Promise<void> {
    const skip = opts.skipIf;
    if (skip && skip.size !== 1) throw new Error(`${this.constructor.name}.step: skipIf must be a single value, got shape [${skip.shape.join(', ')}]`);
    const updated = this.paramGroups.flatMap((g) => g.params.filter((p) => p.grad));
    // host counters advance at every call, also of a compiled step
    perCall(() => {
      this.stepCount++;
      for (const p of updated) this.steps.set(p, (this.steps.get(p) ?? 0) + 1);
    });
    const touched: Tensor[] = [];
    noGrad(() => {
      const keepOld = skip && skip.ne(0);
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (!p.grad) continue;
          const before = skip ? new Map([p, ...Object.values(this.state.get(p) ?? {})].map((t) => [t, t.detach()])) : null;
          scope(() => this.update(p, p.grad!, group.options));
          const mine = [p, ...Object.values(this.state.get(p) ?? {})];
          if (before) {
            // a state made by this update was zeros before it
            scope(() => { for (const t of mine) t.assign(where(keepOld!, before.get(t) ?? zerosLike(t), t)); });
            for (const old of before.values()) old.dispose();
          }
          touched.push(...mine);
        }
      }
      keepOld?.dispose();
    });
    return realize(...touched, ...(opts.alongside?.() ?? []));
  }

  /**
   * One training step: evaluates `lossFn` in a scope, backpropagates (through a `GradScaler`'s scaled loss
   * when given: unscaled before clipping, the update skipped on overflow), optionally clips the gradient
   * norm, applies the update (with `alongside`, as in `step`) and clears the gradients. Returns the loss
   * (the caller disposes it; reading it does not stall the next step's work).
   */
  minimize(lossFn: () => Tensor, opts: { clipGradNorm?: number; scaler?: GradScaler | null; alongside?: () => Tensor[] } = {}): Tensor {
    const scaler = opts.scaler;
    const loss = scope(() => {
      const l = lossFn();
      (scaler ? scaler.scale(l) : l).backward();
      const sumOfSquares = scaler?.unscale(this);
      if (opts.clipGradNorm) clipGrads(this.paramGroups.flatMap((g) => g.params), opts.clipGradNorm, 2, sumOfSquares);
      return l;
    });
    void (scaler ? scaler.step(this, opts.alongside) : this.step({ alongside: opts.alongside }));
    scaler?.update();
    this.zeroGrad();
    return loss;
  }

  /** Optimizer state (step count, hyper-parameters and per-parameter tensors by parameter index). */
  stateDict(): OptimizerState<O> {
    const tensors: Record<string, Tensor> = {};
    const steps: number[] = [];
    let i = 0;
    for (const g of this.paramGroups) for (const p of g.params) {
      const s = this.state.get(p);
      if (s) for (const [name, t] of Object.entries(s)) tensors[`${i}.${name}`] = t;
      steps.push(this.steps.get(p) ?? 0);
      i++;
    }
    return { step: this.stepCount, steps, groups: this.paramGroups.map((g) => ({ ...g.options })), tensors };
  }

  /** Restores `stateDict()` output. */
  loadStateDict(sd: OptimizerState<O>): void {
    if (sd.groups.length !== this.paramGroups.length) throw new Error(`loadStateDict: ${sd.groups.length} parameter groups in the state, ${this.paramGroups.length} in the optimizer`);
    for (const o of sd.groups) this.checkOptions(o);
    this.stepCount = sd.step;
    sd.groups.forEach((o, i) => (this.paramGroups[i]!.options = { ...o }));
    let i = 0;
    for (const g of this.paramGroups) for (const p of g.params) {
      this.steps.set(p, sd.steps?.[i] ?? sd.step);
      const entries = Object.entries(sd.tensors).filter(([k]) => k.startsWith(`${i}.`));
      if (entries.length) {
        // existing state tensors keep their identity (a compiled step holds them): new values are assigned
        const s: Record<string, Tensor> = this.state.get(p) ?? {};
        for (const [k, t] of entries) {
          if (t.shape.join() !== p.shape.join()) throw new Error(`loadStateDict: state '${k}' has shape [${t.shape.join(', ')}], parameter ${i} has [${p.shape.join(', ')}]`);
          const name = k.slice(String(i).length + 1);
          s[name] = (s[name] ?? keep(noGrad(() => zerosLike(p)))).assign(t);
        }
        this.state.set(p, s);
      }
      i++;
    }
  }
}

/** Throws `<opt>: <name> must be …` unless `v` is a finite number ≥ `min` (and < `below` when given). */
function checkNumber(opt: string, name: string, v: unknown, min: number, below?: number): void {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && (below === undefined || v < below);
  if (!ok) {
    const range = below === undefined ? (min === 0 ? 'a non-negative finite number' : `a finite number ≥ ${min}`) : `in [${min}, ${below})`;
    throw new Error(`${opt}: ${name} must be ${range}, got ${typeof v === 'number' ? v : JSON.stringify(v)}`);
  }
}

/** SGD options. */
export interface SGDOptions { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

/** Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (PyTorch semantics). */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ConstructorParameters<typeof Optimizer<SGDOptions>>[0], opts: Partial<SGDOptions> = {}) {
    super(params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
  }
  protected override checkOptions(o: SGDOptions): void {
    super.checkOptions(o);
    checkNumber('SGD', 'momentum', o.momentum, 0);
    if (typeof o.dampening !== 'number' || !Number.isFinite(o.dampening)) throw new Error(`SGD: dampening must be a finite number, got ${o.dampening}`);
    checkNumber('SGD', 'weightDecay', o.weightDecay, 0);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
  }
  protected update(p: Tensor, grad: Tensor, o: SGDOptions): void {
    let g = o.weightDecay ? grad.add(p.mul(o.weightDecay)) : grad;
    if (o.momentum) {
      const first = !this.state.has(p);
      const s = this.stateOf(p, ['momentumBuffer']);
      const buf = first ? g : s.momentumBuffer!.mul(o.momentum).add(g.mul(1 - o.dampening));
      s.momentumBuffer!.assign(buf);
      g = o.nesterov ? g.add(buf.mul(o.momentum)) : buf;
    }
    p.assign(p.sub(g.mul(perCall(() => this.optionsOf(p).lr).scalar((lr) => lr))));
  }
}

/** Adam options (`weightDecay` is L2 added to the gradient; use AdamW for decoupled decay). */
export interface AdamOptions { lr: number; betas: [number, number]; eps: number; weightDecay: number }

/** Adam (Kingma & Ba) with bias correction. */
export class Adam extends Optimizer<AdamOptions> {
  protected decoupled = false;
  constructor(params: ConstructorParameters<typeof Optimizer<AdamOptions>>[0], opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...opts });
  }
  protected override checkOptions(o: AdamOptions): void {
    super.checkOptions(o);
    const name = this.constructor.name;
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw new Error(`${name}: betas must be a pair [beta1, beta2], got ${JSON.stringify(o.betas)}`);
    checkNumber(name, 'betas[0]', o.betas[0], 0, 1);
    checkNumber(name, 'betas[1]', o.betas[1], 0, 1);
    checkNumber(name, 'eps', o.eps, 0);
    checkNumber(name, 'weightDecay', o.weightDecay, 0);
  }
  protected update(p: Tensor, grad: Tensor, o: AdamOptions): void {
    const [b1, b2] = o.betas;
    const s = this.stateOf(p, ['expAvg', 'expAvgSq']);
    const g = !this.decoupled && o.weightDecay ? grad.add(p.mul(o.weightDecay)) : grad;
    const m = s.expAvg!.mul(b1).add(g.mul(1 - b1));
    const v = s.expAvgSq!.mul(b2).add(g.mul(g).mul(1 - b2));
    // the learning rate and the bias corrections change from step to step: per-call values
    const c = perCall(() => {
      const t = this.steps.get(p)!;
      const { lr, weightDecay } = this.optionsOf(p);
      return { stepSize: lr / (1 - b1 ** t), correction2: 1 - b2 ** t, decay: 1 - lr * weightDecay };
    });
    const denom = v.div(c.scalar((x) => x.correction2)).sqrt().add(o.eps);
    let base = p;
    if (this.decoupled && o.weightDecay) base = p.mul(c.scalar((x) => x.decay));
    p.assign(base.sub(m.div(denom).mul(c.scalar((x) => x.stepSize))));
    s.expAvg!.assign(m);
    s.expAvgSq!.assign(v);
  }
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  constructor(params: ConstructorParameters<typeof Optimizer<AdamOptions>>[0], opts: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 1e-2, ...opts });
    this.decoupled = true;
  }
}

/**
 * Scales gradients in place so their global norm is at most `maxNorm`; returns the norm before clipping
 * (a lazy scalar: no readback happens here).
 */
export function clipGradNorm(params: Tensor[] | Module, maxNorm: number, normType: 2 | 'inf' = 2): Tensor {
  return clipGrads(params, maxNorm, normType);
}

/** `clipGradNorm`, optionally given the gradients' sum of squares already computed (e.g. by a `GradScaler`). */
function clipGrads(params: Tensor[] | Module, maxNorm: number, normType: 2 | 'inf', sumOfSquares?: Tensor | null): Tensor {
  checkNumber('clipGradNorm', 'maxNorm', maxNorm, 0);
  if (normType !== 2 && normType !== 'inf') throw new Error(`clipGradNorm: normType must be 2 or 'inf', got ${JSON.stringify(normType)}`);
  const ps = (Array.isArray(params) ? params : params.parameters()).filter((p) => p.grad);
  return noGrad(() => {
    const norm = scope(() => {
      if (!ps.length) return full([], 0);
      if (normType === 'inf') return ps.map((p) => p.grad!.abs().max()).reduce((a, b) => a.maximum(b));
      return (sumOfSquares ?? squaredSum(ps.map((p) => p.grad!))).sqrt();
    });
    scope(() => {
      const coef = norm.add(1e-6).recip().mul(maxNorm).minimum(1);
      for (const p of ps) p.grad!.assign(p.grad!.mul(coef));
    });
    return norm;
  });
}

/** Tensors up to this many elements are summed together (see `squaredSum`). */
const SMALL = 16384;

/**
 * Σ x² over every element of `ts` (a lazy [] f32), as few reductions as the storage bindings allow: small
 * tensors (biases, norms' scales, most of a model's tensors by count) are concatenated into one reduction per
 * group that one kernel can bind, so a gradient norm costs a handful of kernels instead of one per tensor;
 * larger ones get a reduction each, which reads them once.
 */
export function squaredSum(ts: Tensor[]): Tensor {
  if (!ts.length) return full([], 0);
  return scope(() => {
    const parts: Tensor[] = [];
    let group: Tensor[] = [];
    const flush = () => {
      if (group.length) parts.push(cat(group.map((t) => t.reshape([t.size]))).square().sum());
      group = [];
    };
    // as many as one kernel binds (scheduleConfig.maxInputs leaves room for the output and the scratch buffer)
    const width = Math.max(1, scheduleConfig.maxInputs);
    for (const t of ts) {
      if (t.size > SMALL) parts.push(t.square().sum());
      else if (group.push(t) === width) flush();
    }
    flush();
    return parts.reduce((a, b) => a.add(b));
  });
}

/** A learning-rate schedule: the rate as a function of the step. */
export type Schedule = (step: number) => number;

/** Linear warmup from 0 to `lr` over `warmup` steps, then `after(step − warmup)` (default constant). */
export function warmup(lr: number, steps: number, after: Schedule = () => lr): Schedule {
  return (s) => (s < steps ? (lr * (s + 1)) / steps : after(s - steps));
}

/** Cosine decay from `lr` to `minLr` over `total` steps (then `minLr`). */
export function cosine(lr: number, total: number, minLr = 0): Schedule {
  return (s) => (s >= total ? minLr : minLr + 0.5 * (lr - minLr) * (1 + Math.cos((Math.PI * s) / total)));
}

/** Multiplies `lr` by `gamma` every `every` steps. */
export function stepDecay(lr: number, every: number, gamma = 0.1): Schedule {
  return (s) => lr * gamma ** Math.floor(s / every);
}

/** Sets an optimizer's learning rate from a schedule; call `step()` once per optimizer step. */
export class LRScheduler {
  private count = 0;
  constructor(readonly optimizer: Optimizer<{ lr: number }>, readonly schedule: Schedule) {
    optimizer.lr = schedule(0);
  }
  /** Advances one step and applies the new rate. */
  step(): number {
    this.count++;
    this.optimizer.lr = this.schedule(this.count);
    return this.optimizer.lr;
  }
  /** The current rate. */
  get lr(): number {
    return this.optimizer.lr;
  }
  /** Steps taken (for checkpoints). */
  get stepCount(): number {
    return this.count;
  }
  set stepCount(n: number) {
    this.count = n;
    this.optimizer.lr = this.schedule(n);
  }
}

/** An exponential moving average of a module's parameters (shadow = d·shadow + (1−d)·param). */
export class EMA {
  readonly shadow: Map<string, Tensor>;
  constructor(readonly model: Module, readonly decay = 0.999) {
    if (!(decay >= 0 && decay <= 1)) throw new Error(`EMA: decay must be in [0, 1], got ${decay}`);
    this.shadow = new Map([...model.namedParameters()].map(([n, p]) => [n, keep(noGrad(() => zerosLike(p).assign(p)))]));
  }
  /** Moves the averages toward the current parameters; resolves once submitted. */
  update(): Promise<void> {
    return realize(...this.stage());
  }
  /**
   * The move of `update` as lazy assignments, returning the averages: computed with whatever realizes them,
   * e.g. an optimizer's update (`step({ alongside: () => ema.stage() })`), whose kernels they then share.
   */
  stage(): Tensor[] {
    const d = this.decay;
    noGrad(() => scope(() => {
      for (const [n, p] of this.model.namedParameters()) {
        const s = this.shadow.get(n)!;
        s.assign(s.mul(d).add(p.mul(1 - d)));
      }
    }));
    return [...this.shadow.values()];
  }
  /** Copies the averages into a module with the same structure (e.g. for sampling). */
  copyTo(model: Module = this.model): void {
    noGrad(() => {
      for (const [n, p] of model.namedParameters()) {
        const s = this.shadow.get(n);
        if (!s) throw new Error(`EMA.copyTo: the module has a parameter '${n}' the average does not`);
        p.assign(s);
      }
    });
  }
  /** The averages by parameter name. */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.shadow);
  }
  /** Restores averages saved with `stateDict()`. */
  loadStateDict(sd: Record<string, Tensor>): void {
    for (const [n, s] of this.shadow) {
      const v = sd[n];
      if (!v) throw new Error(`EMA.loadStateDict: missing '${n}'`);
      s.assign(v);
    }
  }
}
