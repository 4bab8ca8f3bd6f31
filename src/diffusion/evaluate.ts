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

/** Samples `perClass` images of each of 10 classes and scores them against the real features (samples are clamped to [−1, 1]). */
export async function evaluate(model: Denoiser, o: EvaluateOptions, onProgress?: (done: number, total: number) => void): Promise<EvalResult> {
  const n = o.perClass * 10;
  const feats: number[] = [], probs: number[] = [];
  let correct = 0;
  for (let digit = 0; digit < 10; digit++) {
    const labels = Array<number>(o.perClass).fill(digit);
    const how = o.consistency ? { consistency: o.consistency } : { sampler: o.sampler, steps: o.steps, guidance: o.guidance };
    const x = await generateImages(model, o.latent ?? null, { objective: o.objective, labels, seed: o.seed + digit, ...how });
    const c = await classify(o.net, x.clamp(-1, 1));
    x.dispose();
    feats.push(...c.feats);
    probs.push(...c.probs);
    correct += c.pred.filter((p) => p === digit).length;
    onProgress?.(digit + 1, 10);
  }
  const gen = featureStats(feats, n, o.net.config.hidden);
  return {
    samples: n,
    accuracy: correct / n,
    fid: frechetDistance(gen, o.real.stats),
    fidFloor: frechetDistance(o.floor.stats, o.real.stats),
    inceptionScore: inceptionScore(probs, n, 10),
    inceptionScoreReal: inceptionScore(o.floor.probs, o.floor.count, 10),
  };
}
