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
import { DiffusionTrainer, type TrainConfig } from '../train/index.js';
import { Args } from './args.js';
import { diverged, loadMetricsNet, outputDir, outputFile, realFeatures, writeGrid } from './common.js';
import { fmtTime, Progress } from './progress.js';

type Denoiser = k.diffusion.Denoiser;
type Objective = k.diffusion.Objective;

const SAMPLERS = ['ddpm', 'ddim', 'euler', 'euler_ancestral', 'heun', 'dpmpp_2m', 'dpmpp_2m_sde', 'edm_heun', 'flow_euler', 'flow_heun', 'sde_euler_maruyama', 'pc_langevin', 'pf_ode_rk45', 'unipc'] as const;

/** A model and training size chosen for an adapter class. */
interface Preset {
  model: 'unet' | 'dit';
  unet: Partial<k.nn.UNetConfig>;
  dit: Partial<k.nn.DiTConfig>;
  steps: number;
  batch: number;
  lr: number;
}

/**
 * `cpu`: sized so the whole README command (training and the final grid) stays within 20 minutes on a
 * 2-core machine with the lavapipe software adapter; `gpu`: a wider, deeper model trained longer.
 */
export const PRESETS: Record<'cpu' | 'gpu', Preset> = {
  cpu: { model: 'unet', unet: { widths: [16, 32], attention: [], midAttention: false, heads: 2, depth: 1, patch: 2 }, dit: { dim: 64, depth: 3 }, steps: 1000, batch: 32, lr: 3e-3 },
  gpu: { model: 'unet', unet: { widths: [64, 128, 128], attention: [2], heads: 4, depth: 2, patch: 1 }, dit: { dim: 256, depth: 8, patch: 2 }, steps: 20000, batch: 128, lr: 2e-4 },
};

/**
 * Models for latents (`--latent`): one resolution level (a 7×7 latent cannot be halved), channels and
 * size taken from the VAE. `cpu` is sized like the pixel preset's step time on lavapipe.
 */
export const LATENT_PRESETS: Record<'cpu' | 'gpu', Preset> = {
  cpu: { model: 'unet', unet: { widths: [64], attention: [], midAttention: false, heads: 4, depth: 1, patch: 1 }, dit: { dim: 64, depth: 4, patch: 1 }, steps: 600, batch: 32, lr: 3e-3 },
  gpu: { model: 'unet', unet: { widths: [192], attention: [0], midAttention: true, heads: 4, depth: 2, patch: 1 }, dit: { dim: 256, depth: 8, patch: 1 }, steps: 20000, batch: 128, lr: 2e-4 },
};

/** `path` if a checkpoint file is there, else an error that says how to make one. */
function existingCheckpoint(path: string): string {
  if (!existsSync(path)) throw new Error(`checkpoint ${path} does not exist (train one with kiln train --out <dir>)`);
  return path;
}

/** Loads a checkpoint's model (EMA weights unless `ema` is false) with its metadata and latent codec, or names what is missing. */
async function loadCheckpoint(path: string, ema = true): Promise<{ model: Denoiser; meta: Record<string, unknown>; latent: k.nn.LatentCodec | null }> {
  return k.diffusion.loadDenoiser(existingCheckpoint(path), { ema });
}

/** Options of sampling a grid. */
interface GridOptions {
  objective: Objective;
  sampler: k.diffusion.SamplerName;
  steps: number;
  guidance: number;
  seed: number;
  perClass: number;
  labels: number[];
}

/** Samples `perClass` images of each label, row by row. */
async function sampleGrid(model: Denoiser, latent: k.nn.LatentCodec | null, o: GridOptions): Promise<k.Tensor> {
  const labels = o.labels.flatMap((l) => Array<number>(o.perClass).fill(l));
  return k.diffusion.generateImages(model, latent, { objective: o.objective, labels, sampler: o.sampler, steps: o.steps, guidance: o.guidance, seed: o.seed });
}

/** The text of `kiln train --help`. */
export const TRAIN_HELP = `kiln train — train a class-conditional diffusion model on MNIST

  --preset cpu|gpu        model and run size (default: cpu on a software adapter, gpu otherwise)
  --model unet|dit        backbone (preset)
  --objective flow|eps|v  rectified flow (logit-normal t), DDPM ε-prediction, or v-prediction (default flow)
  --steps N --batch N --lr X --warmup N --weight-decay X --clip X --ema X --label-dropout P --seed N
  --out DIR               checkpoint, sample grids and loss.csv go here (default out/mnist)
  --save-every N          checkpoint every N steps (default 250)
  --sample-every N        sample grid every N steps (default 500; 0: only at the end)
  --sampler NAME --sample-steps N --guidance W --grid-per-class N   how the grids are sampled
  --latent FILE           train on the latents of this VAE checkpoint (kiln train-vae), encoded batch by batch;
                          the VAE weights and the latent normalization are stored in the checkpoint, and
                          samples are decoded
  --scale-images N        images whose latents set the normalization to unit variance (default 2000)
  --data-limit N          train on the first N training images only (default: all 60,000)
  --resume                continue from DIR/checkpoint.safetensors`;

/** `kiln train`. */
export async function trainCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help')) return void console.log(TRAIN_HELP);
  const a = new Args('kiln train', argv, { options: ['preset', 'model', 'objective', 'steps', 'batch', 'lr', 'warmup', 'weight-decay', 'clip', 'ema', 'label-dropout', 'seed', 'out', 'save-every', 'sample-every', 'sampler', 'sample-steps', 'guidance', 'grid-per-class', 'latent', 'scale-images', 'data-limit'], flags: ['resume'] });
  const vaePath = a.has('latent') ? a.string('latent', '') : null;
  if (vaePath !== null && !existsSync(vaePath)) throw new Error(`--latent: VAE checkpoint ${vaePath} does not exist (train one with kiln train-vae --out <dir>)`);
  const dataLimit = a.number('data-limit', 60000, { min: 1, integer: true });
  const scaleImages = a.number('scale-images', 2000, { min: 2, integer: true });
  const info = await k.init();
  const presetName = a.string('preset', info.architecture === 'software' ? 'cpu' : 'gpu', ['cpu', 'gpu']);
  const preset = (vaePath ? LATENT_PRESETS : PRESETS)[presetName];
  const kind = a.string('model', preset.model, ['unet', 'dit']);
  const objective = a.string<Objective>('objective', 'flow', ['flow', 'eps', 'v']);
  const steps = a.number('steps', preset.steps, { min: 1, integer: true });
  const train: TrainConfig = {
    objective,
    steps,
    batchSize: a.number('batch', preset.batch, { min: 1, integer: true }),
    lr: a.number('lr', preset.lr, { min: 0 }),
    warmup: a.number('warmup', Math.min(100, Math.floor(steps / 10)), { min: 0, integer: true }),
    weightDecay: a.number('weight-decay', 0, { min: 0 }),
    clip: a.number('clip', 1, { min: 0 }),
    emaDecay: a.number('ema', steps < 5000 ? 0.995 : 0.9995, { min: 0, max: 1 }),
    labelDropout: a.number('label-dropout', 0.1, { min: 0, max: 1 }),
    seed: a.number('seed', 0, { min: 0, integer: true }),
  };
  const out = a.string('out', 'out/mnist');
  const grid = { objective, sampler: a.string('sampler', k.diffusion.defaultSampler(objective), SAMPLERS), steps: a.number('sample-steps', 12, { min: 1, integer: true }), guidance: a.number('guidance', 3), seed: 1234, perClass: a.number('grid-per-class', 10, { min: 1, integer: true }), labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] };
  const saveEvery = a.number('save-every', 250, { min: 1, integer: true });
  const sampleEvery = a.number('sample-every', 500, { min: 0, integer: true });
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
    codec = await k.diffusion.latentCodec(vae, k.data.batches(data, { batchSize: 250, limit: n }), (done) => bar.update(done));
    const { scale, shift } = codec;
    latentMeta = { vae: vae.config, scale, shift, source: vaePath };
    console.log(`latents ${JSON.stringify(vae.latentShape)} of ${vaePath}: normalization (z − ${shift.toPrecision(4)}) × ${scale.toPrecision(4)} from ${n} images (${fmtTime((performance.now() - t) / 1000)})`);
  }
  const [channels, size] = codec ? [codec.latentShape[0], codec.latentShape[1]] : [1, 28];
  const modelConfig = { ...(kind === 'dit' ? preset.dit : preset.unet), channels, size };
  // --seed fixes the initial weights too, not only what the trainer draws (they used to come from whatever state the generator was in)
  k.manualSeed(train.seed);
  const model = k.diffusion.buildDenoiser(kind, modelConfig as Record<string, unknown>);
  const spec = { kind, config: (model as unknown as { config: object }).config };
  k.manualSeed(train.seed);
  const trainer = new DiffusionTrainer(model, train);
  if (a.flag('resume')) {
    const meta = await trainer.load(ckpt);
    if (JSON.stringify(meta.model) !== JSON.stringify(spec)) throw new Error(`--resume: ${ckpt} holds model ${JSON.stringify(meta.model)}, not ${JSON.stringify(spec)} (pass the same --preset/--model)`);
    const had = meta.latent as k.diffusion.LatentSpec | undefined;
    if (JSON.stringify(had ? [had.scale, had.shift] : null) !== JSON.stringify(latentMeta ? [latentMeta.scale, latentMeta.shift] : null)) {
      throw new Error(`--resume: ${ckpt} was trained ${had ? `on latents of ${had.source} (scale ${had.scale})` : 'on pixels'}, not ${latentMeta ? `on latents of ${vaePath} (scale ${latentMeta.scale})` : 'on pixels'} (pass the same --latent, --scale-images and --data-limit)`);
    }
    console.log(`resumed ${ckpt} at step ${trainer.step}`);
  }
  const nParams = model.parameters().reduce((s, p) => s + p.size, 0);
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); ${kind} ${JSON.stringify(spec.config)}, ${(nParams / 1e3).toFixed(0)}k parameters; ${objective}, ${steps} steps × batch ${train.batchSize}${codec ? ', on VAE latents' : ''}`);
  const vaeTensors = codec ? k.nn.withPrefix('vae.', codec.vae.stateDict()) : {};
  const extra = latentMeta ? { model: spec, latent: latentMeta } : { model: spec };
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
  const batches = new k.data.StepBatches(data, train.batchSize, train.seed);
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
  console.log(`wrote ${ckpt}, ${join(out, 'loss.csv')} and ${g.file} (rows = digits 0–9, ${grid.sampler} ${grid.steps} steps, guidance ${grid.guidance}; ${g.seconds.toFixed(0)} s)`);
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

/** The text of `kiln sample --help`. */
export const SAMPLE_HELP = `kiln sample — sample digits from a checkpoint

  --checkpoint FILE       (default out/mnist/checkpoint.safetensors)
  --labels 0,1,…          digits, one row each (default 0–9; 10 = unconditional)
  --per-class N           samples per row (default 10)
  --sampler NAME          ${SAMPLERS.join(', ')}
  --steps N --guidance W --seed N
  --raw                   use the trained weights instead of their EMA
  --out FILE              PNG grid (default out/mnist/sample.png)`;

/** `kiln sample`. */
export async function sampleCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help')) return void console.log(SAMPLE_HELP);
  const a = new Args('kiln sample', argv, { options: ['checkpoint', 'labels', 'per-class', 'sampler', 'steps', 'guidance', 'seed', 'out'], flags: ['raw'] });
  const path = a.string('checkpoint', 'out/mnist/checkpoint.safetensors');
  const labels = a.ints('labels', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0, 10);
  const perClass = a.number('per-class', 10, { min: 1, integer: true });
  const steps = a.number('steps', 12, { min: 1, integer: true });
  const guidance = a.number('guidance', 3);
  const seed = a.number('seed', 0, { min: 0, integer: true });
  const out = a.string('out', join(dirname(path), 'sample.png'));
  existingCheckpoint(path);
  outputFile(out);
  await k.init();
  const { model, meta, latent } = await loadCheckpoint(path, !a.flag('raw'));
  const objective = (meta.train as TrainConfig).objective;
  const sampler = a.string('sampler', k.diffusion.defaultSampler(objective), SAMPLERS);
  const t0 = performance.now();
  const x = await sampleGrid(model, latent, { objective, sampler, steps, guidance, seed, perClass, labels });
  await writeGrid(out, x, perClass);
  x.dispose();
  console.log(`wrote ${out}: ${labels.length}×${perClass} samples${latent ? ' (latents decoded by the VAE)' : ''}, ${sampler} ${steps} steps, guidance ${guidance}, seed ${seed} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/** The text of `kiln eval --help`. */
export const EVAL_HELP = `kiln eval — score class-conditional samples with the LeNet classifier

  --checkpoint FILE       (default out/mnist/checkpoint.safetensors)
  --per-class N           samples per digit (default 50)
  --sampler NAME --steps N --guidance W --seed N
  --json FILE             also write the figures as JSON`;

/** `kiln eval`. */
export async function evalCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help')) return void console.log(EVAL_HELP);
  const a = new Args('kiln eval', argv, { options: ['checkpoint', 'per-class', 'sampler', 'steps', 'guidance', 'seed', 'json'] });
  const path = a.string('checkpoint', 'out/mnist/checkpoint.safetensors');
  const perClass = a.number('per-class', 50, { min: 2, integer: true });
  const steps = a.number('steps', 12, { min: 1, integer: true });
  const guidance = a.number('guidance', 3);
  const seed = a.number('seed', 0, { min: 0, integer: true });
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  await k.init();
  const { model, meta, latent } = await loadCheckpoint(path);
  const objective = (meta.train as TrainConfig).objective;
  const sampler = a.string('sampler', k.diffusion.defaultSampler(objective), SAMPLERS);
  const net = await loadMetricsNet();
  const floor = await realFeatures(net, 'train', perClass * 10);
  const real = await realFeatures(net, 'test', 10000);
  const bar = new Progress(10, 'eval ');
  const r = await k.diffusion.evaluate(model, { objective, sampler, steps, guidance, seed, perClass, latent, net, real, floor }, (i) => bar.update(i));
  const rows: [string, string][] = [
    ['samples', `${r.samples} (${perClass} per digit; ${sampler} ${steps} steps, guidance ${guidance}${latent ? '; latents decoded by the VAE' : ''})`],
    ['conditional accuracy', `${(100 * r.accuracy).toFixed(1)}%`],
    ['classifier-FID', `${r.fid.toFixed(2)}   (real train vs real test: ${r.fidFloor.toFixed(2)})`],
    ['Inception-style score', `${r.inceptionScore.toFixed(2)}   (real: ${r.inceptionScoreReal.toFixed(2)}; max 10)`],
  ];
  for (const [name, v] of rows) console.log(`${name.padEnd(24)}${v}`);
  const json = JSON.stringify({ checkpoint: path, step: meta.step, sampler, steps, guidance, seed, ...r });
  console.log(json);
  if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
}
