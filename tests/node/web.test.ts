/**
 * The demo page (web/) in headless Chromium with SwiftShader WebGPU, driven by playwright-core from Node,
 * checked against kiln running in Node on its own adapter (lavapipe here, or a GPU):
 *  - the page loads with no console errors, its worker gets a WebGPU device, and without WebGPU it says so;
 *  - a short toy training in the page lowers the loss by a stated factor and follows the loss curve that
 *    `trainToy` gives in Node for the same seed;
 *  - sampling the fixture checkpoint in the page, in Node and the golden sample (tests/fixtures, written by
 *    scripts/make-web-fixture.ts through the same `generate`, so only a regression snapshot) agree within
 *    stated tolerances with two of its images recomputed independently: the UNet on the float64 CPU
 *    reference device and the guided rectified-flow Euler sampler written out in this file;
 *  - the page gives bit for bit the sample Node gives on the same driver (SwiftShader, in a child process;
 *    reported as skipped when that driver is not installed), and within a stated tolerance the one Node
 *    gives on its own adapter; `kiln sample`'s PNG holds exactly Node's pixels;
 *  - a screenshot of the page's sample grid (out/test/web-mnist-grid.png) shows those pixels and ten
 *    non-blank, centred digit-like shapes;
 *  - training the tiny UNet on MNIST in the page runs its progress bar to the end, lowers the loss by a
 *    stated factor and leaves a model that samples;
 *  - students of `kiln distill` (tiny runs from the fixture, made here) are listed by the server with what
 *    they are, and the page says what it loaded, fits its controls to it, samples it its own way — its steps,
 *    one network evaluation of the undoubled batch per step, counted in the worker — as Node's
 *    `generate` with `k.diffusion.studentSampling` does, and refuses guidance and the null class.
 *
 * Each test gets what it needs itself (the shared page from beforeAll; samples through `once` helpers that
 * the first test needing them computes), so any one of them runs alone with `-t`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dialog, Page } from 'playwright-core';
import * as k from '../../src/index.ts';
import { sampleCommand } from '../../src/cli/diffusion.ts';
import { distillCommand } from '../../src/cli/distill.ts';
import { trainToy } from '../../src/train/index.ts';
import { ROOT } from '../../web/build.ts';
import { localCheckpoints } from '../../web/serve.ts';
import { demoSession } from './demo-page.ts';

const FIXTURE = join(ROOT, 'tests/fixtures/mnist-tiny.safetensors');
const GOLDEN = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/mnist-tiny-golden.json'), 'utf8')) as {
  labels: number[]; perClass: number; sampler: k.diffusion.SamplerName; steps: number; guidance: number; seed: number; objective: k.diffusion.Objective; shape: number[]; adapter: string;
};
/** A float32 little-endian file. */
function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
const golden = readF32(join(ROOT, 'tests/fixtures/mnist-tiny-golden.f32'));
const OUT = join(ROOT, 'out/test');
const REGENERATE = 'if the engine or the sampler changed on purpose, run `npx tsx scripts/make-web-fixture.ts --golden-only`';

/**
 * Tolerance between samples made on different drivers (images in about [−1, 1]; one grey level is
 * 1/127.5 ≈ 7.8e-3). The random stream is the same everywhere, but WGSL lets sin/cos be off by up to
 * 2^-11 (absolute, on [−π, π]) and exp by 3 + 2|x| ulp, so one forward pass of the fixture UNet differs by up to ~1.5e-4 (relative)
 * between lavapipe and SwiftShader, and ten guided Euler steps (each applying (1 + w)·cond − w·uncond, w = 2)
 * carry that to ~6e-3 (measured) in a few pixels. On the same driver the browser and Node agree bit for bit
 * (checked below by sampling in Node on SwiftShader, the driver of the headless Chromium).
 */
const CROSS_DRIVER_ATOL = 1.2e-2;
/** Share of 8-bit grey pixels that must come out identical across drivers (measured 99.6%). */
const CROSS_DRIVER_IDENTICAL = 0.98;
/** SwiftShader's Vulkan driver as installed with Debian's chromium (what the headless browser uses). */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The images of the golden sample (indices into its batch) recomputed on the float64 CPU reference. */
const REF_IMAGES = [3, 8];
/**
 * Tolerances of a sample against the float64 reference. Max: the cross-driver bound above, whose
 * argument (WGSL's error bounds for sin/cos/exp, carried through ten guided steps) holds for the
 * difference to exact arithmetic as well (measured on images 3 and 8: lavapipe 3.8e-6, SwiftShader 3.9e-4).
 * RMS: f32 rounding alone gives ~7e-7 (lavapipe); SwiftShader's coarser sin/cos/exp give 5.8e-5 (measured).
 * 5e-4 leaves a margin of 8× over that and is 1/16 of a grey level; a wrong sampler coefficient moves every
 * pixel and shows in the RMS even where it stays under the max.
 */
const REF_ATOL = CROSS_DRIVER_ATOL;
const REF_RMS = 5e-4;

/** Toy training in the page: ≥ this factor between the mean loss of the first 10 and the last 10 steps (measured 1.95). */
const TOY_LOSS_FACTOR = 1.8;
/** Toy training: per-step relative difference allowed between the page's and Node's loss curves (measured 1.4e-4). */
const TOY_CURVE_RTOL = 2e-3;
/** MNIST training in the page: the tiny UNet, few steps; mean loss of the first 5 steps over the last 5 (measured 1.45). */
const MNIST_TRAIN = { steps: 30, batchSize: 8 };
const MNIST_LOSS_FACTOR = 1.3;
const TOY = { dataset: '8gaussians' as const, objective: 'ddpm-eps' as const, steps: 100, batchSize: 256, lr: 0.005, seed: 0 };
/** Where the students of the fixture are distilled (served under /out/test/students/). */
const STUDENTS = 'out/test/students';
/**
 * A student's samples in the page vs in Node on another driver: one or two evaluations of the tiny UNet and
 * no guidance, so the cross-driver differences (sin/cos/exp within WGSL's bounds, see above) stay far below
 * those of the ten guided steps of the fixture (measured against lavapipe: 2.7e-4 for the 1-step progressive
 * student, 4.4e-4 for the 2-step consistency student, whose second step re-noises with Box–Muller normals).
 */
const STUDENT_ATOL = 1e-3;


/** The page's server and the browser; every test leaves no console error behind (page loading counts toward the first test that runs). */
const demo = demoSession();
const consoleErrors = demo.errors;
/** The page the tests share (opened in beforeAll); a test that needs a fresh one opens its own. */
let page: Page;

/** Runs `make` once, on first use: what several tests need, whichever of them runs (alone with `-t` too). */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => (p ??= make());
}

/** Bytes as `kiln sample` writes them: [−1, 1] → 0…255, rounded, clamped (written here independently). */
const toGrey = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The golden settings sampled by Node in a child process on SwiftShader (the headless browser's driver);
 * the caller checks first that the driver is installed.
 */
async function nodeOnSwiftShader(): Promise<{ sample: Float32Array; seconds: number }> {
  const out = join(OUT, 'web-node-swiftshader.f32');
  rmSync(out, { force: true });
  const t0 = performance.now();
  await new Promise<void>((ok, fail) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/make-web-fixture.ts', '--golden-out', out], { cwd: ROOT, env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD }, timeout: 110_000 }, (err, _stdout, stderr) => {
      if (err) fail(new Error(`Node on SwiftShader failed: ${err.message}\n${stderr}`));
      else ok();
    });
  });
  return { sample: readF32(out), seconds: (performance.now() - t0) / 1000 };
}

/** A minimal PNG decoder (8-bit grey, grey+alpha, RGB, RGBA; no interlace): pixels as [h][w][channels]. */
function decodePng(file: Uint8Array): { width: number; height: number; channels: number; data: Uint8Array } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => file[i] === b)) throw new Error('not a PNG file');
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  for (let o = 8; o < file.length;) {
    const len = dv.getUint32(o);
    const type = String.fromCharCode(...file.subarray(o + 4, o + 8));
    const body = file.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      width = dv.getUint32(o + 8);
      height = dv.getUint32(o + 12);
      const depth = body[8]!, color = body[9]!, interlace = body[12]!;
      if (depth !== 8 || interlace !== 0) throw new Error(`PNG: unsupported bit depth ${depth} / interlace ${interlace}`);
      channels = ({ 0: 1, 4: 2, 2: 3, 6: 4 } as Record<number, number>)[color] ?? 0;
      if (!channels) throw new Error(`PNG: unsupported color type ${color}`);
    } else if (type === 'IDAT') idat.push(body);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[y * stride + x - channels]! : 0;
      const b = y > 0 ? data[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? data[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      data[y * stride + x] = (src[x]! + pred) & 0xff;
    }
  }
  return { width, height, channels, data };
}

/**
 * Students of the fixture, distilled here by `kiln distill` with tiny settings (a couple of training steps:
 * what the tests need is that they are students): progressive 2 → 1 step, and a 2-step consistency model.
 */
const students = once(async () => {
  rmSync(join(ROOT, STUDENTS), { recursive: true, force: true });
  const small = ['--teacher', FIXTURE, '--batch', '4', '--warmup', '1', '--steps', '2', '--grid-per-class', '1', '--save-every', '2'];
  await distillCommand(['--method', 'progressive', ...small, '--teacher-steps', '2', '--steps-student', '1', '--out', join(ROOT, STUDENTS, 'progressive')]);
  await distillCommand(['--method', 'consistency', ...small, '--steps-student', '2', '--grid', '4', '--out', join(ROOT, STUDENTS, 'consistency')]);
  await distillCommand(['--method', 'consistency', ...small, '--steps-student', '2', '--grid', '4', '--guidance-range', '0,3', '--out', join(ROOT, STUDENTS, 'consistency-w')]);
  return { progressive: `${STUDENTS}/progressive/checkpoint.safetensors`, consistency: `${STUDENTS}/consistency/checkpoint.safetensors`, ranged: `${STUDENTS}/consistency-w/checkpoint.safetensors` };
});

/**
 * Node's sample of a student (`url` under the repository) with its own sampling at `steps` (default: its own)
 * and, for a student that takes the guidance scale, at scale `w`; and the batch of each network evaluation.
 */
async function nodeStudentSample(url: string, labels: number[], seed: number, steps?: number, w?: number): Promise<{ sample: Float32Array; evaluations: number[] }> {
  const { model, student } = await k.diffusion.loadDenoiser(join(ROOT, url));
  expect(student, `${url} is a student`).not.toBeNull();
  const evaluations: number[] = [];
  const x = await k.noGrad(() => k.diffusion.generate(model, {
    objective: student!.objective, labels, shape: [1, 28, 28], seed, ...k.diffusion.studentSampling(student!, steps, w),
    onEvaluate: ({ batch }) => void evaluations.push(batch),
  }));
  const sample = (await x.data()) as Float32Array;
  x.dispose();
  for (const p of model.parameters()) p.dispose();
  return { sample, evaluations };
}

/** Waits until `tab` is idle after a load of `source` (or, without it, a sampling run); returns the MNIST section's error, if any. */
async function mnistDone(tab: Page, source?: string): Promise<string | null> {
  await tab.waitForFunction((src) => {
    const st = (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { error: string | null; samples: unknown; model: { source: string } | null } } }).kilnDemo;
    return !st.busy && (st.mnist.error !== null || (src ? st.mnist.model?.source === src : st.mnist.samples !== null));
  }, source ?? null, { timeout: 110_000, polling: 250 });
  return tab.evaluate(() => (globalThis as unknown as { kilnDemo: { mnist: { error: string | null } } }).kilnDemo.mnist.error);
}

/** Loads a checkpoint in `tab` by URL, as a user types it (saying yes when the page asks before replacing a model the user loaded). */
async function loadByUrl(tab: Page, url: string): Promise<void> {
  const accept = (d: Dialog) => void d.accept();
  tab.on('dialog', accept);
  try {
    await tab.fill('#mnist-url', url);
    await tab.click('#mnist-fetch');
    expect(await mnistDone(tab, url)).toBeNull();
    await tab.fill('#mnist-url', '');
  } finally {
    tab.off('dialog', accept);
  }
}

/** Samples in `tab` with its controls as they are after setting these: the samples, frames, evaluations, info line and error. */
async function samplePage(tab: Page, o: { digit: string; per: number; seed: number; steps?: number }) {
  await tab.selectOption('#mnist-digit', o.digit);
  await tab.fill('#mnist-count', String(o.per));
  await tab.fill('#mnist-seed', String(o.seed));
  if (o.steps !== undefined) await tab.fill('#mnist-steps', String(o.steps));
  await tab.click('#mnist-sample');
  const error = await mnistDone(tab);
  const got = await tab.evaluate(() => {
    const m = (globalThis as unknown as { kilnDemo: { mnist: { samples: Float32Array | null; frames: number; evaluations: number[] } } }).kilnDemo.mnist;
    return { samples: Array.from(m.samples ?? []), frames: m.frames, evaluations: m.evaluations, info: document.getElementById('mnist-info')!.textContent ?? '' };
  });
  return { ...got, error };
}

/** The sampling controls of `tab` as the user sees them. */
function samplingControls(tab: Page) {
  return tab.evaluate(() => {
    const g = (id: string) => document.getElementById(id) as HTMLInputElement;
    const sampler = document.getElementById('mnist-sampler') as HTMLSelectElement;
    const none = (document.getElementById('mnist-digit') as HTMLSelectElement).querySelector<HTMLOptionElement>('option[value="10"]')!;
    return {
      steps: g('mnist-steps').value, guidance: g('mnist-guidance').value, guidanceDisabled: g('mnist-guidance').disabled,
      samplers: Array.from(sampler.options).map((o) => o.textContent), samplerDisabled: sampler.disabled, noneDisabled: none.disabled,
      samplerNote: document.getElementById('mnist-sampler-note')!.textContent ?? '', guidanceNote: document.getElementById('mnist-guidance-note')!.textContent ?? '',
      model: document.getElementById('mnist-model')!.textContent ?? '',
    };
  });
}

/** Waits until the page is idle with `kilnDemo[section][field]` set (an error reported by the section fails). */
async function waitIdle(section: 'toy' | 'mnist', field: 'samples' | 'model', timeout = 110_000): Promise<void> {
  await page.waitForFunction(([s, f]) => {
    const st = (globalThis as unknown as { kilnDemo: { busy: boolean } & Record<string, Record<string, unknown>> }).kilnDemo;
    return !st.busy && (st[s]!.error !== null || st[s]![f] !== null);
  }, [section, field] as const, { timeout, polling: 250 });
  const err = await page.evaluate((s) => (globalThis as unknown as { kilnDemo: Record<string, { error: string | null }> }).kilnDemo[s]!.error, section);
  expect(err, `the page's ${section} section reported an error`).toBeNull();
}

/** Node's sample of the golden settings on this machine's adapter, with the per-step callback the page uses for its trajectory. */
const nodeFixtureSample = once(async () => {
  const { model } = await k.diffusion.loadDenoiser(FIXTURE);
  const labels = GOLDEN.labels.flatMap((l) => Array<number>(GOLDEN.perClass).fill(l));
  const steps: number[] = [];
  const totals: number[] = [];
  let lastX: Float32Array | null = null;
  const x = await k.noGrad(() => k.diffusion.generate(model, {
    objective: GOLDEN.objective, labels, shape: [1, 28, 28], sampler: GOLDEN.sampler, steps: GOLDEN.steps, guidance: GOLDEN.guidance, seed: GOLDEN.seed,
    onStep: async ({ step, total, x: xi }) => {
      steps.push(step);
      totals.push(total);
      lastX = (await xi.data()) as Float32Array;
    },
  }));
  const sample = (await x.data()) as Float32Array;
  x.dispose();
  for (const p of model.parameters()) p.dispose();
  return { sample, steps, totals, lastX: lastX as Float32Array | null };
});

/** The page's sample of the golden settings: the fixture loaded with the file picker, sampled with the same options. */
const pageFixtureSample = once(async () => {
  await page.setInputFiles('#mnist-file', FIXTURE);
  await waitIdle('mnist', 'model');
  await page.selectOption('#mnist-sampler', GOLDEN.sampler);
  await page.fill('#mnist-steps', String(GOLDEN.steps));
  await page.fill('#mnist-guidance', String(GOLDEN.guidance));
  await page.selectOption('#mnist-digit', 'all');
  await page.fill('#mnist-count', String(GOLDEN.perClass));
  await page.fill('#mnist-seed', String(GOLDEN.seed));
  await page.click('#mnist-sample');
  await waitIdle('mnist', 'samples');
  const got = await page.evaluate(() => {
    const s = (globalThis as unknown as { kilnDemo: { mnist: { samples: Float32Array; shape: number[]; frames: number; sampleSeconds: number; model: { objective: string } } } }).kilnDemo.mnist;
    return { samples: Array.from(s.samples), shape: s.shape, frames: s.frames, objective: s.model.objective, seconds: s.sampleSeconds };
  });
  const sample = Float32Array.from(got.samples);
  writeFileSync(join(OUT, 'web-page-sample.f32'), sample);
  return { sample, shape: got.shape, frames: got.frames, objective: got.objective, seconds: got.seconds };
});

/** Node on SwiftShader in a child process (started by the first test that needs it, so it overlaps the page's work). */
const swiftShaderSample = once(nodeOnSwiftShader);

/**
 * Images of the golden sample recomputed independently of the code under test: the UNet's forward pass runs
 * on the float64 CPU reference device (which interprets the graph without the WGSL code generator), and the
 * rest is written out here from the definitions — the starting noise as the first draw of a generator seeded
 * with the golden seed (Philox normals on the host), rectified-flow time t_i = 1 − i/steps (shift 1), guidance
 * u = (1 + w)·u(x, t, class) − w·u(x, t, null class) and the Euler step x ← x + (t_{i+1} − t_i)·u. Nothing of
 * `generate`, `sample`, `samplingPath` or `classifierFreeGuidance` is used. Only REF_IMAGES are computed (the
 * images of a batch are independent: the UNet has no batch statistics), to keep the float64 run short.
 */
const cpuReference = once(async () => {
  const t0 = performance.now();
  const D = 784, B = REF_IMAGES.length, N = GOLDEN.labels.length * GOLDEN.perClass;
  expect(GOLDEN.sampler, 'the reference integrates flow_euler').toBe('flow_euler');
  expect(GOLDEN.objective, 'the reference integrates a velocity').toBe('flow');
  const labels = GOLDEN.labels.flatMap((l) => Array<number>(GOLDEN.perClass).fill(l));
  const x = await k.withDevice('cpu', async () => {
    const { model } = await k.diffusion.loadDenoiser(FIXTURE);
    const nullClass = model.config.numClasses;
    const noise = k.randomHost('normal', N * D, undefined, new k.Generator(GOLDEN.seed));
    const x = new Float64Array(B * D);
    REF_IMAGES.forEach((n, b) => x.set(noise.subarray(n * D, (n + 1) * D), b * D));
    const cls = k.tensor(Int32Array.from([...REF_IMAGES.map((n) => labels[n]!), ...REF_IMAGES.map(() => nullClass)]));
    for (let i = 0; i < GOLDEN.steps; i++) {
      const t = 1 - i / GOLDEN.steps, tNext = 1 - (i + 1) / GOLDEN.steps;
      const u = await k.noGrad(async () => {
        const xin = k.tensor(Float64Array.from([...x, ...x]), { shape: [2 * B, 1, 28, 28] });
        const out = model.forward(xin, k.full([2 * B], t), cls);
        const v = await out.data();
        out.dispose();
        xin.dispose();
        return v;
      });
      for (let j = 0; j < B * D; j++) x[j] = x[j]! + (tNext - t) * ((1 + GOLDEN.guidance) * u[j]! - GOLDEN.guidance * u[B * D + j]!);
    }
    cls.dispose();
    for (const p of model.parameters()) p.dispose();
    return x;
  });
  return { x, seconds: (performance.now() - t0) / 1000 };
});

/** A sample's REF_IMAGES against the float64 reference: max and root-mean-square difference. */
function vsReference(sample: Float32Array, ref: Float64Array): { max: number; rms: number } {
  let max = 0, ss = 0;
  REF_IMAGES.forEach((n, b) => {
    for (let j = 0; j < 784; j++) {
      const d = Math.abs(sample[n * 784 + j]! - ref[b * 784 + j]!);
      max = Math.max(max, d);
      ss += d * d;
    }
  });
  return { max, rms: Math.sqrt(ss / ref.length) };
}

/** A new tab on the demo page, its console errors collected, once its worker is ready (or has failed). */
const openDemo = () => demo.open();

beforeAll(async () => {
  await k.init();
  mkdirSync(OUT, { recursive: true });
  page = await openDemo();
});

describe('the demo page', () => {
  it('loads with no console errors and gets a WebGPU device in its worker', async () => {
    const st = await page.evaluate(() => {
      const s = (globalThis as unknown as { kilnDemo: { ready: boolean; fatal: string | null; device: { platform: string; driver: string } | null } }).kilnDemo;
      return { ready: s.ready, fatal: s.fatal, platform: s.device?.platform, driver: s.device?.driver };
    });
    expect(st.fatal).toBeNull();
    expect(st).toMatchObject({ ready: true, platform: 'browser' });
    expect(page.workers().map((w) => new URL(w.url()).pathname)).toEqual(['/worker.js']);
    await expect(page.locator('#status').textContent()).resolves.toMatch(/WebGPU adapter: \w+/);
    expect(consoleErrors).toEqual([]);
  });

  it('shows the data before any training, explains its choices, and has a model loaded so the first click samples', async () => {
    // the selected dataset drawn in the data colour, at the place of its points (x = 2 maps to the canvas)
    const plot = await page.evaluate(() => {
      const c = document.getElementById('toy-plot') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let grey = 0, blue = 0;
      for (let i = 0; i < d.length; i += 4) {
        const [r, g, b] = [d[i]!, d[i + 1]!, d[i + 2]!];
        if (Math.abs(r - g) < 12 && Math.abs(g - b) < 16 && r < 235 && r > 120) grey++;
        if (b > r + 60) blue++;
      }
      return { grey, blue, dataset: (document.getElementById('toy-dataset') as HTMLSelectElement).value };
    });
    console.log(`landing: ${plot.grey} data-coloured pixels of ${plot.dataset} on the plot, ${plot.blue} sample-coloured`);
    expect(plot.grey).toBeGreaterThan(1500);
    expect(plot.blue).toBe(0);
    // choosing another dataset redraws it
    await page.selectOption('#toy-dataset', '8gaussians');
    await expect(page.locator('#toy-dataset-note').textContent()).resolves.toMatch(/clusters/);
    await page.selectOption('#toy-dataset', 'moons');
    // every process and sampler offered has its explanation
    for (const objective of ['flow', 'ddpm-eps']) {
      await page.selectOption('#toy-objective', objective);
      await expect(page.locator('#toy-objective-note').textContent()).resolves.toMatch(objective === 'flow' ? /straight line/ : /noise ε/);
      for (const sampler of await page.locator('#toy-sampler option').evaluateAll((o) => o.map((x) => (x as HTMLOptionElement).value))) {
        await page.selectOption('#toy-sampler', sampler);
        expect((await page.locator('#toy-sampler-note').textContent())?.length, `explanation of ${sampler}`).toBeGreaterThan(30);
      }
    }
    await expect(page.locator('#mnist-guidance-note').textContent()).resolves.toMatch(/classifier-free guidance/i);
    // a checkpoint is loaded at start: the bundled one, or one written by `npm start` under out/
    const model = await page.evaluate(() => (globalThis as unknown as { kilnDemo: { mnist: { model: { source: string } | null } } }).kilnDemo.mnist.model);
    console.log(`landing: loaded ${model?.source}`);
    expect(model?.source).toMatch(/^(checkpoints\/mnist-tiny|out\/[^/]+\/(checkpoint|student-\d+step))\.safetensors$/);
    expect(await page.locator('#mnist-sample').isDisabled()).toBe(false);
    expect(await page.locator('#mnist-download').isVisible()).toBe(false);
  });

  it('says clearly when the browser has no WebGPU', async () => {
    const p = await demo.browser.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    await p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
    await p.goto(demo.server.url);
    const banner = p.locator('#webgpu-missing');
    await banner.waitFor({ state: 'visible', timeout: 20_000 });
    const text = await banner.textContent();
    expect(text).toMatch(/WebGPU is not available in this browser/);
    // and how to get it, per browser
    for (const browserName of ['Chrome', 'Firefox', 'Safari', 'secure context']) expect(text).toContain(browserName);
    expect(await p.locator('#toy-train').isDisabled()).toBe(true);
    expect(p.workers()).toHaveLength(0);
    expect(errors).toEqual([]);
    await p.close();
  });

  it('answers bad input with a clear message, and keeps the loaded model', async () => {
    // a tab of its own: its errors stay in it; the fixture loaded (the newest checkpoint under out/, which the
    // page opens with, may be a text-conditioned one, sampled from prompts rather than digits)
    const tab = await openDemo();
    await loadByUrl(tab, 'tests/fixtures/mnist-tiny.safetensors');
    // a model the user loaded: replacing it asks first (yes)
    tab.on('dialog', (d) => void d.accept());
    const before = await tab.locator('#mnist-model').textContent();
    await tab.fill('#toy-steps', '-3');
    await tab.click('#toy-train');
    await expect(tab.locator('#toy-info').textContent()).resolves.toBe("Error: Training steps must be an integer in [1, 100000], got '-3'");
    expect(await tab.locator('#toy-info').getAttribute('class')).toContain('error');
    // not a checkpoint: the worker's loader names the problem
    await tab.setInputFiles('#mnist-file', join(ROOT, 'tests/fixtures/mnist-tiny-golden.json'));
    await tab.waitForFunction(() => (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { error: string | null } } }).kilnDemo.mnist.error !== null, null, { timeout: 20_000 });
    const msg = await tab.locator('#mnist-info').textContent();
    console.log(`bad checkpoint: ${msg}`);
    expect(msg).toMatch(/^Error: .*(safetensors|header)/);
    expect(await tab.locator('#mnist-model').textContent()).toBe(before);
    expect(await tab.locator('#mnist-sample').isDisabled()).toBe(false);
    // the next job that succeeds clears the error
    await tab.fill('#mnist-steps', '2');
    await tab.selectOption('#mnist-digit', '3');
    await tab.fill('#mnist-count', '1');
    await tab.click('#mnist-sample');
    await tab.waitForFunction(() => (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { samples: unknown } } }).kilnDemo.mnist.samples !== null, null, { timeout: 60_000 });
    expect(await tab.locator('#mnist-info').getAttribute('class')).not.toContain('error');
    expect(await tab.evaluate(() => (globalThis as unknown as { kilnDemo: { mnist: { error: string | null } } }).kilnDemo.mnist.error)).toBeNull();
    await tab.close();
  });

  it(`trains the toy model: the loss falls ≥ ${TOY_LOSS_FACTOR}× and follows Node's curve for the same seed`, async () => {
    await page.selectOption('#toy-dataset', TOY.dataset);
    await page.selectOption('#toy-objective', TOY.objective);
    await page.fill('#toy-steps', String(TOY.steps));
    await page.fill('#toy-batch', String(TOY.batchSize));
    await page.fill('#toy-lr', String(TOY.lr));
    await page.fill('#toy-seed', String(TOY.seed));
    await page.selectOption('#toy-sampler', 'ddim');
    await page.fill('#toy-sample-steps', '10');
    await page.fill('#toy-count', '300');
    await page.click('#toy-train');
    await waitIdle('toy', 'samples');
    const got = await page.evaluate(() => {
      const s = (globalThis as unknown as { kilnDemo: { toy: { losses: number[]; samples: Float32Array; frames: number; previews: number; trainSeconds: number; sampleSeconds: number } } }).kilnDemo.toy;
      return { losses: s.losses, samples: Array.from(s.samples), frames: s.frames, previews: s.previews, trainSeconds: s.trainSeconds, sampleSeconds: s.sampleSeconds };
    });
    // samples were redrawn while training (every 50 steps: at step 50), from a generator of their own,
    // so the training's random stream and loss curve are those of Node (checked below)
    expect(got.previews).toBe(1);
    // the trajectory slider names the noise level of each frame: the sampling path of a 1,000-step linear-β DDPM
    const path = k.diffusion.samplingPath(new k.diffusion.DiscreteVP({ numTrainTimesteps: 1000, schedule: 'linear' }), { steps: 10 });
    const labelAt = (f: number) => page.evaluate((frame) => {
      const slider = document.getElementById('toy-frame') as HTMLInputElement;
      slider.value = String(frame);
      slider.dispatchEvent(new Event('input'));
      return document.getElementById('toy-frame-label')!.textContent;
    }, f);
    const sigma0 = path[0]!.s / path[0]!.a, sigma5 = path[5]!.s / path[5]!.a;
    console.log(`toy: slider labels '${await labelAt(0)}', '${await labelAt(5)}', '${await labelAt(10)}' (σ from the path in Node: ${sigma0.toFixed(2)}, ${sigma5.toFixed(2)}, 0)`);
    expect(await labelAt(0)).toBe(`step 0 / 10 · t = ${path[0]!.t} · σ = ${sigma0.toFixed(0)}`);
    expect(await labelAt(5)).toBe(`step 5 / 10 · t = ${path[5]!.t} · σ = ${sigma5 < 10 ? sigma5.toFixed(2) : sigma5.toFixed(0)}`);
    expect(await labelAt(10)).toBe('step 10 / 10 · t = 0 · σ = 0.00');
    expect(await page.locator('#toy-progress-label').textContent()).toMatch(/^sampled in [\d.]+ s$/);
    const t0 = performance.now();
    const ref = await trainToy(TOY);
    console.log(`toy: page trained ${TOY.steps} steps in ${got.trainSeconds.toFixed(1)} s and sampled in ${got.sampleSeconds.toFixed(1)} s; Node trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(got.losses).toHaveLength(TOY.steps);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const factor = mean(got.losses.slice(0, 10)) / mean(got.losses.slice(-10));
    const curve = Math.max(...got.losses.map((l, i) => Math.abs(l - ref.losses[i]!) / ref.losses[i]!));
    console.log(`toy: page loss ${mean(got.losses.slice(0, 10)).toFixed(4)} → ${mean(got.losses.slice(-10)).toFixed(4)} (${factor.toFixed(2)}×); max relative difference to Node's curve ${curve.toExponential(2)}`);
    expect(factor).toBeGreaterThanOrEqual(TOY_LOSS_FACTOR);
    expect(curve).toBeLessThanOrEqual(TOY_CURVE_RTOL);
    for (const p of ref.net.parameters()) p.dispose();
    // the samples moved from noise toward the data: the frames are the start plus one per step
    expect(got.frames).toBe(11);
    k.manualSeed(TOY.seed);
    const noise = await k.randn([300, 2]).data();
    const data = k.data.toy2d(TOY.dataset, 2000, 321);
    const edSamples = k.diffusion.energyDistance(got.samples, data, 2), edNoise = k.diffusion.energyDistance(noise, data, 2);
    console.log(`toy: energy distance to the data ${edSamples.toFixed(3)} (the starting noise: ${edNoise.toFixed(3)})`);
    expect(edSamples).toBeLessThan(0.5 * edNoise); // measured 0.098 vs 0.246
  });

  it('Stop ends sampling at once, and ends training early keeping what it learned', async () => {
    const toyState = () => page.evaluate(() => {
      const s = (globalThis as unknown as { kilnDemo: { busy: boolean; toy: { losses: number[]; samples: unknown; error: string | null } } }).kilnDemo;
      return { busy: s.busy, losses: s.toy.losses.length, samples: s.toy.samples !== null, error: s.toy.error };
    });
    // sampling 1,000 steps, stopped after the first
    await page.fill('#toy-sample-steps', '1000');
    await page.click('#toy-sample');
    await page.waitForFunction(() => /^\d+ \/ 1000 steps/.test(document.getElementById('toy-progress-label')!.textContent ?? ''), null, { timeout: 60_000, polling: 100 });
    await page.click('#toy-stop');
    await page.waitForFunction(() => !(globalThis as unknown as { kilnDemo: { busy: boolean } }).kilnDemo.busy, null, { timeout: 30_000, polling: 100 });
    const progress = await page.locator('#toy-progress-label').textContent();
    console.log(`stop: sampling stopped at '${progress}'`);
    expect(Number(/^(\d+) \//.exec(progress ?? '')?.[1])).toBeLessThan(1000);
    expect(await page.locator('#toy-info').textContent()).toBe('Stopped.');
    expect(await toyState()).toMatchObject({ busy: false, error: 'stopped', samples: false });
    // training 5,000 steps, stopped after 20: the model learned so far is kept and sampled
    await page.fill('#toy-sample-steps', '10');
    await page.fill('#toy-steps', '5000');
    await page.click('#toy-train');
    await page.waitForFunction(() => (globalThis as unknown as { kilnDemo: { toy: { losses: number[] } } }).kilnDemo.toy.losses.length >= 20, null, { timeout: 60_000, polling: 100 });
    await page.click('#toy-stop');
    await waitIdle('toy', 'samples');
    const after = await toyState();
    console.log(`stop: training stopped after ${after.losses} of 5000 steps; the model sampled: ${after.samples}`);
    expect(after.losses).toBeGreaterThanOrEqual(20);
    expect(after.losses).toBeLessThan(5000);
    expect(after.samples).toBe(true);
    await page.fill('#toy-steps', String(TOY.steps));
  });

  it('samples the fixture checkpoint in Node: the golden file (a regression snapshot) and kiln sample\'s PNG', async () => {
    const node = await nodeFixtureSample();
    expect(node.steps).toEqual(Array.from({ length: GOLDEN.steps }, (_, i) => i + 1));
    expect(node.totals.every((t) => t === GOLDEN.steps)).toBe(true);
    expect(maxAbsDiff(node.lastX!, node.sample)).toBe(0);
    const dGolden = maxAbsDiff(node.sample, golden);
    console.log(`mnist: ${k.deviceInfo().driver} in Node: |Node − golden| ${dGolden.toExponential(2)}`);
    expect(dGolden, `Node's sample vs tests/fixtures/mnist-tiny-golden.f32 (made on ${GOLDEN.adapter}; ${REGENERATE})`).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);

    // `kiln sample` with the same options writes exactly these pixels
    const cliPng = join(OUT, 'web-node-sample.png');
    await sampleCommand(['--checkpoint', FIXTURE, '--labels', GOLDEN.labels.join(','), '--per-class', String(GOLDEN.perClass), '--sampler', GOLDEN.sampler, '--steps', String(GOLDEN.steps), '--guidance', String(GOLDEN.guidance), '--seed', String(GOLDEN.seed), '--out', cliPng]);
    const cli = decodePng(readFileSync(cliPng));
    expect(cli.channels).toBe(1);
    let cliDiff = 0;
    for (let n = 0; n < GOLDEN.labels.length * GOLDEN.perClass; n++) for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) {
      // kiln sample: a row per class, a column per sample of it, 2-pixel gaps
      const r = Math.floor(n / GOLDEN.perClass), c = n % GOLDEN.perClass;
      cliDiff = Math.max(cliDiff, Math.abs(cli.data[(2 + r * 30 + i) * cli.width + 2 + c * 30 + j]! - toGrey(node.sample[n * 784 + i * 28 + j]!)));
    }
    expect(cliDiff, 'kiln sample PNG vs generate, in grey levels').toBe(0);
  });

  it(`Node's, the page's and the golden sample agree with an independent float64 computation (images ${REF_IMAGES.join(', ')})`, async () => {
    const [ref, node, pageS] = await Promise.all([cpuReference(), nodeFixtureSample(), pageFixtureSample()]);
    const rows = { [`Node (${k.deviceInfo().driver})`]: vsReference(node.sample, ref.x), 'the page (SwiftShader)': vsReference(pageS.sample, ref.x), golden: vsReference(golden, ref.x) };
    console.log(`mnist: float64 reference of images ${REF_IMAGES.join(', ')} in ${ref.seconds.toFixed(1)} s; ${Object.entries(rows).map(([name, d]) => `|${name} − reference| max ${d.max.toExponential(2)} rms ${d.rms.toExponential(2)}`).join('; ')}`);
    for (const [name, d] of Object.entries(rows)) {
      expect(d.max, `${name} vs the float64 reference, max`).toBeLessThanOrEqual(REF_ATOL);
      expect(d.rms, `${name} vs the float64 reference, rms`).toBeLessThanOrEqual(REF_RMS);
    }
  }, 240_000);

  it('samples the fixture checkpoint in the page: within the cross-driver tolerance of Node and the golden file', async () => {
    const [pageS, node] = await Promise.all([pageFixtureSample(), nodeFixtureSample()]);
    expect(pageS.shape).toEqual(GOLDEN.shape);
    expect(pageS.frames).toBe(GOLDEN.steps);
    expect(pageS.objective).toBe(GOLDEN.objective);
    // other drivers: within the stated tolerance, nearly all 8-bit pixels identical
    const dPageGolden = maxAbsDiff(pageS.sample, golden), dPageNode = maxAbsDiff(pageS.sample, node.sample);
    let identical = 0;
    for (let i = 0; i < golden.length; i++) if (toGrey(pageS.sample[i]!) === toGrey(node.sample[i]!)) identical++;
    console.log(`mnist: page sampled ${GOLDEN.shape[0]} digits in ${pageS.seconds.toFixed(1)} s; ${k.deviceInfo().driver} in Node: max |page − Node| ${dPageNode.toExponential(2)}, |page − golden| ${dPageGolden.toExponential(2)}; 8-bit pixels identical ${identical}/${golden.length}`);
    expect(dPageNode).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);
    expect(dPageGolden).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);
    expect(identical / golden.length).toBeGreaterThanOrEqual(CROSS_DRIVER_IDENTICAL);
  }, 180_000);

  it('the page and Node on the same driver (SwiftShader) give the same sample bit for bit', async () => {
    // the test command installs chromium (scripts/setup-system.sh), which ships this driver: its absence is a failure
    expect(existsSync(SWIFTSHADER_ICD), `${SWIFTSHADER_ICD} is missing: install chromium (scripts/setup-system.sh) to compare the page with Node on the same driver`).toBe(true);
    const [pageS, s] = await Promise.all([pageFixtureSample(), swiftShaderSample()]);
    const d = maxAbsDiff(pageS.sample, s.sample);
    console.log(`mnist: Node on SwiftShader (child process, ${s.seconds.toFixed(1)} s): max |page − Node| = ${d}`);
    expect(d, 'the page vs Node, both on SwiftShader').toBe(0);
  }, 180_000);

  it('screenshots the sample grid: the page shows those pixels, ten non-blank centred digits', async () => {
    const pageSample = (await pageFixtureSample()).sample;
    const shown = await page.evaluate(() => Array.from((globalThis as unknown as { kilnDemo: { mnist: { samples: Float32Array | null } } }).kilnDemo.mnist.samples ?? []));
    expect(maxAbsDiff(shown, pageSample), 'the page\'s grid should hold the fixture sample (has another test replaced it?)').toBe(0);
    const file = join(OUT, 'web-mnist-grid.png');
    await page.locator('#mnist-grid').screenshot({ path: file });
    const shot = decodePng(readFileSync(file));
    // the canvas: one column of 30 pixels per digit (2-pixel gaps), shown 3× with nearest-neighbour
    // scaling inside a 1-pixel border; the element's box may sit at a fractional position, so the
    // screenshot can hold a pixel more and the grid start at offset 1 or 2: take the best-matching offset
    const n = GOLDEN.labels.length, scale = 3, gw = n * 30 + 2, gh = 32;
    expect(shot.width - gw * scale).toBeGreaterThanOrEqual(2);
    expect(shot.width - gw * scale).toBeLessThanOrEqual(3);
    expect(shot.height - gh * scale).toBeGreaterThanOrEqual(2);
    expect(shot.height - gh * scale).toBeLessThanOrEqual(3);
    const want = (X: number, Y: number) => (X % 30 >= 2 && Y >= 2 && Y < 30 ? toGrey(pageSample[Math.floor(X / 30) * 784 + (Y - 2) * 28 + (X % 30) - 2]!) : 40);
    let best = { worst: Infinity, ox: 0, oy: 0 };
    for (const oy of [1, 2]) for (const ox of [1, 2]) {
      let worst = 0;
      for (let X = 0; X < gw; X++) for (let Y = 0; Y < gh; Y++) {
        // the centre of the 3×3 block of canvas pixel (X, Y)
        const o = ((oy + Y * scale + 1) * shot.width + ox + X * scale + 1) * shot.channels;
        const w = want(X, Y);
        worst = Math.max(worst, Math.abs(shot.data[o]! - w), Math.abs(shot.data[o + 1]! - w), Math.abs(shot.data[o + 2]! - w));
      }
      if (worst < best.worst) best = { worst, ox, oy };
    }
    const at = (X: number, Y: number) => shot.data[((best.oy + Y * scale + 1) * shot.width + best.ox + X * scale + 1) * shot.channels]!;
    const worst = best.worst;
    expect(worst, 'screenshot vs the page\'s samples, in grey levels').toBeLessThanOrEqual(1);
    // each cell: some ink on a dark background, and the ink gathered in the middle (MNIST digits are
    // centred; the middle 16×16 is a third of the cell, so noise would put a third of its ink there)
    const stats = Array.from({ length: n }, (_, d) => {
      let ink = 0, inkMiddle = 0, dark = 0;
      for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) {
        const v = at(d * 30 + 2 + j, 2 + i);
        if (v < 64) dark++;
        if (v > 160) {
          ink++;
          if (i >= 6 && i < 22 && j >= 6 && j < 22) inkMiddle++;
        }
      }
      return { ink: ink / 784, dark: dark / 784, middle: inkMiddle / Math.max(ink, 1) };
    });
    console.log(`screenshot ${file}: ${worst} grey levels from the samples; ink per digit ${stats.map((s) => s.ink.toFixed(2)).join(' ')}; dark background ${stats.map((s) => s.dark.toFixed(2)).join(' ')}; ink share in the middle ${stats.map((s) => s.middle.toFixed(2)).join(' ')}`);
    for (const s of stats) {
      expect(s.ink).toBeGreaterThan(0.04);
      expect(s.ink).toBeLessThan(0.4);
      expect(s.dark).toBeGreaterThan(0.5);
      expect(s.middle).toBeGreaterThan(0.45);
    }
    expect(stats.reduce((a, s) => a + s.middle, 0) / n).toBeGreaterThan(0.7);
  });

  it('lists the students of kiln distill under out/ with what they are', async () => {
    const s = await students();
    const listed = localCheckpoints(STUDENTS);
    console.log(`students: ${listed.map((c) => `${c.url} — ${c.label}`).join('; ')}`);
    const label = (url: string) => listed.find((c) => c.url === url)?.label;
    expect(label(s.progressive)).toMatch(/^out\/test\/students\/progressive: progressive student, 1 step, guidance 1\.5 built in \([\d.]+ MB\)$/);
    expect(label(`${STUDENTS}/progressive/student-1step.safetensors`)).toMatch(/^out\/test\/students\/progressive\/student-1step\.safetensors: progressive student, 1 step, guidance 1\.5 built in/);
    expect(label(s.consistency)).toMatch(/^out\/test\/students\/consistency: consistency student, 2 steps, guidance 1\.5 built in/);
    expect(label(s.ranged)).toMatch(/^out\/test\/students\/consistency-w: consistency student, 2 steps, guidance an input in \[0, 3\]/);
    expect(listed).toHaveLength(4);
  }, 240_000); // the first test to distill the students

  it('samples a progressive student in the page in its one step, one evaluation of the undoubled batch, as Node does; refuses guidance and the null class', async () => {
    const s = await students();
    const tab = await openDemo();
    // the page opens with the newest checkpoint under out/ (a student here): the controls of a model of kiln train first
    await loadByUrl(tab, 'tests/fixtures/mnist-tiny.safetensors');
    const teacher = await samplingControls(tab);
    await loadByUrl(tab, s.progressive);
    const model = await tab.evaluate(() => (globalThis as unknown as { kilnDemo: { mnist: { model: { student: unknown } } } }).kilnDemo.mnist.model.student);
    expect(model).toMatchObject({ method: 'progressive', steps: 1, sampler: 'flow_euler', guidance: 1.5, summary: 'progressive student, 1 step, guidance 1.5 built in' });
    // the page says what it loaded, and its controls fit a student: its steps, no sampler choice, no guidance, no null class
    const c = await samplingControls(tab);
    console.log(`progressive student in the page: '${c.model}'`);
    expect(c.model).toContain('A progressive student of kiln distill: flow_euler 1 step, one network evaluation per step (guidance 1.5 built in); digits 0–9, no guidance.');
    expect(c).toMatchObject({ steps: '1', guidance: '0', guidanceDisabled: true, samplers: ['flow_euler'], samplerDisabled: true, noneDisabled: true });
    expect(c.guidanceNote).toMatch(/^Guidance 1\.5 is built into this student/);
    expect(c.samplerNote).toMatch(/progressive student/);
    const labels = Array.from({ length: 10 }, (_, d) => d);
    const got = await samplePage(tab, { digit: 'all', per: 1, seed: 11 });
    expect(got.error).toBeNull();
    const node = await nodeStudentSample(s.progressive, labels, 11);
    const d = maxAbsDiff(got.samples, node.sample);
    console.log(`progressive student: '${got.info}'; max |page − Node| ${d.toExponential(2)}`);
    expect(node.evaluations).toEqual([10]);
    expect(got.evaluations).toEqual([10]);
    expect(got.frames).toBe(1);
    expect(got.info).toMatch(/progressive student, flow_euler 1 step, .*; 1 network evaluation of 10 images\)/);
    expect(d).toBeLessThan(STUDENT_ATOL);
    // other step counts run as the student's own sampling would (Euler steps along its flow)
    const two = await samplePage(tab, { digit: '3', per: 2, seed: 4, steps: 2 });
    const node2 = await nodeStudentSample(s.progressive, [3, 3], 4, 2);
    expect(two.error).toBeNull();
    expect(two.evaluations).toEqual([2, 2]);
    expect(node2.evaluations).toEqual([2, 2]);
    expect(maxAbsDiff(two.samples, node2.sample)).toBeLessThan(STUDENT_ATOL);
    // the worker refuses what the disabled controls would ask: guidance, and the null class
    await tab.evaluate(() => {
      (document.getElementById('mnist-guidance') as HTMLInputElement).disabled = false;
    });
    await tab.fill('#mnist-guidance', '2');
    const guided = await samplePage(tab, { digit: '3', per: 1, seed: 0 });
    expect(guided.error).toMatch(/^guidance 2: out\/test\/students\/progressive\/checkpoint\.safetensors is a progressive student of kiln distill with its teacher's guidance 1\.5 built in; it samples with one network evaluation per step and no classifier-free guidance \(set the guidance to 0\)$/);
    expect(guided.info).toBe(`Error: ${guided.error}`);
    await tab.fill('#mnist-guidance', '0');
    await tab.evaluate(() => {
      (document.getElementById('mnist-digit') as HTMLSelectElement).querySelector<HTMLOptionElement>('option[value="10"]')!.disabled = false;
    });
    const none = await samplePage(tab, { digit: '10', per: 1, seed: 0 });
    expect(none.error).toMatch(/^digit 10 \(none, unconditional\): .* is a progressive student of kiln distill, distilled for the digits 0–9 only; the null class 10 was not distilled$/);
    // a model of kiln train loaded again gets the controls it had
    await loadByUrl(tab, 'tests/fixtures/mnist-tiny.safetensors');
    const back = await samplingControls(tab);
    expect(back).toMatchObject({ steps: teacher.steps, guidance: teacher.guidance, guidanceDisabled: false, samplers: teacher.samplers, samplerDisabled: false, noneDisabled: false, guidanceNote: teacher.guidanceNote });
    expect(back.samplers.length).toBeGreaterThan(1);
    await tab.close();
  }, 240_000);

  it('samples a 2-step consistency student in the page at its own times, frames and all, as Node does', async () => {
    const s = await students();
    const tab = await openDemo();
    await loadByUrl(tab, s.consistency);
    const c = await samplingControls(tab);
    expect(c.model).toContain('A consistency student of kiln distill: 2 steps at t = 1, 0.5, one network evaluation per step (guidance 1.5 built in)');
    expect(c).toMatchObject({ steps: '2', guidance: '0', guidanceDisabled: true, samplerDisabled: true });
    expect(c.samplerNote).toMatch(/samples at t = 1, 0\.5/);
    const got = await samplePage(tab, { digit: 'all', per: 1, seed: 5 });
    expect(got.error).toBeNull();
    const node = await nodeStudentSample(s.consistency, Array.from({ length: 10 }, (_, d) => d), 5);
    const d = maxAbsDiff(got.samples, node.sample);
    console.log(`consistency student: '${got.info}'; max |page − Node| ${d.toExponential(2)}`);
    expect(node.evaluations).toEqual([10, 10]);
    expect(got.evaluations).toEqual([10, 10]);
    expect(d).toBeLessThan(STUDENT_ATOL);
    // the trajectory: each evaluation's input at its time and its output
    expect(got.frames).toBe(2);
    const labelAt = (f: number) => tab.evaluate((frame) => {
      const slider = document.getElementById('mnist-frame') as HTMLInputElement;
      slider.value = String(frame);
      slider.dispatchEvent(new Event('input'));
      return document.getElementById('mnist-frame-label')!.textContent;
    }, f);
    expect(await labelAt(0)).toBe('step 1 / 2 · t = 1.00 · σ = ∞');
    expect(await labelAt(1)).toBe('step 2 / 2 · t = 0.50 · σ = 1.00');
    await tab.close();
  }, 240_000);

  it('a student that takes the guidance scale: the page offers its range and samples at the chosen scale, one evaluation per step, as Node does', async () => {
    const s = await students();
    const tab = await openDemo();
    await loadByUrl(tab, s.ranged);
    const c = await samplingControls(tab);
    expect(c.model).toContain('guidance 1.5, an input learned for w in [0, 3]');
    expect(c).toMatchObject({ steps: '2', guidance: '1.5', guidanceDisabled: false, samplerDisabled: true, noneDisabled: true });
    expect(c.guidanceNote).toMatch(/^This student takes the guidance scale as an input/);
    await tab.fill('#mnist-guidance', '3');
    const got = await samplePage(tab, { digit: 'all', per: 1, seed: 6 });
    expect(got.error).toBeNull();
    const labels = Array.from({ length: 10 }, (_, d) => d);
    const [node3, node0] = [await nodeStudentSample(s.ranged, labels, 6, undefined, 3), await nodeStudentSample(s.ranged, labels, 6, undefined, 0)];
    expect(got.evaluations).toEqual([10, 10]);
    expect(maxAbsDiff(got.samples, node3.sample)).toBeLessThan(STUDENT_ATOL);
    // the scale reached the network (its embedding of w, trained for two steps, moves the sample a little): the page's sample is Node's at w = 3, not at w = 0
    expect(maxAbsDiff(got.samples, node3.sample)).toBeLessThan(maxAbsDiff(got.samples, node0.sample));
    await tab.fill('#mnist-guidance', '4');
    const outside = await samplePage(tab, { digit: '3', per: 1, seed: 0 });
    expect(outside.error).toMatch(/^guidance 4: .* is a consistency student of kiln distill that learned the guidance scales 0 to 3; pick one in that range$/);
    await tab.close();
  }, 240_000);

  it(`trains a tiny UNet on MNIST in the page: the progress bar reaches the end, the loss falls ≥ ${MNIST_LOSS_FACTOR}× and the new model samples`, async () => {
    await page.selectOption('#mnist-widths', '8,16');
    await page.fill('#mnist-train-steps', String(MNIST_TRAIN.steps));
    await page.fill('#mnist-batch', String(MNIST_TRAIN.batchSize));
    // a model the user loaded is never replaced without asking: declined, it stays
    await pageFixtureSample();
    const before = await page.locator('#mnist-model').textContent();
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.click('#mnist-train');
    await expect.poll(() => page.locator('#mnist-train-info').textContent()).toBe('Training cancelled: the loaded model is kept.');
    expect(dialogs[0]).toMatch(/replaces the loaded model \(mnist-tiny\.safetensors\)/);
    expect(await page.locator('#mnist-model').textContent()).toBe(before);
    page.once('dialog', (d) => void d.accept());
    await page.click('#mnist-train');
    await page.waitForFunction(() => {
      const st = (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { error: string | null; samples: unknown; model: { source: string } | null } } }).kilnDemo;
      return !st.busy && (st.mnist.error !== null || (st.mnist.samples !== null && st.mnist.model?.source === 'trained in this page'));
    }, null, { timeout: 240_000, polling: 250 });
    const got = await page.evaluate(() => {
      const m = (globalThis as unknown as { kilnDemo: { mnist: { error: string | null; trainLosses: number[]; samples: Float32Array; model: { step: number; parameters: number } } } }).kilnDemo.mnist;
      const bar = document.getElementById('mnist-progress') as HTMLProgressElement;
      return { error: m.error, losses: m.trainLosses, samples: Array.from(m.samples ?? []), step: m.model?.step, parameters: m.model?.parameters, bar: [bar.value, bar.max], label: document.getElementById('mnist-progress-label')!.textContent };
    });
    expect(got.error, got.error ?? '').toBeNull();
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const factor = mean(got.losses.slice(0, 5)) / mean(got.losses.slice(-5));
    console.log(`mnist training in the page: ${got.label}; loss ${mean(got.losses.slice(0, 5)).toFixed(3)} → ${mean(got.losses.slice(-5)).toFixed(3)} (${factor.toFixed(2)}×)`);
    expect(got.losses).toHaveLength(MNIST_TRAIN.steps);
    expect(got.losses.every(Number.isFinite)).toBe(true);
    expect(factor).toBeGreaterThanOrEqual(MNIST_LOSS_FACTOR);
    expect(got.bar).toEqual([MNIST_TRAIN.steps, MNIST_TRAIN.steps]);
    expect(got.step).toBe(MNIST_TRAIN.steps);
    expect(Math.round(got.parameters / 1000)).toBe(41);
    expect(got.samples).toHaveLength(GOLDEN.labels.length * GOLDEN.perClass * 784);
    expect(got.samples.every(Number.isFinite)).toBe(true);
    // live samples while training: at step 25 (every max(25, steps/12) steps), ten digits drawn
    const preview = await page.evaluate(() => {
      const c = document.getElementById('mnist-preview') as HTMLCanvasElement;
      return { previews: (globalThis as unknown as { kilnDemo: { mnist: { previews: number } } }).kilnDemo.mnist.previews, width: c.width, height: c.height, label: document.getElementById('mnist-preview-label')!.textContent };
    });
    expect(preview).toMatchObject({ previews: 1, width: 10 * 30 + 2, height: 32 });
    expect(preview.label).toMatch(/at step 25/);

    // the model can be downloaded: the file is a checkpoint Node loads, and Node samples from it what the page sampled
    const link = page.locator('#mnist-download');
    expect(await link.isVisible()).toBe(true);
    const bytes = Uint8Array.from(await page.evaluate(async () => Array.from(new Uint8Array(await (await fetch((document.getElementById('mnist-download') as HTMLAnchorElement).href)).arrayBuffer()))));
    const file = join(OUT, 'web-trained.safetensors');
    writeFileSync(file, bytes);
    const { model, meta } = await k.diffusion.loadDenoiser(file);
    expect(meta.step).toBe(MNIST_TRAIN.steps);
    expect(model.parameters().reduce((n, p) => n + p.size, 0)).toBe(got.parameters);
    const x = await k.noGrad(() => k.diffusion.generate(model, {
      objective: 'flow', labels: GOLDEN.labels.flatMap((l) => Array<number>(GOLDEN.perClass).fill(l)), shape: [1, 28, 28], sampler: GOLDEN.sampler, steps: GOLDEN.steps, guidance: GOLDEN.guidance, seed: GOLDEN.seed,
    }));
    const d = maxAbsDiff(got.samples, await x.data());
    x.dispose();
    for (const p of model.parameters()) p.dispose();
    console.log(`mnist training in the page: downloaded ${(bytes.length / 1e3).toFixed(0)} kB; Node's sample from it vs the page's: max ${d.toExponential(2)}`);
    expect(d).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);
  }, 300_000);

});
