/**
 * Scoring class-conditional samples with a LeNet classifier (the MNIST stand-in for Inception): the
 * fraction classified as the requested class, the classifier-FID against real data (beside the
 * real-vs-real floor) and the Inception-style score.
 */
import { noGrad } from '../tensor/index.js';
import type { LatentCodec } from '../nn/models/vae.js';
import type { LeNet } from '../nn/models/lenet.js';
import { scope } from '../tensor/memory.js';
import type { Tensor } from '../tensor/index.js';
import { generateImages } from './generate.js';
import { featureStats, frechetDistance, inceptionScore } from './metrics.js';
import type { ConsistencyBoundary } from './distill/consistency.js';
import type { SamplerName } from './samplers.js';
import type { Denoiser, Objective } from './training.js';

/** LeNet features, class probabilities and predicted classes of images [N, 1, 28, 28]. */
export async function classify(net: LeNet, x: Tensor): Promise<{ feats: Float32Array; probs: Float32Array; pred: Int32Array }> {
  const r = await noGrad(() => scope(async () => {
    const f = net.features(x);
    const p = net.fc2.forward(f).softmax(1);
    return [await f.data(), await p.data(), await p.argmax(1).data()] as const;
  }));
  return { feats: r[0] as Float32Array, probs: r[1] as Float32Array, pred: r[2] as Int32Array };
}

/** Feature statistics of a set of images: the Gaussian fit of the classifier's features, its class probabilities, and the count. */
export interface FeatureSet {
  stats: { mean: Float64Array; cov: Float64Array };
  probs: number[];
  count: number;
}

/** The LeNet feature statistics and class probabilities of the images of `batches` (e.g. real digits); their tensors are disposed. */
export async function featureSet(net: LeNet, batches: Iterable<{ x: Tensor; y?: Tensor }>): Promise<FeatureSet> {
  const f: number[] = [], p: number[] = [];
  let count = 0;
  for (const { x, y } of batches) {
    const c = await classify(net, x);
    f.push(...c.feats);
    p.push(...c.probs);
    count += x.shape[0]!;
    x.dispose();
    y?.dispose();
  }
  return { stats: featureStats(f, count, net.config.hidden), probs: p, count };
}

/** Scores of a set of samples. */
export interface EvalResult {
  samples: number;
  accuracy: number;
  fid: number;
  fidFloor: number;
  inceptionScore: number;
  inceptionScoreReal: number;
}

/** Options of `evaluate`. */
export interface EvaluateOptions {
  objective: Objective;
  sampler: SamplerName;
  steps: number;
  guidance: number;
  /** Digit d is sampled with seed `seed + d`. */
  seed: number;
  perClass: number;
  /** Decodes a latent model's samples. */
  latent?: LatentCodec | null;
  /** A consistency model's sampling times and boundary (`GenerateOptions.consistency`); sampler, steps and guidance are then ignored. */
  consistency?: ConsistencyBoundary & { times: number[] };
  /** The classifier whose features and probabilities score the samples. */
  net: LeNet;
  /** Features of the real reference set (the test digits). */
  real: FeatureSet;
  /** Features of as many other real digits as samples (the training digits): the floor of the FID and the real Inception-style score. */
  floor: FeatureSet;
}

/** Scores of any generator's samples (`evaluateSamples`). */
export interface SampleScores {
  samples: number;
  /** The fraction LeNet classifies as the requested digit (null for an unconditional generator). */
  accuracy: number | null;
  fid: number;
  fidFloor: number;
  inceptionScore: number;
  inceptionScoreReal: number;
  /** How many samples LeNet assigns to each digit 0–9 (mode collapse shows as empty or crowded classes). */
  histogram: number[];
}

/** Options of `evaluateSamples`. */
export interface EvaluateSamplesOptions {
  /** Samples per digit (conditional), or a tenth of the samples (unconditional: drawn in 10 batches). */
  perClass: number;
  /** Whether the generator takes a digit. */
  conditional: boolean;
  /** Batch b (digit b when conditional) is drawn with seed `seed + b`. */
  seed: number;
  net: LeNet;
  real: FeatureSet;
  floor: FeatureSet;
}

/**
 * Draws 10 batches of `perClass` samples — batch d of digit d when conditional — by `sample(digit, count,
 * seed)` (digit null when unconditional; images [count, 1, 28, 28]) and scores them against the real
 * features: conditional accuracy, classifier-FID beside its floor, Inception-style score and the histogram
 * of LeNet's classes. Samples are clamped to [−1, 1].
 */
export async function evaluateSamples(sample: (digit: number | null, count: number, seed: number) => Promise<Tensor>, o: EvaluateSamplesOptions, onProgress?: (done: number, total: number) => void): Promise<SampleScores> {
  const n = o.perClass * 10;
  const feats: number[] = [], probs: number[] = [];
  const histogram = Array<number>(10).fill(0);
  let correct = 0;
  for (let b = 0; b < 10; b++) {
    const x = await sample(o.conditional ? b : null, o.perClass, o.seed + b);
    const c = await classify(o.net, scope(() => x.clamp(-1, 1)));
    x.dispose();
    feats.push(...c.feats);
    probs.push(...c.probs);
    for (const p of c.pred) histogram[p]!++;
    correct += c.pred.filter((p) => p === b).length;
    onProgress?.(b + 1, 10);
  }
  const gen = featureStats(feats, n, o.net.config.hidden);
  return {
    samples: n,
    accuracy: o.conditional ? correct / n : null,
    fid: frechetDistance(gen, o.real.stats),
    fidFloor: frechetDistance(o.floor.stats, o.real.stats),
    inceptionScore: inceptionScore(probs, n, 10),
    inceptionScoreReal: inceptionScore(o.floor.probs, o.floor.count, 10),
    histogram,
  };
}

/** Samples `perClass` images of each of 10 classes and scores them against the real features (samples are clamped to [−1, 1]). */
export async function evaluate(model: Denoiser, o: EvaluateOptions, onProgress?: (done: number, total: number) => void): Promise<EvalResult> {
  const how = o.consistency ? { consistency: o.consistency } : { sampler: o.sampler, steps: o.steps, guidance: o.guidance };
  const sample = (digit: number | null, count: number, seed: number) =>
    generateImages(model, o.latent ?? null, { objective: o.objective, labels: Array<number>(count).fill(digit!), seed, ...how });
  const { histogram: _, accuracy, ...r } = await evaluateSamples(sample, { perClass: o.perClass, conditional: true, seed: o.seed, net: o.net, real: o.real, floor: o.floor }, onProgress);
  return { ...r, accuracy: accuracy! };
}
