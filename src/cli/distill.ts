/**
 * `kiln distill`: few-step students of a class-conditional rectified-flow model trained by `kiln train` —
 * progressive distillation (rounds that halve the steps), consistency distillation, or reflow — that learn
 * the teacher's classifier-free-guided output at a fixed scale, so they sample with one network evaluation
 * per step and no doubled batch. Like `kiln train` it shows a progress bar and writes resumable checkpoints,
 * loss.csv and sample grids (rows = digits 0–9); the student checkpoint records how it samples, so
 * `kiln sample` and `kiln eval` use it with no extra flags.
 */
import * as fs from 'node:fs';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '../index.js';
import type { StudentSpec } from '../diffusion/checkpoint.js';
import { consistencyTimes, describeStudent, studentSampling } from '../diffusion/distill/sampling.js';
import { parseCheckpointMeta } from '../nn/checkpoint.js';
import { readHeaderSync } from '../nn/safetensors.js';
import { ConsistencyTrainer, GuidanceTrainer, ProgressiveTrainer, type DistillTrainer } from '../train/distill.js';
import { Args, type OptionSpec } from './args.js';
import { DEFAULT_CHECKPOINT, diverged, outputDir, outputOptions, writeGrid } from './common.js';
import { DIGITS } from './diffusion.js';
import { command, helpFor, helpText, type Command, type Defaults, type DefaultsCase } from './help.js';
import { fmtTime, Progress } from './progress.js';
import { reflowStudent } from './reflow.js';
import { checkpointFormat } from './vae.js';

type Denoiser = k.diffusion.Denoiser;

/** The methods of `kiln distill --method`. */
export const DISTILL_METHODS = ['progressive', 'consistency', 'reflow', 'guidance'] as const;
/** A method of `kiln distill`. */
export type DistillMethod = (typeof DISTILL_METHODS)[number];

/** Consistency distillation's boundary time t_min (f(x, t_min) = x) on the rectified-flow path t ∈ [t_min, 1]. */
const CONSISTENCY_T_MIN = 0.002;

/** What `kiln distill` does, in one line. */
const DISTILL_SUMMARY = 'distill a kiln train checkpoint into a few-step student with its guidance built in';

/** The options of `kiln distill`: the parser accepts these, and its help lists them. */
export const DISTILL_OPTIONS: readonly OptionSpec[] = [
  { name: 'method', choices: DISTILL_METHODS, help: 'how the student learns (see above)' },
  { name: 'teacher', value: 'FILE', help: 'a checkpoint of kiln train (its EMA weights), or a progressive student to halve further' },
  { name: 'guidance', value: 'W', help: "the teacher's guidance scale the student learns, (1 + w)·cond − w·uncond (with --guidance-range: the scale it samples at by default)" },
  { name: 'guidance-range', value: 'LO,HI', help: 'progressive, consistency, guidance: the student takes the guidance scale as an input, learned at every w in [LO, HI] (kiln sample --guidance picks it)' },
  { name: 'steps-student', value: 'N', help: "the student's sampling steps (progressive: the teacher's steps divided by a power of two)" },
  { name: 'teacher-steps', value: 'N', help: 'progressive: Euler steps of the first teacher; reflow: flow Heun steps of the couples' },
  { name: 'grid', value: 'N', help: 'consistency: points of the time grid the teacher steps between (one Heun step each)' },
  { name: 'couples', value: 'N', help: 'reflow: (noise, teacher sample) couples drawn before training' },
  { name: 'steps', value: 'N', help: 'training steps (progressive: of each round)' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'AdamW learning rate after the warmup (cosine decay to the last step)' },
  { name: 'warmup', value: 'N', help: 'linear learning-rate warmup steps' },
  { name: 'ema', value: 'X', help: 'consistency: EMA decay of the target network (0: the student itself, without gradient)' },
  { name: 'seed', value: 'N', help: 'seed of the batches and the noise' },
  { name: 'sample-every', value: 'N', help: 'write a sample grid every N steps (0: only at the end of each round and of the run)' },
  { name: 'grid-per-class', value: 'N', help: 'samples of each digit in a grid' },
  ...outputOptions('checkpoint.safetensors (the student), loss.csv and the sample grids', 'the checkpoint'),
];

/** The defaults of `kiln distill`'s options (by option name) for `method`; sized to fit 25 minutes on lavapipe on a quiet 2-core machine. */
export function distillDefaults(method: DistillMethod) {
  const common = { method, teacher: DEFAULT_CHECKPOINT, guidance: k.diffusion.defaultSampling('flow').guidance, batch: 32, warmup: 20, seed: 0, out: `out/distill-${method}`, 'save-every': 100, 'sample-every': 0, 'grid-per-class': 10 };
  switch (method) {
    case 'progressive': return { ...common, 'steps-student': 1, 'teacher-steps': 8, steps: 300, lr: 3e-4 } satisfies Defaults;
    case 'consistency': return { ...common, 'steps-student': 1, grid: 10, steps: 700, lr: 2e-4, ema: 0.95 } satisfies Defaults;
    case 'reflow': return { ...common, 'steps-student': 1, 'teacher-steps': 4, couples: 5000, steps: 2000, lr: 3e-4 } satisfies Defaults;
    case 'guidance': return { ...common, 'steps-student': 12, 'guidance-range': '0,3', steps: 1000, lr: 3e-4 } satisfies Defaults;
  }
}

/** The text of `kiln distill --help` (a --method beside --help shows that method's defaults alone). */
export function distillHelpText(argv: string[]): string {
  return helpFor('kiln distill', argv, DISTILL_OPTIONS, (a) => {
    // the method and the output folder as one default each; the rest by method unless --method chose one
    const shown = (m: DistillMethod) => ({ ...distillDefaults(m), method: DISTILL_METHODS[0], out: 'out/distill-<method>' });
    const defaults: Defaults | DefaultsCase[] = a.has('method') ? distillDefaults(a.string<DistillMethod>('method', DISTILL_METHODS[0])) : DISTILL_METHODS.map((m) => ({ when: 'with --method', name: m, values: shown(m) }));
    const notes = [
      'The student starts from the teacher\'s weights (the same UNet or DiT) and learns the teacher\'s classifier-free-guided output at',
      '--guidance w, which is built into it: kiln sample and kiln eval sample it with one network evaluation per step, no doubled',
      'batch, at the steps, sampler and times its checkpoint records (no --guidance; the null class 10 is not distilled). With',
      '--guidance-range LO,HI the student takes w as an input instead (an embedding of w joins the time embedding, as in Meng et',
      'al.\'s guidance distillation): each training sample draws w in [LO, HI], and kiln sample --guidance w picks any of them.',
      'progressive (Salimans & Ho): each round trains a student to take in one Euler step what its teacher takes in two; the',
      'rounds halve --teacher-steps down to --steps-student, each student teaching the next, and every round\'s student is kept as',
      'student-<N>step.safetensors. --teacher may be such a student: its rounds continue from its steps and guidance.',
      'consistency (Song et al.): f(x, t) = x − (t − t_min)·F(x, t), consistent along the teacher\'s ODE (Heun steps between grid',
      'points); samples at --steps-student times from t = 1. guidance (Meng et al.\'s first stage): the teacher\'s network taking w',
      'as an input learns its guided output at every w of --guidance-range (default 0,3) and samples as the teacher does (flow Heun,',
      '--steps-student steps) with one evaluation where the teacher took two (no doubled batch); as --teacher of --method progressive or',
      'consistency it teaches their students to take w (the second stage). reflow (Liu et al.): draws --couples teacher samples from seeded',
      'noise once (couples.safetensors), then trains a new flow on straight paths between them; samples with Euler steps.',
    ];
    return helpText({ title: `kiln distill — ${DISTILL_SUMMARY}`, usage: 'Usage: kiln distill --method progressive|consistency|reflow [--teacher FILE] [options]', notes, sections: [{ heading: 'Options:', options: DISTILL_OPTIONS, defaults }] });
  });
}

/** `kiln distill` as the command line lists and runs it. */
export const DISTILL: Command = command({ name: 'distill', summary: DISTILL_SUMMARY, help: async (argv) => distillHelpText(argv), main: (argv) => distillCommand(argv) });

/** The teacher of a run: its network (frozen), how it was built, and, when it is a student itself, how it samples. */
export interface LoadedTeacher {
  net: Denoiser;
  spec: { kind: k.diffusion.DenoiserKind; config: Record<string, unknown> };
  student: StudentSpec | null;
}

/** Loads `--teacher` (EMA weights), or says why it cannot be distilled by `method`. */
export async function loadTeacher(path: string, method: DistillMethod): Promise<LoadedTeacher> {
  if (!existsSync(path)) throw new Error(`--teacher ${path}: no such file (train a teacher with kiln train --out <dir>)`);
  let format: string | null;
  try {
    format = checkpointFormat(path);
  } catch (e) {
    throw new Error(`--teacher ${path}: ${(e as Error).message}`);
  }
  if (format === k.nn.VAE_CHECKPOINT_FORMAT) throw new Error(`--teacher ${path} is a VAE checkpoint (kiln train-vae); kiln distill needs a diffusion checkpoint written by kiln train`);
  const { model, meta, latent, student } = await k.diffusion.loadDenoiser(path).catch((e: Error) => {
    throw new Error(`--teacher ${path}: ${e.message}`);
  });
  if (latent) throw new Error(`--teacher ${path} is a latent diffusion model (kiln train --latent); kiln distill distills pixel-space models only`);
  if (model.config.text) throw new Error(`--teacher ${path} is text-conditioned (kiln train --captions); kiln distill distills models of digit classes (kiln train)`);
  const objective = student?.objective ?? (meta.train as { objective?: string } | undefined)?.objective;
  if (objective !== 'flow') throw new Error(`--teacher ${path} was trained with --objective ${objective}; kiln distill distills rectified-flow models (kiln train --objective flow, the default)`);
  // a progressive student is halved further; a guidance student (a full model that takes w) teaches progressive or consistency students
  const teaches = student && ((method === 'progressive' && student.method === 'progressive') || (student.method === 'guidance' && (method === 'progressive' || method === 'consistency')));
  if (student && !teaches) {
    const hint = student.method === 'progressive' ? ' (a progressive student can only be halved further with --method progressive)' : student.method === 'guidance' ? ' (a guidance student teaches --method progressive or consistency)' : '';
    throw new Error(`--teacher ${path} is a ${student.method} student of kiln distill; --method ${method} needs a checkpoint of kiln train${hint}`);
  }
  return { net: model, spec: meta.model as LoadedTeacher['spec'], student };
}

/** A run's settings that a resumed run must share (beside the method's own). */
type Settings = Record<string, string | number>;

/** What the methods' runs share: options, output files, data, the progress bar and the training loop. */
export class DistillRun {
  readonly ckpt: string;
  readonly lossFile: string;
  /** Global step where this process started (resumed runs start past 0). */
  startGlobal = -1;
  /** The step of the last checkpoint this process wrote (−1: none). */
  saved = -1;
  private bar: Progress | null = null;
  private batchesOf: k.data.StepBatches | null = null;
  constructor(readonly a: Args, readonly method: DistillMethod, readonly d: ReturnType<typeof distillDefaults>, readonly out: string, readonly teacherPath: string, readonly teacher: LoadedTeacher, readonly guidance: number, readonly scales: k.diffusion.ScaleRange | null = null) {
    this.ckpt = join(out, 'checkpoint.safetensors');
    this.lossFile = join(out, 'loss.csv');
  }
  /** An integer option ≥ `min` with the method's default. */
  int(name: string, min = 1): number {
    return this.a.number(name, (this.d as Record<string, unknown>)[name] as number, { min, integer: true });
  }
  /** A number option ≥ 0 (≤ `max`) with the method's default. */
  num(name: string, max = Infinity): number {
    return this.a.number(name, (this.d as Record<string, unknown>)[name] as number, { min: 0, max });
  }
  /** The optimizer settings of the trainers (and the guidance scales of a student that takes w). */
  optim(steps: number): { steps: number; lr: number; warmup: number; clip: number; scales?: k.diffusion.ScaleRange } {
    return { steps, lr: this.num('lr'), warmup: Math.min(this.int('warmup', 0), Math.max(0, steps - 1)), clip: 1, ...(this.scales ? { scales: this.scales } : {}) };
  }
  /** The student's architecture: the teacher's, taking the guidance scale as an input with --guidance-range. */
  get studentSpec(): LoadedTeacher['spec'] {
    const s = this.teacher.spec;
    return this.scales ? { kind: s.kind, config: { ...s.config, guidanceInput: true } } : s;
  }
  /** The student's sampling record without its method's own fields: the guidance (and scales) it learned, and the teacher. */
  get learned(): Pick<StudentSpec, 'guidance' | 'scales' | 'teacher'> {
    return { guidance: this.guidance, ...(this.scales ? { scales: this.scales } : {}), teacher: this.teacherPath };
  }
  /** The MNIST training batch of global step `g` ({x, y}). */
  async batch(g: number): Promise<{ x: k.Tensor; y: k.Tensor }> {
    this.batchesOf ??= new k.data.StepBatches(await k.data.loadMnist('train'), this.int('batch'), this.int('seed', 0));
    return this.batchesOf.at(g);
  }
  /** The MNIST training batch of global step `g` as a trainer's batch: images and labels. */
  async dataBatch(g: number): Promise<[k.Tensor, k.Tensor]> {
    const { x, y } = await this.batch(g);
    return [x, y];
  }
  /** A new network of the student's architecture holding the teacher's weights (a new guidance embedding starts at zero: the teacher's output). */
  async studentNet(): Promise<Denoiser> {
    const spec = this.studentSpec;
    const net = k.diffusion.buildDenoiser(spec.kind, spec.config);
    const { missing, unexpected } = net.loadStateDict(this.teacher.net.stateDict(), { strict: false });
    if (unexpected.length || missing.some((m) => !m.startsWith('guidance_embed.'))) throw new Error(`kiln distill: the student does not fit the teacher's weights (missing ${missing.join(', ') || 'none'}; unexpected ${unexpected.join(', ') || 'none'})`);
    await k.realize(...net.parameters());
    return net;
  }
  /** The settings a resumed run must share, with the method's own. */
  settings(own: Settings): Settings {
    return { method: this.method, teacher: this.teacherPath, guidance: this.guidance, ...(this.scales ? { scales: `${this.scales.wMin},${this.scales.wMax}` } : {}), batch: this.int('batch'), lr: this.num('lr'), warmup: this.int('warmup', 0), seed: this.int('seed', 0), ...own };
  }
  /** The metadata of --out's checkpoint for --resume, checked against this run's settings. */
  resumeMeta(settings: Settings): Record<string, unknown> {
    if (!existsSync(this.ckpt)) throw new Error(`--resume: ${this.ckpt} does not exist (run kiln distill with this --out first)`);
    const meta = parseCheckpointMeta(this.ckpt, readHeaderSync(fs, this.ckpt).metadata);
    const had = (meta.distill as { settings?: Settings } | undefined)?.settings;
    if (JSON.stringify(had) !== JSON.stringify(settings)) throw new Error(`--resume: ${this.ckpt} was written by kiln distill with ${JSON.stringify(had ?? null)}, not ${JSON.stringify(settings)} (pass the same options, or another --out)`);
    return meta;
  }
  /** Writes a grid of the student (rows = digits) sampled as `spec` says; returns the file and the seconds it took. */
  async grid(net: Denoiser, spec: StudentSpec, name: string): Promise<{ file: string; seconds: number }> {
    const t = performance.now();
    const perClass = this.int('grid-per-class');
    const labels = DIGITS.flatMap((l) => Array<number>(perClass).fill(l));
    const x = await k.diffusion.generateImages(net, null, { objective: spec.objective, labels, seed: 1234, ...studentSampling(spec) });
    const file = join(this.out, name);
    await writeGrid(file, x, perClass);
    x.dispose();
    return { file, seconds: (performance.now() - t) / 1000 };
  }
  /**
   * A one-stage method's run (consistency, guidance): --resume from --out's checkpoint, `what` printed, the
   * training loop over MNIST batches with checkpoints of the student and its sampling `spec`, the last grid.
   */
  async oneStage(trainer: DistillTrainer<[k.Tensor, k.Tensor]>, student: Denoiser, spec: StudentSpec, settings: Settings, what: string): Promise<RunResult> {
    const steps = (trainer.config as { steps: number }).steps;
    if (this.a.flag('resume')) {
      this.resumeMeta(settings);
      await trainer.load(this.ckpt);
      console.log(`resumed ${this.ckpt} at step ${trainer.step} of ${steps}`);
    }
    console.log(what);
    await this.train(trainer, {
      steps, offset: 0, total: steps, label: '',
      batch: (g) => this.dataBatch(g),
      save: async () => void (await trainer.save(this.ckpt, { model: this.studentSpec, student: spec, distill: { settings } })),
      grid: (name) => this.grid(student, spec, name),
      writeLoss: () => this.writeLoss([{ losses: trainer.losses }]),
    });
    return { spec, grid: await this.grid(student, spec, 'samples.png'), summary: lossSummary(trainer.losses) };
  }
  /** Writes loss.csv: a row per step of all rounds (global step; progressive runs also give the round's student steps). */
  writeLoss(rounds: { studentSteps?: number; losses: number[] }[]): void {
    const withSteps = this.method === 'progressive';
    const rows: string[] = [];
    for (const r of rounds) for (const l of r.losses) rows.push(withSteps ? `${rows.length + 1},${r.studentSteps},${l}` : `${rows.length + 1},${l}`);
    writeFileSync(this.lossFile, `${withSteps ? 'step,student_steps,loss' : 'step,loss'}\n${rows.join('\n')}\n`);
  }
  /**
   * Trains `trainer` to `steps` steps (global step = `offset` + its step, out of `total`): a batch per step
   * from `batch`, the progress bar, a checkpoint by `save` every --save-every steps and at the end, a grid by
   * `grid` every --sample-every global steps, and the losses by `writeLoss` with each checkpoint.
   */
  async train<B extends k.Tensor[]>(trainer: DistillTrainer<B>, o: { steps: number; offset: number; total: number; label: string; batch: (g: number) => Promise<B>; save: () => Promise<void>; grid: (name: string) => Promise<unknown>; writeLoss: () => void }): Promise<void> {
    if (this.startGlobal < 0) this.startGlobal = o.offset + trainer.step;
    this.bar ??= new Progress(o.total - this.startGlobal, 'distill ');
    const saveEvery = this.int('save-every'), sampleEvery = this.int('sample-every', 0);
    try {
      while (trainer.step < o.steps) {
        const batch = await o.batch(o.offset + trainer.step);
        try {
          await trainer.trainStep(...batch);
        } finally {
          batch.forEach((t) => t.dispose());
        }
        const s = trainer.step, g = o.offset + s;
        const recent = trainer.losses.slice(-50);
        this.bar.update(g - this.startGlobal, { step: g, ...(o.label ? { student: o.label } : {}), loss: recent.length ? recent.reduce((p, q) => p + q, 0) / recent.length : undefined, lr: trainer.opt.lr });
        if (s % saveEvery === 0 || s === o.steps) {
          await o.save();
          this.saved = g;
          o.writeLoss();
        }
        if (sampleEvery && g % sampleEvery === 0 && s !== o.steps) {
          await trainer.flush();
          await o.grid(`samples-${String(g).padStart(6, '0')}.png`);
        }
      }
      await trainer.flush();
    } catch (e) {
      if (!(e instanceof k.train.NonFiniteLossError)) throw e;
      o.writeLoss();
      throw diverged(e, this.ckpt, this.saved, this.lossFile);
    }
  }
}

/** `kiln distill`. */
export async function distillCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln distill', argv, DISTILL_OPTIONS);
  const method = a.string<DistillMethod>('method', DISTILL_METHODS[0]);
  const d = distillDefaults(method);
  const teacherPath = a.string('teacher', d.teacher);
  const guidance = a.number('guidance', d.guidance);
  // every option is checked before the teacher loads
  for (const name of ['steps-student', 'steps', 'batch', 'save-every', 'grid-per-class', 'teacher-steps', 'couples']) if (a.has(name)) a.number(name, 1, { min: 1, integer: true });
  for (const name of ['warmup', 'seed', 'sample-every']) if (a.has(name)) a.number(name, 0, { min: 0, integer: true });
  if (a.has('lr')) a.number('lr', 1, { above: 0 });
  if (a.has('grid')) a.number('grid', 2, { min: 2, integer: true });
  if (a.has('ema')) a.number('ema', 0, { min: 0, max: 0.9999 });
  const notFor = (name: string, methods: DistillMethod[]) => {
    if (a.has(name) && !methods.includes(method)) throw new Error(`--${name} applies to --method ${methods.join(' or ')}, not --method ${method}`);
  };
  notFor('teacher-steps', ['progressive', 'reflow']);
  notFor('grid', ['consistency']);
  notFor('ema', ['consistency']);
  notFor('couples', ['reflow']);
  const scales = guidanceRange(a, method);
  if (scales && !(guidance >= scales.wMin && guidance <= scales.wMax)) throw new Error(`--guidance ${guidance}: with --guidance-range ${scales.wMin},${scales.wMax} the default scale must lie in the range`);
  const out = outputDir(a.string('out', d.out));
  const info = await k.init();
  const teacher = await loadTeacher(teacherPath, method);
  if (teacher.student && a.has('guidance') && guidance !== teacher.student.guidance) {
    throw new Error(`--guidance ${guidance}: --teacher ${teacherPath} is a progressive student with guidance ${teacher.student.guidance} built in; its students keep it (omit --guidance)`);
  }
  if (teacher.student && a.has('guidance-range') && JSON.stringify(scales) !== JSON.stringify(teacher.student.scales ?? null)) {
    throw new Error(`--guidance-range: --teacher ${teacherPath} is a progressive student ${teacher.student.scales ? `that learned the scales ${teacher.student.scales.wMin},${teacher.student.scales.wMax}` : 'with its guidance built in'}; its students keep them (omit --guidance-range)`);
  }
  const run = new DistillRun(a, method, d, out, teacherPath, teacher, teacher.student?.guidance ?? guidance, teacher.student ? teacher.student.scales ?? null : scales);
  // --seed fixes the training noise and times (a resumed run restores the generator from its checkpoint)
  k.manualSeed(run.int('seed', 0));
  const nParams = teacher.net.parameters().reduce((s, p) => s + p.size, 0);
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); teacher ${teacherPath}: ${teacher.spec.kind}, ${(nParams / 1e3).toFixed(0)}k parameters${teacher.student ? `, a ${teacher.student.steps}-step ${teacher.student.method} student` : ''}; ${run.scales ? `guidance scales ${run.scales.wMin} to ${run.scales.wMax} as the student's input (default ${run.guidance})` : `guidance ${run.guidance} built into the student`}`);
  const t0 = performance.now();
  const r = method === 'progressive' ? await progressive(run) : method === 'consistency' ? await consistency(run) : method === 'guidance' ? await guidanceStudent(run) : await reflowStudent(run);
  console.log(`distilled in ${fmtTime((performance.now() - t0) / 1000)}${r.summary ? `; ${r.summary}` : ''}`);
  console.log(`wrote ${run.ckpt}, ${run.lossFile} and ${r.grid.file} (rows = digits 0–9; ${describeStudent(r.spec, studentSampling(r.spec))}; ${r.grid.seconds.toFixed(0)} s)`);
}

/** What a method's run returns: the student's sampling, the last grid and a line about the losses. */
export interface RunResult {
  spec: StudentSpec;
  grid: { file: string; seconds: number };
  summary: string;
}

/** Mean of the first and of the last 50 losses, as `loss a (first 50) → b (last 50)`. */
export function lossSummary(losses: number[]): string {
  const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / Math.max(1, v.length);
  return `loss ${mean(losses.slice(0, 50)).toFixed(4)} (first 50) → ${mean(losses.slice(-50)).toFixed(4)} (last 50)`;
}

/**
 * The teacher as the first round's or the consistency teacher: its guided output at the run's scale (a
 * student: as it is), and with --guidance-range at per-sample scales (a student that takes w: at them).
 */
function teacherModel(run: DistillRun): { model: k.diffusion.BatchModel; atScales?: k.diffusion.ScaledTeacher } {
  const net = run.teacher.net, student = run.teacher.student;
  // a student that takes w, used without drawn scales, is at its default scale
  const model: k.diffusion.BatchModel = student?.scales ? (x, p, l) => k.scope(() => k.diffusion.netModel(k.diffusion.atScales(net as k.diffusion.GuidedNet, k.full([x.shape[0]!], run.guidance)))(x, p, l))
    : student ? k.diffusion.netModel(net) : k.diffusion.guidedTeacher(net, run.guidance, net.config.numClasses);
  if (!run.scales) return { model };
  return { model, atScales: k.diffusion.scaledTeacher(net, student ? { takesScale: true } : { takesScale: false, nullLabel: net.config.numClasses }) };
}

/** --guidance-range LO,HI: the scales a student that takes w learns (null without the option). */
function guidanceRange(a: Args, method: DistillMethod): k.diffusion.ScaleRange | null {
  if (!a.has('guidance-range') && method !== 'guidance') return null;
  const text = a.string('guidance-range', '0,3');
  const v = text.split(',').map((p) => (p.trim() === '' ? NaN : Number(p)));
  if (v.length !== 2 || !v.every(Number.isFinite) || v[0]! > v[1]! || v[0]! < 0) throw new Error(`--guidance-range ${text}: expected two scales LO,HI with 0 ≤ LO ≤ HI, e.g. 0,3`);
  if (method === 'reflow') throw new Error('--guidance-range applies to --method progressive, consistency or guidance, not --method reflow (its couples are drawn at one scale)');
  return { wMin: v[0]!, wMax: v[1]! };
}

/** Progressive distillation: rounds from the teacher's steps down to --steps-student. */
async function progressive(run: DistillRun): Promise<RunResult> {
  const halving = run.teacher.student?.method === 'progressive' ? run.teacher.student : null;
  const first = halving?.steps ?? run.int('teacher-steps');
  if (halving && run.a.has('teacher-steps') && run.int('teacher-steps') !== first) throw new Error(`--teacher-steps ${run.int('teacher-steps')}: --teacher ${run.teacherPath} is a ${first}-step student, so the first teacher takes ${first} steps (omit --teacher-steps)`);
  const last = run.int('steps-student');
  const halvings: number[] = [];
  for (let n = first / 2; Number.isInteger(n) && n >= 1; n /= 2) halvings.push(n);
  if (!halvings.includes(last)) {
    const ok = halvings.length ? halvings.join(', ') : 'none: it cannot be halved';
    throw new Error(`--steps-student ${last}: progressive distillation halves the teacher's ${first} steps each round, so the student's steps must be ${first} divided by a power of two (${ok})`);
  }
  const rounds = halvings.filter((n) => n >= last);
  const perRound = run.int('steps');
  const settings = run.settings({ teacherSteps: first, studentSteps: last, steps: perRound });
  const rf = new k.diffusion.RectifiedFlow();
  const specOf = (n: number): StudentSpec => ({ method: 'progressive', objective: 'flow', steps: n, sampler: 'flow_euler', ...run.learned });
  const roundFile = (n: number) => join(run.out, `student-${n}step.safetensors`);
  // later rounds' teacher: the previous round's student (the student's architecture)
  let teacherNet = run.teacher.net;
  const student = await run.studentNet();
  let teacher = teacherModel(run);
  let r = 0;
  let previous: { studentSteps: number; losses: number[] }[] = [];
  const newTrainer = (i: number) => new ProgressiveTrainer(student, { ...teacher, prediction: 'flow', process: rf }, { ...run.optim(perRound), studentSteps: rounds[i]!, prediction: 'flow' });
  const becomeTeacher = async (weights: Record<string, k.Tensor>) => {
    if (run.scales && !teacherNet.config.guidanceInput) teacherNet = await run.studentNet();
    teacherNet.loadStateDict(weights);
    await k.realize(...teacherNet.parameters());
    teacher = { model: k.diffusion.netModel(teacherNet), ...(run.scales ? { atScales: k.diffusion.scaledTeacher(teacherNet, { takesScale: true }) } : {}) };
  };
  let trainer: ProgressiveTrainer;
  if (run.a.flag('resume')) {
    const meta = run.resumeMeta(settings);
    const dm = meta.distill as { round: number; previous: typeof previous };
    [r, previous] = [dm.round, dm.previous];
    if (r > 0) {
      const { model } = await k.diffusion.loadDenoiser(roundFile(rounds[r - 1]!));
      await becomeTeacher(model.stateDict());
      model.parameters().forEach((p) => p.dispose());
    }
    trainer = newTrainer(r);
    await trainer.load(run.ckpt);
    console.log(`resumed ${run.ckpt} at round ${r + 1} of ${rounds.length} (${2 * rounds[r]!} → ${rounds[r]} steps), step ${trainer.step} of ${perRound}`);
  } else trainer = newTrainer(0);
  console.log(`progressive distillation: ${first} → ${rounds.join(' → ')} steps, ${perRound} steps of batch ${run.int('batch')} per round`);
  let grid = { file: '', seconds: 0 };
  for (;;) {
    const n = rounds[r]!;
    const extra = () => ({ model: run.studentSpec, student: specOf(n), distill: { settings, round: r, previous } });
    const all = () => [...previous, { studentSteps: n, losses: trainer.losses }];
    await run.train(trainer, {
      steps: perRound, offset: r * perRound, total: rounds.length * perRound, label: `${2 * n}→${n}`,
      batch: (g) => run.dataBatch(g),
      save: async () => void (await trainer.save(run.ckpt, extra())),
      grid: (name) => run.grid(student, specOf(n), name),
      writeLoss: () => run.writeLoss(all()),
    });
    await trainer.save(roundFile(n), extra());
    grid = await run.grid(student, specOf(n), r === rounds.length - 1 ? 'samples.png' : `samples-${n}step.png`);
    if (r === rounds.length - 1) break;
    previous = [...previous, { studentSteps: n, losses: trainer.losses.slice() }];
    Object.values(trainer.opt.stateDict().tensors).forEach((t) => t.dispose());
    await becomeTeacher(student.stateDict());
    r++;
    trainer = newTrainer(r);
  }
  return { spec: specOf(last), grid, summary: `last round ${lossSummary(trainer.losses)}; each round's student is student-<N>step.safetensors` };
}

/** Consistency distillation: a consistency model along the guided teacher's ODE (Heun steps between grid points). */
async function consistency(run: DistillRun): Promise<RunResult> {
  const steps = run.int('steps'), n = run.int('steps-student'), gridSize = run.int('grid', 2), ema = run.num('ema', 0.9999);
  const settings = run.settings({ studentSteps: n, steps, grid: gridSize, ema });
  const rf = new k.diffusion.RectifiedFlow();
  const student = await run.studentNet();
  const target = ema > 0 ? await run.studentNet() : undefined;
  const trainer = new ConsistencyTrainer(student, { process: rf, teacher: { ...teacherModel(run), prediction: 'flow' }, target }, { ...run.optim(steps), tMin: CONSISTENCY_T_MIN, tMax: 1, gridSize, form: 'velocity', emaDecay: ema, solver: 'heun' });
  const spec: StudentSpec = { method: 'consistency', objective: 'flow', steps: n, times: consistencyTimes(n), boundary: trainer.boundary, ...run.learned };
  return run.oneStage(trainer, student, spec, settings, `consistency distillation: ${steps} steps of batch ${run.int('batch')}, grid of ${gridSize} times, target EMA ${ema}; the student samples in ${n} step${n > 1 ? 's' : ''}`);
}

/**
 * Guidance distillation (Meng et al.'s first stage): the teacher's network, taking the guidance scale as an
 * input, learns the teacher's guided output at every w of --guidance-range at random times; it samples as
 * the teacher does (flow Heun, --steps-student steps) without the doubled batch, and teaches
 * progressive or consistency students that take w (the second stage).
 */
async function guidanceStudent(run: DistillRun): Promise<RunResult> {
  const steps = run.int('steps'), n = run.int('steps-student');
  const settings = run.settings({ studentSteps: n, steps });
  const { scales, ...optim } = run.optim(steps);
  const net = run.teacher.net, student = await run.studentNet();
  const teacher = { model: k.diffusion.netModel(net), prediction: 'flow' as const, process: new k.diffusion.RectifiedFlow(), nullLabel: net.config.numClasses };
  const trainer = new GuidanceTrainer(student as unknown as k.diffusion.GuidedNet, teacher, { ...optim, ...scales!, prediction: 'flow' });
  const spec: StudentSpec = { method: 'guidance', objective: 'flow', steps: n, sampler: 'flow_heun', ...run.learned };
  return run.oneStage(trainer, student, spec, settings, `guidance distillation: ${steps} steps of batch ${run.int('batch')}, scales ${scales!.wMin} to ${scales!.wMax}; the student samples with flow_heun ${n} steps without the doubled batch`);
}
