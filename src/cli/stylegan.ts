/**
 * `kiln train-gan`: trains the style-based generator (`k.nn.StyleGenerator`, class-conditional by default)
 * against a projection `k.nn.PatchDiscriminator` with the non-saturating loss and lazy R1 (`GANTrainer`),
 * with resumable checkpoints, loss.csv and a PNG grid of samples (rows = digits when conditional).
 * `kiln eval` and `kiln sample` given its checkpoint land here too: LeNet scores (classifier-FID,
 * Inception-style score, conditional accuracy, the histogram of LeNet's classes) and grids.
 */
import * as fs from 'node:fs';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as k from '../index.js';
import { parseCheckpointMeta } from '../nn/checkpoint.js';
import { readHeaderSync } from '../nn/safetensors.js';
import { GANTrainer, type GANTrainConfig } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { DATA_LIMIT_OPTION, DEFAULT_CHECKPOINT, diverged, JSON_OPTION, loadMetricsNet, MNIST_TRAIN_IMAGES, outputDir, outputFile, outputOptions, realFeatures, writeGrid } from './common.js';
import { command, helpFor, helpText, type Command, type Defaults, type HelpSection } from './help.js';
import { fmtTime, Progress } from './progress.js';
import { checkpointFormat } from './vae.js';

/** True when `path` is a GAN checkpoint written by `kiln train-gan` (false when it does not exist; an invalid file is an error). */
export function isGANCheckpoint(path: string): boolean {
  return existsSync(path) && checkpointFormat(path) === k.nn.GAN_CHECKPOINT_FORMAT;
}

/** What `kiln train-gan` does, in one line. */
const TRAIN_GAN_SUMMARY = 'train a style-based GAN (mapping network, AdaIN, noise inputs) on MNIST, class-conditional by default';

/**
 * The training defaults of `kiln train-gan`: 500 steps (about 5 minutes on lavapipe, 2 cores). Longer runs at this
 * learning rate collapse within each class (1,800 steps: every 0 alike, classifier-FID 212 against 112 at 500).
 */
export const GAN_RUN_DEFAULTS = {
  steps: 500, batch: 16, lr: 2e-4, betas: [0.5, 0.99] as [number, number], r1: 0.01, r1Every: 4, ema: 0.995, seed: 0,
  discWidth: 16, discLayers: 3,
};

/** The options of `kiln train-gan`: the parser accepts these, and its help lists them. */
export const TRAIN_GAN_OPTIONS: readonly OptionSpec[] = [
  { name: 'steps', value: 'N', help: 'training steps (one discriminator and one generator update each)' },
  { name: 'batch', value: 'N', help: 'real images per step (and as many fakes)' },
  { name: 'lr', value: 'X', help: 'Adam learning rate of the generator' },
  { name: 'disc-lr', value: 'X', help: 'Adam learning rate of the discriminator (that of --lr unless given)' },
  { name: 'beta1', value: 'X', help: 'Adam β₁ of both players (β₂ is 0.99)' },
  { name: 'seed', value: 'N', help: 'seed of the initial weights, the batches, the codes and the grid' },
  { name: 'latent-dim', value: 'N', help: 'dimension of the codes z' },
  { name: 'w-dim', value: 'N', help: 'dimension of the styles w' },
  { name: 'mapping-layers', value: 'N', help: 'linear layers of the mapping network z → w' },
  { name: 'channels', value: 'C,C,…', help: 'generator channels per resolution from the 7×7 constant (each next one doubles the side)' },
  { name: 'mixing', value: 'P', help: 'probability of style mixing per training example' },
  { name: 'unconditional', help: 'no class input (the grid is not ordered by digit; kiln eval reports no conditional accuracy)' },
  { name: 'disc-width', value: 'N', help: 'channels of the first discriminator convolution (doubling per layer)' },
  { name: 'disc-layers', value: 'N', help: 'stride-2 layers of the discriminator (3: one logit per image)' },
  { name: 'r1', value: 'G', help: 'R1 penalty weight γ on real images' },
  { name: 'r1-every', value: 'N', help: 'apply R1 every N steps (weighted γ·N)' },
  { name: 'ema', value: 'D', help: 'decay of the average of the generator weights that sampling uses (0: none)' },
  { name: 'psi', value: 'X', help: 'truncation ψ of the final grid (1: none)' },
  DATA_LIMIT_OPTION,
  { name: 'samples', value: 'N', help: 'images in samples.png at the end (0: none)' },
  ...outputOptions('gan.safetensors, loss.csv and samples.png', 'gan.safetensors'),
];

/** The defaults of `kiln train-gan`'s options (by option name). */
export function trainGanDefaults() {
  const d = GAN_RUN_DEFAULTS, g = k.nn.STYLE_GENERATOR_DEFAULTS;
  return {
    steps: d.steps,
    batch: d.batch,
    lr: d.lr,
    'disc-lr': d.lr,
    beta1: d.betas[0],
    seed: d.seed,
    'latent-dim': g.latentDim,
    'w-dim': g.wDim,
    'mapping-layers': g.mappingLayers,
    channels: g.channels,
    mixing: g.mixing,
    'disc-width': d.discWidth,
    'disc-layers': d.discLayers,
    r1: d.r1,
    'r1-every': d.r1Every,
    ema: d.ema,
    psi: 1,
    'data-limit': MNIST_TRAIN_IMAGES,
    samples: 100,
    out: 'out/stylegan',
    'save-every': 250,
  } satisfies Defaults;
}

/** `kiln train-gan` as the command line lists and runs it. */
export const TRAIN_GAN: Command = command({
  name: 'train-gan',
  summary: TRAIN_GAN_SUMMARY,
  help: async (argv) => helpFor('kiln train-gan', argv, TRAIN_GAN_OPTIONS, () => helpText({
    title: `kiln train-gan — ${TRAIN_GAN_SUMMARY}`,
    usage: 'Usage: kiln train-gan [options]',
    notes: [
      'Non-saturating loss, R1 on real images every --r1-every steps, a projection discriminator when conditional.',
      'Then kiln eval --checkpoint DIR/gan.safetensors scores 1,000 samples with LeNet, kiln sample draws a grid.',
    ],
    sections: [{ heading: 'Options:', options: TRAIN_GAN_OPTIONS, defaults: trainGanDefaults() }],
  })),
  main: (argv) => trainGanCommand(argv),
});

/** Labels of a grid of `count` images, 10 a row: row r shows digit r mod 10 (null for an unconditional generator). */
function gridLabels(g: k.nn.StyleGenerator, count: number): number[] | null {
  return g.config.numClasses > 0 ? Array.from({ length: count }, (_, i) => Math.floor(i / 10) % g.config.numClasses) : null;
}

/** `count` images of the generator (eval mode; labels when conditional) from seed `seed`, with truncation ψ, clamped to [−1, 1]. */
export function generateDigits(g: k.nn.StyleGenerator, labels: number[] | null, count: number, seed: number, psi: number): k.Tensor {
  k.manualSeed(seed);
  return k.noGrad(() => k.scope(() => {
    const y = labels ? k.tensor(Int32Array.from(labels)) : undefined;
    return g.generate(k.randn([count, g.config.latentDim]), y, { psi }).clamp(-1, 1);
  }));
}

/** Writes a grid of `count` samples (rows = digits when conditional); returns the seconds the sampling took. */
export async function writeGanGrid(g: k.nn.StyleGenerator, file: string, count: number, seed: number, psi: number): Promise<number> {
  const t0 = performance.now();
  const x = generateDigits(g, gridLabels(g, count), count, seed, psi);
  await x.data();
  const seconds = (performance.now() - t0) / 1000;
  await writeGrid(file, x, Math.min(10, count));
  x.dispose();
  return seconds;
}

/** `kiln train-gan`. */
export async function trainGanCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln train-gan', argv, TRAIN_GAN_OPTIONS);
  const d = trainGanDefaults();
  const steps = a.number('steps', d.steps, { min: 1, integer: true });
  const batch = a.number('batch', d.batch, { min: 1, integer: true });
  const lr = a.number('lr', d.lr, { above: 0 });
  const train: GANTrainConfig = {
    loss: 'non-saturating',
    lr,
    lrD: a.number('disc-lr', lr, { above: 0 }),
    betas: [a.number('beta1', d.beta1, { min: 0, max: 0.999 }), GAN_RUN_DEFAULTS.betas[1]],
    r1Gamma: a.number('r1', d.r1, { min: 0 }),
    r1Every: a.number('r1-every', d['r1-every'], { min: 1, integer: true }),
    emaDecay: a.number('ema', d.ema, { min: 0, max: 0.9999 }),
  };
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const numClasses = a.flag('unconditional') ? 0 : 10;
  const config: Partial<k.nn.StyleGeneratorConfig> = {
    latentDim: a.number('latent-dim', d['latent-dim'], { min: 1, integer: true }),
    wDim: a.number('w-dim', d['w-dim'], { min: 1, integer: true }),
    mappingLayers: a.number('mapping-layers', d['mapping-layers'], { min: 1, integer: true }),
    channels: a.ints('channels', d.channels, 1, 4096),
    mixing: a.number('mixing', d.mixing, { min: 0, max: 1 }),
    numClasses,
  };
  if (7 * 2 ** (config.channels!.length - 1) !== 28) throw new Error(`--channels must list 3 resolutions (7, 14, 28) for 28×28 MNIST, got ${config.channels!.length}`);
  const disc: Partial<k.nn.PatchDiscriminatorConfig> = {
    width: a.number('disc-width', d['disc-width'], { min: 1, integer: true }),
    layers: a.number('disc-layers', d['disc-layers'], { min: 1, max: 3, integer: true }),
    numClasses,
  };
  const psi = a.number('psi', d.psi);
  const dataLimit = a.number('data-limit', d['data-limit'], { min: 1, integer: true });
  const nSamples = a.number('samples', d.samples, { min: 0, integer: true });
  const out = outputDir(a.string('out', d.out));
  const saveEvery = a.number('save-every', d['save-every'], { min: 1, integer: true });
  const info = await k.init();
  k.manualSeed(seed);
  const G = new k.nn.StyleGenerator(config);
  const D = new k.nn.PatchDiscriminator(disc);
  const trainer = new GANTrainer(G, D, G.config.latentDim, train);
  const ckpt = join(out, 'gan.safetensors');
  if (a.flag('resume')) {
    if (!existsSync(ckpt)) throw new Error(`--resume: ${ckpt} does not exist`);
    // checked from the header before any weight is loaded
    const meta = parseCheckpointMeta(ckpt, readHeaderSync(fs, ckpt).metadata);
    if (JSON.stringify(meta[k.nn.STYLEGAN_META_KEY]) !== JSON.stringify(G.config)) throw new Error(`--resume: ${ckpt} holds the generator ${JSON.stringify(meta[k.nn.STYLEGAN_META_KEY])}, not ${JSON.stringify(G.config)} (pass the same model options)`);
    if (JSON.stringify(meta.discriminator) !== JSON.stringify(D.config)) throw new Error(`--resume: ${ckpt} holds the discriminator ${JSON.stringify(meta.discriminator)}, not ${JSON.stringify(D.config)} (pass the same model options)`);
    await trainer.load(ckpt);
    console.log(`resumed ${ckpt} at step ${trainer.step}`);
  }
  const split = await k.data.loadMnist('train');
  const data = { ...split, count: Math.min(dataLimit, split.count) };
  const batches = new k.data.StepBatches(data, batch, seed);
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); style generator ${JSON.stringify(G.config)}, ${(G.numParameters() / 1e3).toFixed(0)}k parameters; ` +
    `discriminator ${(D.numParameters() / 1e3).toFixed(0)}k parameters; ${steps} steps × batch ${batch}`);
  const lossFile = join(out, 'loss.csv');
  const writeMetrics = () => writeFileSync(lossFile, `step,d_loss,g_loss\n${trainer.history.map((r, i) => `${i + 1},${r.join(',')}`).join('\n')}\n`);
  const extra = () => ({ command: `kiln train-gan ${argv.join(' ')}`.trim(), [k.nn.STYLEGAN_META_KEY]: G.config, discriminator: D.config, batch, seed });
  const bar = new Progress(steps, 'train-gan ');
  const t0 = performance.now();
  const startStep = trainer.step;
  let saved = a.flag('resume') ? trainer.step : -1;
  G.train();
  D.train();
  try {
    while (trainer.step < steps) {
      const { x, y } = batches.at(trainer.step);
      try {
        await (numClasses ? trainer.trainStep(x, y) : trainer.trainStep(x));
      } finally {
        x.dispose();
        y.dispose();
      }
      const s = trainer.step;
      const recent = trainer.history.slice(-50);
      const avg = (i: number) => (recent.length ? recent.reduce((p, r) => p + r[i]!, 0) / recent.length : undefined);
      bar.update(s - startStep, { step: s, d: avg(0), g: avg(1) });
      if (s % saveEvery === 0 || s === steps) {
        await trainer.save(ckpt, extra());
        saved = s;
        writeMetrics();
      }
    }
    await trainer.flush();
  } catch (e) {
    if (!(e instanceof k.train.NonFiniteLossError)) throw e;
    writeMetrics();
    throw diverged(e, ckpt, saved, lossFile);
  }
  writeMetrics();
  const trainSec = (performance.now() - t0) / 1000;
  const files = [ckpt, lossFile];
  if (nSamples > 0) {
    const { generator } = await k.nn.loadStyleGenerator(ckpt);
    const file = join(out, 'samples.png');
    await writeGanGrid(generator, file, nSamples, seed, psi);
    files.push(file);
  }
  console.log(`trained ${steps - startStep} steps in ${fmtTime(trainSec)}`);
  console.log(`wrote ${files.join(', ')}`);
}

/** The options of `kiln eval` with a GAN checkpoint. */
export const EVAL_GAN_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a GAN checkpoint written by kiln train-gan, e.g. out/stylegan/gan.safetensors' },
  { name: 'per-class', value: 'N', help: 'samples per digit (unconditional: a tenth of the samples)' },
  { name: 'psi', value: 'X', help: 'truncation ψ: w = w̄ + ψ·(w − w̄) (1: none)' },
  { name: 'seed', value: 'N', help: 'digit d (batch d) is sampled with seed + d' },
  { name: 'no-ema', help: 'sample with the trained weights instead of their average' },
  JSON_OPTION,
];

/** The defaults of `kiln eval`'s options with a GAN checkpoint (by option name). */
export function evalGanDefaults() {
  return { checkpoint: DEFAULT_CHECKPOINT, 'per-class': 100, psi: 1, seed: 0 } satisfies Defaults;
}

/** The help section of `kiln eval` with a GAN checkpoint. */
export function evalGanSection(): HelpSection {
  return { heading: 'Options (a GAN checkpoint of kiln train-gan: LeNet scores of its samples and the histogram of their classes):', options: EVAL_GAN_OPTIONS, defaults: evalGanDefaults() };
}

/** `kiln eval` on a GAN checkpoint: classifier-FID, Inception-style score, conditional accuracy and LeNet's class histogram of its samples; the time of 100 samples. */
export async function evalGanCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln eval', argv, EVAL_GAN_OPTIONS);
  const d = evalGanDefaults();
  const path = a.string('checkpoint', d.checkpoint);
  const perClass = a.number('per-class', d['per-class'], { min: 2, integer: true });
  const psi = a.number('psi', d.psi);
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  await k.init();
  const { generator: g, meta, ema } = await k.nn.loadStyleGenerator(path, { ema: !a.flag('no-ema') });
  const conditional = g.config.numClasses > 0;
  const net = await loadMetricsNet();
  const floor = await realFeatures(net, 'train', perClass * 10);
  const real = await realFeatures(net, 'test', 10000);
  // 100 images (10 of each digit when conditional), once to warm the pipelines up, then timed
  const hundred = async () => {
    const t0 = performance.now();
    const x = generateDigits(g, gridLabels(g, 100), 100, seed, psi);
    await x.data();
    x.dispose();
    return (performance.now() - t0) / 1000;
  };
  const firstHundred = await hundred();
  const sampleSeconds = await hundred();
  const bar = new Progress(10, 'eval ');
  const t0 = performance.now();
  const r = await k.diffusion.evaluateSamples(async (digit, count, s) => generateDigits(g, digit === null ? null : Array<number>(count).fill(digit), count, s, psi), { perClass, conditional, seed, net, real, floor }, (i) => bar.update(i));
  const seconds = (performance.now() - t0) / 1000;
  const share = r.histogram.map((c) => c / r.samples);
  const rows: [string, string][] = [
    ['samples', `${r.samples} (${conditional ? `${perClass} per digit` : 'unconditional'}; ${ema ? 'EMA weights' : 'trained weights'}; ψ ${psi}; ${seconds.toFixed(1)} s)`],
    ...(r.accuracy !== null ? [['conditional accuracy', `${(100 * r.accuracy).toFixed(1)}%`] as [string, string]] : []),
    ['classifier-FID', `${r.fid.toFixed(2)}   (real train vs real test: ${r.fidFloor.toFixed(2)})`],
    ['Inception-style score', `${r.inceptionScore.toFixed(2)}   (real: ${r.inceptionScoreReal.toFixed(2)}; max 10)`],
    ['LeNet classes', `${share.map((v, i) => `${i}: ${(100 * v).toFixed(1)}%`).join('  ')}   (smallest ${(100 * Math.min(...share)).toFixed(1)}%)`],
    ['100 samples', `${sampleSeconds.toFixed(2)} s (${firstHundred.toFixed(2)} s the first time, compiling the pipelines)`],
  ];
  for (const [name, v] of rows) console.log(`${name.padEnd(24)}${v}`);
  const json = JSON.stringify({ checkpoint: path, step: meta.step, ema, psi, seed, seconds, sampleSeconds100: sampleSeconds, ...r });
  console.log(json);
  if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
}

/** The options of `kiln sample` with a GAN checkpoint. */
export const SAMPLE_GAN_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a GAN checkpoint written by kiln train-gan' },
  { name: 'count', value: 'N', help: 'images, 10 a row (conditional: row i shows digit i mod 10)' },
  { name: 'psi', value: 'X', help: 'truncation ψ: w = w̄ + ψ·(w − w̄) (1: none, 0: the average style of each digit)' },
  { name: 'seed', value: 'N', help: 'seed of the codes and the noise' },
  { name: 'no-ema', help: 'sample with the trained weights instead of their average' },
  { name: 'out', value: 'DIR', help: "where samples.png goes: the checkpoint's folder" },
];

/** The defaults of `kiln sample`'s options with the GAN checkpoint `checkpoint` (by option name). */
export function sampleGanDefaults(checkpoint = DEFAULT_CHECKPOINT) {
  return { checkpoint: DEFAULT_CHECKPOINT, count: 100, psi: 1, seed: 0, out: dirname(checkpoint) } satisfies Defaults;
}

/** The help section of `kiln sample` with a GAN checkpoint. */
export function sampleGanSection(a: Args): HelpSection {
  return { heading: 'Options (a GAN checkpoint of kiln train-gan: one generator pass):', options: SAMPLE_GAN_OPTIONS, defaults: sampleGanDefaults(a.string('checkpoint', DEFAULT_CHECKPOINT)) };
}

/** `kiln sample` on a GAN checkpoint: a grid of samples and the time they took, as JSON. */
export async function sampleGanCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln sample', argv, SAMPLE_GAN_OPTIONS);
  const path = a.string('checkpoint', sampleGanDefaults().checkpoint);
  const d = sampleGanDefaults(path);
  const count = a.number('count', d.count, { min: 1, integer: true });
  const psi = a.number('psi', d.psi);
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const out = outputDir(a.string('out', d.out));
  await k.init();
  const { generator, ema } = await k.nn.loadStyleGenerator(path, { ema: !a.flag('no-ema') });
  const file = join(out, 'samples.png');
  const seconds = await writeGanGrid(generator, file, count, seed, psi);
  console.log(JSON.stringify({ checkpoint: path, samples: count, psi, seed, ema, seconds, file }));
}
