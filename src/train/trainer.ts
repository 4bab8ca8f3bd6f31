/**
 * What every kiln trainer shares: a step counter, a history of per-step metrics read back one step late
 * (so reading them never stalls the GPU), and checkpoints. A checkpoint is one safetensors file holding
 * the trainer's tensors grouped by name prefix and, in the metadata key `kiln`, its format tag, step,
 * generator state, history and whatever the trainer adds; it is written atomically (temp file + rename:
 * a failed or killed save leaves the previous checkpoint intact), so a resumed run repeats the run it
 * continues exactly.
 *
 * A run that diverges stops: the first NaN or ±∞ among a step's metrics (seen when it is read back,
 * during the next step or at `flush`/`save`) throws a `NonFiniteLossError` naming the step and the last
 * finite value, and `save` refuses to write a checkpoint after such a step or one whose tensors hold NaN
 * or ±∞ (the previous checkpoint file stays as it was).
 */
import { readCheckpointMeta, withoutPrefix, withPrefix } from '../nn/checkpoint.js';
import type { Module } from '../nn/module.js';
import { cosine, LRScheduler, warmup, type Optimizer } from '../nn/optim.js';
import { GradScaler, type GradScalerOptions } from '../nn/grad-scaler.js';
import { loadWithMetadata, NonFiniteTensorError, save } from '../nn/safetensors.js';
import { autocast, compile, getRngState, perCall, setRngState, type CompiledFunction, type Tensor } from '../tensor/index.js';

/** The precision a trainer computes in: 'f32', or 'f16' mixed precision (f16 activations, f32 weights, loss scaling). */
export type Precision = 'f32' | 'f16';

/**
 * The loss scaler of a trainer computing in `precision` (null for 'f32' or undefined), with `options`;
 * any other precision is an error naming `trainer`.
 */
export function scalerFor(trainer: string, precision: Precision | undefined, options: Partial<GradScalerOptions> = {}): GradScaler | null {
  if (precision !== undefined && precision !== 'f32' && precision !== 'f16') throw new Error(`${trainer}: precision must be 'f32' or 'f16', got ${JSON.stringify(precision)}`);
  return precision === 'f16' ? new GradScaler(options) : null;
}

/** What a trainer stores in its checkpoints besides the common fields. */
export interface TrainerState {
  /** State dicts by name prefix, e.g. `{ 'model.': model.stateDict(), 'optim.': … }`. */
  tensors: Record<string, Record<string, Tensor>>;
  /** Metadata fields (JSON). */
  meta: Record<string, unknown>;
}

/** How a trainer's checkpoints are tagged: the `format` field, and the metadata key of the history. */
export interface CheckpointFormat {
  format: string;
  historyKey: string;
}

/** A training run stopped because a step's loss (or another metric it records) or the trained tensors became NaN or ±∞. */
export class NonFiniteLossError extends Error {
  constructor(
    message: string,
    /** The step (1-based) whose metrics or update were not finite. */
    readonly step: number,
    /** The last step whose metrics were all finite (0 if none), and its metrics. */
    readonly lastFiniteStep: number,
    readonly lastFinite: number[] | null,
  ) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

/** A history row as numbers. */
function values(row: unknown): number[] {
  return Array.isArray(row) ? (row as number[]) : [row as number];
}

/** Shortest faithful print of a metric. */
function num(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(6))) : String(v);
}

/**
 * The base of kiln's trainers. A subclass runs its update in its own `trainStep(…)`, increments `step`,
 * and hands the step's lazy metric tensors to `record`; it describes its checkpoint by `state()` and
 * `restore()`. `Row` is one history entry (a number, or a row of numbers).
 */
export abstract class Trainer<Row = number[]> {
  /** Completed steps. */
  step = 0;
  /** One entry per completed step (the last one arrives with the next step or `flush`). */
  readonly history: Row[] = [];
  private pending: Promise<Row> | null = null;
  /** `history.length` when the last checkpoint was saved or loaded: rows after it are checked before the next save. */
  private savedRows = 0;
  /**
   * Whether updates run as compiled steps (`k.compile`: traced once, then replayed without re-planning;
   * default true). false runs them eagerly, for debugging; the results are the same bit for bit.
   */
  compile = true;
  private readonly compiledSteps: CompiledFunction<never[], unknown>[] = [];

  /**
   * `metricNames` name the entries of a row in messages (e.g. `['loss']`); unnamed entries are called
   * `metric <i>`.
   */
  constructor(private readonly checkpoint: CheckpointFormat, protected readonly metricNames: readonly string[] = ['loss']) {}

  /** The tensors and metadata a checkpoint holds beside step, generator state and history. */
  protected abstract state(): TrainerState;

  /** The metadata keys of the optimizer states `restore` reads, checked before anything is restored. */
  protected readonly optimizerKeys: readonly string[] = [];

  /** Restores what `state` stored; `step` is already set. `tensors(prefix)` gives one group with the prefix removed. */
  protected abstract restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>, source: string): void;

  /** `fn` as a compiled step (run eagerly while `compile` is false); its traces are dropped when a checkpoint is loaded. */
  protected compiledStep<A extends unknown[], R>(name: string, fn: (...args: A) => R | Promise<R>): (...args: A) => Promise<Awaited<R>> {
    const c = compile(fn, { name: `${this.constructor.name}.${name}` });
    this.compiledSteps.push(c as unknown as CompiledFunction<never[], unknown>);
    return async (...args: A): Promise<Awaited<R>> => await (this.compile ? c(...args) : fn(...args));
  }

  /** Queues a step's metrics (lazy tensors, disposed once read, flattened in order into `row`) and stores the previous step's. */
  protected async record(metrics: Tensor[], row: (values: number[]) => Row): Promise<void> {
    const queue = () => {
      this.pending = Promise.all(metrics.map((t) => t.data()))
        .then((vs) => row(vs.flatMap((v) => Array.from(v as ArrayLike<number>))))
        .finally(() => metrics.forEach((t) => t.dispose()));
    };
    if (this.pending) {
      const previous = this.pending;
      this.pending = null;
      let last: Row;
      try {
        last = await previous;
      } catch (e) {
        metrics.forEach((t) => t.dispose());
        throw e;
      }
      try {
        this.accept(last);
      } catch (e) {
        queue(); // this step's metrics still follow in the history, one row per step
        throw e;
      }
    }
    queue();
  }

  /** Waits for the last step's metrics (throwing `NonFiniteLossError` if one is NaN or ±∞). */
  async flush(): Promise<void> {
    const previous = this.pending;
    this.pending = null;
    if (previous) this.accept(await previous);
  }

  /** Appends a step's metrics to the history; a NaN or ±∞ among them stops the run. */
  private accept(row: Row): void {
    this.history.push(row);
    if (!values(row).every(Number.isFinite)) throw this.divergence(this.history.length - 1);
  }

  /** The error of a non-finite row `i` of the history (step i + 1). */
  private divergence(i: number, consequence = 'training stopped'): NonFiniteLossError {
    const name = (j: number) => this.metricNames[j] ?? `metric ${j}`;
    const row = values(this.history[i]);
    const bad = row.flatMap((v, j) => (Number.isFinite(v) ? [] : [j]));
    let last = i - 1;
    while (last >= 0 && !values(this.history[last]).every(Number.isFinite)) last--;
    const lastRow = last >= 0 ? values(this.history[last]) : null;
    const before = lastRow ? `last finite ${bad.map((j) => `${name(j)} ${num(lastRow[j]!)}`).join(', ')} at step ${last + 1}` : 'no step before it had finite values';
    return new NonFiniteLossError(`${this.constructor.name}: non-finite ${bad.map((j) => `${name(j)} ${row[j]}`).join(', ')} at step ${i + 1} (${before}); ${consequence}`, i + 1, last + 1, lastRow);
  }

  /**
   * Writes the checkpoint atomically to `path` (Node) and returns its bytes; without a path (e.g. in a
   * browser) it only returns them. `extra` goes into the metadata; `extraTensors` are stored beside the
   * trainer's (e.g. a latent model's frozen VAE under `vae.`) and must not use its prefixes.
   */
  async save(path?: string, extra: Record<string, unknown> = {}, extraTensors: Record<string, Tensor> = {}): Promise<Uint8Array<ArrayBuffer>> {
    const where = path ?? 'the checkpoint';
    await this.flush();
    // a run that went on after a non-finite step (its error caught) never overwrites the last good checkpoint
    for (let i = this.savedRows; i < this.history.length; i++) {
      if (!values(this.history[i]).every(Number.isFinite)) throw this.divergence(i, `${where} was not written`);
    }
    const { tensors: groups, meta } = this.state();
    const reserved = Object.keys(groups);
    for (const n of Object.keys(extraTensors)) {
      if (reserved.some((p) => n.startsWith(p))) throw new Error(`${this.constructor.name}.save: extra tensor '${n}' uses a prefix reserved for the trainer (${reserved.join(', ')})`);
    }
    const tensors = Object.assign({ ...extraTensors }, ...Object.entries(groups).map(([prefix, sd]) => withPrefix(prefix, sd))) as Record<string, Tensor>;
    const all = { format: this.checkpoint.format, step: this.step, rng: getRngState(), ...meta, [this.checkpoint.historyKey]: this.history, ...extra };
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      // a finite loss is computed before its step's update: the update itself may have made the tensors non-finite
      bytes = await save(tensors, path, { metadata: { kiln: JSON.stringify(all) }, requireFinite: true });
    } catch (e) {
      if (!(e instanceof NonFiniteTensorError)) throw e;
      const lastRow = this.history.length ? values(this.history.at(-1)) : null;
      const last = lastRow ? ` (its ${this.metricNames[0] ?? 'metric 0'} was still finite: ${num(lastRow[0]!)})` : '';
      throw new NonFiniteLossError(`${this.constructor.name}: the update of step ${this.step} made '${e.tensor}' non-finite${last}; training stopped and ${where} was not written`, this.step, this.history.length, lastRow);
    }
    this.savedRows = this.history.length;
    return bytes;
  }

  /** Restores a checkpoint written by `save` into this trainer (same model structure); returns its metadata. */
  async load(path: string): Promise<Record<string, unknown>> {
    const { tensors, metadata } = await loadWithMetadata(path);
    try {
      const meta = readCheckpointMeta(path, metadata, this.checkpoint.format);
      // a checkpoint that cannot be resumed leaves the trainer as it was
      for (const key of this.optimizerKeys) {
        if (!meta[key] || typeof meta[key] !== 'object') throw new Error(`${path} holds no optimizer state, so its run cannot be resumed (checkpoints written outside kiln's trainers, such as python/kiln_torch's, keep none)`);
      }
      for (const c of this.compiledSteps) c.reset();
      this.step = meta.step as number;
      this.restore(meta, (prefix) => withoutPrefix(tensors, prefix), path);
      this.pending = null;
      this.history.splice(0, this.history.length, ...(meta[this.checkpoint.historyKey] as Row[]));
      this.savedRows = this.history.length;
      setRngState(meta.rng as { seed: number; counter: number });
      return meta;
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  }
}

/**
 * A trainer of one model by one optimizer under a learning-rate schedule, with one loss per step: a
 * subclass defines the loss of a batch (and may clip gradients or act around each update). Checkpoints
 * hold the model under `model.`, the optimizer under `optim.`, and `config` as `train` in the metadata.
 */
export abstract class LossTrainer<Batch extends (Tensor | null)[]> extends Trainer<number> {
  abstract readonly opt: Optimizer<{ lr: number }>;
  abstract readonly sched: LRScheduler;
  /** Max global gradient norm (undefined: no clipping). */
  protected clip: number | undefined = undefined;
  /** With mixed precision (`precision: 'f16'`): the loss scaler; the loss then runs under `k.autocast`. */
  scaler: GradScaler | null = null;

  protected override readonly optimizerKeys: readonly string[] = ['optimizer'];

  constructor(format: string, readonly model: Module, readonly config: object) {
    super({ format, historyKey: 'losses' });
  }

  /** The loss of every completed step (the same array as `history`). */
  get losses(): number[] {
    return this.history;
  }

  /** The loss of one batch. */
  abstract loss(...batch: Batch): Tensor;

  /** Runs before each update (e.g. computing lazy initial weights before the first). */
  protected async beforeUpdate(): Promise<void> {}

  /**
   * Lazy tensors computed with each update, built after it inside the compiled step (e.g. an average of the
   * new weights, `EMA.stage()`): they share the update's submit and kernels. Synchronous, so the step
   * records the same way with or without an async context (browsers).
   */
  protected alongsideUpdate(): Tensor[] {
    return [];
  }

  /**
   * Trains in `precision`: 'f16' runs the loss under `k.autocast` (f16 activations, f32 master weights) with
   * a `GradScaler`; 'f32' (the default) in full precision. Call it from the constructor.
   */
  protected setPrecision(precision: Precision | undefined): void {
    this.scaler = scalerFor(this.constructor.name, precision);
  }

  /** The update of one batch (compiled): loss, backward, clipping, optimizer with `alongsideUpdate`, schedule. */
  private readonly update = this.compiledStep('trainStep', (...batch: Batch) => {
    const lossFn = () => autocast({ enabled: this.scaler !== null }, () => this.loss(...batch));
    const loss = this.opt.minimize(lossFn, { clipGradNorm: this.clip, scaler: this.scaler, alongside: () => this.alongsideUpdate() });
    perCall(() => this.sched.step());
    return loss;
  });

  /** One optimizer step on a batch (its loss is collected later into `losses`). */
  async trainStep(...batch: Batch): Promise<void> {
    await this.beforeUpdate();
    const loss = await this.update(...batch);
    this.step++;
    await this.record([loss], (v) => v[0]!);
  }

  protected state(): TrainerState {
    const o = optimizerState(this.opt);
    const tensors: TrainerState['tensors'] = { 'model.': this.model.stateDict(), 'optim.': o.tensors };
    if (this.scaler) tensors['scaler.'] = this.scaler.stateDict();
    return { tensors, meta: { train: this.config, optimizer: o.meta } };
  }

  protected restore(meta: Record<string, unknown>, tensors: (prefix: string) => Record<string, Tensor>): void {
    this.model.loadStateDict(tensors('model.'));
    restoreOptimizer(this.opt, meta.optimizer as OptimizerMeta, tensors('optim.'));
    this.sched.stepCount = this.step;
    restoreScaler(this.scaler, tensors('scaler.'), this.step);
  }
}

/**
 * Restores a trainer's loss scaler from its checkpoint tensors, `updates` being how many times it was
 * updated before; a checkpoint without them (an f32 run resumed in f16) leaves the scaler fresh.
 */
export function restoreScaler(scaler: GradScaler | null, state: Record<string, Tensor>, updates: number): void {
  if (scaler && Object.keys(state).length) scaler.loadStateDict(state, updates);
}

/** The JSON part of an optimizer's state in a checkpoint (its tensors go under a prefix of their own). */
export interface OptimizerMeta {
  step: number;
  steps?: number[];
  groups: unknown[];
}

/** An optimizer's checkpoint parts: its moment tensors and the JSON of its step counts and groups. */
export function optimizerState(opt: Optimizer<{ lr: number }>): { tensors: Record<string, Tensor>; meta: OptimizerMeta } {
  const { tensors, ...meta } = opt.stateDict();
  return { tensors, meta };
}

/** Restores an optimizer from the parts `optimizerState` gave. */
export function restoreOptimizer(opt: Optimizer<{ lr: number }>, meta: OptimizerMeta, tensors: Record<string, Tensor>): void {
  opt.loadStateDict({ step: meta.step, steps: meta.steps, groups: meta.groups as never, tensors });
}

/** The learning rate kiln's trainers use: linear warmup over `warmupSteps`, then cosine decay to 5% of `lr` at `steps`. */
export function warmupCosine(opt: Optimizer<{ lr: number }>, lr: number, warmupSteps: number, steps: number): LRScheduler {
  return new LRScheduler(opt, warmup(lr, warmupSteps, cosine(lr, Math.max(1, steps - warmupSteps), lr * 0.05)));
}
