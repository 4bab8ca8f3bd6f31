/**
 * `kiln train-pixelcnn`: trains a gated PixelCNN on binarized MNIST (or 8-bit grey with --bits 8,
 * optionally class-conditional with --classes) with resumable checkpoints, loss.csv, the exact test-set
 * NLL as JSON, and a PNG grid of samples (rows = digits when conditional). `kiln eval` and `kiln sample`
 * given a PixelCNN checkpoint land here too.
 */
import * as fs from 'node:fs';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as k from '../index.js';
import { parseCheckpointMeta } from '../nn/checkpoint.js';
import { readHeaderSync } from '../nn/safetensors.js';
import { PIXELCNN_TRAIN_DEFAULTS, PixelCNNTrainer, type PixelCNNTrainConfig } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { DATA_LIMIT_OPTION, DEFAULT_CHECKPOINT, diverged, JSON_OPTION, loadMetricsNet, MNIST_TRAIN_IMAGES, outputDir, outputFile, outputOptions, writeGrid } from './common.js';
import { command, helpFor, helpText, type Command, type Defaults, type HelpSection } from './help.js';
import { fmtTime, Progress } from './progress.js';
import { checkpointFormat } from './vae.js';

/** True when `path` is a PixelCNN checkpoint written by `kiln train-pixelcnn` (false when it does not exist; an invalid file is an error). */
export function isPixelCNNCheckpoint(path: string): boolean {
  return existsSync(path) && checkpointFormat(path) === k.nn.PIXELCNN_CHECKPOINT_FORMAT;
}

/** What `kiln train-pixelcnn` does, in one line. */
const TRAIN_PIXELCNN_SUMMARY = 'train a gated PixelCNN on binarized (or 8-bit) MNIST and report its exact test NLL';

/** How the data is binarized, as the help and the README say it. */
export const BINARIZATION_NOTE = [
  'Binarization: --binarize dynamic (the default) draws each training pixel as Bernoulli(intensity / 255) anew every',
  `epoch; the test set is binarized once the same way with the fixed seed ${k.data.TEST_BINARIZATION_SEED}, so test NLLs compare between runs.`,
  '--binarize threshold uses intensity ≥ 128 for both. The NLL is exact (one teacher-forced pass): nats per image for',
  'binarized images (Σ over 784 pixels of BCE with logits), bits per dimension for --bits 8 (a 256-way softmax per pixel).',
];

/** The larger configuration suggested for a real GPU (not measured here). */
export const GPU_PRESET = '--width 128 --layers 12 --head 256 --batch 64 --steps 40000 --lr 1e-3';

/** The options of `kiln train-pixelcnn`: the parser accepts these, and its help lists them. */
export const TRAIN_PIXELCNN_OPTIONS: readonly OptionSpec[] = [
  { name: 'steps', value: 'N', help: 'training steps' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'Adam learning rate after the warmup (cosine decay to 5% at the end)' },
  { name: 'warmup', value: 'N', help: `linear learning-rate warmup steps: min(${PIXELCNN_TRAIN_DEFAULTS.warmup}, steps / 10)` },
  { name: 'clip', value: 'X', help: 'max global gradient norm (0: no clipping)' },
  { name: 'ema', value: 'X', help: 'EMA decay of the weights that the test NLL, the samples, kiln eval and kiln sample use (0: none)' },
  { name: 'seed', value: 'N', help: 'seed of the initial weights, the batches, the binarization and the samples' },
  { name: 'width', value: 'N', help: 'channels of the vertical and horizontal stacks' },
  { name: 'layers', value: 'N', help: 'gated layers (the first, mask A, included)' },
  { name: 'kernel', value: 'K', help: 'kernel size of the layers after the first (odd): vertical (K//2+1)×K, horizontal 1×(K//2+1)' },
  { name: 'first-kernel', value: 'K', help: 'kernel size of the first layer (odd)' },
  { name: 'head', value: 'N', help: 'hidden channels of the 1×1 output head' },
  { name: 'bits', choices: ['1', '8'], help: '1: binarized pixels (a Bernoulli logit each); 8: grey levels (a 256-way softmax each)' },
  { name: 'binarize', choices: ['dynamic', 'threshold'], help: 'binarization with --bits 1 (see above)' },
  { name: 'targets', choices: ['soft', 'drawn'], help: "with --binarize dynamic, what the loss scores each pixel against: 'soft', the probability it is 1 (intensity/255; the same expected loss, less noise), or 'drawn', its drawn bit" },
  { name: 'classes', help: 'class-conditional: a learned per-digit bias in every gate; the sample grid has one digit per row' },
  DATA_LIMIT_OPTION,
  { name: 'eval-limit', value: 'N', help: 'test images of the NLL at the end' },
  { name: 'samples', value: 'N', help: 'images sampled into samples.png at the end (0: none)' },
  ...outputOptions('pixelcnn.safetensors, loss.csv, samples.png and nll.json', 'pixelcnn.safetensors'),
];

/** The defaults of `kiln train-pixelcnn`'s options (by option name); the warmup follows the run's length `steps`. */
export function trainPixelcnnDefaults(steps: number = PIXELCNN_TRAIN_DEFAULTS.steps) {
  const d = PIXELCNN_TRAIN_DEFAULTS, m = k.nn.PIXELCNN_DEFAULTS;
  return {
    steps: d.steps,
    batch: d.batchSize,
    lr: d.lr,
    warmup: Math.min(d.warmup, Math.floor(steps / 10)),
    clip: d.clip,
    ema: d.emaDecay ?? 0,
    seed: d.seed,
    width: m.width,
    layers: m.layers,
    kernel: m.kernel,
    'first-kernel': m.firstKernel,
    head: m.head,
    bits: String(m.bits),
    binarize: 'dynamic',
    targets: d.softTargets ? 'soft' : 'drawn',
    'data-limit': MNIST_TRAIN_IMAGES,
    'eval-limit': 10000,
    samples: 100,
    out: 'out/pixelcnn',
    'save-every': 500,
  } satisfies Defaults;
}

/** `kiln train-pixelcnn` as the command line lists and runs it. */
export const TRAIN_PIXELCNN: Command = command({
  name: 'train-pixelcnn',
  summary: TRAIN_PIXELCNN_SUMMARY,
  help: async (argv) => helpFor('kiln train-pixelcnn', argv, TRAIN_PIXELCNN_OPTIONS, (a) => helpText({
    title: `kiln train-pixelcnn — ${TRAIN_PIXELCNN_SUMMARY}`,
    usage: 'Usage: kiln train-pixelcnn [options]',
    notes: [
      ...BINARIZATION_NOTE,
      `A larger configuration for a real GPU: kiln train-pixelcnn ${GPU_PRESET}`,
      'The test NLL and the samples use the EMA of the weights (--ema 0: the trained weights); the checkpoint holds both.',
      'Then kiln eval --checkpoint DIR/pixelcnn.safetensors prints the test NLL as JSON (--samples N: also LeNet scores of N',
      'samples), kiln sample draws a grid; both use the EMA unless --raw.',
    ],
    sections: [{ heading: 'Options:', options: TRAIN_PIXELCNN_OPTIONS, defaults: trainPixelcnnDefaults(a.number('steps', PIXELCNN_TRAIN_DEFAULTS.steps, { min: 1, integer: true })) }],
  })),
  main: (argv) => trainPixelcnnCommand(argv),
});

/** The evaluation pixels of a checkpoint's training data: the same binarization (fixed-seed for dynamic), or grey. */
function evalFormat(train: PixelCNNTrainConfig): k.data.PixelFormat {
  return train.data;
}

/** Images per batch of the test NLL: small batches run faster per image on a CPU driver than 200 did. */
const EVAL_BATCH = 20;

/** The test-set NLL of a PixelCNN on the first `limit` test images, binarized like its training data. */
export async function testNll(model: k.nn.PixelCNN, train: PixelCNNTrainConfig, limit: number): Promise<k.train.NllReport & { binarization: string }> {
  const test = await k.data.loadMnist('test');
  const r = await k.train.evaluateNll(model, k.data.evalPixelBatches(test, evalFormat(train), EVAL_BATCH, limit));
  const binarization = train.data === 'dynamic' ? `dynamic (test set fixed, seed ${k.data.TEST_BINARIZATION_SEED})` : train.data;
  return { ...r, binarization };
}

/** Samples `count` images (conditional: digit ⌊i / cols⌋ mod 10 for image i, so rows are digits) into a PNG grid; returns the seconds it took. */
export async function writeSamples(model: k.nn.PixelCNN, file: string, count: number, seed: number): Promise<{ seconds: number; labels: number[] | null }> {
  const cols = Math.min(10, count);
  const labels = model.config.numClasses > 0 ? Array.from({ length: count }, (_, i) => Math.floor(i / cols) % model.config.numClasses) : null;
  const bar = new Progress(model.config.size, 'sample ');
  const t0 = performance.now();
  const x = await k.nn.samplePixelCNN(model, count, { seed, labels: labels ?? undefined, onRow: (r) => bar.update(r + 1, { row: r + 1 }) });
  await x.data();
  const seconds = (performance.now() - t0) / 1000;
  const img = k.scope(() => (model.config.bits === 1 ? x.mul(2).sub(1) : x.div(127.5).sub(1)));
  await writeGrid(file, img, cols);
  x.dispose();
  img.dispose();
  return { seconds, labels };
}

/** `kiln train-pixelcnn`. */
export async function trainPixelcnnCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln train-pixelcnn', argv, TRAIN_PIXELCNN_OPTIONS);
  const steps = a.number('steps', PIXELCNN_TRAIN_DEFAULTS.steps, { min: 1, integer: true });
  const d = trainPixelcnnDefaults(steps);
  const bits = Number(a.string('bits', d.bits)) as 1 | 8;
  const binarize = a.string<k.data.Binarization>('binarize', d.binarize as k.data.Binarization);
  if (bits === 8 && a.has('binarize')) throw new Error('--binarize applies to --bits 1 only (--bits 8 trains on the grey levels)');
  const train: PixelCNNTrainConfig = {
    steps,
    batchSize: a.number('batch', d.batch, { min: 1, integer: true }),
    lr: a.number('lr', d.lr, { above: 0 }),
    warmup: a.number('warmup', d.warmup, { min: 0, integer: true }),
    clip: a.number('clip', d.clip, { min: 0 }),
    seed: a.number('seed', d.seed, { min: 0, integer: true }),
    data: bits === 8 ? 'grey' : binarize,
    emaDecay: a.number('ema', d.ema, { min: 0, max: 1 }),
    softTargets: bits === 1 && binarize === 'dynamic' && a.string<'soft' | 'drawn'>('targets', d.targets as 'soft' | 'drawn') === 'soft',
  };
  if (a.has('targets') && train.data !== 'dynamic') throw new Error('--targets applies to --binarize dynamic only (the other pixels are not drawn)');
  if (train.emaDecay === 1) throw new Error("--ema expects a decay in [0, 1) (1 would never move the average from the initial weights), got '1'");
  const odd = (name: string, v: number) => {
    if (v % 2 === 0) throw new Error(`--${name} expects an odd integer ≥ 3, got '${v}'`);
    return v;
  };
  const config: k.nn.PixelCNNConfig = {
    size: 28,
    width: a.number('width', d.width, { min: 1, integer: true }),
    layers: a.number('layers', d.layers, { min: 1, integer: true }),
    kernel: odd('kernel', a.number('kernel', d.kernel, { min: 3, integer: true })),
    firstKernel: odd('first-kernel', a.number('first-kernel', d['first-kernel'], { min: 3, integer: true })),
    head: a.number('head', d.head, { min: 1, integer: true }),
    bits,
    numClasses: a.flag('classes') ? 10 : 0,
  };
  const dataLimit = a.number('data-limit', d['data-limit'], { min: 1, integer: true });
  const evalLimit = a.number('eval-limit', d['eval-limit'], { min: 1, integer: true });
  const nSamples = a.number('samples', d.samples, { min: 0, integer: true });
  const out = outputDir(a.string('out', d.out));
  const saveEvery = a.number('save-every', d['save-every'], { min: 1, integer: true });
  const info = await k.init();
  k.manualSeed(train.seed);
  const model = new k.nn.PixelCNN(config);
  const trainer = new PixelCNNTrainer(model, train);
  const ckpt = join(out, 'pixelcnn.safetensors');
  if (a.flag('resume')) {
    if (!existsSync(ckpt)) throw new Error(`--resume: ${ckpt} does not exist`);
    // checked from the header before any weight is loaded
    const meta = parseCheckpointMeta(ckpt, readHeaderSync(fs, ckpt).metadata);
    if (JSON.stringify(meta.pixelcnn) !== JSON.stringify(model.config)) throw new Error(`--resume: ${ckpt} holds PixelCNN ${JSON.stringify(meta.pixelcnn)}, not ${JSON.stringify(model.config)} (pass the same model options)`);
    if ((meta.train as PixelCNNTrainConfig | undefined)?.data !== train.data) throw new Error(`--resume: ${ckpt} was trained on '${(meta.train as PixelCNNTrainConfig | undefined)?.data}' pixels, not '${train.data}'`);
    await trainer.load(ckpt);
    console.log(`resumed ${ckpt} at step ${trainer.step}`);
  }
  const split = await k.data.loadMnist('train');
  const data = { ...split, count: Math.min(dataLimit, split.count) };
  const batches = new k.data.PixelBatches(data, train.batchSize, train.seed, train.data, train.softTargets);
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); PixelCNN ${JSON.stringify(model.config)}, ${(model.numParameters() / 1e3).toFixed(0)}k parameters; ` +
    `${train.data} pixels; ${steps} steps × batch ${train.batchSize}`);
  const lossFile = join(out, 'loss.csv');
  const writeMetrics = () => writeFileSync(lossFile, `step,nll\n${trainer.history.map((v, i) => `${i + 1},${v}`).join('\n')}\n`);
  const bar = new Progress(steps, 'train-pixelcnn ');
  const t0 = performance.now();
  const startStep = trainer.step;
  let saved = a.flag('resume') ? trainer.step : -1;
  model.train();
  try {
    while (trainer.step < steps) {
      const { x, y, target } = batches.at(trainer.step);
      try {
        const labels = config.numClasses ? y : null;
        await (target ? trainer.trainStep(x, labels, target) : trainer.trainStep(x, labels));
      } finally {
        x.dispose();
        y.dispose();
        target?.dispose();
      }
      const s = trainer.step;
      const recent = trainer.losses.slice(-50);
      bar.update(s - startStep, { step: s, nll: recent.length ? recent.reduce((p, v) => p + v, 0) / recent.length : undefined });
      if (s % saveEvery === 0 || s === steps) {
        await trainer.save(ckpt, { command: `kiln train-pixelcnn ${argv.join(' ')}`.trim() });
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
  model.eval();
  // the checkpoint keeps the trained weights; the test NLL and the samples are those of their average
  trainer.ema?.copyTo(model);
  const nll = await testNll(model, train, evalLimit);
  const report = { checkpoint: ckpt, step: trainer.step, trainSeconds: trainSec, ema: trainer.ema !== null, ...nll };
  const files = [ckpt, lossFile];
  if (nSamples > 0) {
    const file = join(out, 'samples.png');
    const s = await writeSamples(model, file, nSamples, train.seed);
    Object.assign(report, { samples: nSamples, sampleSeconds: s.seconds });
    files.push(file);
  }
  writeFileSync(join(out, 'nll.json'), `${JSON.stringify(report)}\n`);
  files.push(join(out, 'nll.json'));
  console.log(`trained ${steps - startStep} steps in ${fmtTime(trainSec)}; test NLL ${nll.natsPerImage.toFixed(2)} nats/image (${nll.bitsPerDim.toFixed(4)} bits/dim) on ${nll.images} images`);
  console.log(JSON.stringify(report));
  console.log(`wrote ${files.join(', ')}`);
}

/** The switch of `kiln eval` and `kiln sample` that uses the trained weights instead of their average. */
const RAW_OPTION: OptionSpec = { name: 'raw', help: 'use the trained weights instead of their EMA (checkpoints without an EMA have only those)' };

/** The options of `kiln eval` with a PixelCNN checkpoint. */
export const EVAL_PIXELCNN_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a PixelCNN checkpoint written by kiln train-pixelcnn, e.g. out/pixelcnn/pixelcnn.safetensors' },
  { name: 'limit', value: 'N', help: 'test images of the NLL (0: no NLL)' },
  { name: 'samples', value: 'N', help: 'also sample N images (a multiple of 10; conditional: N/10 per digit) and score them with LeNet against binarized digits (0: none)' },
  { name: 'seed', value: 'N', help: 'with --samples: batch b (digit b when conditional) of N/10 images is sampled with seed + b' },
  RAW_OPTION,
  JSON_OPTION,
];

/** The defaults of `kiln eval`'s options with a PixelCNN checkpoint (by option name). */
export function evalPixelcnnDefaults() {
  return { checkpoint: DEFAULT_CHECKPOINT, limit: 10000, samples: 0, seed: 0 } satisfies Defaults;
}

/** The help section of `kiln eval` with a PixelCNN checkpoint. */
export function evalPixelcnnSection(): HelpSection {
  return {
    heading: 'Options (a PixelCNN checkpoint: the exact test-set NLL and, with --samples, classifier-FID, Inception-style score and accuracy of samples, as JSON):',
    options: EVAL_PIXELCNN_OPTIONS,
    defaults: evalPixelcnnDefaults(),
  };
}

/** Loads a PixelCNN checkpoint (its EMA weights unless `ema` is false) with its training config. */
async function loadCheckpoint(path: string, ema: boolean): Promise<{ model: k.nn.PixelCNN; train: PixelCNNTrainConfig; step: number; ema: boolean }> {
  const { model, meta, ema: used } = await k.nn.loadPixelCNN(path, { ema });
  return { model, train: meta.train as PixelCNNTrainConfig, step: meta.step as number, ema: used };
}

/**
 * LeNet features of the first `count` digits of an MNIST split binarized as a PixelCNN's data (`format`;
 * dynamic: the fixed-seed binarization of the test set), as images in {−1, 1}: the reference of PixelCNN samples.
 */
async function binarizedFeatures(net: k.nn.LeNet, split: 'train' | 'test', format: k.data.PixelFormat, count: number): Promise<k.diffusion.FeatureSet> {
  const data = await k.data.loadMnist(split);
  const toUnit = function* () {
    for (const { x, y } of k.data.evalPixelBatches(data, format, 500, count)) {
      yield { x: k.scope(() => (format === 'grey' ? x.div(127.5).sub(1) : x.mul(2).sub(1))), y };
      x.dispose();
    }
  };
  return k.diffusion.featureSet(net, toUnit());
}

/**
 * LeNet scores of `n` PixelCNN samples (10 batches of n/10, batch b drawn with seed + b, digit b when
 * conditional) against the test digits in the model's pixel format, beside the floor of as many training
 * digits; and the seconds the sampling took per 100 images.
 */
export async function scorePixelcnnSamples(model: k.nn.PixelCNN, train: PixelCNNTrainConfig, n: number, seed: number): Promise<k.diffusion.SampleScores & { reference: string; sampleSeconds100: number }> {
  const net = await loadMetricsNet();
  const format = evalFormat(train);
  const real = await binarizedFeatures(net, 'test', format, 10000);
  const floor = await binarizedFeatures(net, 'train', format, n);
  const bar = new Progress(10, 'eval ');
  let seconds = 0;
  const sample = async (digit: number | null, count: number, s: number) => {
    const t0 = performance.now();
    const x = await k.nn.samplePixelCNN(model, count, { seed: s, labels: digit === null ? undefined : Array<number>(count).fill(digit) });
    await x.data();
    seconds += (performance.now() - t0) / 1000;
    const img = k.scope(() => (model.config.bits === 1 ? x.mul(2).sub(1) : x.div(127.5).sub(1)));
    x.dispose();
    return img;
  };
  const r = await k.diffusion.evaluateSamples(sample, { perClass: n / 10, conditional: model.config.numClasses > 0, seed, net, real, floor }, (i) => bar.update(i));
  const reference = format === 'grey' ? 'grey test digits' : `test digits binarized as the training data (${format === 'dynamic' ? `Bernoulli, fixed seed ${k.data.TEST_BINARIZATION_SEED}` : 'threshold'})`;
  return { ...r, reference, sampleSeconds100: (seconds / n) * 100 };
}

/** `kiln eval` on a PixelCNN checkpoint: the exact NLL of the test set (binarized as in training) and, with --samples, LeNet scores of samples, as JSON. */
export async function evalPixelcnnCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln eval', argv, EVAL_PIXELCNN_OPTIONS);
  const o = evalPixelcnnDefaults();
  const path = a.string('checkpoint', o.checkpoint);
  const limit = a.number('limit', o.limit, { min: 0, integer: true });
  const samples = a.number('samples', o.samples, { min: 0, integer: true });
  const seed = a.number('seed', o.seed, { min: 0, integer: true });
  if (!limit && !samples) throw new Error('kiln eval: --limit 0 and --samples 0 leave nothing to evaluate');
  if (samples && (samples % 10 !== 0 || samples < 20)) throw new Error(`kiln eval: --samples expects a multiple of 10 ≥ 20 (10 batches), got '${samples}'`);
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  await k.init();
  const { model, train, step, ema } = await loadCheckpoint(path, !a.flag('raw'));
  const report: Record<string, unknown> = { checkpoint: path, step, ema };
  if (limit) {
    const t0 = performance.now();
    Object.assign(report, await testNll(model, train, limit), { seconds: (performance.now() - t0) / 1000 });
  }
  if (samples) Object.assign(report, await scorePixelcnnSamples(model, train, samples, seed));
  const json = JSON.stringify(report);
  console.log(json);
  if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
}

/** The options of `kiln sample` with a PixelCNN checkpoint. */
export const SAMPLE_PIXELCNN_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a PixelCNN checkpoint written by kiln train-pixelcnn' },
  { name: 'count', value: 'N', help: 'images, 10 a row (conditional: row i shows digit i mod 10)' },
  { name: 'seed', value: 'N', help: 'seed of the sampler' },
  RAW_OPTION,
  { name: 'out', value: 'DIR', help: "where samples.png goes: the checkpoint's folder" },
];

/** The defaults of `kiln sample`'s options with the PixelCNN checkpoint `checkpoint` (by option name). */
export function samplePixelcnnDefaults(checkpoint = DEFAULT_CHECKPOINT) {
  return { checkpoint: DEFAULT_CHECKPOINT, count: 100, seed: 0, out: dirname(checkpoint) } satisfies Defaults;
}

/** The help section of `kiln sample` with a PixelCNN checkpoint. */
export function samplePixelcnnSection(a: Args): HelpSection {
  return { heading: 'Options (a PixelCNN checkpoint: 784 sequential steps, all images at once):', options: SAMPLE_PIXELCNN_OPTIONS, defaults: samplePixelcnnDefaults(a.string('checkpoint', DEFAULT_CHECKPOINT)) };
}

/** `kiln sample` on a PixelCNN checkpoint: a grid of samples and the time they took, as JSON. */
export async function samplePixelcnnCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln sample', argv, SAMPLE_PIXELCNN_OPTIONS);
  const path = a.string('checkpoint', samplePixelcnnDefaults().checkpoint);
  const d = samplePixelcnnDefaults(path);
  const count = a.number('count', d.count, { min: 1, integer: true });
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const out = outputDir(a.string('out', d.out));
  await k.init();
  const { model, ema } = await loadCheckpoint(path, !a.flag('raw'));
  const file = join(out, 'samples.png');
  const s = await writeSamples(model, file, count, seed);
  console.log(JSON.stringify({ checkpoint: path, samples: count, seed, ema, seconds: s.seconds, file }));
}
