/**
 * The demo page with a text-conditioned checkpoint: a tiny DiT with a text encoder, trained here for a few
 * steps on captioned MNIST and saved as `kiln train --captions` saves (model config with `text`, the
 * tokenizer in the metadata).
 *  - Through the worker's request path, in Node: `serve` (web/worker.ts) answers envelopes posted to a
 *    stand-in of the worker scope, as the page's worker does. A prompt samples images and their trajectory;
 *    the same prompt and seed give the same image bit for bit, another prompt another image; a word outside
 *    the vocabulary comes back as the reply's error (the tokenizer's message) and the worker goes on serving.
 *  - In the page, in headless Chromium (SwiftShader WebGPU): the checkpoint loaded with the file picker
 *    replaces the digit controls by a prompt box with example prompts; typing prompts and pressing Enter
 *    samples a row per prompt with its trajectory frames, matching Node within a cross-driver tolerance;
 *    an unknown word is shown as the error; a class checkpoint shows the digit controls and no prompt box.
 * A screenshot of the sampled page goes to out/test/web-prompt.png.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import * as k from '../../src/index.ts';
import { ROOT } from '../../web/build.ts';
import { localCheckpoints } from '../../web/serve.ts';
import { demoSession } from './demo-page.ts';
import { EXAMPLE_PROMPTS } from '../../web/explain.ts';
import { parsePrompts } from '../../web/prompt.ts';
import type { Progress, Reply, Request, Results } from '../../web/protocol.ts';
import { serve, type WorkerScope } from '../../web/worker.ts';

const OUT = join(ROOT, 'out/test');
/** Where the text checkpoint is written, as a run of `kiln train --captions` under out/ would be (served under /out/test/…). */
const RUNS = 'out/test/web-prompt';
const TEXT_CHECKPOINT = join(ROOT, RUNS, 'text-tiny/checkpoint.safetensors');
const CLASS_CHECKPOINT = join(ROOT, 'tests/fixtures/mnist-tiny.safetensors');
/** An untrained ε-prediction model of digit classes (its objective offers other samplers than rectified flow's), outside RUNS. */
const EPS_CHECKPOINT = join(OUT, 'web-prompt-eps.safetensors');
/** How the tests sample: few steps of a cheap sampler, guidance (so the empty caption's pass runs too). */
const SAMPLING = { sampler: 'flow_euler' as const, steps: 3, guidance: 1.5 };
const [P1, P2] = ['a small bold three', 'a large thin seven'];
/**
 * Page (SwiftShader) against Node (lavapipe here) for the tiny DiT: three guided Euler steps of a network with
 * softmax attention over patches and text tokens; the drivers' exp (WGSL allows 3 + 2|x| ulp) differ in the
 * last bits, which three steps carry to well under one grey level (1/127.5 ≈ 7.8e-3).
 */
const CROSS_DRIVER_ATOL = 2e-3;

/** Runs `make` once, on first use, so any one test runs alone with `-t`. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => (p ??= make());
}

/** The tiny text checkpoint and its tokenizer, trained for four steps (no EMA: the saved weights are the trained ones). */
const textCheckpoint = once(async () => {
  const mnist = await k.data.loadMnist('train');
  const data = new k.data.CaptionBatches(mnist, 8, 1);
  const tok = k.data.WordTokenizer.fromCaptions(k.data.allCaptions().map(k.data.captionText));
  const encoder = { vocabSize: tok.vocabSize, length: tok.length, dim: 16, depth: 1, heads: 2, mlpRatio: 2 };
  k.manualSeed(0);
  const model = new k.nn.DiT({ channels: 1, size: 28, patch: 7, dim: 16, depth: 1, heads: 2, mlpRatio: 2, numClasses: 0, text: { encoder } });
  const trainer = new k.train.DiffusionTrainer(model, { ...k.train.TRAIN_DEFAULTS, objective: 'flow', steps: 4, batchSize: 8, warmup: 1, labelDropout: 0.3, emaDecay: 0 });
  for (let s = 0; s < 4; s++) {
    const b = data.at(s);
    await trainer.trainStep(b.x, tok.encode(b.captions));
    b.x.dispose();
  }
  await trainer.flush();
  const bytes = await trainer.save(undefined, { model: { kind: 'dit', config: model.config }, tokenizer: tok.toSpec() });
  mkdirSync(dirname(TEXT_CHECKPOINT), { recursive: true });
  writeFileSync(TEXT_CHECKPOINT, bytes);
  return { tok };
});

const epsCheckpoint = once(async () => {
  k.manualSeed(0);
  const model = new k.nn.DiT({ channels: 1, size: 28, patch: 7, dim: 16, depth: 1, heads: 2, mlpRatio: 2, numClasses: 10 });
  const trainer = new k.train.DiffusionTrainer(model, { ...k.train.TRAIN_DEFAULTS, objective: 'eps', steps: 1, batchSize: 2 });
  const bytes = await trainer.save(undefined, { model: { kind: 'dit', config: model.config } });
  mkdirSync(dirname(EPS_CHECKPOINT), { recursive: true });
  writeFileSync(EPS_CHECKPOINT, bytes);
});

// ---- the worker's request path, in Node ----

/** What the stand-in scope received, by request id. */
const progress = new Map<number, Progress[]>();
const waiting = new Map<number, (r: Reply) => void>();
const scope: WorkerScope = {
  onmessage: null,
  postMessage(m: Reply) {
    if (m.kind === 'progress') progress.get(m.id)?.push(m.event);
    else waiting.get(m.id)?.(m);
  },
};
let nextId = 1;

/** Posts a request to the worker as the page does; resolves with its final reply and its progress events. */
function ask(req: Request): Promise<{ reply: Reply; events: Progress[] }> {
  const id = nextId++;
  const events: Progress[] = [];
  progress.set(id, events);
  return new Promise((resolve) => {
    waiting.set(id, (reply) => resolve({ reply, events }));
    scope.onmessage!({ data: { id, req } } as MessageEvent);
  });
}

/** The result of a request that must succeed. */
async function result<T extends Request['type']>(req: Extract<Request, { type: T }>): Promise<{ result: Results[T]; events: Progress[] }> {
  const { reply, events } = await ask(req);
  if (reply.kind !== 'done') throw new Error(`${req.type} failed: ${reply.kind === 'error' ? reply.message : reply.kind}`);
  return { result: reply.result as Results[T], events };
}

/** The message of a request that must fail. */
async function failure(req: Request): Promise<string> {
  const { reply } = await ask(req);
  expect(reply.kind, `${req.type} should fail`).toBe('error');
  return reply.kind === 'error' ? reply.message : '';
}

const fileBuffer = (file: string) => {
  const b = readFileSync(file);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const PX = 28 * 28;
const row = (x: Float32Array, i: number) => x.subarray(i * PX, (i + 1) * PX);

/** Loads the text checkpoint into the worker (from its file, as the page's file picker sends it). */
async function loadText(): Promise<Results['mnist-load']> {
  await textCheckpoint();
  return (await result({ type: 'mnist-load', bytes: fileBuffer(TEXT_CHECKPOINT), source: 'text-tiny' })).result;
}

/** Node's samples of prompts from the text checkpoint through the worker: what the page must show. */
async function nodeSample(prompts: string[], seed: number): Promise<Float32Array> {
  await loadText();
  return (await result({ type: 'mnist-sample', prompts, seed, ...SAMPLING })).result.x;
}

// ---- the page ----

/** The page's server and the browser; every test leaves no console error behind. */
const demo = demoSession();

type Demo = { ready: boolean; busy: boolean; fatal: string | null; mnist: { defaultLoaded: boolean; error: string | null; samples: Float32Array | null; frames: number; evaluations: number[]; prompts: string[] | null; model: { source: string; text: { words: string[]; examples: string[] } | null } | null } };

/** A new tab on the demo page (the size of the screenshot), its console errors collected, once its worker is ready. */
const openDemo = () => demo.open({ width: 1240, height: 900 });

/** Waits until the page is idle after a load of `source` or (without it) a sampling run; returns the MNIST section's error. */
async function settled(tab: Page, source?: string): Promise<string | null> {
  await tab.waitForFunction((src) => {
    const st = (globalThis as unknown as { kilnDemo: Demo }).kilnDemo;
    return !st.busy && (st.mnist.error !== null || (src ? st.mnist.model?.source === src : st.mnist.samples !== null));
  }, source ?? null, { timeout: 110_000, polling: 200 });
  return tab.evaluate(() => (globalThis as unknown as { kilnDemo: Demo }).kilnDemo.mnist.error);
}

/** Loads a checkpoint with the page's file picker (the tab accepts the question before a user's model is replaced). */
async function pickFile(tab: Page, file: string): Promise<void> {
  await tab.setInputFiles('#mnist-file', file);
  expect(await settled(tab, basename(file))).toBeNull();
}

/** What the page shows of the conditioning controls. */
function controls(tab: Page) {
  return tab.evaluate(() => {
    const shown = (id: string) => !(document.getElementById(id)!.hidden);
    return {
      promptBox: shown('mnist-prompt-box'), promptHelp: shown('mnist-prompt-help'), digit: shown('mnist-digit-label'),
      count: document.getElementById('mnist-count-label')!.textContent, model: document.getElementById('mnist-model')!.textContent ?? '',
      suggestions: Array.from(document.querySelectorAll('#mnist-prompt-suggestions button')).map((b) => b.textContent),
      sampling: ['mnist-sampler', 'mnist-steps', 'mnist-guidance'].map((id) => (document.getElementById(id) as HTMLInputElement).value).join(' '),
      samplerNote: document.getElementById('mnist-sampler-note')!.textContent ?? '',
    };
  });
}

/** The last sampling run as the page holds it. */
function lastRun(tab: Page) {
  return tab.evaluate(() => {
    const m = (globalThis as unknown as { kilnDemo: Demo }).kilnDemo.mnist;
    const grid = document.getElementById('mnist-grid') as HTMLCanvasElement;
    return {
      samples: Array.from(m.samples ?? []), frames: m.frames, evaluations: m.evaluations, prompts: m.prompts, error: m.error,
      grid: [grid.width, grid.height], caption: document.getElementById('mnist-grid-caption')!.textContent, info: document.getElementById('mnist-info')!.textContent,
      slider: Number((document.getElementById('mnist-frame') as HTMLInputElement).max),
    };
  });
}

beforeAll(async () => {
  await k.init();
  serve(scope);
});

describe('prompts in the demo page', () => {
  it('parsePrompts splits the box at new lines and semicolons and drops empty parts', () => {
    expect(parsePrompts(` ${P1} ;\n\n  the   number 5;;\nbold 0 `)).toEqual([P1, 'the number 5', 'bold 0']);
    expect(parsePrompts(' ; \n ')).toEqual([]);
  });

  it('the worker samples a text checkpoint from prompts: the same prompt and seed, the same image; another prompt, another image', async () => {
    const { tok } = await textCheckpoint();
    await result({ type: 'init' });
    const loaded = await loadText();
    expect(loaded.model).toMatchObject({ kind: 'dit', numClasses: 0, objective: 'flow', shape: [1, 28, 28], student: null });
    expect(loaded.model.text).toEqual({ words: [...tok.words], maxWords: tok.length - 1, examples: EXAMPLE_PROMPTS, sampling: k.diffusion.defaultSampling('flow', true) });
    const { result: a, events } = await result({ type: 'mnist-sample', prompts: [P1, P2], seed: 3, ...SAMPLING });
    expect(a.shape).toEqual([2, 1, 28, 28]);
    expect(a.x.every(Number.isFinite)).toBe(true);
    // the trajectory: a frame after every step, x_t and the predicted x₀ of both images
    const frames = events.filter((e) => e.type === 'mnist-frame');
    expect(frames.map((f) => f.step)).toEqual([1, 2, 3]);
    for (const f of frames) expect([f.x.length, f.x0.length]).toEqual([2 * PX, 2 * PX]);
    // guidance: the prompts' rows and the empty caption's in one batch per step
    expect(a.evaluations).toEqual([4, 4, 4]);
    expect(a.sampling).toBe('flow_euler, 3 steps, guidance 1.5');
    const again = await nodeSample([P1, P2], 3);
    expect(maxAbsDiff(again, a.x)).toBe(0);
    const b = await nodeSample([P1, P1], 3);
    // row 0: the same prompt on the same noise; row 1: the other prompt on the same noise
    expect(maxAbsDiff(row(b, 0), row(a.x, 0))).toBe(0);
    const moved = maxAbsDiff(row(b, 1), row(a.x, 1));
    console.log(`text checkpoint in the worker: '${P2}' vs '${P1}' on the same noise differ by up to ${moved.toExponential(2)}`);
    expect(moved).toBeGreaterThan(1e-4);
    // and another seed, other noise
    expect(maxAbsDiff(await nodeSample([P1, P2], 4), a.x)).toBeGreaterThan(1e-2);
  }, 240_000);

  it('the server lists a text checkpoint under out/ as one sampled from prompts', async () => {
    await textCheckpoint();
    expect(localCheckpoints(RUNS)).toEqual([{ url: `${RUNS}/text-tiny/checkpoint.safetensors`, label: expect.stringMatching(/^out\/test\/web-prompt\/text-tiny: your dit, text-conditioned \(sampled from prompts\), 4 training steps \([\d.]+ MB\)$/) }]);
  }, 120_000);

  it('the worker answers a word outside the vocabulary, and labels for a text model, with an error reply and goes on serving', async () => {
    const { tok } = await textCheckpoint();
    await loadText();
    const bad = 'a purple three';
    const expected = (() => {
      try {
        tok.encodePrompts('prompt', [bad]);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    })();
    expect(expected).toMatch(/^prompt: "purple" in "a purple three" is not in the model's vocabulary; it knows /);
    expect(await failure({ type: 'mnist-sample', prompts: [P1, bad], seed: 0, ...SAMPLING })).toBe(expected);
    expect(await failure({ type: 'mnist-sample', prompts: ['the small bold handwritten number 3 , large and thin'], seed: 0, ...SAMPLING })).toBe(`prompt: "the small bold handwritten number 3 , large and thin" has 10 words; the model reads at most ${tok.length - 1}`);
    expect(await failure({ type: 'mnist-sample', labels: [3], seed: 0, ...SAMPLING })).toBe('text-tiny is text-conditioned: it samples from prompts, not digit labels');
    expect(await failure({ type: 'mnist-sample', prompts: [], seed: 0, ...SAMPLING })).toBe('between 1 and 200 samples at a time, got 0');
    const { result: ok } = await result({ type: 'mnist-sample', prompts: [P1], seed: 0, ...SAMPLING });
    expect(ok.shape).toEqual([1, 1, 28, 28]);
    // a model of digit classes takes no prompts
    const { result: cls } = await result({ type: 'mnist-load', bytes: fileBuffer(CLASS_CHECKPOINT), source: 'mnist-tiny' });
    expect(cls.model.text).toBeNull();
    expect(await failure({ type: 'mnist-sample', prompts: [P1], seed: 0, ...SAMPLING })).toBe('mnist-tiny is conditioned on digit classes, not text: it takes digit labels, not prompts');
  }, 240_000);

  it('the page: a text checkpoint from the file picker gets a prompt box; prompts sample a row each with the trajectory, as Node does; a class checkpoint keeps its digits', async () => {
    const { tok } = await textCheckpoint();
    await epsCheckpoint();
    const tab = await openDemo();
    tab.on('dialog', (d) => void d.accept());
    // a class checkpoint: digit controls, no prompt box
    await pickFile(tab, CLASS_CHECKPOINT);
    const classControls = await controls(tab);
    expect(classControls).toMatchObject({ promptBox: false, promptHelp: false, digit: true, count: 'Per digit' });
    // the text checkpoint: the prompt box, its example prompts and vocabulary, and kiln sample's sampling of it
    await pickFile(tab, TEXT_CHECKPOINT);
    const c = await controls(tab);
    const text = k.diffusion.defaultSampling('flow', true);
    expect(c).toMatchObject({ promptBox: true, promptHelp: true, digit: false, count: 'Per prompt', suggestions: EXAMPLE_PROMPTS, sampling: `${text.sampler} ${text.steps} ${text.guidance}` });
    expect(c.samplerNote).not.toBe(classControls.samplerNote); // the note explains the sampler shown
    expect(c.model).toMatch(/^Loaded checkpoint\.safetensors: dit, .* rectified flow, 4 training steps, images 1×28×28, text-conditioned \(\d+ words\): sample it from a prompt\.$/);
    await expect(tab.locator('#mnist-prompt-words').textContent()).resolves.toBe(`The model knows ${tok.words.length - 1} words (and commas), up to ${tok.length - 1} in a prompt: ${tok.words.filter((w) => w !== ',').join(' ')}.`);
    await expect(tab.locator('#mnist-guidance-note').textContent()).resolves.toMatch(/^Classifier-free guidance: the model runs with the prompt and with the empty caption/);
    // two prompts, two samples each, typed and sampled with Enter
    await tab.selectOption('#mnist-sampler', SAMPLING.sampler);
    await tab.fill('#mnist-steps', String(SAMPLING.steps));
    await tab.fill('#mnist-guidance', String(SAMPLING.guidance));
    await tab.fill('#mnist-seed', '3');
    await tab.fill('#mnist-count', '2');
    await tab.fill('#mnist-prompt', '');
    await tab.locator('#mnist-prompt').pressSequentially(`${P1}; ${P2}`);
    await tab.locator('#mnist-prompt').press('Enter');
    expect(await settled(tab)).toBeNull();
    const got = await lastRun(tab);
    expect(got.prompts).toEqual([P1, P1, P2, P2]);
    expect(got.samples).toHaveLength(4 * PX);
    expect(got.samples.every(Number.isFinite)).toBe(true);
    expect(got.frames).toBe(SAMPLING.steps);
    expect(got.slider).toBe(SAMPLING.steps - 1);
    expect(got.evaluations).toEqual([8, 8, 8]);
    // a row per prompt: two columns of 28 + 2 pixels, and a border
    expect(got.grid).toEqual([62, 62]);
    expect(got.caption).toBe(`Samples, a row per prompt: 1. “${P1}” · 2. “${P2}”`);
    const node = await nodeSample([P1, P1, P2, P2], 3);
    const d = maxAbsDiff(got.samples, node);
    console.log(`text checkpoint in the page: '${got.info}'; max |page − Node| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(CROSS_DRIVER_ATOL);
    await tab.locator('#mnist').screenshot({ path: join(OUT, 'web-prompt.png') });
    // the box grows with its lines
    await tab.fill('#mnist-prompt', [P1, P2, P1, P2].join('\n'));
    expect(await tab.locator('#mnist-prompt').evaluate((b) => (b as HTMLTextAreaElement).rows)).toBe(4);
    // a word outside the vocabulary: the tokenizer's message in the page; the worker keeps serving
    await tab.fill('#mnist-prompt', 'a purple three');
    await tab.click('#mnist-sample');
    const error = await settled(tab);
    expect(error).toMatch(/^prompt: "purple" in "a purple three" is not in the model's vocabulary; it knows /);
    await expect(tab.locator('#mnist-info').textContent()).resolves.toBe(`Error: ${error}`);
    await expect(tab.locator('#mnist-sample-progress-label').textContent()).resolves.toBe('not sampled');
    // an example prompt fills the box and samples
    await tab.click(`#mnist-prompt-suggestions button:text-is("${EXAMPLE_PROMPTS[2]}")`);
    expect(await settled(tab)).toBeNull();
    expect(await tab.inputValue('#mnist-prompt')).toBe(EXAMPLE_PROMPTS[2]);
    expect((await lastRun(tab)).prompts).toEqual([EXAMPLE_PROMPTS[2], EXAMPLE_PROMPTS[2]]);
    // an empty box asks for a prompt
    await tab.fill('#mnist-prompt', ' ; ');
    await tab.click('#mnist-sample');
    expect(await settled(tab)).toMatch(/^type a prompt \(e\.g\. "a small bold three"\)/);
    // back to the class checkpoint: digits again, and the sampling it had
    await pickFile(tab, CLASS_CHECKPOINT);
    expect(await controls(tab)).toMatchObject({ promptBox: false, promptHelp: false, digit: true, count: 'Per digit', sampling: classControls.sampling, samplerNote: classControls.samplerNote });
    await expect(tab.locator('#mnist-guidance-note').textContent()).resolves.toMatch(/with and without the digit label/);
    // text, then a class model of another objective: its steps and guidance come back, and its objective's
    // default sampler replaces one it does not offer (the class checkpoint's flow_heun)
    await pickFile(tab, TEXT_CHECKPOINT);
    await pickFile(tab, EPS_CHECKPOINT);
    const eps = k.diffusion.defaultSampling('eps');
    expect(classControls.sampling).toBe(`flow_heun ${eps.steps} ${eps.guidance}`);
    expect((await controls(tab)).sampling).toBe(`${eps.sampler} ${eps.steps} ${eps.guidance}`);
    await tab.close();
  }, 300_000);
});
