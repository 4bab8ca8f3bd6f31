/**
 * Captioned MNIST: each training example is an MNIST digit with a caption naming the digit (as a word or a
 * numeral, in one of several phrasings) and up to two attributes that are applied to the image and can be
 * measured on a generated one — size ('small' / 'large': the digit rescaled inside its frame) and stroke
 * ('thin' / 'bold': eroded or dilated). An attribute left out of a caption leaves the image as it is.
 *
 * Held out of training, for evaluation only: the phrasings marked `heldOut` (new arrangements of the training
 * words, e.g. "the digit 7" where training has "the digit seven" and "the number 7"), and per digit one of the
 * four full (size, stroke) combinations (digit d never appears with `HELD_OUT_COMBOS[d % 4]` in training, but
 * both attributes appear with other digits). `drawCaption` never returns a held-out caption for the 'train'
 * split, and `evalCaptions` lists exactly the held-out ones.
 *
 * Everything is deterministic for a seed: the attributes and phrasing of example i in epoch e come from a
 * Philox draw keyed by (seed, i, e), like `permutation`.
 */
import { philox4x32 } from '../wgsl/rng.js';
import { tensor, type Tensor } from '../tensor/index.js';
import { boldStroke, measureDigit, rescaleDigit, thinStroke } from './digit-attributes.js';
import { permutation, type MnistSplit } from './mnist.js';

/** Size attribute: null leaves the digit at MNIST's size (20 pixels along its longer side). */
export type SizeAttribute = 'small' | 'large' | null;
/** Stroke attribute: null leaves the pen as it is. */
export type StrokeAttribute = 'thin' | 'bold' | null;

/** What a caption says: the digit, its attributes and the phrasing (an index into `PHRASINGS`). */
export interface CaptionSpec {
  digit: number;
  size: SizeAttribute;
  stroke: StrokeAttribute;
  phrasing: number;
}

/** Scale factors of the size attribute (a 20-pixel digit becomes 12 or 26 pixels). */
export const SIZE_FACTORS = { small: 0.6, large: 1.3 } as const;

const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

/** One way of phrasing a caption: the words before/after, built from the digit and its adjectives. */
export interface Phrasing {
  /** e.g. "a {adj} handwritten {word}" (for the documentation). */
  pattern: string;
  /** Only in evaluation captions, never in training. */
  heldOut: boolean;
  make(word: string, numeral: string, adjectives: string[]): string;
}

/** "a" or "an", by the sound of the next word. */
function article(next: string): string {
  return /^(e|8|eight|eleven)/.test(next) ? 'an' : 'a';
}
const join = (...parts: string[]) => parts.filter((p) => p).join(' ');
/** ", small and bold" (or nothing). */
const trailing = (adj: string[]) => (adj.length ? `, ${adj.join(' and ')}` : '');

/** The caption phrasings; `heldOut` ones are for evaluation only. */
export const PHRASINGS: readonly Phrasing[] = [
  { pattern: '{adj} {word}', heldOut: false, make: (w, _n, a) => join(...a, w) },
  { pattern: '{adj} {numeral}', heldOut: false, make: (_w, n, a) => join(...a, n) },
  { pattern: 'a {adj} handwritten {word}', heldOut: false, make: (w, _n, a) => join(article(join(...a, 'handwritten')), ...a, 'handwritten', w) },
  { pattern: 'the {adj} number {numeral}', heldOut: false, make: (_w, n, a) => join('the', ...a, 'number', n) },
  { pattern: 'the digit {word}, {adj joined by "and"}', heldOut: false, make: (w, _n, a) => `the digit ${w}${trailing(a)}` },
  { pattern: 'a {adj} {word}', heldOut: false, make: (w, _n, a) => join(article(join(...a, w)), ...a, w) },
  { pattern: 'a {adj} handwritten {numeral}', heldOut: true, make: (_w, n, a) => join(article(join(...a, 'handwritten')), ...a, 'handwritten', n) },
  { pattern: 'the digit {numeral}, {adj joined by "and"}', heldOut: true, make: (_w, n, a) => `the digit ${n}${trailing(a)}` },
  { pattern: 'the {adj} number {word}', heldOut: true, make: (w, _n, a) => join('the', ...a, 'number', w) },
];

/** Per digit d, the full attribute combination `HELD_OUT_COMBOS[d % 4]` never appears in training. */
export const HELD_OUT_COMBOS: readonly [SizeAttribute, StrokeAttribute][] = [['small', 'thin'], ['small', 'bold'], ['large', 'thin'], ['large', 'bold']];

const SIZES: SizeAttribute[] = [null, 'small', 'large'];
const STROKES: StrokeAttribute[] = [null, 'thin', 'bold'];

function checkSpec(op: string, s: CaptionSpec): void {
  if (!Number.isInteger(s.digit) || s.digit < 0 || s.digit > 9) throw new Error(`${op}: digit must be an integer 0…9, got ${s.digit}`);
  if (!SIZES.includes(s.size)) throw new Error(`${op}: size must be 'small', 'large' or null, got ${JSON.stringify(s.size)}`);
  if (!STROKES.includes(s.stroke)) throw new Error(`${op}: stroke must be 'thin', 'bold' or null, got ${JSON.stringify(s.stroke)}`);
  if (!Number.isInteger(s.phrasing) || s.phrasing < 0 || s.phrasing >= PHRASINGS.length) throw new Error(`${op}: phrasing must be an index 0…${PHRASINGS.length - 1} of PHRASINGS, got ${s.phrasing}`);
}

/** The caption text of a spec, e.g. {digit 7, small, bold, phrasing 2} → "a small bold handwritten seven". */
export function captionText(spec: CaptionSpec): string {
  checkSpec('captionText', spec);
  const adj = [spec.size, spec.stroke].filter((a) => a !== null) as string[];
  return PHRASINGS[spec.phrasing]!.make(WORDS[spec.digit]!, String(spec.digit), adj);
}

/** Whether a caption is for evaluation only: a held-out phrasing, or its digit's held-out attribute combination. */
export function isHeldOut(spec: CaptionSpec): boolean {
  checkSpec('isHeldOut', spec);
  const [size, stroke] = HELD_OUT_COMBOS[spec.digit % 4]!;
  return PHRASINGS[spec.phrasing]!.heldOut || (spec.size === size && spec.stroke === stroke);
}

/** Every caption spec (10 digits × 3 sizes × 3 strokes × the phrasings), in a fixed order. */
export function allCaptions(): CaptionSpec[] {
  const out: CaptionSpec[] = [];
  for (let digit = 0; digit < 10; digit++) for (const size of SIZES) for (const stroke of STROKES) for (let phrasing = 0; phrasing < PHRASINGS.length; phrasing++) out.push({ digit, size, stroke, phrasing });
  return out;
}

/** The captions training may use (every spec that is not held out). */
export function trainCaptions(): CaptionSpec[] {
  return allCaptions().filter((s) => !isHeldOut(s));
}

/** The evaluation-only captions (held-out phrasings with any attributes, and held-out combinations in any phrasing). */
export function evalCaptions(): CaptionSpec[] {
  return allCaptions().filter((s) => isHeldOut(s));
}

/** The element of `xs` a uniform 32-bit draw `u` picks. */
const pick = <T>(xs: readonly T[], u: number): T => xs[Math.floor(((u >>> 0) / 2 ** 32) * xs.length)]!;

/**
 * The caption of example `index` of a digit `digit` in `epoch`, drawn for a seed: size, stroke uniform over
 * {none, either value}, the phrasing uniform over those of the split. For 'train', a draw that lands on the
 * digit's held-out combination is drawn again (with the next counter), so training never sees it; for 'eval'
 * only held-out captions come out.
 */
export function drawCaption(digit: number, seed: number, index: number, epoch = 0, split: 'train' | 'eval' = 'train'): CaptionSpec {
  if (split !== 'train' && split !== 'eval') throw new Error(`drawCaption: split must be 'train' or 'eval', got ${JSON.stringify(split)}`);
  const phrasings = PHRASINGS.map((_, i) => i);
  for (let attempt = 0; attempt < 64; attempt++) {
    const [a, b, c] = philox4x32(index, epoch, attempt, 0x0ca9, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
    const spec: CaptionSpec = { digit, size: pick(SIZES, a), stroke: pick(STROKES, b), phrasing: pick(phrasings, c) };
    checkSpec('drawCaption', spec);
    if (isHeldOut(spec) === (split === 'eval')) return spec;
  }
  throw new Error(`drawCaption: no ${split} caption for digit ${digit} after 64 draws`);
}

/**
 * The image of a caption: `img` (side×side in [0, 1]) rescaled for the size attribute, then thinned or
 * emboldened for the stroke attribute (the stroke is relative to the digit's size, see `relativeStrokeWidth`).
 */
export function renderAttributes(img: ArrayLike<number>, side: number, spec: Pick<CaptionSpec, 'size' | 'stroke'>): Float32Array {
  let x = spec.size ? rescaleDigit(img, side, SIZE_FACTORS[spec.size]) : Float32Array.from(img);
  if (spec.stroke === 'thin') x = thinStroke(x, side);
  else if (spec.stroke === 'bold') x = boldStroke(x, side);
  return x;
}

/** A batch of captioned digits: images [B, 1, rows, cols] in [−1, 1], their captions and specs, the MNIST indices. */
export interface CaptionBatch {
  x: Tensor;
  captions: string[];
  specs: CaptionSpec[];
  index: Int32Array;
}

/**
 * Captioned MNIST batches addressed by step (like `StepBatches`: step s takes slice s mod perEpoch of epoch
 * ⌊s / perEpoch⌋'s seeded permutation). Each example's caption is drawn for (seed, MNIST index, epoch), so a
 * digit gets other attributes and phrasings in other epochs; the 'eval' split draws held-out captions only.
 */
export class CaptionBatches {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);
  /** Steps per epoch. */
  readonly perEpoch: number;
  constructor(readonly mnist: MnistSplit, readonly batchSize: number, readonly seed: number, readonly split: 'train' | 'eval' = 'train') {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`CaptionBatches: batchSize must be a positive integer, got ${batchSize}`);
    this.perEpoch = Math.floor(mnist.count / batchSize);
    if (this.perEpoch < 1) throw new Error(`CaptionBatches: batch size ${batchSize} is larger than the ${mnist.count} images`);
  }
  /** The captioned examples of MNIST indices `index` in `epoch` (host data only). */
  examples(index: ArrayLike<number>, epoch: number): { images: Float32Array; specs: CaptionSpec[] } {
    const { rows, cols } = this.mnist;
    if (rows !== cols) throw new Error(`CaptionBatches: square images expected, got ${rows}×${cols}`);
    const px = rows * cols;
    const images = new Float32Array(index.length * px);
    const specs: CaptionSpec[] = [];
    for (let i = 0; i < index.length; i++) {
      const src = index[i]!;
      const spec = drawCaption(this.mnist.labels[src]!, this.seed, src, epoch, this.split);
      const img = Float32Array.from(this.mnist.images.subarray(src * px, (src + 1) * px), (v) => v / 255);
      images.set(renderAttributes(img, rows, spec), i * px);
      specs.push(spec);
    }
    return { images, specs };
  }
  /** The batch of step `step` (0-based). */
  at(step: number): CaptionBatch {
    if (!Number.isInteger(step) || step < 0) throw new Error(`CaptionBatches.at: step must be a non-negative integer, got ${step}`);
    const epoch = Math.floor(step / this.perEpoch);
    if (epoch !== this.epoch) [this.epoch, this.order] = [epoch, permutation(this.mnist.count, this.seed, epoch)];
    const start = (step % this.perEpoch) * this.batchSize;
    const index = this.order.slice(start, start + this.batchSize);
    const { images, specs } = this.examples(index, epoch);
    const { rows, cols } = this.mnist;
    return { x: tensor(images.map((v) => 2 * v - 1), { shape: [index.length, 1, rows, cols] }), captions: specs.map(captionText), specs, index };
  }
}

/** How many images show the attributes their captions name (`total`: captions naming that attribute). */
export interface AttributeScore {
  size: { correct: number; total: number };
  stroke: { correct: number; total: number };
}

/**
 * Scores images against the attributes of their captions with `measureDigit`'s binary decisions: images
 * [N·side·side] (N = specs.length) with pixel values in `range` ('[-1,1]' as generators output, or '[0,1]');
 * an attribute the caption leaves out is not scored.
 */
export function attributeScore(images: ArrayLike<number>, side: number, specs: Pick<CaptionSpec, 'size' | 'stroke'>[], range: '[-1,1]' | '[0,1]' = '[-1,1]'): AttributeScore {
  const px = side * side;
  if (images.length !== specs.length * px) throw new Error(`attributeScore: expected ${specs.length} images of ${side}×${side} (${specs.length * px} values), got ${images.length} values`);
  if (range !== '[-1,1]' && range !== '[0,1]') throw new Error(`attributeScore: range must be '[-1,1]' or '[0,1]', got ${JSON.stringify(range)}`);
  const score: AttributeScore = { size: { correct: 0, total: 0 }, stroke: { correct: 0, total: 0 } };
  specs.forEach((spec, i) => {
    if (!spec.size && !spec.stroke) return;
    const img = new Float32Array(px);
    for (let j = 0; j < px; j++) {
      const v = images[i * px + j]!;
      img[j] = Math.min(1, Math.max(0, range === '[-1,1]' ? (v + 1) / 2 : v));
    }
    const m = measureDigit(img, side);
    if (spec.size) {
      score.size.total++;
      score.size.correct += +(m.sizeClass === spec.size);
    }
    if (spec.stroke) {
      score.stroke.total++;
      score.stroke.correct += +(m.strokeClass === spec.stroke);
    }
  });
  return score;
}

/**
 * Real digits drawn as their captions describe them: for each spec, `perSpec` images of its digit from
 * `mnist`, with its size and stroke applied (`renderAttributes`). The images come from a seeded
 * permutation of the split, each digit's in turn, so specs get distinct images while the split has enough
 * of that digit (then they repeat). Returns images [specs.length · perSpec · side²] in [0, 1], in spec order.
 */
export function renderCaptionedDigits(mnist: MnistSplit, specs: Pick<CaptionSpec, 'digit' | 'size' | 'stroke'>[], perSpec: number, seed: number): Float32Array {
  const { rows, cols } = mnist;
  if (rows !== cols) throw new Error(`renderCaptionedDigits: square images expected, got ${rows}×${cols}`);
  if (!Number.isInteger(perSpec) || perSpec < 1) throw new Error(`renderCaptionedDigits: perSpec must be a positive integer, got ${perSpec}`);
  const px = rows * cols;
  const byDigit: number[][] = Array.from({ length: 10 }, () => []);
  for (const i of permutation(mnist.count, seed)) byDigit[mnist.labels[i]!]?.push(i);
  const next = Array<number>(10).fill(0);
  const out = new Float32Array(specs.length * perSpec * px);
  specs.forEach((spec, s) => {
    const pool = byDigit[spec.digit];
    if (!pool?.length) throw new Error(`renderCaptionedDigits: the split has no image of digit ${spec.digit}`);
    for (let j = 0; j < perSpec; j++) {
      const src = pool[next[spec.digit]!++ % pool.length]!;
      const img = Float32Array.from(mnist.images.subarray(src * px, (src + 1) * px), (v) => v / 255);
      out.set(renderAttributes(img, rows, spec), (s * perSpec + j) * px);
    }
  });
  return out;
}

/**
 * The evaluation prompts of `kiln eval --prompts`: `perDigit` captions of each digit in a held-out phrasing
 * that name both a size and a stroke (so every sample is scored on both attributes; the digit's held-out
 * combination is among them); picked for `seed` by a seeded shuffle of each digit's candidates, in digit order.
 */
export function evalPrompts(perDigit: number, seed = 0): CaptionSpec[] {
  if (!Number.isInteger(perDigit) || perDigit < 1) throw new Error(`evalPrompts: perDigit must be a positive integer, got ${perDigit}`);
  const out: CaptionSpec[] = [];
  for (let d = 0; d < 10; d++) {
    const pool = evalCaptions().filter((s) => s.digit === d && s.size && s.stroke && PHRASINGS[s.phrasing]!.heldOut);
    if (perDigit > pool.length) throw new Error(`evalPrompts: there are ${pool.length} captions of digit ${d} in held-out phrasings naming both attributes, asked for ${perDigit}`);
    const order = permutation(pool.length, seed, d);
    for (let i = 0; i < perDigit; i++) out.push(pool[order[i]!]!);
  }
  return out;
}

/**
 * A split whose every image is drawn with attributes drawn for (seed, index, epoch): with `attributes` 'train',
 * those of its training-split caption (`drawCaption`; the phrasing does not matter here), so never its digit's
 * held-out combination — what a generator trained on captions sees; with 'all', size and stroke uniform over
 * all nine combinations for every digit — the data of a classifier that must read digits of every size and
 * stroke, such as the digit classifier of `kiln eval --prompts`, which is tested on exactly the combinations
 * training holds out. Pixel values are rounded to bytes.
 */
export function captionedSplit(mnist: MnistSplit, seed: number, epoch = 0, attributes: 'train' | 'all' = 'train'): MnistSplit {
  const { rows, cols } = mnist;
  if (rows !== cols) throw new Error(`captionedSplit: square images expected, got ${rows}×${cols}`);
  if (attributes !== 'train' && attributes !== 'all') throw new Error(`captionedSplit: attributes must be 'train' or 'all', got ${JSON.stringify(attributes)}`);
  const px = rows * cols;
  const images = new Uint8Array(mnist.count * px);
  for (let i = 0; i < mnist.count; i++) {
    const spec = attributes === 'train' ? drawCaption(mnist.labels[i]!, seed, i, epoch) : drawAttributes(seed, i, epoch);
    const img = Float32Array.from(mnist.images.subarray(i * px, (i + 1) * px), (v) => v / 255);
    const out = renderAttributes(img, rows, spec);
    for (let j = 0; j < px; j++) images[i * px + j] = Math.round(255 * out[j]!);
  }
  return { ...mnist, images };
}

/** Size and stroke of example `index` in `epoch`, uniform over all nine combinations, drawn for a seed. */
function drawAttributes(seed: number, index: number, epoch: number): Pick<CaptionSpec, 'size' | 'stroke'> {
  const [a, b] = philox4x32(index, epoch, 0, 0xa771, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
  return { size: pick(SIZES, a), stroke: pick(STROKES, b) };
}
