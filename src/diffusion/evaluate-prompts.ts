/**
 * Scoring a text-conditioned generator against its prompts (`kiln eval --prompts`): for every prompt of the
 * captioned-MNIST kind (a digit with a size and a stroke), LeNet's digit accuracy, how many samples show
 * the size and stroke the prompt names (measured on the image: bounding box, stroke width), and the
 * classifier-FID against real test digits transformed as the prompts say, beside the floor of as many
 * transformed training digits. The same measures on the transformed test digits tell how far each can be
 * trusted: a measure that misreads real digits misreads samples too.
 */
import { attributeScore, captionText, type CaptionSpec } from '../data/captions.js';
import type { LeNet } from '../nn/models/lenet.js';
import { scope } from '../tensor/memory.js';
import { tensor, type Tensor } from '../tensor/index.js';
import { classify } from './evaluate.js';
import { featureStats, frechetDistance } from './metrics.js';

/** Digit, size and stroke accuracy of a set of images (fractions in [0, 1]). */
export interface PromptAccuracy {
  digit: number;
  size: number;
  stroke: number;
}

/** Scores of `evaluatePrompts`. */
export interface PromptScores extends PromptAccuracy {
  samples: number;
  prompts: number;
  fid: number;
  /** Transformed training digits against the transformed test digits: the FID of a perfect generator, about. */
  fidFloor: number;
  /** The accuracies of the measures on the transformed test digits (a perfect generator's scores). */
  reference: PromptAccuracy;
  /** Each prompt's text with its samples' accuracies. */
  perPrompt: ({ prompt: string } & PromptAccuracy)[];
}

/** Options of `evaluatePrompts`. */
export interface EvaluatePromptsOptions {
  prompts: CaptionSpec[];
  perPrompt: number;
  /** Prompt i is sampled with seed `seed + i`. */
  seed: number;
  net: LeNet;
  /** Real test digits rendered for the prompts (`renderCaptionedDigits`, `perPrompt` each, in [0, 1]). */
  reference: Float32Array;
  /** As many real training digits rendered the same way (the FID floor). */
  floor: Float32Array;
}

const SIDE = 28;

/** LeNet features and the accuracies of images [N, 1, 28, 28] in [−1, 1] against their specs. */
async function score(net: LeNet, x: Tensor, specs: CaptionSpec[]): Promise<{ feats: Float32Array } & PromptAccuracy> {
  const c = await classify(net, x);
  const images = await x.data();
  const a = attributeScore(images, SIDE, specs);
  return { feats: c.feats, digit: c.pred.filter((p, i) => p === specs[i]!.digit).length / specs.length, size: a.size.correct / Math.max(1, a.size.total), stroke: a.stroke.correct / Math.max(1, a.stroke.total) };
}

/** Features and accuracies of images in [0, 1] (N·784 values) against their specs, 500 at a time. */
async function scoreReal(net: LeNet, images: Float32Array, specs: CaptionSpec[]): Promise<{ feats: number[] } & PromptAccuracy> {
  const px = SIDE * SIDE, n = specs.length, feats: number[] = [];
  const acc = { digit: 0, size: 0, stroke: 0 };
  for (let s = 0; s < n; s += 500) {
    const m = Math.min(500, n - s);
    const x = tensor(images.subarray(s * px, (s + m) * px).map((v) => 2 * v - 1), { shape: [m, 1, SIDE, SIDE] });
    const r = await score(net, x, specs.slice(s, s + m));
    x.dispose();
    feats.push(...r.feats);
    for (const key of ['digit', 'size', 'stroke'] as const) acc[key] += r[key] * m;
  }
  return { feats, digit: acc.digit / n, size: acc.size / n, stroke: acc.stroke / n };
}

/**
 * Draws `perPrompt` samples of each prompt by `sample(prompt, count, seed)` (images [count, 1, 28, 28],
 * clamped to [−1, 1] here) and scores them: digit accuracy by LeNet, size and stroke accuracy by
 * `attributeScore`, classifier-FID against `reference` beside the floor; also the reference's own accuracies.
 */
export async function evaluatePrompts(sample: (prompt: string, count: number, seed: number) => Promise<Tensor>, o: EvaluatePromptsOptions, onProgress?: (done: number, total: number) => void): Promise<PromptScores> {
  const P = o.prompts.length, n = P * o.perPrompt, px = SIDE * SIDE;
  if (!P) throw new Error('evaluatePrompts: no prompts');
  for (const [name, images] of [['reference', o.reference], ['floor', o.floor]] as const) {
    if (images.length !== n * px) throw new Error(`evaluatePrompts: ${name} must hold ${o.perPrompt} images of 28×28 per prompt (${n * px} values), got ${images.length}`);
  }
  const specsOf = (list: CaptionSpec[]) => list.flatMap((s) => Array<CaptionSpec>(o.perPrompt).fill(s));
  const feats: number[] = [];
  const perPrompt: PromptScores['perPrompt'] = [];
  for (let i = 0; i < P; i++) {
    const spec = o.prompts[i]!;
    const raw = await sample(captionText(spec), o.perPrompt, o.seed + i);
    const x = scope(() => raw.clamp(-1, 1));
    raw.dispose();
    const r = await score(o.net, x, specsOf([spec]));
    x.dispose();
    feats.push(...r.feats);
    perPrompt.push({ prompt: captionText(spec), digit: r.digit, size: r.size, stroke: r.stroke });
    onProgress?.(i + 1, P);
  }
  const specs = specsOf(o.prompts);
  const ref = await scoreReal(o.net, o.reference, specs);
  const floor = await scoreReal(o.net, o.floor, specs);
  const d = o.net.config.hidden;
  const refStats = featureStats(ref.feats, n, d);
  const mean = (key: keyof PromptAccuracy) => perPrompt.reduce((s, p) => s + p[key], 0) / P;
  return {
    samples: n,
    prompts: P,
    digit: mean('digit'),
    size: mean('size'),
    stroke: mean('stroke'),
    fid: frechetDistance(featureStats(feats, n, d), refStats),
    fidFloor: frechetDistance(featureStats(floor.feats, n, d), refStats),
    reference: { digit: ref.digit, size: ref.size, stroke: ref.stroke },
    perPrompt,
  };
}
