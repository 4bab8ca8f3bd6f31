/**
 * `kiln train`, `kiln sample` and `kiln eval`: class-conditional diffusion on MNIST end to end — train a
 * UNet or DiT with checkpoints and resume, write sample grids (rows = digits 0–9) and the loss curve,
 * and score samples with the LeNet classifier (conditional accuracy, classifier-FID beside its
 * real-train vs real-test floor, Inception-style score). With `--latent <VAE checkpoint>` the model is
 * trained on the frozen VAE's latents (normalized to unit variance) and every sample is decoded.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as k from '../index.js';
import { DiffusionTrainer, TRAIN_DEFAULTS, type TrainConfig } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { DATA_LIMIT_OPTION, DEFAULT_CHECKPOINT, diverged, JSON_OPTION, LENET_CAPTIONS_PATH, LENET_PATH, loadMetricsNet, MNIST_TRAIN_IMAGES, outputDir, outputFile, outputOptions, PRECISION_OPTION, realFeatures, scalerSummary, writeGrid } from './common.js';
import { command, helpFor, helpText, type Command, type Defaults, type DefaultsCase, type HelpSection } from './help.js';
import { fmtTime, Progress } from './progress.js';
import { checkSampler, defaultSamplers, OBJECTIVES, SAMPLER_NAMES, samplerLines } from './samplers.js';
import { describeStudent, type StudentSampling } from '../diffusion/distill/sampling.js';
import { studentOptions } from './student.js';
import { parseCheckpointMeta } from '../nn/checkpoint.js';
import { CAPTIONS_OPTION, captionPreset, CaptionedSteps, captionTokenizer, EVAL_PROMPT_OPTIONS, evalPromptDefaults, evalPrompts, GRID_PROMPTS, parsePrompts, textModelConfig } from './captions.js';

type Denoiser = k.diffusion.Denoiser;
type Objective = k.diffusion.Objective;

/** The digits of a grid, one row each. */
export const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
/** Runs of at least `steps` steps average their weights over longer (EMA decay `decay` instead of TRAIN_DEFAULTS.emaDecay). */
const LONG_RUN = { steps: 5000, decay: 0.9995 };

/** The names of the presets. */
export const PRESET_NAMES = ['cpu', 'gpu'] as const;
/** A preset's name. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** A model and training size chosen for an adapter class. */
export interface Preset {
  model: 'unet' | 'dit';
  unet: Partial<k.nn.UNetConfig>;
  dit: Partial<k.nn.DiTConfig>;
  steps: number;
  batch: number;
  lr: number;
}

/**
 * `cpu`: sized so the whole README command (training and the final grid) stays within 20 minutes on a
 * 2-core machine with the lavapipe software adapter (1,800 steps: about 16 minutes from a cold shader cache
 * there); `gpu`: a wider, deeper model trained longer.
 */
export const PRESETS: Record<PresetName, Preset> = {
  cpu: { model: 'unet', unet: { widths: [16, 32], attention: [], midAttention: false, heads: 2, depth: 1, patch: 2 }, dit: { dim: 64, depth: 3 }, steps: 1800, batch: 32, lr: 3e-3 },
  gpu: { model: 'unet', unet: { widths: [64, 128, 128], attention: [2], heads: 4, depth: 2, patch: 1 }, dit: { dim: 256, depth: 8, patch: 2 }, steps: 20000, batch: 128, lr: 2e-4 },
};

/**
 * Models for latents (`--latent`): one resolution level (a 7×7 latent cannot be halved), channels and
 * size taken from the VAE. `cpu` is sized like the pixel preset's step time on lavapipe.
 */
export const LATENT_PRESETS: Record<PresetName, Preset> = {
  cpu: { model: 'unet', unet: { widths: [64], attention: [], midAttention: false, heads: 4, depth: 1, patch: 1 }, dit: { dim: 64, depth: 4, patch: 1 }, steps: 600, batch: 32, lr: 3e-3 },
  gpu: { model: 'unet', unet: { widths: [192], attention: [0], midAttention: true, heads: 4, depth: 2, patch: 1 }, dit: { dim: 256, depth: 8, patch: 1 }, steps: 20000, batch: 128, lr: 2e-4 },
};

/** The pixel presets of `kiln train --captions` (`TEXT_PRESETS` may give them their own steps). */
const CAPTION_PRESETS: Record<PresetName, Preset> = { cpu: captionPreset(PRESETS.cpu, 'cpu'), gpu: captionPreset(PRESETS.gpu, 'gpu') };

/** The preset table of a `kiln train` run (and of its help): latent, captioned pixels, or pixels. */
function trainPresets(a: Args): Record<PresetName, Preset> {
  return a.has('latent') ? LATENT_PRESETS : a.flag('captions') ? CAPTION_PRESETS : PRESETS;
}

/** The keys (dotted paths) where two JSON values differ, each with both values: 'text.wordScale (stored 8, now 16)'. */
function differences(stored: unknown, now: unknown, path = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(stored) && isObject(now)) {
    return [...new Set([...Object.keys(stored), ...Object.keys(now)])].flatMap((key) => differences(stored[key], now[key], path ? `${path}.${key}` : key));
  }
  const show = (v: unknown) => (v === undefined ? 'none' : JSON.stringify(v));
  return JSON.stringify(stored) === JSON.stringify(now) ? [] : [`${path || 'the model'} (stored ${show(stored)}, now ${show(now)})`];
}

/** `path` if a checkpoint file is there, else an error that says how to make one. */
function existingCheckpoint(path: string): string {
  if (!existsSync(path)) throw new Error(`checkpoint ${path} does not exist (train one with kiln train --out <dir>)`);
  return path;
}

/** Loads a checkpoint's model (EMA weights unless `ema` is false) with its metadata, latent codec and student sampling, or names what is missing. */
async function loadCheckpoint(path: string, ema = true): ReturnType<typeof k.diffusion.loadDenoiser> {
  return k.diffusion.loadDenoiser(existingCheckpoint(path), { ema });
}

/** The rows of a grid: digits, or prompts of a text-conditioned model with its tokenizer. */
type GridRows = { labels: number[] } | { prompts: string[]; tokenizer: k.data.WordTokenizer };

/** Options of sampling a grid: a sampler, steps and guidance, or a consistency student's times. */
type GridOptions = StudentSampling & GridRows & {
  objective: Objective;
  seed: number;
  perClass: number;
};

/** Samples `perClass` images of each row's label or prompt, row by row. */
async function sampleGrid(model: Denoiser, latent: k.nn.LatentCodec | null, o: GridOptions): Promise<k.Tensor> {
  const how = o.consistency ? { consistency: o.consistency } : { sampler: o.sampler, steps: o.steps, guidance: o.guidance };
  const repeat = <T>(rows: T[]) => rows.flatMap((r) => Array<T>(o.perClass).fill(r));
  const condition = 'prompts' in o ? { tokens: o.tokenizer.encodePrompts('kiln sample', repeat(o.prompts)) } : { labels: repeat(o.labels) };
  return k.diffusion.generateImages(model, latent, { objective: o.objective, seed: o.seed, ...condition, ...how });
}

/** How a grid's rows read: 'rows = digits 0–9' or the prompts. */
function describeRows(rows: GridRows): string {
  return 'prompts' in rows ? `rows = ${rows.prompts.map((p) => JSON.stringify(p)).join(', ')}` : `rows = digits ${rows.labels.join(',') === DIGITS.join(',') ? '0–9' : rows.labels.join(', ')}`;
}

/** What `kiln train` does, in one line. */
const TRAIN_SUMMARY = 'train a class-conditional (or, with --captions, text-conditioned) diffusion model on MNIST';

/** The options of `kiln train`: the parser accepts these, and its help lists them. */
export const TRAIN_OPTIONS: readonly OptionSpec[] = [
  { name: 'preset', choices: PRESET_NAMES, help: 'model and run size: cpu on a software adapter, gpu on a GPU' },
  { name: 'model', choices: ['unet', 'dit'], help: 'backbone: k.nn.UNet or k.nn.DiT, sized by the preset' },
  { name: 'objective', choices: OBJECTIVES, help: 'rectified flow (logit-normal t), DDPM ε-prediction or v-prediction' },
  { name: 'time-mean', value: 'M', help: 'rectified flow: mean m of the training times t = σ(m + z), z ~ N(0, 1) (larger: nearer the noise, t = 1)' },
  { name: 'steps', value: 'N', help: 'training steps' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'AdamW learning rate after the warmup (cosine decay to the last step)' },
  { name: 'warmup', value: 'N', help: `linear learning-rate warmup steps: min(${TRAIN_DEFAULTS.warmup}, steps / 10)` },
  { name: 'weight-decay', value: 'X', help: 'AdamW weight decay' },
  { name: 'clip', value: 'X', help: 'largest global gradient norm (0: no clipping)' },
  { name: 'ema', value: 'X', help: `EMA decay of the weights that grids use: ${TRAIN_DEFAULTS.emaDecay}, ${LONG_RUN.decay} from ${LONG_RUN.steps} steps` },
  { name: 'label-dropout', value: 'P', help: 'share of labels replaced by the null class (for classifier-free guidance)' },
  { name: 'seed', value: 'N', help: 'seed of the initial weights, the batches and the noise' },
  { name: 'sample-every', value: 'N', help: 'write a sample grid every N steps (0: only at the end)' },
  { name: 'sampler', value: 'NAME', choices: SAMPLER_NAMES, help: 'sampler of the grids, one that fits --objective (see below)' },
  { name: 'sample-steps', value: 'N', help: 'sampler steps of the grids' },
  { name: 'guidance', value: 'W', help: 'guidance scale w of the grids: (1 + w)·cond − w·uncond' },
  { name: 'grid-per-class', value: 'N', help: 'samples of each digit in a grid' },
  CAPTIONS_OPTION,
  { name: 'latent', value: 'FILE', help: 'train on the latents of this VAE checkpoint (kiln train-vae); samples are decoded' },
  { name: 'scale-images', value: 'N', help: 'images whose latents set the latent normalization (with --latent)' },
  DATA_LIMIT_OPTION,
  { name: 'grad-checkpoint', help: 'recompute each block\'s activations in the backward pass instead of keeping them: less memory, slower steps' },
  PRECISION_OPTION,
  ...outputOptions('checkpoint.safetensors, loss.csv and the sample grids', 'the checkpoint'),
];

/**
 * The defaults of `kiln train`'s options (by option name) under `preset`; the warmup and the EMA decay
 * follow the run's length `steps`, the grids' sampling the `objective` (with `captions`, a text checkpoint's).
 */
export function trainDefaults(preset: Preset, steps = preset.steps, objective: Objective = TRAIN_DEFAULTS.objective, captions = false) {
  const grid = k.diffusion.defaultSampling(objective, captions);
  return {
    model: preset.model,
    objective: TRAIN_DEFAULTS.objective,
    'time-mean': 0,
    steps: preset.steps,
    batch: preset.batch,
    lr: preset.lr,
    warmup: Math.min(TRAIN_DEFAULTS.warmup, Math.floor(steps / 10)),
    'weight-decay': TRAIN_DEFAULTS.weightDecay,
    clip: TRAIN_DEFAULTS.clip,
    ema: steps < LONG_RUN.steps ? TRAIN_DEFAULTS.emaDecay : LONG_RUN.decay,
    'label-dropout': TRAIN_DEFAULTS.labelDropout,
    seed: TRAIN_DEFAULTS.seed,
    out: captions ? 'out/mnist-text' : 'out/mnist',
    'save-every': 250,
    'sample-every': 500,
    sampler: grid.sampler,
    'sample-steps': grid.steps,
    guidance: grid.guidance,
    'grid-per-class': 10,
    'scale-images': 2000,
    'data-limit': MNIST_TRAIN_IMAGES,
    precision: 'f32' as 'f32' | 'f16',
  } satisfies Defaults;
}

/** The preset `kiln train` picks on an adapter: cpu on a software one (lavapipe, SwiftShader, a fallback adapter), gpu on a GPU. */
export function presetFor(info: k.DeviceInfo): PresetName {
  return info.driver === 'hardware' ? 'gpu' : 'cpu';
}

/** The adapter's driver and the preset it picks, or null when there is no WebGPU adapter. */
async function adapterPreset(): Promise<{ preset: PresetName; driver: string } | null> {
  try {
    const info = await k.init();
    return { preset: presetFor(info), driver: info.driver };
  } catch {
    return null;
  }
}

/**
 * The text of `kiln train --help` when the adapter picks `picked.preset` (null: no adapter, so both
 * presets' defaults are shown side by side). A --preset, --latent, --captions, --steps or --objective in
 * `argv` changes the defaults shown as it changes those of the run.
 */
export function trainHelpText(argv: string[], picked: { preset: PresetName; driver: string } | null): string {
  return helpFor('kiln train', argv, TRAIN_OPTIONS, (a) => {
    const latent = a.has('latent');
    const presets = trainPresets(a);
    const chosen = a.has('preset') ? a.string<PresetName>('preset', 'cpu') : picked?.preset ?? null;
    const objective = a.string<Objective>('objective', TRAIN_DEFAULTS.objective);
    const of = (name: PresetName) => trainDefaults(presets[name], a.number('steps', presets[name].steps, { min: 1, integer: true }), objective, a.flag('captions'));
    const which = latent ? 'latent preset' : 'preset';
    const other = chosen === 'cpu' ? 'gpu' : 'cpu';
    const notes = chosen
      ? [`The defaults are those of the ${chosen} ${which}${a.has('preset') ? '' : `, which this adapter (${picked!.driver}) picks`}; kiln train${latent ? ' --latent FILE' : ''} --preset ${other} --help shows the ${other} ${which}'s.`]
      : [`No WebGPU adapter to pick a preset with: the defaults of both ${which}s are shown.`];
    if (!latent) notes.push('With --latent FILE the latent presets apply: kiln train --latent FILE --help shows their defaults.');
    const defaults: Defaults | DefaultsCase[] = chosen ? { preset: chosen, ...of(chosen) } : PRESET_NAMES.map((name) => ({ when: 'with --preset', name, values: of(name) }));
    return helpText({ title: `kiln train — ${TRAIN_SUMMARY}`, usage: 'Usage: kiln train [options]', notes, sections: [{ heading: 'Options:', options: TRAIN_OPTIONS, defaults }], after: samplerLines() });
  });
}

/** `kiln train` as the command line lists and runs it. */
export const TRAIN: Command = command({
  name: 'train',
  summary: TRAIN_SUMMARY,
  help: async (argv) => trainHelpText(argv, Args.peek(argv, 'preset') ? null : await adapterPreset()),
  main: (argv) => trainCommand(argv),
});

/** `kiln train`. */
export async function trainCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln train', argv, TRAIN_OPTIONS);
  const vaePath = a.has('latent') ? a.string('latent', '') : null;
  if (vaePath !== null && !existsSync(vaePath)) throw new Error(`--latent: VAE checkpoint ${vaePath} does not exist (train one with kiln train-vae --out <dir>)`);
  const info = await k.init();
  const presetName = a.string<PresetName>('preset', presetFor(info));
  const preset = trainPresets(a)[presetName];
  const base = trainDefaults(preset);
  const steps = a.number('steps', base.steps, { min: 1, integer: true });
  const objective = a.string<Objective>('objective', base.objective);
  const d = trainDefaults(preset, steps, objective, a.flag('captions'));
  const dataLimit = a.number('data-limit', d['data-limit'], { min: 1, integer: true });
  const scaleImages = a.number('scale-images', d['scale-images'], { min: 2, integer: true });
  const kind = a.string<'unet' | 'dit'>('model', d.model);
  const train: TrainConfig = {
    objective,
    steps,
    batchSize: a.number('batch', d.batch, { min: 1, integer: true }),
    lr: a.number('lr', d.lr, { min: 0 }),
    warmup: a.number('warmup', d.warmup, { min: 0, integer: true }),
    weightDecay: a.number('weight-decay', d['weight-decay'], { min: 0 }),
    clip: a.number('clip', d.clip, { min: 0 }),
    emaDecay: a.number('ema', d.ema, { min: 0, max: 1 }),
    labelDropout: a.number('label-dropout', d['label-dropout'], { min: 0, max: 1 }),
    seed: a.number('seed', d.seed, { min: 0, integer: true }),
    precision: a.string<'f32' | 'f16'>('precision', d.precision),
  };
  if (a.has('time-mean') && objective !== 'flow') throw new Error(`--time-mean applies to --objective flow (its logit-normal times), not ${objective}`);
  const timeMean = a.number('time-mean', d['time-mean']);
  if (objective === 'flow' && timeMean !== 0) train.timeMean = timeMean;
  const tokenizer = a.flag('captions') ? captionTokenizer() : null;
  const out = a.string('out', d.out);
  const sampler = checkSampler(a.string<k.diffusion.SamplerName>('sampler', d.sampler), objective, '--objective');
  const grid = { objective, sampler, steps: a.number('sample-steps', d['sample-steps'], { min: 1, integer: true }), guidance: a.number('guidance', d.guidance), seed: 1234, perClass: a.number('grid-per-class', d['grid-per-class'], { min: 1, integer: true }), ...(tokenizer ? { prompts: [...GRID_PROMPTS], tokenizer } : { labels: DIGITS }) };
  const saveEvery = a.number('save-every', d['save-every'], { min: 1, integer: true });
  const sampleEvery = a.number('sample-every', d['sample-every'], { min: 0, integer: true });
  outputDir(out);
  const ckpt = join(out, 'checkpoint.safetensors');
  const split = await k.data.loadMnist('train');
  const data = { ...split, count: Math.min(dataLimit, split.count) };
  // a latent model: the frozen VAE's normalization from the posteriors of the first training images
  let codec: k.nn.LatentCodec | null = null;
  let latentMeta: k.diffusion.LatentSpec | null = null;
  if (vaePath) {
    const { vae } = await k.nn.loadVAE(vaePath);
    const t = performance.now();
    const n = Math.min(scaleImages, data.count);
    const bar = new Progress(n, 'latent scale ');
    // the normalization of what the model will see: with --captions, digits drawn as their captions say
    const images = tokenizer ? k.data.captionedSplit({ ...data, count: n }, train.seed) : data;
    codec = await k.diffusion.latentCodec(vae, k.data.batches(images, { batchSize: 250, limit: n }), (done) => bar.update(done));
    const { scale, shift } = codec;
    latentMeta = { vae: vae.config, scale, shift, source: vaePath };
    console.log(`latents ${JSON.stringify(vae.latentShape)} of ${vaePath}: normalization (z − ${shift.toPrecision(4)}) × ${scale.toPrecision(4)} from ${n} images (${fmtTime((performance.now() - t) / 1000)})`);
  }
  const [channels, size] = codec ? [codec.latentShape[0], codec.latentShape[1]] : [1, 28];
  const backbone = kind === 'dit' ? preset.dit : preset.unet;
  const text = tokenizer ? textModelConfig(kind, presetName, tokenizer, (backbone as { widths?: number[] }).widths?.length ?? 1) : {};
  const modelConfig = { ...backbone, channels, size, ...text };
  // --seed fixes the initial weights too, not only what the trainer draws (they used to come from whatever state the generator was in)
  k.manualSeed(train.seed);
  const model = k.diffusion.buildDenoiser(kind, modelConfig as Record<string, unknown>);
  (model as k.nn.UNet | k.nn.DiT).gradientCheckpointing = a.flag('grad-checkpoint');
  const spec = { kind, config: (model as unknown as { config: object }).config };
  k.manualSeed(train.seed);
  const trainer = new DiffusionTrainer(model, train);
  if (a.flag('resume')) {
    // the model and the tokenizer are checked from the header, before weights of another model fail to load
    const meta = parseCheckpointMeta(ckpt, (await k.loadHeader(existingCheckpoint(ckpt))).metadata);
    // a stored config may leave keys at their defaults out (python/train_ddp.py's, or one written before the key existed)
    const stored = meta.model as { kind: string; config: Record<string, unknown> } | undefined;
    const storedSpec = stored && { kind: stored.kind, config: { ...(stored.kind === 'dit' ? k.nn.DIT_DEFAULTS : k.nn.UNET_DEFAULTS), ...stored.config } };
    if (JSON.stringify(storedSpec) !== JSON.stringify(spec)) throw new Error(`--resume: ${ckpt} holds model ${JSON.stringify(storedSpec ?? null)}, not ${JSON.stringify(spec)}; they differ in ${differences(storedSpec ?? {}, spec).join(', ')} (pass the same --preset/--model${tokenizer ? '/--captions' : ''})`);
    if (JSON.stringify(meta.tokenizer ?? null) !== JSON.stringify(tokenizer?.toSpec() ?? null)) throw new Error(`--resume: ${ckpt} was trained with tokenizer ${JSON.stringify(meta.tokenizer ?? null)}, not ${JSON.stringify(tokenizer?.toSpec() ?? null)}`);
    const hadMean = (meta.train as TrainConfig | undefined)?.timeMean ?? 0;
    if (hadMean !== (train.timeMean ?? 0)) throw new Error(`--resume: ${ckpt} was trained with --time-mean ${hadMean}, not ${train.timeMean ?? 0} (pass the same --time-mean)`);
    const had = meta.latent as k.diffusion.LatentSpec | undefined;
    if (JSON.stringify(had ? [had.scale, had.shift] : null) !== JSON.stringify(latentMeta ? [latentMeta.scale, latentMeta.shift] : null)) {
      throw new Error(`--resume: ${ckpt} was trained ${had ? `on latents of ${had.source} (scale ${had.scale})` : 'on pixels'}, not ${latentMeta ? `on latents of ${vaePath} (scale ${latentMeta.scale})` : 'on pixels'} (pass the same --latent, --scale-images and --data-limit)`);
    }
    await trainer.load(ckpt);
    console.log(`resumed ${ckpt} at step ${trainer.step}`);
  }
  const nParams = model.parameters().reduce((s, p) => s + p.size, 0);
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); ${kind} ${JSON.stringify(spec.config)}, ${(nParams / 1e3).toFixed(0)}k parameters; ${objective}, ${steps} steps × batch ${train.batchSize}${codec ? ', on VAE latents' : ''}${train.precision === 'f16' ? ', mixed precision (f16)' : ''}${tokenizer ? `; captions of ${tokenizer.vocabSize - 3} words, up to ${tokenizer.length - 1} per caption` : ''}`);
  const vaeTensors = codec ? k.nn.withPrefix('vae.', codec.vae.stateDict()) : {};
  const extra = { model: spec, ...(latentMeta ? { latent: latentMeta } : {}), ...(tokenizer ? { tokenizer: tokenizer.toSpec() } : {}) };
  const bar = new Progress(steps, 'train ');
  const t0 = performance.now();
  const startStep = trainer.step;
  const writeSamples = async (name: string) => {
    const t = performance.now();
    const x = await sampleGrid(trainerEmaModel(trainer, kind, spec.config), codec, grid);
    const file = join(out, name);
    await writeGrid(file, x, grid.perClass);
    x.dispose();
    return { file, seconds: (performance.now() - t) / 1000 };
  };
  const writeLoss = () => writeFileSync(join(out, 'loss.csv'), `step,loss\n${trainer.losses.map((l, i) => `${i + 1},${l}`).join('\n')}\n`);
  const batches = tokenizer ? new CaptionedSteps(data, train.batchSize, train.seed, tokenizer) : new k.data.StepBatches(data, train.batchSize, train.seed);
  let saved = a.flag('resume') ? trainer.step : -1;
  try {
    while (trainer.step < steps) {
      const batch = batches.at(trainer.step);
      // latents are drawn from the posteriors of the batch's images (the generator state is checkpointed)
      const x = codec ? codec.encode(batch.x) : batch.x;
      const y = batch.y;
      try {
        await trainer.trainStep(x, y);
      } finally {
        if (codec) batch.x.dispose();
        x.dispose();
        y.dispose();
      }
      const s = trainer.step;
      const recent = trainer.losses.slice(-50);
      bar.update(s - startStep, { step: s, loss: recent.length ? recent.reduce((p, q) => p + q, 0) / recent.length : undefined, lr: trainer.opt.lr });
      if (s % saveEvery === 0 || s === steps) {
        await trainer.save(ckpt, extra, vaeTensors);
        saved = s;
        writeLoss();
      }
      if (sampleEvery && s % sampleEvery === 0 && s !== steps) {
        await trainer.flush(); // no grid of a model that has diverged
        await writeSamples(`samples-${String(s).padStart(6, '0')}.png`);
      }
    }
    await trainer.flush();
  } catch (e) {
    if (!(e instanceof k.train.NonFiniteLossError)) throw e;
    writeLoss();
    throw diverged(e, ckpt, saved, join(out, 'loss.csv'));
  }
  const trainSec = (performance.now() - t0) / 1000;
  writeLoss();
  const g = await writeSamples('samples.png');
  const first = trainer.losses.slice(0, 50), last = trainer.losses.slice(-50);
  const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / Math.max(1, v.length);
  console.log(`trained ${steps - startStep} steps in ${fmtTime(trainSec)}; loss ${mean(first).toFixed(4)} (first 50) → ${mean(last).toFixed(4)} (last 50)`);
  if (trainer.scaler) console.log(await scalerSummary(trainer.scaler));
  console.log(`wrote ${ckpt}, ${join(out, 'loss.csv')} and ${g.file} (${describeRows(grid)}, ${grid.sampler} ${grid.steps} steps, guidance ${grid.guidance}; ${g.seconds.toFixed(0)} s)`);
}

/** A model holding the trainer's EMA weights (sampling uses the average, training keeps its weights). */
function trainerEmaModel(trainer: DiffusionTrainer, kind: 'unet' | 'dit', config: object): Denoiser {
  const m = emaModels.get(trainer) ?? k.diffusion.buildDenoiser(kind, config as Record<string, unknown>);
  emaModels.set(trainer, m);
  trainer.ema.copyTo(m);
  m.eval();
  return m;
}
const emaModels = new WeakMap<object, Denoiser>();

/** The options of `kiln sample` with a diffusion checkpoint: the parser accepts these, and its help lists them. */
export const SAMPLE_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a checkpoint written by kiln train' },
  { name: 'labels', value: '0,1,…', help: 'digits, one row each (10: unconditional)' },
  { name: 'prompt', value: 'TEXT', help: 'a text-conditioned checkpoint (kiln train --captions): prompts separated by ";", one row each' },
  { name: 'per-class', value: 'N', help: 'samples per row' },
  { name: 'sampler', value: 'NAME', choices: SAMPLER_NAMES, help: "one that fits the checkpoint's objective (see below)" },
  { name: 'steps', value: 'N', help: 'sampler steps' },
  { name: 'guidance', value: 'W', help: 'guidance scale w: (1 + w)·cond − w·uncond' },
  { name: 'seed', value: 'N', help: 'seed of the noise' },
  { name: 'out', value: 'FILE', help: 'the PNG grid' },
  { name: 'raw', help: 'sample with the trained weights instead of their EMA' },
];

/** The sampling defaults shown and used before the checkpoint is read: the sampler only once its objective is known. */
function samplingShown(objective: Objective | undefined, text: boolean) {
  const d = k.diffusion.defaultSampling(objective ?? TRAIN_DEFAULTS.objective, text);
  return { sampler: objective && d.sampler, steps: d.steps, guidance: d.guidance };
}

/**
 * The defaults of `kiln sample`'s options (by option name) for the checkpoint `checkpoint`; the sampling is
 * that of the checkpoint's `objective` (no sampler while it is not known), or of a `text` checkpoint.
 */
export function sampleDefaults(checkpoint = DEFAULT_CHECKPOINT, objective?: Objective, text = false) {
  return { checkpoint: DEFAULT_CHECKPOINT, labels: DIGITS, prompt: 'each digit with its held-out size and stroke, as kiln train --captions draws them', 'per-class': 10, ...samplingShown(objective, text), seed: 0, out: join(dirname(checkpoint), 'sample.png') } satisfies Defaults;
}

/** The options of `kiln eval` with a diffusion checkpoint: the parser accepts these, and its help lists them. */
export const EVAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a checkpoint written by kiln train' },
  { name: 'per-class', value: 'N', help: 'samples of each digit to score' },
  { name: 'sampler', value: 'NAME', choices: SAMPLER_NAMES, help: "one that fits the checkpoint's objective (see below)" },
  { name: 'steps', value: 'N', help: 'sampler steps' },
  { name: 'guidance', value: 'W', help: 'guidance scale w: (1 + w)·cond − w·uncond' },
  { name: 'seed', value: 'N', help: 'seed of the noise' },
  JSON_OPTION,
  ...EVAL_PROMPT_OPTIONS,
];

/** The defaults of `kiln eval`'s options (by option name); the sampling is that of the checkpoint's `objective`, or of a `text` checkpoint. */
export function evalDefaults(objective?: Objective, text = false) {
  return { checkpoint: DEFAULT_CHECKPOINT, 'per-class': 50, ...samplingShown(objective, text), seed: 0, ...evalPromptDefaults() } satisfies Defaults;
}

/** Defaults whose sampling depends on the checkpoint: one case per objective, and one for a text checkpoint. */
function byObjective(values: (objective: Objective, text: boolean) => Defaults): DefaultsCase[] {
  return [...defaultSamplers().map((c) => ({ when: c.when, name: c.name, values: values(c.name, false) })), { when: 'for', name: 'a text checkpoint', values: values(TRAIN_DEFAULTS.objective, true) }];
}

/** The help section of `kiln sample` with a diffusion checkpoint (the --checkpoint given sets the --out shown). */
export function sampleSection(a: Args): HelpSection {
  return { heading: 'Options (a diffusion checkpoint):', options: SAMPLE_OPTIONS, defaults: byObjective((o, text) => sampleDefaults(a.string('checkpoint', DEFAULT_CHECKPOINT), o, text)) };
}

/** The help section of `kiln eval` with a diffusion checkpoint. */
export function evalSection(): HelpSection {
  return { heading: 'Options (a diffusion checkpoint):', options: EVAL_OPTIONS, defaults: byObjective((o, text) => evalDefaults(o, text)) };
}

/** The --sampler given, else `fallback` (the checkpoint's default, `k.diffusion.defaultSampling`), checked against the objective. */
function samplerOf(a: Args, objective: Objective, fallback: k.diffusion.SamplerName): k.diffusion.SamplerName {
  return checkSampler(a.string('sampler', fallback), objective, "this checkpoint's objective");
}

/** The objective a diffusion checkpoint was trained with (a student: its own). */
function objectiveOf(meta: Record<string, unknown>, student: k.diffusion.StudentSpec | null): Objective {
  return student?.objective ?? (meta.train as TrainConfig).objective;
}

/** --steps and --guidance as given (`steps`, `guidance`: parsed before the checkpoint was read), else the checkpoint's defaults, and the sampler to fall back on. */
function givenSampling(a: Args, objective: Objective, text: boolean, steps: number, guidance: number): { steps: number; guidance: number; fallback: k.diffusion.SamplerName } {
  const d = k.diffusion.defaultSampling(objective, text);
  return { steps: a.has('steps') ? steps : d.steps, guidance: a.has('guidance') ? guidance : d.guidance, fallback: d.sampler };
}

/**
 * How `kiln sample` / `kiln eval` sample the checkpoint at `path`: a student as it records (`studentOptions`),
 * otherwise the --sampler (checked against the objective), --steps and --guidance given or their defaults.
 */
function samplingOf(a: Args, path: string, student: k.diffusion.StudentSpec | null, objective: Objective, o: { steps: number; guidance: number; fallback: k.diffusion.SamplerName; labels?: number[] }): StudentSampling {
  if (!student) return { sampler: samplerOf(a, objective, o.fallback), steps: o.steps, guidance: o.guidance };
  const how = studentOptions(a, path, student, o.labels);
  if (how.sampler) checkSampler(how.sampler, objective, "this student's objective");
  return how;
}

/** A sampling in words: `flow_heun 12 steps, guidance 1.5`, or the student's. */
function describeSampling(student: k.diffusion.StudentSpec | null, how: StudentSampling): string {
  return student ? describeStudent(student, how) : `${how.sampler} ${how.steps} steps, guidance ${how.guidance}`;
}

/** `kiln sample` with a diffusion checkpoint (`kiln sample --help` is the command line's: it covers VAE checkpoints too). */
export async function sampleCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln sample', argv, SAMPLE_OPTIONS);
  const path = a.string('checkpoint', sampleDefaults().checkpoint);
  const d = sampleDefaults(path);
  const labels = a.ints('labels', d.labels, 0, 10);
  const perClass = a.number('per-class', d['per-class'], { min: 1, integer: true });
  const steps = a.number('steps', d.steps, { min: 1, integer: true });
  const guidance = a.number('guidance', d.guidance);
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const out = a.string('out', d.out);
  if (a.has('sampler')) a.string('sampler', ''); // an unknown name fails before the checkpoint loads
  existingCheckpoint(path);
  outputFile(out);
  await k.init();
  const { model, meta, latent, student, tokenizer } = await loadCheckpoint(path, !a.flag('raw'));
  const rows = gridRows(a, path, tokenizer, labels);
  const objective = objectiveOf(meta, student);
  const how = samplingOf(a, path, student, objective, { ...givenSampling(a, objective, !!tokenizer, steps, guidance), labels });
  const t0 = performance.now();
  const x = await sampleGrid(model, latent, { objective, seed, perClass, ...rows, ...how });
  await writeGrid(out, x, perClass);
  x.dispose();
  const n = 'prompts' in rows ? rows.prompts.length : rows.labels.length;
  console.log(`wrote ${out}: ${n}×${perClass} samples (${describeRows(rows)})${latent ? ', latents decoded by the VAE' : ''}, ${describeSampling(student, how)}, seed ${seed} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/**
 * The rows `kiln sample` draws: a text checkpoint's --prompt (default: the grid prompts of kiln train --captions),
 * else the --labels; the option that does not fit the checkpoint is an error.
 */
function gridRows(a: Args, path: string, tokenizer: k.data.WordTokenizer | null, labels: number[]): GridRows {
  if (!tokenizer) {
    if (a.has('prompt')) throw new Error(`--prompt: ${path} is conditioned on digit labels, not text (give --labels, or a checkpoint of kiln train --captions)`);
    return { labels };
  }
  if (a.has('labels')) throw new Error(`--labels: ${path} is text-conditioned (kiln train --captions); give --prompt "a small bold three; …" instead`);
  const prompts = a.has('prompt') ? parsePrompts('--prompt', a.string('prompt', '')) : [...GRID_PROMPTS];
  tokenizer.encodePrompts('--prompt', prompts);
  return { prompts, tokenizer };
}

/** `kiln eval` with a diffusion checkpoint (`kiln eval --help` is the command line's: it covers VAE checkpoints too). */
export async function evalCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln eval', argv, EVAL_OPTIONS);
  const d = evalDefaults();
  const path = a.string('checkpoint', d.checkpoint);
  const perClass = a.number('per-class', d['per-class'], { min: 2, integer: true });
  const steps = a.number('steps', d.steps, { min: 1, integer: true });
  const guidance = a.number('guidance', d.guidance);
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  if (a.has('sampler')) a.string('sampler', ''); // an unknown name fails before the checkpoint loads
  await k.init();
  const { model, meta, latent, student, tokenizer } = await loadCheckpoint(path);
  for (const [option, wrong] of [['prompts', !tokenizer], ['per-prompt', !tokenizer], ['per-class', !!tokenizer]] as const) {
    if (wrong && a.has(option)) throw new Error(`--${option}: ${path} is ${tokenizer ? 'text-conditioned (give --prompts and --per-prompt)' : 'conditioned on digit labels (--prompts and --per-prompt are for a checkpoint of kiln train --captions)'}`);
  }
  const objective = objectiveOf(meta, student);
  const how = samplingOf(a, path, student, objective, givenSampling(a, objective, !!tokenizer, steps, guidance));
  // a text checkpoint's digits come small or large, thin or bold: LeNet trained on such digits reads them
  const net = await loadMetricsNet(tokenizer ? LENET_CAPTIONS_PATH : LENET_PATH);
  const print = (rows: [string, string][], json: string) => {
    for (const [name, v] of rows) console.log(`${name.padEnd(24)}${v}`);
    console.log(json);
    if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
  };
  if (tokenizer) {
    const t0 = performance.now();
    const { rows, result, prompts } = await evalPrompts(a, { model, latent, tokenizer, objective, how, seed, net });
    const seconds = (performance.now() - t0) / 1000;
    rows.push(['sampling', `${describeSampling(student, how)}${latent ? '; latents decoded by the VAE' : ''}; ${seconds.toFixed(1)} s`]);
    print(rows, JSON.stringify({ checkpoint: path, step: meta.step, sampler: how.sampler, steps: how.steps, guidance: how.guidance, seed, seconds, promptList: prompts, ...result }));
    return;
  }
  const floor = await realFeatures(net, 'train', perClass * 10);
  const real = await realFeatures(net, 'test', 10000);
  const bar = new Progress(10, 'eval ');
  const t0 = performance.now();
  const sampler = how.sampler ?? 'flow_euler', nSteps = how.consistency?.times.length ?? how.steps!, w = how.guidance ?? 0;
  const r = await k.diffusion.evaluate(model, { objective, sampler, steps: nSteps, guidance: w, consistency: how.consistency, seed, perClass, latent, net, real, floor }, (i) => bar.update(i));
  const seconds = (performance.now() - t0) / 1000;
  const rows: [string, string][] = [
    ['samples', `${r.samples} (${perClass} per digit; ${describeSampling(student, how)}${latent ? '; latents decoded by the VAE' : ''}; ${seconds.toFixed(1)} s)`],
    ['conditional accuracy', `${(100 * r.accuracy).toFixed(1)}%`],
    ['classifier-FID', `${r.fid.toFixed(2)}   (real train vs real test: ${r.fidFloor.toFixed(2)})`],
    ['Inception-style score', `${r.inceptionScore.toFixed(2)}   (real: ${r.inceptionScoreReal.toFixed(2)}; max 10)`],
  ];
  print(rows, JSON.stringify({ checkpoint: path, step: meta.step, student: student?.method ?? null, ...(how.consistency ? { times: how.consistency.times } : { sampler }), steps: nSteps, guidance: w, ...(student ? (student.scales ? { guidanceScales: student.scales } : { bakedGuidance: student.guidance }) : {}), seed, seconds, ...r }));
}
