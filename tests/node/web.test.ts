/**
 * The demo page (web/) in headless Chromium with SwiftShader WebGPU, driven by playwright-core from Node,
 * checked against kiln running in Node on its own adapter (lavapipe here, or a GPU):
 *  - the page loads with no console errors, its worker gets a WebGPU device, and without WebGPU it says so;
 *  - a short toy training in the page lowers the loss by a stated factor and follows the loss curve that
 *    `trainToy` gives in Node for the same seed;
 *  - sampling the fixture checkpoint in the page gives bit for bit the sample Node gives on the same driver
 *    (SwiftShader, in a child process), and within a stated tolerance the golden sample Node wrote
 *    (tests/fixtures, scripts/make-web-fixture.ts), a fresh Node sample on Node's adapter and `kiln sample`'s PNG;
 *  - a screenshot of the page's sample grid (out/test/web-mnist-grid.png) shows those pixels and ten
 *    non-blank, centred digit-like shapes;
 *  - training the tiny UNet on MNIST in the page runs its progress bar to the end, lowers the loss by a
 *    stated factor and leaves a model that samples.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import * as k from '../../src/index.ts';
import { sampleCommand } from '../../src/cli/diffusion.ts';
import { trainToy } from '../../src/train/index.ts';
import { ROOT } from '../../web/build.ts';
import { startServer, type WebServer } from '../../web/serve.ts';

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

/** Toy training in the page: ≥ this factor between the mean loss of the first 10 and the last 10 steps (measured 1.95). */
const TOY_LOSS_FACTOR = 1.8;
/** Toy training: per-step relative difference allowed between the page's and Node's loss curves (measured 1.4e-4). */
const TOY_CURVE_RTOL = 2e-3;
/** MNIST training in the page: the tiny UNet, few steps; mean loss of the first 5 steps over the last 5 (measured 1.45). */
const MNIST_TRAIN = { steps: 30, batchSize: 8 };
const MNIST_LOSS_FACTOR = 1.3;
const TOY = { dataset: '8gaussians' as const, objective: 'ddpm-eps' as const, steps: 100, batchSize: 256, lr: 0.005, seed: 0 };

const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

let server: WebServer;
let browser: Browser;
let page: Page;
const consoleErrors: string[] = [];
/** Node's sample of the golden settings, made in this run, and the page's. */
let nodeSample: Float32Array;
let pageSample: Float32Array;
/** Node sampling on SwiftShader in a child process, started first so it overlaps the other work. */
let swift: Promise<{ sample: Float32Array; seconds: number } | null>;

/** Bytes as `kiln sample` writes them: [−1, 1] → 0…255, rounded, clamped (written here independently). */
const toGrey = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The golden settings sampled by Node in a child process on SwiftShader (the headless browser's driver),
 * or null when that driver is not installed.
 */
async function nodeOnSwiftShader(): Promise<{ sample: Float32Array; seconds: number } | null> {
  if (!existsSync(SWIFTSHADER_ICD)) return null;
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

/** Waits until the page is idle with `kilnDemo[section][field]` set (an error reported by the section fails). */
async function waitIdle(section: 'toy' | 'mnist', field: 'samples' | 'model', timeout = 110_000): Promise<void> {
  await page.waitForFunction(([s, f]) => {
    const st = (globalThis as unknown as { kilnDemo: { busy: boolean } & Record<string, Record<string, unknown>> }).kilnDemo;
    return !st.busy && (st[s]!.error !== null || st[s]![f] !== null);
  }, [section, field] as const, { timeout, polling: 250 });
  const err = await page.evaluate((s) => (globalThis as unknown as { kilnDemo: Record<string, { error: string | null }> }).kilnDemo[s]!.error, section);
  expect(err, `the page's ${section} section reported an error`).toBeNull();
}

beforeAll(async () => {
  await k.init();
  mkdirSync(OUT, { recursive: true });
  swift = nodeOnSwiftShader();
  swift.catch(() => {});
  server = await startServer({ port: 0, log: false });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`page: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`worker: ${m.text()}`);
  }));
  page.on('response', (r) => {
    if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  await page.goto(server.url);
  await page.waitForFunction(() => {
    const st = (globalThis as unknown as { kilnDemo: { ready: boolean; fatal: string | null } }).kilnDemo;
    return st.ready || st.fatal !== null;
  }, null, { timeout: 60_000 });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
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

  it('says clearly when the browser has no WebGPU', async () => {
    const p = await browser.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    await p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
    await p.goto(server.url);
    const banner = p.locator('#webgpu-missing');
    await banner.waitFor({ state: 'visible', timeout: 20_000 });
    expect(await banner.textContent()).toMatch(/WebGPU is not available in this browser/);
    expect(await p.locator('#toy-train').isDisabled()).toBe(true);
    expect(p.workers()).toHaveLength(0);
    expect(errors).toEqual([]);
    await p.close();
  });

  it('answers bad input with a clear message', async () => {
    await page.fill('#toy-steps', '-3');
    await page.click('#toy-train');
    await expect(page.locator('#toy-info').textContent()).resolves.toBe("Error: Training steps must be an integer in [1, 100000], got '-3'");
    expect(await page.locator('#toy-info').getAttribute('class')).toContain('error');
    // not a checkpoint: the worker's loader names the problem
    await page.setInputFiles('#mnist-file', join(ROOT, 'tests/fixtures/mnist-tiny-golden.json'));
    await page.waitForFunction(() => (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { error: string | null } } }).kilnDemo.mnist.error !== null, null, { timeout: 20_000 });
    const msg = await page.locator('#mnist-info').textContent();
    console.log(`bad checkpoint: ${msg}`);
    expect(msg).toMatch(/^Error: .*(safetensors|header)/);
    expect(await page.locator('#mnist-sample').isDisabled()).toBe(true);
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
      const s = (globalThis as unknown as { kilnDemo: { toy: { losses: number[]; samples: Float32Array; frames: number; trainSeconds: number; sampleSeconds: number } } }).kilnDemo.toy;
      return { losses: s.losses, samples: Array.from(s.samples), frames: s.frames, trainSeconds: s.trainSeconds, sampleSeconds: s.sampleSeconds };
    });
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

  it('samples the fixture checkpoint: the same pixels as Node (bit for bit on the same driver), the golden file and kiln sample', async () => {
    // Node here, on this machine's adapter, with the per-step callback the page uses for its trajectory
    const { model } = await k.diffusion.loadDenoiser(FIXTURE);
    const labels = GOLDEN.labels.flatMap((l) => Array<number>(GOLDEN.perClass).fill(l));
    const steps: number[] = [];
    let lastX: Float32Array | null = null;
    const x = await k.noGrad(() => k.diffusion.generate(model, {
      objective: GOLDEN.objective, labels, shape: [1, 28, 28], sampler: GOLDEN.sampler, steps: GOLDEN.steps, guidance: GOLDEN.guidance, seed: GOLDEN.seed,
      onStep: async ({ step, total, x: xi }) => {
        steps.push(step);
        expect(total).toBe(GOLDEN.steps);
        lastX = (await xi.data()) as Float32Array;
      },
    }));
    nodeSample = (await x.data()) as Float32Array;
    x.dispose();
    for (const p of model.parameters()) p.dispose();
    expect(steps).toEqual(Array.from({ length: GOLDEN.steps }, (_, i) => i + 1));
    expect(maxAbsDiff(lastX!, nodeSample)).toBe(0);
    const dGolden = maxAbsDiff(nodeSample, golden);
    expect(dGolden, `Node's sample vs tests/fixtures/mnist-tiny-golden.f32 (made on ${GOLDEN.adapter}; ${REGENERATE})`).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);

    // `kiln sample` with the same options writes exactly these pixels
    const cliPng = join(OUT, 'web-node-sample.png');
    await sampleCommand(['--checkpoint', FIXTURE, '--labels', GOLDEN.labels.join(','), '--per-class', String(GOLDEN.perClass), '--sampler', GOLDEN.sampler, '--steps', String(GOLDEN.steps), '--guidance', String(GOLDEN.guidance), '--seed', String(GOLDEN.seed), '--out', cliPng]);
    const cli = decodePng(readFileSync(cliPng));
    expect(cli.channels).toBe(1);
    let cliDiff = 0;
    for (let n = 0; n < labels.length; n++) for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) {
      // kiln sample: a row per class, a column per sample of it, 2-pixel gaps
      const r = Math.floor(n / GOLDEN.perClass), c = n % GOLDEN.perClass;
      cliDiff = Math.max(cliDiff, Math.abs(cli.data[(2 + r * 30 + i) * cli.width + 2 + c * 30 + j]! - toGrey(nodeSample[n * 784 + i * 28 + j]!)));
    }
    expect(cliDiff, 'kiln sample PNG vs generate, in grey levels').toBe(0);

    // the page: load the checkpoint with the file picker, sample with the same options
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
    pageSample = Float32Array.from(got.samples);
    writeFileSync(join(OUT, 'web-page-sample.f32'), pageSample);
    expect(got.shape).toEqual(GOLDEN.shape);
    expect(got.frames).toBe(GOLDEN.steps);
    expect(got.objective).toBe(GOLDEN.objective);

    // same driver: bit for bit
    const s = await swift;
    const dSwift = s ? maxAbsDiff(pageSample, s.sample) : NaN;
    // other drivers: within the stated tolerance, nearly all 8-bit pixels identical
    const dPageGolden = maxAbsDiff(pageSample, golden), dPageNode = maxAbsDiff(pageSample, nodeSample);
    let identical = 0;
    for (let i = 0; i < golden.length; i++) if (toGrey(pageSample[i]!) === toGrey(nodeSample[i]!)) identical++;
    console.log(`mnist: page sampled ${GOLDEN.shape[0]} digits in ${got.seconds.toFixed(1)} s; ${s ? `Node on SwiftShader (child process, ${s.seconds.toFixed(1)} s): max |page − Node| = ${dSwift}` : 'SwiftShader ICD not installed: same-driver check skipped'}; ${k.deviceInfo().driver} in Node: max |page − Node| ${dPageNode.toExponential(2)}, |page − golden| ${dPageGolden.toExponential(2)}, |Node − golden| ${dGolden.toExponential(2)}; 8-bit pixels identical ${identical}/${golden.length}`);
    if (s) expect(dSwift, 'the page vs Node, both on SwiftShader').toBe(0);
    expect(dPageNode).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);
    expect(dPageGolden).toBeLessThanOrEqual(CROSS_DRIVER_ATOL);
    expect(identical / golden.length).toBeGreaterThanOrEqual(CROSS_DRIVER_IDENTICAL);
  });

  it('screenshots the sample grid: the page shows those pixels, ten non-blank centred digits', async () => {
    expect(pageSample, 'needs the sampling test above').toBeDefined();
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

  it(`trains a tiny UNet on MNIST in the page: the progress bar reaches the end, the loss falls ≥ ${MNIST_LOSS_FACTOR}× and the new model samples`, async () => {
    await page.selectOption('#mnist-widths', '8,16');
    await page.fill('#mnist-train-steps', String(MNIST_TRAIN.steps));
    await page.fill('#mnist-batch', String(MNIST_TRAIN.batchSize));
    await page.click('#mnist-train');
    await page.waitForFunction(() => {
      const st = (globalThis as unknown as { kilnDemo: { busy: boolean; mnist: { error: string | null; samples: unknown; model: { source: string } | null } } }).kilnDemo;
      return !st.busy && (st.mnist.error !== null || (st.mnist.samples !== null && st.mnist.model?.source === 'trained in this page'));
    }, null, { timeout: 240_000, polling: 250 });
    const got = await page.evaluate(() => {
      const m = (globalThis as unknown as { kilnDemo: { mnist: { error: string | null; trainLosses: number[]; samples: Float32Array; model: { step: number; parameters: number } } } }).kilnDemo.mnist;
      const bar = document.getElementById('mnist-progress') as HTMLProgressElement;
      return { error: m.error, losses: m.trainLosses, samples: Array.from(m.samples), step: m.model.step, parameters: m.model.parameters, bar: [bar.value, bar.max], label: document.getElementById('mnist-progress-label')!.textContent };
    });
    expect(got.error).toBeNull();
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
  }, 300_000);

  it('logged no console errors during the whole session', () => {
    expect(consoleErrors).toEqual([]);
  });
});
