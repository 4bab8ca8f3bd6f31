/**
 * Text-conditioned diffusion on the command line: `kiln train --captions` (captioned MNIST: the digit, its
 * size and its stroke in words, `k.data.CaptionBatches`), the prompts of `kiln sample --prompt`, and
 * `kiln eval --prompts` (digit, size and stroke accuracy and classifier-FID on held-out captions).
 */
import * as k from '../index.js';
import type { Args, OptionSpec } from './args.js';
import type { PresetName } from './diffusion.js';
import { Progress } from './progress.js';

/** `kiln train --captions`. */
export const CAPTIONS_OPTION: OptionSpec = { name: 'captions', help: 'condition on captions ("a small bold three") instead of digit labels, through a text encoder and cross-attention (--out defaults to out/mnist-text)' };

/**
 * The text side of each preset: the encoder, where a UNet gets its transformer blocks (levels of `widths`,
 * and between the middle blocks), and the training steps of a pixel-space run when they differ from the
 * preset's. The cpu preset attends once, between the middle blocks (7×7): over 1,800 steps that drew the
 * digits as well as blocks at the 7×7 level and the middle did, and the strokes better, in about three
 * quarters of the step time on lavapipe; the time saved buys 3,600 steps (about 23 minutes there). The pooled
 * caption also enters the time embedding, which carries the global size.
 */
export const TEXT_PRESETS: Record<PresetName, { encoder: { dim: number; depth: number; heads: number; mlpRatio: number }; levels: number[]; mid: boolean; steps?: number }> = {
  cpu: { encoder: { dim: 64, depth: 2, heads: 4, mlpRatio: 2 }, levels: [], mid: true, steps: 3600 },
  gpu: { encoder: { dim: 128, depth: 3, heads: 4, mlpRatio: 4 }, levels: [1, 2], mid: true },
};

/** A pixel preset as `kiln train --captions` runs it: its steps replaced by the text preset's, if it has its own. */
export function captionPreset<P extends { steps: number }>(preset: P, name: PresetName): P {
  return { ...preset, steps: TEXT_PRESETS[name].steps ?? preset.steps };
}

/**
 * The tokenizer of captioned MNIST: the words of the training captions (the held-out phrasings rearrange
 * them), with room for the longest caption of either split.
 */
export function captionTokenizer(): k.data.WordTokenizer {
  const longest = Math.max(...k.data.allCaptions().map((s) => k.data.splitWords(k.data.captionText(s)).length));
  return k.data.WordTokenizer.fromCaptions(k.data.trainCaptions().map(k.data.captionText), longest + 1);
}

/**
 * The pooled word vectors' scale of `kiln train --captions` (the cpu preset, seeds 0 and 1, `kiln eval`):
 * zero-initialized vectors scaled by 16 drew the prompt's digit in 90.9% and 91.6% of held-out prompts' samples,
 * against 89.2% and 87.3% scaled by 8, 84.2% and 76.4% with N(0, 1) vectors, and 58.0% and 63.0% with
 * zero-initialized unscaled ones (a development trial), which learned the digits too slowly; scaled by 32 (seed 0)
 * they drew 85.3%.
 */
export const WORD_SCALE = 16;

/** The text part of a denoiser's config for `kind` under a preset (UNet: also its levels; both: no classes). */
export function textModelConfig(kind: 'unet' | 'dit', preset: PresetName, tokenizer: k.data.WordTokenizer, levels: number): Record<string, unknown> {
  const p = TEXT_PRESETS[preset];
  const encoder = { vocabSize: tokenizer.vocabSize, length: tokenizer.length, ...p.encoder };
  // the pooled bag of words carries the digit to every block from the first steps (see TextConditioning.pooled);
  // its vectors start at zero, scaled by WORD_SCALE (see TextConditioning.wordScale)
  const pooled = { pooled: 'words', wordScale: WORD_SCALE };
  if (kind === 'dit') return { numClasses: 0, text: { encoder, ...pooled } };
  // residual blocks scale and shift their normalized features by the conditioning (the cpu preset, seeds 0 and 1,
  // `kiln eval`: 96.2% and 97.3% of the held-out prompts' digits, against 94.2% and 94.7% with it added before the
  // norm, at the same step time; classifier-FID 73.06 and 44.85 against 52.71 and 58.33)
  return { numClasses: 0, scaleShift: true, text: { encoder, ...pooled, levels: p.levels.filter((l) => l < levels), mid: p.mid } };
}

/**
 * The prompts of the grids `kiln train --captions` writes, one row each: every digit with its held-out
 * size and stroke combination (never seen together with that digit in training).
 */
export const GRID_PROMPTS: readonly string[] = Array.from({ length: 10 }, (_, d) => {
  const [size, stroke] = k.data.HELD_OUT_COMBOS[d % k.data.HELD_OUT_COMBOS.length]!;
  return k.data.captionText({ digit: d, size, stroke, phrasing: 5 });
});

/** Batches of captioned digits by step, their captions as token ids. */
export class CaptionedSteps {
  private readonly batches: k.data.CaptionBatches;
  constructor(data: k.data.MnistSplit, batchSize: number, seed: number, readonly tokenizer: k.data.WordTokenizer) {
    this.batches = new k.data.CaptionBatches(data, batchSize, seed);
  }
  /** Images [B, 1, 28, 28] in [−1, 1] and token ids [B, length] of step `step`. */
  at(step: number): { x: k.Tensor; y: k.Tensor } {
    const b = this.batches.at(step);
    return { x: b.x, y: this.tokenizer.encode(b.captions) };
  }
}

/** `--prompt "a small bold three; the number 7"`: prompts separated by semicolons, each one row of the grid. */
export function parsePrompts(option: string, text: string): string[] {
  const prompts = text.split(';').map((p) => p.trim());
  if (prompts.some((p) => !p)) throw new Error(`${option}: expected prompts separated by ';', got ${JSON.stringify(text)} (an empty prompt)`);
  return prompts;
}

/** The options of `kiln eval` with a text-conditioned checkpoint. */
export const EVAL_PROMPT_OPTIONS: readonly OptionSpec[] = [
  { name: 'prompts', value: 'N', help: 'prompts per digit (a text checkpoint) in phrasings held out of training, each naming a size and a stroke' },
  { name: 'per-prompt', value: 'N', help: 'samples of each prompt (a text checkpoint)' },
];

/** The defaults of `kiln eval`'s prompt options. */
export function evalPromptDefaults() {
  return { prompts: 3, 'per-prompt': 30 };
}

/** What `kiln eval --prompts` needs besides the checkpoint. */
export interface PromptEvalSetup {
  model: k.diffusion.Denoiser;
  latent: k.nn.LatentCodec | null;
  tokenizer: k.data.WordTokenizer;
  objective: k.diffusion.Objective;
  how: { sampler?: k.diffusion.SamplerName; steps?: number; guidance?: number };
  seed: number;
  net: k.nn.LeNet;
}

/**
 * `kiln eval` of a text-conditioned checkpoint: samples `--per-prompt` images of each prompt in a held-out
 * phrasing (`k.data.evalPrompts`) and scores them with `k.diffusion.evaluatePrompts` against test digits transformed
 * as the prompts say; returns the rows to print and the figures.
 */
export async function evalPrompts(a: Args, s: PromptEvalSetup): Promise<{ rows: [string, string][]; result: k.diffusion.PromptScores; prompts: string[] }> {
  const d = evalPromptDefaults();
  const perDigit = a.number('prompts', d.prompts, { min: 1, integer: true });
  const perPrompt = a.number('per-prompt', d['per-prompt'], { min: 2, integer: true });
  const prompts = k.data.evalPrompts(perDigit, s.seed);
  const [test, train] = [await k.data.loadMnist('test'), await k.data.loadMnist('train')];
  const reference = k.data.renderCaptionedDigits(test, prompts, perPrompt, s.seed);
  const floor = k.data.renderCaptionedDigits(train, prompts, perPrompt, s.seed);
  const sample = (prompt: string, count: number, seed: number) =>
    k.diffusion.generateImages(s.model, s.latent, { objective: s.objective, tokens: s.tokenizer.encodePrompts('kiln eval', Array<string>(count).fill(prompt)), seed, ...s.how });
  const bar = new Progress(prompts.length, 'eval ');
  const r = await k.diffusion.evaluatePrompts(sample, { prompts, perPrompt, seed: s.seed, net: s.net, reference, floor }, (i) => bar.update(i));
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const rows: [string, string][] = [
    ['prompts', `${r.prompts} in held-out phrasings (${perDigit} per digit, each naming a size and a stroke), ${perPrompt} samples each`],
    ['digit accuracy', `${pct(r.digit)}   (LeNet on the transformed test digits: ${pct(r.reference.digit)})`],
    ['size accuracy', `${pct(r.size)}   (bounding box; on the transformed test digits: ${pct(r.reference.size)})`],
    ['stroke accuracy', `${pct(r.stroke)}   (stroke width; on the transformed test digits: ${pct(r.reference.stroke)})`],
    ['classifier-FID', `${r.fid.toFixed(2)}   (transformed train vs test digits: ${r.fidFloor.toFixed(2)})`],
  ];
  return { rows, result: r, prompts: prompts.map(k.data.captionText) };
}
