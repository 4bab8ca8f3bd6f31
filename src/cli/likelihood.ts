/**
 * `kiln eval --nll N` on a diffusion checkpoint: the log-likelihood of N test digits under the model's
 * probability-flow ODE (`k.diffusion.logLikelihood`, Hutchinson's divergence, fixed RK4 steps), as nats per
 * image in the model's [−1, 1] pixel space and as bits per dimension of the 8-bit data. The digits are
 * dequantized uniformly: pixel v becomes x = (v + u − ½)/127.5 − 1 with u ~ U[0, 1), a cell of width 1/127.5
 * centred on the value the model was trained on, so −log P(v) ≤ −E log p(x) + 784·ln 127.5 (variational
 * dequantization's bound) and bits/dim = −log p(x)/(784·ln 2) + log₂ 127.5.
 */
import { writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { Args, type OptionSpec } from './args.js';
import { DEFAULT_CHECKPOINT, JSON_OPTION, outputFile } from './common.js';
import type { Defaults, HelpSection } from './help.js';
import { Progress } from './progress.js';

/**
 * The times of the flow's ODE: from 0.001 to 0.99 (the prior N(0, t²) at t = 0.99 misses the 0.01·x0 left of
 * the data by < 0.05 nats/image), in segments a decade long each, integrated with as many RK4 steps each: the
 * field changes fastest near the data, where uniform steps over [0.001, 0.99] would be 50 times too coarse.
 */
export const FLOW_SEGMENTS: readonly number[] = [1e-3, 1e-2, 1e-1, 0.99];

/** The options of `kiln eval --nll` with a diffusion checkpoint. */
export const EVAL_NLL_OPTIONS: readonly OptionSpec[] = [
  { name: 'checkpoint', value: 'FILE', help: 'a pixel-space checkpoint of kiln train (objective flow, the default)' },
  { name: 'nll', value: 'N', help: 'the probability-flow log-likelihood of the first N test digits instead of sample scores' },
  { name: 'nll-steps', value: 'N', help: `RK4 steps of the probability-flow ODE per segment of times ${FLOW_SEGMENTS.join(', ')} (4 network evaluations each, with a backward pass)` },
  { name: 'nll-batch', value: 'N', help: 'digits integrated at once (the probes, and so the estimate, depend on it)' },
  { name: 'seed', value: 'N', help: 'seed of the dequantization noise and of the Hutchinson probes' },
  { name: 'raw', help: 'the trained weights instead of their EMA' },
  JSON_OPTION,
];

/** The defaults of `kiln eval --nll`'s options (by option name). */
export function evalNllDefaults() {
  return { checkpoint: DEFAULT_CHECKPOINT, nll: 100, 'nll-steps': 8, 'nll-batch': 50, seed: 0 } satisfies Defaults;
}

/** The help section of `kiln eval --nll` with a diffusion checkpoint. */
export function evalNllSection(): HelpSection {
  return {
    heading: 'Options (a diffusion checkpoint with --nll N: probability-flow NLL of dequantized test digits, nats/image and bits/dim, as JSON):',
    options: EVAL_NLL_OPTIONS,
    defaults: evalNllDefaults(),
  };
}

/** Whether a `kiln eval` command line asks for the likelihood (--nll) rather than sample scores. */
export function wantsNll(argv: readonly string[]): boolean {
  return argv.includes('--nll');
}

/** Log₂ of the width of a dequantization cell's inverse: data in [−1, 1] from 8-bit levels, 127.5 per unit. */
const LOG2_LEVELS_PER_UNIT = Math.log2(127.5);


/**
 * log p(x) at the first time of `segments` (nats per point) by the probability-flow ODE of `process`, integrated
 * segment by segment with `steps` RK4 steps each (`k.diffusion.logLikelihood` on each; the points reached at the
 * end of one segment start the next, and the prior is taken at the last time).
 */
export async function segmentedLogLikelihood(o: Omit<k.diffusion.LikelihoodOptions, 'eps' | 'T'>, segments: readonly number[]): Promise<number[]> {
  if (segments.length < 2 || segments.some((t, i) => i > 0 && !(t > segments[i - 1]!))) throw new Error(`segmentedLogLikelihood: segments must be at least two increasing times, got [${segments.join(', ')}]`);
  let x = o.x;
  let total: number[] | null = null;
  try {
    for (let i = 0; i + 1 < segments.length; i++) {
      const last = i + 2 === segments.length;
      let end: Float32Array | Float64Array | null = null;
      // the segments before the last take their end points instead of a prior
      const prior = last ? o.priorLogProb : (xT: Float32Array | Float64Array, d: number) => ((end = xT.slice()), Array<number>(xT.length / d).fill(0));
      const r = await k.diffusion.logLikelihood({ ...o, x, eps: segments[i], T: segments[i + 1], priorLogProb: prior });
      total = total ? total.map((v, j) => v + r.logp[j]!) : r.logp;
      if (x !== o.x) x.dispose();
      if (!last) x = k.tensor(end!, { shape: o.x.shape });
    }
  } finally {
    if (x !== o.x) x.dispose();
  }
  return total!;
}

/**
 * Rectified flow x_t = (1 − t)·x0 + t·z as the SDE the likelihood integrates: f(t) = −1/(1 − t) and
 * g²(t) = d(t²)/dt − 2f·t² = 2t/(1 − t), whose probability-flow drift f·x − ½g²·score equals the flow's velocity.
 */
export function flowAsSde(): k.diffusion.LikelihoodOptions['process'] {
  const flow = new k.diffusion.RectifiedFlow();
  return {
    kind: flow.kind,
    variancePreserving: flow.variancePreserving,
    at: (t) => flow.at(t),
    driftCoef: (t) => -1 / (1 - t),
    diffusion: (t) => Math.sqrt((2 * t) / (1 - t)),
  };
}

/** The NLL of a set of digits: mean and standard error over them. */
export interface NllSummary {
  images: number;
  /** −E log p(x) in nats per image, x in the model's [−1, 1] space (a density: it may be negative). */
  natsPerImage: number;
  /** The standard error of `natsPerImage` over the images (Hutchinson's noise included). */
  natsStdErr: number;
  /** Bits per dimension of the 8-bit digits (the dequantization bound). */
  bitsPerDim: number;
  bitsStdErr: number;
}

/** Mean and standard error of per-image log-densities (nats, in [−1, 1] space of `dims` pixels) as an `NllSummary`. */
export function summarizeNll(logp: readonly number[], dims: number): NllSummary {
  const n = logp.length;
  if (!n) throw new Error('summarizeNll: no log-densities');
  const mean = logp.reduce((s, v) => s + v, 0) / n;
  const sd = n > 1 ? Math.sqrt(logp.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  const se = sd / Math.sqrt(n);
  const perDim = dims * Math.LN2;
  return { images: n, natsPerImage: -mean, natsStdErr: se, bitsPerDim: -mean / perDim + LOG2_LEVELS_PER_UNIT, bitsStdErr: se / perDim };
}

/** `kiln eval --nll N` on a diffusion checkpoint: the probability-flow NLL of the first N test digits, as JSON. */
export async function evalNllCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln eval', argv, EVAL_NLL_OPTIONS);
  const d = evalNllDefaults();
  const path = a.string('checkpoint', d.checkpoint);
  const count = a.number('nll', d.nll, { min: 2, integer: true });
  const steps = a.number('nll-steps', d['nll-steps'], { min: 1, integer: true });
  const batch = a.number('nll-batch', d['nll-batch'], { min: 1, integer: true });
  const seed = a.number('seed', d.seed, { min: 0, integer: true });
  const jsonFile = a.has('json') ? outputFile(a.string('json', ''), '--json') : '';
  await k.init();
  const { model, meta, latent, student } = await k.diffusion.loadDenoiser(path, { ema: !a.flag('raw') });
  const objective = (meta.train as { objective?: string } | undefined)?.objective;
  if (latent) throw new Error(`kiln eval --nll: ${path} is a latent model; the likelihood is computed for pixel-space checkpoints (its latents' density is not the digits')`);
  if (student) throw new Error(`kiln eval --nll: ${path} is a ${student.method} student of kiln distill, which does not learn a score; pass a checkpoint of kiln train`);
  if (objective !== 'flow') throw new Error(`kiln eval --nll: the probability-flow likelihood is implemented for the flow objective (kiln train's default); ${path} was trained with '${objective}'`);
  if (model.config.text) throw new Error(`kiln eval --nll: ${path} is text-conditioned; the likelihood takes class models`);
  const test = await k.data.loadMnist('test');
  const n = Math.min(count, test.count), dims = test.rows * test.cols;
  const nullClass = model.config.numClasses;
  k.manualSeed(seed);
  const generator = new k.Generator(seed);
  const logp: number[] = [];
  const bar = new Progress(n, 'nll ');
  const t0 = performance.now();
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const pixels = Float32Array.from(test.images.subarray(s * dims, (s + m) * dims));
    const x = k.scope(() => k.tensor(pixels, { shape: [m, dims] }).add(k.rand([m, dims], { generator })).sub(0.5).div(127.5).sub(1));
    const labels = k.full([m], nullClass, { dtype: 'i32' });
    const net = (xt: k.Tensor, t: number) => model.forward(xt.reshape([m, 1, test.rows, test.cols]), k.full([m], t), labels).reshape([m, dims]);
    try {
      logp.push(...(await segmentedLogLikelihood({ model: net, prediction: 'flow', process: flowAsSde(), x, divergence: 'hutchinson', steps }, FLOW_SEGMENTS)));
    } finally {
      x.dispose();
      labels.dispose();
    }
    bar.update(s + m);
  }
  const seconds = (performance.now() - t0) / 1000;
  const r = summarizeNll(logp, dims);
  const json = JSON.stringify({
    checkpoint: path, step: meta.step, ema: !a.flag('raw'), data: 'test digits, uniformly dequantized 8-bit', conditioning: 'none (the null class)',
    divergence: 'hutchinson', steps, segments: FLOW_SEGMENTS, seed, ...r, seconds,
  });
  console.log(`probability-flow NLL of ${r.images} test digits: ${r.natsPerImage.toFixed(1)} ± ${r.natsStdErr.toFixed(1)} nats/image in [−1, 1] space, ${r.bitsPerDim.toFixed(3)} ± ${r.bitsStdErr.toFixed(3)} bits/dim of the 8-bit digits (${seconds.toFixed(0)} s)`);
  console.log(json);
  if (jsonFile) writeFileSync(jsonFile, `${json}\n`);
}
