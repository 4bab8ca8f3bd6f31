/**
 * `kiln train-vae`: trains the MNIST KL-VAE (and a PatchGAN discriminator from `--disc-start` on) that
 * `kiln train --latent` builds latent diffusion on, with resumable checkpoints, a metrics CSV,
 * reconstructions, prior samples and latent interpolations (linear and slerp) as PNG strips, and a
 * test-set reconstruction report. `kiln sample` and `kiln eval` given a VAE checkpoint land here too.
 */
import * as fs from 'node:fs';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as k from '../index.js';
import { parseCheckpointMeta } from '../nn/checkpoint.js';
import { readHeaderSync } from '../nn/safetensors.js';
import { VAE_METRICS, VAE_TRAIN_DEFAULTS, VAETrainer, type Precision, type VAETrainConfig } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { DATA_LIMIT_OPTION, DEFAULT_CHECKPOINT, diverged, JSON_OPTION, loadMetricsNet, MNIST_TRAIN_IMAGES, outputDir, outputFile, outputOptions, PRECISION_OPTION, realFeatures, scalerSummary, writeGrid } from './common.js';
import { command, helpFor, helpText, type Command, type Defaults, type HelpSection } from './help.js';
import { fmtTime, Progress } from './progress.js';

/**
 * The `format` field of a kiln checkpoint's metadata, read from the safetensors header only but
 * validated like `k.load` validates it (null if the file has no kiln metadata); a file that is not a
 * valid safetensors file (truncated, a directory, …) is an error naming it and the problem.
 */
export function checkpointFormat(path: string): string | null {
  const { metadata } = readHeaderSync(fs, path);
  if (!Object.hasOwn(metadata, 'kiln')) return null;
  const meta = parseCheckpointMeta(path, metadata);
  return typeof meta.format === 'string' ? meta.format : null;
}

/** True when `path` is a VAE checkpoint written by `kiln train-vae` (false when it does not exist; an invalid file is an error). */
export function isVAECheckpoint(path: string): boolean {
  return existsSync(path) && checkpointFormat(path) === k.nn.VAE_CHECKPOINT_FORMAT;
}

/** What `kiln train-vae` does, in one line. */
const TRAIN_VAE_SUMMARY = 'train the KL-VAE (+ PatchGAN discriminator) that latent diffusion uses, on MNIST';

/** The share of the steps after which the discriminator switches on, unless --disc-start says otherwise. */
const DISC_START = 2 / 3;

/** The options of `kiln train-vae`: the parser accepts these, and its help lists them. */
export const TRAIN_VAE_OPTIONS: readonly OptionSpec[] = [
  { name: 'steps', value: 'N', help: 'training steps' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'Adam learning rate after the warmup' },
  { name: 'warmup', value: 'N', help: `linear learning-rate warmup steps: min(${VAE_TRAIN_DEFAULTS.warmup}, steps / 10)` },
  { name: 'seed', value: 'N', help: 'seed of the initial weights, the batches and the noise' },
  { name: 'widths', value: 'C,C,…', help: 'channels per level; each level after the first halves the resolution' },
  { name: 'patch', value: 'N', help: 'pixel-unshuffle stem factor; latent side = 28 / (patch · 2^(levels − 1))' },
  { name: 'latent-channels', value: 'N', help: 'channels of the latent image' },
  { name: 'depth', value: 'N', help: 'residual blocks per level' },
  { name: 'reconstruction', choices: ['l1', 'l2'], help: 'reconstruction likelihood: Laplace (l1) or Gaussian (l2)' },
  { name: 'fixed-logvar', help: 'keep the output log-variance at 0 instead of learning it' },
  { name: 'kl-weight', value: 'X', help: 'β of the KL term (1: the plain negative ELBO)' },
  { name: 'disc-start', value: 'N', help: 'step at which the discriminator and the adversarial term switch on (≥ --steps: never)' },
  { name: 'disc-weight', value: 'X', help: 'factor on the adaptive weight of the adversarial term' },
  { name: 'disc-loss', choices: ['hinge', 'non-saturating'], help: 'loss of the discriminator' },
  { name: 'disc-width', value: 'N', help: 'channels of the PatchGAN discriminator' },
  { name: 'disc-layers', value: 'N', help: 'stride-2 layers of the PatchGAN discriminator' },
  { name: 'r1', value: 'G', help: 'R1 penalty weight γ on the discriminator' },
  { name: 'disc-lr', value: 'X', help: 'learning rate of the discriminator (that of --lr unless given)' },
  DATA_LIMIT_OPTION,
  { name: 'eval-limit', value: 'N', help: 'test digits of the reconstruction report at the end' },
  { name: 'grad-checkpoint', help: 'recompute each residual block\'s activations in the backward pass instead of keeping them: less memory, slower steps' },
  PRECISION_OPTION,
  ...outputOptions('vae.safetensors, loss.csv, recon.png, samples.png and interp.png', 'vae.safetensors'),
];

/**
 * The defaults of `kiln train-vae`'s options (by option name); the warmup and the discriminator's start
 * follow the run's length `steps`, the discriminator's learning rate the VAE's `lr`.
 */
export function trainVaeDefaults(steps: number = VAE_TRAIN_DEFAULTS.steps, lr: number = VAE_TRAIN_DEFAULTS.lr) {
  const d = VAE_TRAIN_DEFAULTS, v = k.nn.VAE_DEFAULTS;
  return {
    steps: d.steps,
    batch: d.batchSize,
    lr: d.lr,
    warmup: Math.min(d.warmup, Math.floor(steps / 10)),
    seed: d.seed,
    widths: v.widths,
    patch: v.patch,
    'latent-channels': v.latentChannels,
    depth: v.depth,
    reconstruction: d.reconstruction,
    'kl-weight': d.klWeight,
    'disc-start': Math.floor(DISC_START * steps),
    'disc-weight': d.discWeight,
    'disc-loss': d.discLoss,
    'disc-width': 16,
    'disc-layers': 2,
    r1: d.r1Gamma,
    'disc-lr': lr,
    'data-limit': MNIST_TRAIN_IMAGES,
    'eval-limit': 1000,
    out: 'out/vae',
    'save-every': 250,
    precision: 'f32' as Precision,
  } satisfies Defaults;
}

/** `kiln train-vae` as the command line lists and runs it. */
export const TRAIN_VAE: Command = command({
  name: 'train-vae',
  summary: TRAIN_VAE_SUMMARY,
  help: async (argv) => helpFor('kiln train-vae', argv, TRAIN_VAE_OPTIONS, (a) => {
    const steps = a.number('steps', VAE_TRAIN_DEFAULTS.steps, { min: 1, integer: true });
    const defaults = trainVaeDefaults(steps, a.number('lr', VAE_TRAIN_DEFAULTS.lr, { min: 0 }));
    return helpText({
      title: `kiln train-vae — ${TRAIN_VAE_SUMMARY}`,
      usage: 'Usage: kiln train-vae [options]',
      notes: ['Then kiln train --latent DIR/vae.safetensors trains a diffusion model on its latents.'],
      sections: [{ heading: 'Options:', options: TRAIN_VAE_OPTIONS, defaults }],
    });
  }),
  main: (argv) => trainVaeCommand(argv),
});

/** `kiln train-vae`. */
export async function trainVaeCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln train-vae', argv, TRAIN_VAE_OPTIONS);
  const base = trainVaeDefaults();
  const steps = a.number('steps', base.steps, { min: 1, integer: true });
  const lr = a.number('lr', base.lr, { min: 0 });
  const d = trainVaeDefaults(steps, lr);
  const train: VAETrainConfig = {
    steps,
    batchSize: a.number('batch', d.batch, { min: 1, integer: true }),
    lr,
    warmup: a.number('warmup', d.warmup, { min: 0, integer: true }),
    reconstruction: a.string<k.nn.Reconstruction>('reconstruction', d.reconstruction),
    klWeight: a.number('kl-weight', d['kl-weight'], { min: 0 }),
    discStart: a.number('disc-start', d['disc-start'], { min: 0, integer: true }),
    discWeight: a.number('disc-weight', d['disc-weight'], { min: 0 }),
    discLoss: a.string<k.nn.GanLoss>('disc-loss', d['disc-loss']),
    r1Gamma: a.number('r1', d.r1, { min: 0 }),
    discLr: a.number('disc-lr', d['disc-lr'], { min: 0 }),
    seed: a.number('seed', d.seed, { min: 0, integer: true }),
    precision: a.string<Precision>('precision', d.precision),
  };
  const vaeConfig: Partial<k.nn.VAEConfig> = {
    widths: a.ints('widths', d.widths, 1, 4096),
    patch: a.number('patch', d.patch, { min: 1, integer: true }),
    latentChannels: a.number('latent-channels', d['latent-channels'], { min: 1, integer: true }),
    depth: a.number('depth', d.depth, { min: 1, integer: true }),
    learnLogvar: !a.flag('fixed-logvar'),
  };
  const disc: Partial<k.nn.PatchDiscriminatorConfig> = { width: a.number('disc-width', d['disc-width'], { min: 1, integer: true }), layers: a.number('disc-layers', d['disc-layers'], { min: 1, integer: true }) };
  const dataLimit = a.number('data-limit', d['data-limit'], { min: 1, integer: true });
  const evalLimit = a.number('eval-limit', d['eval-limit'], { min: 1, integer: true });
  const out = a.string('out', d.out);
  const saveEvery = a.number('save-every', d['save-every'], { min: 1, integer: true });
  outputDir(out);
  const info = await k.init();
  k.manualSeed(train.seed);
  const vae = new k.nn.VAE(vaeConfig);
  vae.gradientCheckpointing = a.flag('grad-checkpoint');
  const trainer = new VAETrainer(vae, train, disc);
  const ckpt = join(out, 'vae.safetensors');
  if (a.flag('resume')) {
    if (!existsSync(ckpt)) throw new Error(`--resume: ${ckpt} does not exist`);
    const meta = await trainer.load(ckpt);
    if (JSON.stringify(meta.vae) !== JSON.stringify(vae.config)) throw new Error(`--resume: ${ckpt} holds VAE ${JSON.stringify(meta.vae)}, not ${JSON.stringify(vae.config)} (pass the same model options)`);
    console.log(`resumed ${ckpt} at step ${trainer.step}`);
  }
  const split = await k.data.loadMnist('train');
  const data = { ...split, count: Math.min(dataLimit, split.count) };
  const dParams = trainer.discriminator?.numParameters() ?? 0;
  console.log(`adapter: ${info.driver} (${info.description || info.vendor}); VAE ${JSON.stringify(vae.config)}, ${(vae.numParameters() / 1e3).toFixed(0)}k parameters, latents ${JSON.stringify(vae.latentShape)}; ` +
    `${trainer.discriminator ? `PatchGAN ${(dParams / 1e3).toFixed(0)}k parameters from step ${train.discStart}` : 'no discriminator'}; ${steps} steps × batch ${train.batchSize}${train.precision === 'f16' ? ', mixed precision (f16)' : ''}`);
  const writeMetrics = () => writeFileSync(join(out, 'loss.csv'), `step,${VAE_METRICS.join(',')}\n${trainer.history.map((r, i) => `${i + 1},${r.join(',')}`).join('\n')}\n`);
  const bar = new Progress(steps, 'train-vae ');
  const t0 = performance.now();
  const startStep = trainer.step;
  vae.train();
  const batches = new k.data.StepBatches(data, train.batchSize, train.seed);
  let saved = a.flag('resume') ? trainer.step : -1;
  try {
    while (trainer.step < steps) {
      const { x, y } = batches.at(trainer.step);
      try {
        await trainer.trainStep(x);
      } finally {
        x.dispose();
        y.dispose();
      }
      const s = trainer.step;
      const recent = trainer.history.slice(-50);
      const avg = (i: number) => (recent.length ? recent.reduce((p, r) => p + r[i]!, 0) / recent.length : undefined);
      bar.update(s - startStep, { step: s, rec: avg(1), kl: avg(2), ...(s > train.discStart && trainer.discriminator ? { gan: avg(4), w: avg(5), disc: avg(6) } : {}) });
      if (s % saveEvery === 0 || s === steps) {
        await trainer.save(ckpt, { command: `kiln train-vae ${argv.join(' ')}`.trim() });
        saved = s;
        writeMetrics();
      }
    }
    await trainer.flush();
  } catch (e) {
    if (!(e instanceof k.train.NonFiniteLossError)) throw e;
    writeMetrics();
    throw diverged(e, ckpt, saved, join(out, 'loss.csv'));
  }
  writeMetrics();
  const trainSec = (performance.now() - t0) / 1000;
  vae.eval();
  const files = await writeVaePictures(vae, out, train.seed);
  const r = await reconstructionReport(vae, evalLimit, train.reconstruction);
  console.log(`trained ${steps - startStep} steps in ${fmtTime(trainSec)}; test reconstruction (${r.count} digits, posterior mean): L1 ${r.l1.toFixed(4)}, MSE ${r.mse.toFixed(4)}, PSNR ${r.psnr.toFixed(2)} dB; ELBO ${r.elbo.toFixed(1)} nats/image (KL ${r.kl.toFixed(1)})`);
  if (trainer.scaler) console.log(await scalerSummary(trainer.scaler, 'VAE'));
  // the discriminator's first update is at step discStart (0-based), step discStart + 1 counted from 1
  if (trainer.scalerDisc) console.log(await scalerSummary(trainer.scalerDisc, 'discriminator', train.discStart + 1));
  console.log(`wrote ${ckpt}, ${join(out, 'loss.csv')}, ${files.join(', ')}`);
}

/** Reconstruction figures of a VAE on the first `count` test digits. */
export interface ReconstructionReport {
  count: number;
  /** Mean |x − x̂| per pixel (pixels in [−1, 1]), decoding the posterior mean. */
  l1: number;
  /** Mean (x − x̂)² per pixel. */
  mse: number;
  /** 10·log10(range² / MSE) with the pixel range 2. */
  psnr: number;
  /** One-sample ELBO per image in nats (the VAE's own likelihood), and its KL part. */
  elbo: number;
  kl: number;
}

/** Reconstruction error and ELBO (under the `reconstruction` likelihood the VAE was trained with) on the first `count` test digits. */
export async function reconstructionReport(vae: k.nn.VAE, count: number, reconstruction: k.nn.Reconstruction = 'l1'): Promise<ReconstructionReport> {
  const test = await k.data.loadMnist('test');
  let l1 = 0, se = 0, elbo = 0, kl = 0, n = 0, px = 0;
  for (const { x, y } of k.data.batches(test, { batchSize: 250, limit: count })) {
    const v = await k.noGrad(() => k.scope(async () => {
      const { mean, logvar } = vae.encode(x);
      const e = vae.decode(mean).sub(x);
      const t = k.nn.vaeLoss(x, vae.decode(k.nn.reparameterize(mean, logvar)), mean, logvar, vae.logvar, { reconstruction });
      return Array.from(await k.stack([e.abs().sum(), e.square().sum(), t.elbo.mul(x.shape[0]!), t.kl.mul(x.shape[0]!)]).data());
    }));
    l1 += v[0]!;
    se += v[1]!;
    elbo += v[2]!;
    kl += v[3]!;
    n += x.shape[0]!;
    px += x.size;
    x.dispose();
    y.dispose();
  }
  const mse = se / px;
  return { count: n, l1: l1 / px, mse, psnr: 10 * Math.log10(4 / mse), elbo: elbo / n, kl: kl / n };
}

/**
 * Writes recon.png (rows of test digits over their reconstructions), samples.png (decoded prior
 * samples) and interp.png (pairs of test digits interpolated in latent space: a linear row, then a
 * slerp row, per pair). Returns the files written.
 */
export async function writeVaePictures(vae: k.nn.VAE, out: string, seed = 0): Promise<string[]> {
  const test = await k.data.loadMnist('test');
  const files: string[] = [];
  const write = async (name: string, x: k.Tensor, cols: number) => {
    const file = join(out, name);
    await writeGrid(file, x, cols);
    files.push(file);
  };
  const { x } = k.data.batches(test, { batchSize: 20 }).next().value!;
  const recon = k.noGrad(() => vae.forward(x, { sample: false }).recon);
  const rows = k.scope(() => k.stack([x.slice(0, 0, 10), recon.slice(0, 0, 10), x.slice(0, 10, 20), recon.slice(0, 10, 20)]).reshape([40, ...x.shape.slice(1)]));
  await write('recon.png', rows, 10);
  k.manualSeed(seed + 1);
  const prior = vae.sample(100);
  await write('samples.png', prior, 10);
  // pairs of different test digits (indices chosen to be different classes)
  const pairs: [number, number][] = [[0, 1], [2, 3], [4, 7], [5, 6]];
  const ends = k.noGrad(() => vae.encode(x).mean);
  const strips: k.Tensor[] = [];
  for (const [i, j] of pairs) {
    for (const mode of ['linear', 'slerp'] as const) {
      const za = ends.slice(0, i, i + 1), zb = ends.slice(0, j, j + 1);
      const path = await k.nn.interpolateLatents(za, zb, 10, mode);
      strips.push(k.noGrad(() => vae.decode(path.reshape([10, ...vae.latentShape]))));
      path.dispose();
    }
  }
  await write('interp.png', k.cat(strips, 0), 10);
  for (const t of [x, recon, rows, prior, ends, ...strips]) t.dispose();
  return files;
}

/** The options of `kiln eval` with a VAE checkpoint: the parser accepts these, and its help lists them. */
export const EVAL_VAE_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a VAE checkpoint written by kiln train-vae, e.g. out/vae/vae.safetensors' },
  { name: 'limit', value: 'N', help: 'test digits to reconstruct' },
  { name: 'samples', value: 'N', help: 'prior samples to score' },
  { name: 'seed', value: 'N', help: 'seed of the prior samples' },
  JSON_OPTION,
];

/** The defaults of `kiln eval`'s options with a VAE checkpoint (by option name). */
export function evalVaeDefaults() {
  return { checkpoint: DEFAULT_CHECKPOINT, limit: 2000, samples: 1000, seed: 0 } satisfies Defaults;
}

/** The help section of `kiln eval` with a VAE checkpoint. */
export function evalVaeSection(): HelpSection {
  return { heading: 'Options (a VAE checkpoint: reconstruction error and LeNet scores):', options: EVAL_VAE_OPTIONS, defaults: evalVaeDefaults() };
}

/**
 * `kiln eval` on a VAE checkpoint: reconstruction error, LeNet accuracy and classifier-FID of reconstructions,
 * and classifier-FID, Inception-style score and the time of 100 of prior samples.
 */
export async function evalVaeCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln eval', argv, EVAL_VAE_OPTIONS);
  const o = evalVaeDefaults();
  const path = a.string('checkpoint', o.checkpoint);
  const limit = a.number('limit', o.limit, { min: 2, integer: true });
  const nPrior = a.number('samples', o.samples, { min: 2, integer: true });
  const seed = a.number('seed', o.seed, { min: 0, integer: true });
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  await k.init();
  const { vae, meta } = await k.nn.loadVAE(path);
  const t0 = performance.now();
  const reconstruction = (meta.train as VAETrainConfig | undefined)?.reconstruction ?? 'l1';
  const rec = await reconstructionReport(vae, limit, reconstruction);
  const net = await loadMetricsNet();
  const test = await k.data.loadMnist('test');
  const feats: number[] = [], priorFeats: number[] = [], priorProbs: number[] = [];
  let correct = 0, n = 0;
  for (const { x, y } of k.data.batches(test, { batchSize: 250, limit })) {
    const r = k.noGrad(() => vae.forward(x, { sample: false }).recon.clamp(-1, 1));
    const c = await k.diffusion.classify(net, r);
    const labels = await y.data();
    feats.push(...c.feats);
    c.pred.forEach((p, i) => (correct += p === labels[i] ? 1 : 0));
    n += x.shape[0]!;
    for (const t of [x, y, r]) t.dispose();
  }
  k.manualSeed(seed);
  for (let done = 0; done < nPrior; done += 250) {
    const s = vae.sample(Math.min(250, nPrior - done));
    const c = await k.diffusion.classify(net, k.scope(() => s.clamp(-1, 1)));
    priorFeats.push(...c.feats);
    priorProbs.push(...c.probs);
    s.dispose();
  }
  // 100 prior samples (one decoder pass), timed after the loop above compiled the pipelines
  const t1 = performance.now();
  const hundred = vae.sample(100);
  await hundred.data();
  hundred.dispose();
  const sampleSeconds100 = (performance.now() - t1) / 1000;
  const isPrior = k.diffusion.inceptionScore(priorProbs, nPrior, 10);
  const d = net.config.hidden;
  const real = await realFeatures(net, 'test', 10000);
  const floor = await realFeatures(net, 'train', n);
  const floorPrior = await realFeatures(net, 'train', nPrior);
  const fid = k.diffusion.frechetDistance(k.diffusion.featureStats(feats, n, d), real.stats);
  const fidFloor = k.diffusion.frechetDistance(floor.stats, real.stats);
  const fidPrior = k.diffusion.frechetDistance(k.diffusion.featureStats(priorFeats, nPrior, d), real.stats);
  const fidPriorFloor = k.diffusion.frechetDistance(floorPrior.stats, real.stats);
  const rows: [string, string][] = [
    ['reconstruction', `${n} test digits (posterior mean): L1 ${rec.l1.toFixed(4)}, MSE ${rec.mse.toFixed(4)}, PSNR ${rec.psnr.toFixed(2)} dB`],
    ['ELBO', `${rec.elbo.toFixed(1)} nats/image (KL ${rec.kl.toFixed(1)}; ${reconstruction === 'l1' ? 'Laplace' : 'Gaussian'} likelihood with the VAE's output log-variance)`],
    ['LeNet accuracy', `${((100 * correct) / n).toFixed(2)}% on the reconstructions`],
    ['classifier-FID', `${fid.toFixed(2)} reconstructions   (real train vs real test: ${fidFloor.toFixed(2)})`],
    ['prior samples FID', `${fidPrior.toFixed(2)} (${nPrior} decoded N(0, I) latents; floor ${fidPriorFloor.toFixed(2)})`],
    ['prior samples score', `${isPrior.toFixed(2)} Inception-style (real: ${k.diffusion.inceptionScore(floorPrior.probs, floorPrior.count, 10).toFixed(2)}; max 10)`],
    ['100 prior samples', `${sampleSeconds100.toFixed(2)} s`],
  ];
  for (const [name, v] of rows) console.log(`${name.padEnd(20)}${v}`);
  const json = JSON.stringify({ checkpoint: path, step: meta.step, ...rec, accuracy: correct / n, fid, fidFloor, fidPrior, fidPriorFloor, inceptionScorePrior: isPrior, sampleSeconds100, seconds: (performance.now() - t0) / 1000 });
  console.log(json);
  if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
}

/** The options of `kiln sample` with a VAE checkpoint: the parser accepts these, and its help lists them. */
export const SAMPLE_VAE_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a VAE checkpoint written by kiln train-vae, e.g. out/vae/vae.safetensors' },
  { name: 'seed', value: 'N', help: 'seed of the prior samples' },
  { name: 'out', value: 'DIR', help: "where samples.png, interp.png and recon.png go: the checkpoint's folder" },
];

/** The defaults of `kiln sample`'s options with the VAE checkpoint `checkpoint` (by option name). */
export function sampleVaeDefaults(checkpoint = DEFAULT_CHECKPOINT) {
  return { checkpoint: DEFAULT_CHECKPOINT, seed: 0, out: dirname(checkpoint) } satisfies Defaults;
}

/** The help section of `kiln sample` with a VAE checkpoint (the --checkpoint given sets the --out shown). */
export function sampleVaeSection(a: Args): HelpSection {
  return { heading: 'Options (a VAE checkpoint: prior samples, reconstructions and interpolations):', options: SAMPLE_VAE_OPTIONS, defaults: sampleVaeDefaults(a.string('checkpoint', DEFAULT_CHECKPOINT)) };
}

/** `kiln sample` on a VAE checkpoint: writes prior samples, reconstructions and interpolation strips. */
export async function sampleVaeCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln sample', argv, SAMPLE_VAE_OPTIONS);
  const path = a.string('checkpoint', sampleVaeDefaults().checkpoint);
  const d = sampleVaeDefaults(path);
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const out = outputDir(a.string('out', d.out));
  await k.init();
  const { vae } = await k.nn.loadVAE(path);
  const files = await writeVaePictures(vae, out, seed);
  console.log(`wrote ${files.join(', ')}`);
}
