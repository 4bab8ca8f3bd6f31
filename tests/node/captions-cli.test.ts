/**
 * Text-to-image from the command line: the held-out evaluation prompts and the real digits they are
 * scored against, `k.diffusion.evaluatePrompts` telling right digits from wrong ones and from blobs, and
 * `kiln train --captions` / `kiln sample --prompt` / `kiln eval --prompts` end to end on a tiny run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k from '../../src/index.ts';
import { evalCommand, sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';
import { GRID_PROMPTS, parsePrompts } from '../../src/cli/captions.ts';
import { LENET_CAPTIONS_PATH, loadMetricsNet } from '../../src/cli/common.ts';

const D = k.data;
/** Width and height of a PNG (its IHDR chunk). */
function pngSize(file: string): [number, number] {
  const b = readFileSync(file);
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}
/** The size of kiln's grid of `rows` × `cols` 28×28 images (2-pixel gaps). */
const gridSize = (rows: number, cols: number) => [cols * 30 + 2, rows * 30 + 2];

const dir = mkdtempSync(join(tmpdir(), 'kiln-captions-'));
beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('evaluation prompts and their real digits', () => {
  it('evalPrompts: per digit, captions in held-out phrasings naming both attributes; the same for a seed', () => {
    const p = D.evalPrompts(3, 0);
    expect(p.length).toBe(30);
    expect(p.map((s) => s.digit)).toEqual(Array.from({ length: 30 }, (_, i) => Math.floor(i / 3)));
    expect(p.every((s) => D.PHRASINGS[s.phrasing]!.heldOut && s.size && s.stroke)).toBe(true);
    const train = new Set(D.trainCaptions().map(D.captionText));
    expect(p.some((s) => train.has(D.captionText(s)))).toBe(false);
    expect(D.evalPrompts(3, 0)).toEqual(p);
    expect(D.evalPrompts(3, 1)).not.toEqual(p);
    expect(new Set(p.map(D.captionText)).size).toBe(30);
    expect(() => D.evalPrompts(13)).toThrow(/evalPrompts: there are 12 captions of digit 0 in held-out phrasings naming both attributes, asked for 13/);
  });

  it('renderCaptionedDigits: distinct images of the right digit per spec, with the attributes applied', async () => {
    const test = await D.loadMnist('test');
    const specs = [{ digit: 3, size: 'small', stroke: 'bold' }, { digit: 3, size: 'large', stroke: 'thin' }, { digit: 8, size: null, stroke: null }] as const;
    const imgs = D.renderCaptionedDigits(test, [...specs], 4, 7);
    expect(imgs.length).toBe(12 * 784);
    expect(Array.from(D.renderCaptionedDigits(test, [...specs], 4, 7))).toEqual(Array.from(imgs));
    const rows = Array.from({ length: 12 }, (_, i) => imgs.subarray(i * 784, (i + 1) * 784).join());
    expect(new Set(rows).size).toBe(12); // no image used twice
    const score = D.attributeScore(imgs.subarray(0, 8 * 784), 28, Array.from({ length: 8 }, (_, i) => specs[i >> 2]!), '[0,1]');
    expect(score.size).toEqual({ correct: 8, total: 8 });
    expect(score.stroke.total).toBe(8);
    expect(score.stroke.correct).toBeGreaterThanOrEqual(7);
    // the unchanged spec is the MNIST image itself
    const plain = rows.slice(8).map((r) => r.split(',').map(Number));
    const src = Array.from({ length: test.count }, (_, i) => i).filter((i) => test.labels[i] === 8);
    const match = (img: number[]) => src.some((i) => img.every((v, j) => Math.abs(v - test.images[i * 784 + j]! / 255) < 1e-6));
    expect(plain.every(match)).toBe(true);
  });

  it('captionedSplit: the same images for a seed and epoch, others in the next epoch, labels kept', async () => {
    const train = await D.loadMnist('train');
    const part = { ...train, count: 200 };
    const a = D.captionedSplit(part, 5, 0), b = D.captionedSplit(part, 5, 0), c = D.captionedSplit(part, 5, 1);
    expect(a.count).toBe(200);
    expect(Buffer.from(a.images).equals(Buffer.from(b.images))).toBe(true);
    expect(Buffer.from(a.images).equals(Buffer.from(c.images))).toBe(false);
    expect(a.labels).toBe(part.labels);
    // each image is its caption's rendering of the original (to a byte)
    for (const i of [0, 17, 123]) {
      const spec = D.drawCaption(part.labels[i]!, 5, i, 0);
      const want = D.renderAttributes(Float32Array.from(part.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255), 28, spec);
      expect(Array.from(a.images.subarray(i * 784, (i + 1) * 784))).toEqual(Array.from(want, (v) => Math.round(255 * v)));
    }
  });

  it("captionedSplit 'all' (a classifier's data) draws every size × stroke combination for every digit; 'train' never its held-out one", async () => {
    const part = { ...(await D.loadMnist('train')), count: 1500 };
    const combos = (img: Uint8Array, i: number) => {
      // which of the nine renderings of image i this is (each differs from the others for these digits)
      const src = Float32Array.from(part.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255);
      const hits = [null, 'small', 'large'].flatMap((size) => [null, 'thin', 'bold'].map((stroke) => ({ size, stroke }) as Pick<k.data.CaptionSpec, 'size' | 'stroke'>))
        .filter((spec) => D.renderAttributes(src, 28, spec).every((v, j) => Math.round(255 * v) === img[i * 784 + j]));
      expect(hits.length).toBeGreaterThanOrEqual(1);
      return `${hits[0]!.size} ${hits[0]!.stroke}`;
    };
    const all = D.captionedSplit(part, 3, 0, 'all'), train = D.captionedSplit(part, 3, 0, 'train');
    const seen = () => Array.from({ length: 10 }, () => new Set<string>());
    const [sa, st] = [seen(), seen()];
    for (let i = 0; i < part.count; i++) {
      const d = part.labels[i]!;
      sa[d]!.add(combos(all.images, i));
      st[d]!.add(combos(train.images, i));
    }
    for (let d = 0; d < 10; d++) {
      const held = D.HELD_OUT_COMBOS[d % 4]!.join(' ');
      expect(sa[d]!.size).toBe(9);
      expect(sa[d]!.has(held)).toBe(true);
      expect(st[d]!.has(held)).toBe(false);
      expect(st[d]!.size).toBe(8);
    }
    expect(() => D.captionedSplit(part, 3, 0, 'some' as never)).toThrow(/captionedSplit: attributes must be 'train' or 'all', got "some"/);
  });
});

describe('evaluatePrompts', () => {
  it('tells real digits of the prompt from wrong digits, wrong attributes and blobs', async () => {
    const net = await loadMetricsNet(LENET_CAPTIONS_PATH);
    const [test, train] = [await D.loadMnist('test'), await D.loadMnist('train')];
    const prompts = D.evalPrompts(1, 0), perPrompt = 12;
    const reference = D.renderCaptionedDigits(test, prompts, perPrompt, 0);
    const floor = D.renderCaptionedDigits(train, prompts, perPrompt, 0);
    const byText = new Map(prompts.map((s) => [D.captionText(s), s]));
    /** A generator that draws real training digits, optionally changed from what the prompt asks. */
    const drawing = (change: (s: k.data.CaptionSpec) => k.data.CaptionSpec) => async (prompt: string, count: number, seed: number) => {
      const imgs = D.renderCaptionedDigits(train, [change(byText.get(prompt)!)], count, 100 + seed);
      return k.tensor(imgs.map((v) => 2 * v - 1), { shape: [count, 1, 28, 28] });
    };
    const o = { prompts, perPrompt, seed: 0, net, reference, floor };
    const right = await k.diffusion.evaluatePrompts(drawing((s) => s), o);
    const wrongDigit = await k.diffusion.evaluatePrompts(drawing((s) => ({ ...s, digit: (s.digit + 1) % 10 })), o);
    const wrongSize = await k.diffusion.evaluatePrompts(drawing((s) => ({ ...s, size: s.size === 'small' ? 'large' : 'small' })), o);
    const wrongStroke = await k.diffusion.evaluatePrompts(drawing((s) => ({ ...s, stroke: s.stroke === 'thin' ? 'bold' : 'thin' })), o);
    const blob = await k.diffusion.evaluatePrompts(async (_p, count) => k.tensor(Float32Array.from({ length: count * 784 }, (_, i) => {
      const y = Math.floor((i % 784) / 28) - 13.5, x = (i % 28) - 13.5;
      return 2 * Math.exp(-(x * x + y * y) / 40) - 1;
    }), { shape: [count, 1, 28, 28] }), o);
    expect(right.samples).toBe(120);
    expect(right.perPrompt.map((p) => p.prompt)).toEqual(prompts.map(D.captionText));
    // the measures read real transformed digits (the reference) well
    expect(right.reference.digit).toBeGreaterThan(0.9);
    expect(right.reference.size).toBeGreaterThan(0.97);
    expect(right.reference.stroke).toBeGreaterThan(0.9);
    expect(right.digit).toBeGreaterThan(0.9);
    expect(right.size).toBeGreaterThan(0.97);
    expect(right.stroke).toBeGreaterThan(0.9);
    expect(right.fid).toBeLessThan(2 * right.fidFloor + 5);
    expect(right.fidFloor).toBe(blob.fidFloor);
    expect(wrongDigit.digit).toBeLessThan(0.1);
    expect(wrongDigit.size).toBeGreaterThan(0.97);
    expect(wrongDigit.fid).toBeGreaterThan(3 * right.fid);
    expect(wrongSize.size).toBeLessThan(0.03);
    expect(wrongSize.stroke).toBeGreaterThan(0.8);
    expect(wrongStroke.stroke).toBeLessThan(0.15);
    expect(wrongStroke.size).toBeGreaterThan(0.97);
    expect(blob.digit).toBeLessThan(0.3);
    expect(blob.fid).toBeGreaterThan(10 * right.fid);
  }, 120_000);
});

describe('kiln train --captions, kiln sample --prompt, kiln eval --prompts', () => {
  const out = join(dir, 'text');
  const ckpt = join(out, 'checkpoint.safetensors');
  const tiny = ['--steps', '3', '--batch', '4', '--data-limit', '64', '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--save-every', '3'];

  it('trains a text-conditioned UNet whose checkpoint holds the tokenizer, and a grid of one row per prompt', async () => {
    await trainCommand(['--captions', ...tiny, '--time-mean', '0.5', '--out', out]);
    const { metadata } = await k.loadWithMetadata(ckpt);
    const meta = JSON.parse(metadata.kiln!) as { model: { config: { numClasses: number; text: { encoder: { vocabSize: number } } } }; tokenizer: k.data.TokenizerSpec; train: k.train.TrainConfig };
    expect(meta.train.timeMean).toBe(0.5); // --time-mean reaches the trainer
    expect(meta.model.config.numClasses).toBe(0);
    expect(meta.tokenizer.kind).toBe('word');
    expect(meta.model.config.text.encoder.vocabSize).toBe(meta.tokenizer.words.length + 3);
    const loaded = await k.diffusion.loadDenoiser(ckpt);
    expect(loaded.tokenizer!.toSpec()).toEqual(meta.tokenizer);
    // every word of every caption, held-out ones included, is in the vocabulary
    for (const s of D.allCaptions()) expect(loaded.tokenizer!.unknownWords(D.captionText(s))).toEqual([]);
    expect(pngSize(join(out, 'samples.png'))).toEqual(gridSize(GRID_PROMPTS.length, 1)); // one row per grid prompt
    expect(GRID_PROMPTS.every((p) => D.allCaptions().some((s) => D.captionText(s) === p && D.isHeldOut(s)))).toBe(true);
    // resuming with another time mean is refused
    await expect(trainCommand(['--captions', ...tiny, '--out', out, '--resume'])).rejects.toThrow(/--resume: .* was trained with --time-mean 0\.5, not 0 \(pass the same --time-mean\)/);
    // resuming as a class model is refused
    await expect(trainCommand([...tiny, '--out', out, '--resume'])).rejects.toThrow(/--resume: .* holds model .*; they differ in config\.numClasses \(stored 0, now 10\), config\.scaleShift \(stored true, now none\), config\.text \(stored \{.*\}, now none\) \(pass the same --preset\/--model\)/);
  }, 300_000);

  it('kiln sample --prompt draws one row per prompt; words outside the vocabulary and labels are refused', async () => {
    const file = join(dir, 'prompts.png');
    await sampleCommand(['--checkpoint', ckpt, '--prompt', 'a small bold three; the number 7', '--per-class', '3', '--steps', '1', '--out', file]);
    expect(pngSize(file)).toEqual(gridSize(2, 3));
    await expect(sampleCommand(['--checkpoint', ckpt, '--prompt', 'a purple three'])).rejects.toThrow(/--prompt: "purple" in "a purple three" is not in the model's vocabulary; it knows .*"three"/);
    await expect(sampleCommand(['--checkpoint', ckpt, '--prompt', 'a small; '])).rejects.toThrow(/--prompt: expected prompts separated by ';', got "a small; " \(an empty prompt\)/);
    await expect(sampleCommand(['--checkpoint', ckpt, '--labels', '3'])).rejects.toThrow(/--labels: .* is text-conditioned \(kiln train --captions\); give --prompt/);
    await expect(sampleCommand(['--checkpoint', join(import.meta.dirname, '../fixtures/mnist-tiny.safetensors'), '--prompt', 'three'])).rejects.toThrow(/--prompt: .* is conditioned on digit labels, not text/);
    expect(existsSync(join(dir, 'sample.png'))).toBe(false);
    expect(parsePrompts('--prompt', ' seven ;8')).toEqual(['seven', '8']);
  }, 300_000);

  it('kiln eval --prompts scores held-out prompts and writes the figures', async () => {
    const json = join(dir, 'eval.json');
    await evalCommand(['--checkpoint', ckpt, '--prompts', '1', '--per-prompt', '2', '--steps', '1', '--json', json]);
    const r = JSON.parse(readFileSync(json, 'utf8')) as k.diffusion.PromptScores & { promptList: string[] };
    expect(r.prompts).toBe(10);
    expect(r.samples).toBe(20);
    expect(r.promptList).toEqual(D.evalPrompts(1, 0).map(D.captionText));
    for (const v of [r.digit, r.size, r.stroke, r.reference.digit]) expect(v).toBeGreaterThanOrEqual(0);
    expect(r.reference.size).toBe(1);
    expect(r.fid).toBeGreaterThan(r.fidFloor);
    // a text checkpoint samples with its own sampler and guidance unless told otherwise; given options win
    const text = k.diffusion.defaultSampling('flow', true);
    expect(text).not.toMatchObject({ sampler: k.diffusion.defaultSampling('flow').sampler });
    expect(r).toMatchObject({ sampler: text.sampler, steps: 1, guidance: text.guidance });
    await evalCommand(['--checkpoint', ckpt, '--prompts', '1', '--per-prompt', '2', '--steps', '1', '--sampler', 'flow_euler', '--guidance', '0.5', '--json', json]);
    expect(JSON.parse(readFileSync(json, 'utf8'))).toMatchObject({ sampler: 'flow_euler', steps: 1, guidance: 0.5 });
    await expect(evalCommand(['--checkpoint', ckpt, '--per-class', '5'])).rejects.toThrow(/--per-class: .* is text-conditioned \(give --prompts and --per-prompt\)/);
    await expect(evalCommand(['--checkpoint', join(import.meta.dirname, '../fixtures/mnist-tiny.safetensors'), '--prompts', '2'])).rejects.toThrow(/--prompts: .* is conditioned on digit labels/);
  }, 300_000);
});
