/**
 * The demo page (main thread): controls, plots and animations. All kiln work happens in `worker.ts`;
 * this side only sends requests and draws what comes back. `window.kilnDemo` exposes the page's state
 * (losses, samples, the adapter) to the console and to automated browsers.
 */
import type { DeviceInfo } from '../src/index.js';
import type { SamplerName } from '../src/diffusion/samplers.js';
import type { Toy2D } from '../src/data/toy2d.js';
import { drawImageGrid, drawLoss, drawScatter, gridLayout } from './draw.js';
import { IMAGE_SAMPLERS, TOY_SAMPLERS, type Envelope, type ModelSummary, type Progress, type Reply, type Request, type Results, type ToyObjective } from './protocol.js';

/** What the page knows, readable as `window.kilnDemo`. */
export interface DemoState {
  /** The worker has a WebGPU device. */
  ready: boolean;
  /** A request is running. */
  busy: boolean;
  /** Why the page cannot run (no WebGPU, worker failure). */
  fatal: string | null;
  device: DeviceInfo | null;
  /**
   * Seconds are the worker's time for the last training run / sampling run. `mnist.samples` are in
   * sampling order (as `kiln sample` draws them); the grid shows one digit per column.
   */
  toy: { losses: number[]; samples: Float32Array | null; frames: number; error: string | null; trainSeconds: number; sampleSeconds: number };
  mnist: { model: ModelSummary | null; samples: Float32Array | null; shape: number[]; cols: number; frames: number; trainLosses: number[]; error: string | null; sampleSeconds: number };
}

const state: DemoState = {
  ready: false, busy: false, fatal: null, device: null,
  toy: { losses: [], samples: null, frames: 0, error: null, trainSeconds: 0, sampleSeconds: 0 },
  mnist: { model: null, samples: null, shape: [], cols: 1, frames: 0, trainLosses: [], error: null, sampleSeconds: 0 },
};
(globalThis as unknown as { kilnDemo: DemoState }).kilnDemo = state;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo page: missing element #${id}`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);
const select = (id: string) => $<HTMLSelectElement>(id);
const canvas = (id: string) => $<HTMLCanvasElement>(id);

/** Reads a number field, or throws a message naming the field. */
function num(id: string, label: string, o: { min?: number; max?: number; integer?: boolean; positive?: boolean } = {}): number {
  const raw = input(id).value.trim();
  const v = Number(raw);
  const bad = raw === '' || !Number.isFinite(v) || (o.integer && !Number.isInteger(v)) || (o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max) || (o.positive && !(v > 0));
  if (bad) {
    const range = o.positive ? ' greater than 0' : o.min !== undefined && o.max !== undefined ? ` in [${o.min}, ${o.max}]` : o.min !== undefined ? ` ≥ ${o.min}` : '';
    throw new Error(`${label} must be ${o.integer ? 'an integer' : 'a number'}${range}, got '${raw}'`);
  }
  return v;
}

function setInfo(id: string, text: string, error = false): void {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', error);
}

// ---- the worker and its requests ----

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, { resolve: (r: never) => void; reject: (e: Error) => void; onProgress?: (e: Progress) => void }>();

/** Sends a request to the worker; resolves with its result (progress events go to `onProgress`). */
function call<T extends Request['type']>(req: Extract<Request, { type: T }>, onProgress?: (e: Progress) => void, transfer: Transferable[] = []): Promise<Results[T]> {
  if (!worker) return Promise.reject(new Error(state.fatal ?? 'the worker is not running'));
  const id = nextId++;
  return new Promise<Results[T]>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (r: never) => void, reject, onProgress });
    worker!.postMessage({ id, req } satisfies Envelope, transfer);
  });
}

function fatal(message: string): void {
  state.fatal = message;
  state.ready = false;
  const b = $('webgpu-missing');
  b.textContent = message;
  b.hidden = false;
  setInfo('status', 'Not running.');
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button'))) el.disabled = true;
}

function startWorker(): void {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'kiln' });
  worker.onmessage = (ev: MessageEvent<Reply>) => {
    const m = ev.data;
    const p = pending.get(m.id);
    if (!p) return;
    if (m.kind === 'progress') p.onProgress?.(m.event);
    else {
      pending.delete(m.id);
      if (m.kind === 'done') p.resolve(m.result as never);
      else p.reject(new Error(m.message));
    }
  };
  worker.onerror = (ev) => {
    console.error('kiln worker error:', ev.message);
    fatal(`The worker stopped: ${ev.message || 'failed to load'}`);
    for (const p of pending.values()) p.reject(new Error('the worker stopped'));
    pending.clear();
  };
}

/** Runs one job at a time: action buttons are disabled meanwhile, stop buttons enabled. */
async function run(infoId: string, job: () => Promise<void>): Promise<void> {
  if (state.busy || !state.ready) return;
  state.busy = true;
  if (infoId === 'toy-info') state.toy.error = null;
  else state.mnist.error = null;
  syncButtons();
  try {
    await job();
  } catch (e) {
    const msg = (e as Error).message;
    setInfo(infoId, msg === 'stopped' ? 'Stopped.' : `Error: ${msg}`, msg !== 'stopped');
    if (infoId === 'toy-info') state.toy.error = msg;
    else state.mnist.error = msg;
  } finally {
    state.busy = false;
    syncButtons();
  }
}

function syncButtons(): void {
  const on = state.ready && !state.busy;
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.action'))) el.disabled = !on;
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.stop'))) el.disabled = !state.busy;
  $<HTMLButtonElement>('toy-sample').disabled = !on || !toyTrained;
  $<HTMLButtonElement>('mnist-sample').disabled = !on || !state.mnist.model;
  $<HTMLButtonElement>('toy-play').disabled = toyFrames.length < 2;
  $<HTMLButtonElement>('mnist-play').disabled = mnistFrames.length < 2;
}

// ---- 2D toy diffusion ----

let toyTrained: ToyObjective | null = null;
let toyDataset = '';
let toyFrames: Float32Array[] = [];
let toyData: Float32Array | null = null;
const TRAILS = 16;

function fillToySamplers(): void {
  const s = select('toy-sampler');
  const keep = s.value;
  s.replaceChildren(...TOY_SAMPLERS[select('toy-objective').value as ToyObjective].map((name) => new Option(name, name)));
  if (Array.from(s.options).some((o) => o.value === keep)) s.value = keep;
}

function drawToyFrame(f: number): void {
  const frames = toyFrames.slice(0, f + 1);
  const trails = Array.from({ length: TRAILS }, (_, i) => frames.flatMap((x) => [x[2 * i]!, x[2 * i + 1]!]));
  drawScatter(canvas('toy-plot'), [
    { points: toyData ?? undefined, color: 'rgba(90,90,90,0.35)', size: 2 },
    { points: frames[frames.length - 1], color: 'rgba(30,90,200,0.7)', size: 2 },
    { trails, color: 'rgba(220,60,30,0.9)' },
  ]);
  input('toy-frame').value = String(f);
  $('toy-frame-label').textContent = `step ${f} / ${toyFrames.length - 1}`;
}

/** Plays frames from the first to the last (about 12 per second). */
function play(frames: () => number, draw: (f: number) => void, handle: { id: number }): void {
  cancelAnimationFrame(handle.id);
  const n = frames();
  const t0 = performance.now();
  const tick = () => {
    const f = Math.min(n - 1, Math.floor(((performance.now() - t0) / 1000) * 12));
    draw(f);
    if (f < n - 1) handle.id = requestAnimationFrame(tick);
  };
  handle.id = requestAnimationFrame(tick);
}
const toyAnim = { id: 0 };
const mnistAnim = { id: 0 };

async function toySample(): Promise<void> {
  if (!toyTrained) throw new Error('train a model first');
  if (toyTrained !== select('toy-objective').value) throw new Error(`the model was trained with ${toyTrained}; train again for the selected process`);
  const req = { type: 'toy-sample' as const, sampler: select('toy-sampler').value as SamplerName, steps: num('toy-sample-steps', 'Sampling steps', { integer: true, min: 1, max: 1000 }), count: num('toy-count', 'Samples', { integer: true, min: TRAILS, max: 20000 }), seed: num('toy-seed', 'Seed', { integer: true, min: 0 }) };
  toyFrames = [];
  setInfo('toy-info', `Sampling with ${req.sampler}, ${req.steps} steps…`);
  const r = await call(req, (e) => {
    if (e.type !== 'toy-frame') return;
    toyFrames.push(e.x);
    drawToyFrame(toyFrames.length - 1);
  });
  toyData = r.data;
  state.toy.samples = r.x;
  state.toy.sampleSeconds = r.seconds;
  state.toy.frames = toyFrames.length;
  const slider = input('toy-frame');
  slider.max = String(toyFrames.length - 1);
  slider.disabled = false;
  drawToyFrame(toyFrames.length - 1);
  setInfo('toy-info', `Trained on ${toyDataset} (${toyTrained}); ${req.count} samples with ${req.sampler} in ${req.steps} steps (${r.seconds.toFixed(1)} s). Drag the slider or replay to watch them move.`);
  syncButtons();
  play(() => toyFrames.length, drawToyFrame, toyAnim);
}

function toyTrain(): Promise<void> {
  return run('toy-info', async () => {
    const req = {
      type: 'toy-train' as const, dataset: select('toy-dataset').value as Toy2D, objective: select('toy-objective').value as ToyObjective,
      steps: num('toy-steps', 'Training steps', { integer: true, min: 1, max: 100000 }), batchSize: num('toy-batch', 'Batch', { integer: true, min: 1, max: 65536 }),
      lr: num('toy-lr', 'Learning rate', { positive: true }), seed: num('toy-seed', 'Seed', { integer: true, min: 0 }),
    };
    toyTrained = null;
    state.toy = { losses: [], samples: null, frames: 0, error: null, trainSeconds: 0, sampleSeconds: 0 };
    setInfo('toy-info', `Training ${req.steps} steps…`);
    let queued = false;
    const r = await call(req, (e) => {
      if (e.type !== 'toy-loss') return;
      state.toy.losses.push(e.loss);
      if (!queued) {
        queued = true;
        requestAnimationFrame(() => {
          queued = false;
          drawLoss(canvas('toy-loss'), state.toy.losses, req.steps);
        });
      }
    });
    state.toy.losses = r.losses;
    state.toy.trainSeconds = r.seconds;
    drawLoss(canvas('toy-loss'), r.losses, req.steps);
    toyTrained = req.objective;
    toyDataset = req.dataset;
    setInfo('toy-info', `Trained ${req.steps} steps in ${r.seconds.toFixed(1)} s (${(req.steps / r.seconds).toFixed(1)} steps/s).`);
    await toySample();
  });
}

// ---- MNIST ----

let mnistFrames: { x: Float32Array; x0: Float32Array }[] = [];

function fillImageSamplers(objective: 'eps' | 'v' | 'flow'): void {
  const s = select('mnist-sampler');
  const keep = s.value;
  s.replaceChildren(...IMAGE_SAMPLERS[objective].map((name) => new Option(name, name)));
  if (Array.from(s.options).some((o) => o.value === keep)) s.value = keep;
}

function showModel(m: ModelSummary): void {
  state.mnist.model = m;
  fillImageSamplers(m.objective);
  const space = m.latent ? `latents ${m.latent.join('×')} decoded by its VAE to images ${m.shape.join('×')}` : `images ${m.shape.join('×')}`;
  setInfo('mnist-model', `${m.source}: ${m.kind}, ${(m.parameters / 1000).toFixed(0)}k parameters, ${m.objective} objective, ${m.step} training steps, ${space}, ${m.numClasses} classes.`);
}

async function loadBytes(bytes: ArrayBuffer, source: string): Promise<void> {
  setInfo('mnist-model', `Loading ${source}…`);
  const r = await call({ type: 'mnist-load', bytes, source }, undefined, [bytes]);
  showModel(r.model);
}

/**
 * Images in sampling order (all samples of digit 0, then of digit 1, …, as `kiln sample` orders them) laid
 * out so that each column holds one digit, `per` rows deep. Other orders are returned as they are.
 */
function forDisplay(values: Float32Array): Float32Array {
  const per = mnistLayout.perDigit;
  if (!mnistLayout.byDigit || per === 1) return values;
  const size = values.length / (10 * per);
  const out = new Float32Array(values.length);
  for (let d = 0; d < 10; d++) for (let r = 0; r < per; r++) out.set(values.subarray((d * per + r) * size, (d * per + r + 1) * size), (r * 10 + d) * size);
  return out;
}
const mnistLayout = { byDigit: false, perDigit: 1 };

function drawMnistFrame(f: number): void {
  const fr = mnistFrames[f];
  if (!fr) return;
  const [n, , h, w] = state.mnist.shape as [number, number, number, number];
  // the pair side by side fits about 1,060 CSS pixels
  const scale = Math.max(1, Math.min(3, Math.floor((520 / gridLayout(n, h, w, state.mnist.cols).width) * 4) / 4));
  drawImageGrid(canvas('mnist-xt'), forDisplay(fr.x), n, h, w, state.mnist.cols, scale);
  drawImageGrid(canvas('mnist-x0'), forDisplay(fr.x0), n, h, w, state.mnist.cols, scale);
  input('mnist-frame').value = String(f);
  $('mnist-frame-label').textContent = `step ${f + 1} / ${mnistFrames.length}`;
}

async function mnistSample(): Promise<void> {
  const m = state.mnist.model;
  if (!m) throw new Error('load a checkpoint or train a model first');
  const digit = select('mnist-digit').value;
  const per = num('mnist-count', 'Per digit', { integer: true, min: 1, max: 20 });
  let labels = digit === 'all' ? Array.from({ length: 10 }, (_, d) => Array<number>(per).fill(d)).flat() : Array<number>(per).fill(Number(digit));
  // an unconditional model has only the null class, 0
  if (m.numClasses === 0) labels = labels.map(() => 0);
  else if (labels.some((l) => l > m.numClasses)) throw new Error(`this model has ${m.numClasses} classes (0–${m.numClasses - 1}, ${m.numClasses} = none)`);
  const req = { type: 'mnist-sample' as const, labels, sampler: select('mnist-sampler').value as SamplerName, steps: num('mnist-steps', 'Steps', { integer: true, min: 1, max: 1000 }), guidance: num('mnist-guidance', 'Guidance'), seed: num('mnist-seed', 'Seed', { integer: true, min: 0 }) };
  state.mnist.cols = Math.min(labels.length, 10);
  Object.assign(mnistLayout, { byDigit: digit === 'all', perDigit: per });
  state.mnist.shape = [labels.length, ...m.shape];
  state.mnist.samples = null;
  mnistFrames = [];
  setInfo('mnist-info', `Sampling ${labels.length} images with ${req.sampler}, ${req.steps} steps, guidance ${req.guidance}…`);
  const r = await call(req, (e) => {
    if (e.type !== 'mnist-frame') return;
    mnistFrames.push({ x: e.x, x0: e.x0 });
    drawMnistFrame(mnistFrames.length - 1);
  });
  const [n, , h, w] = r.shape as [number, number, number, number];
  drawImageGrid(canvas('mnist-grid'), forDisplay(r.x), n, h, w, state.mnist.cols, 3);
  state.mnist.samples = r.x;
  state.mnist.sampleSeconds = r.seconds;
  state.mnist.frames = mnistFrames.length;
  const slider = input('mnist-frame');
  slider.max = String(Math.max(0, mnistFrames.length - 1));
  slider.disabled = mnistFrames.length < 2;
  setInfo('mnist-info', `${n} samples in ${r.seconds.toFixed(1)} s (${req.sampler}, ${req.steps} steps, guidance ${req.guidance}, seed ${req.seed}).`);
  syncButtons();
}

function mnistTrain(): Promise<void> {
  return run('mnist-info', async () => {
    const widths = select('mnist-widths').value.split(',').map(Number);
    const req = {
      type: 'mnist-train' as const, widths, dataUrl: new URL(input('mnist-data-url').value.trim() || 'data/mnist/', location.href).href,
      steps: num('mnist-train-steps', 'Steps', { integer: true, min: 1, max: 1000000 }), batchSize: num('mnist-batch', 'Batch', { integer: true, min: 1, max: 4096 }),
      lr: num('mnist-lr', 'Learning rate', { positive: true }), seed: 0,
    };
    state.mnist.trainLosses = [];
    const bar = $<HTMLProgressElement>('mnist-progress');
    const label = $('mnist-progress-label');
    setInfo('mnist-info', 'Downloading the MNIST training set…');
    const r = await call(req, (e) => {
      if (e.type !== 'mnist-progress') return;
      bar.max = e.total;
      bar.value = e.done;
      if (e.phase === 'download') label.textContent = `downloading file ${e.file ?? ''}: ${(e.done / 1e6).toFixed(1)} / ${(e.total / 1e6).toFixed(1)} MB`;
      else {
        if (e.loss !== undefined) state.mnist.trainLosses.push(e.loss);
        label.textContent = `step ${e.done} / ${e.total}${e.loss !== undefined ? `, loss ${e.loss.toFixed(3)}` : ''}`;
        if (e.done % 5 === 0 || e.done === e.total) drawLoss(canvas('mnist-loss'), state.mnist.trainLosses, e.total);
        setInfo('mnist-info', 'Training…');
      }
    });
    state.mnist.trainLosses = r.losses;
    drawLoss(canvas('mnist-loss'), r.losses, req.steps);
    label.textContent = `${r.model.step} steps in ${r.seconds.toFixed(0)} s`;
    showModel(r.model);
    await mnistSample();
  });
}

// ---- wiring ----

function wire(): void {
  fillToySamplers();
  fillImageSamplers('flow');
  select('toy-objective').addEventListener('change', fillToySamplers);
  $('toy-train').addEventListener('click', () => void toyTrain());
  $('toy-sample').addEventListener('click', () => void run('toy-info', toySample));
  $('toy-stop').addEventListener('click', () => void call({ type: 'stop' }));
  $('toy-play').addEventListener('click', () => play(() => toyFrames.length, drawToyFrame, toyAnim));
  input('toy-frame').addEventListener('input', () => {
    cancelAnimationFrame(toyAnim.id);
    drawToyFrame(Number(input('toy-frame').value));
  });
  input('mnist-file').addEventListener('change', () => {
    const f = input('mnist-file').files?.[0];
    if (f) void run('mnist-info', async () => loadBytes(await f.arrayBuffer(), f.name));
  });
  $('mnist-fetch').addEventListener('click', () => void run('mnist-info', async () => {
    const url = input('mnist-url').value.trim();
    if (!url) throw new Error('enter the URL of a .safetensors checkpoint');
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`cannot fetch ${url}: ${(e as Error).message}`);
    }
    if (!res.ok) throw new Error(`fetch ${url}: HTTP ${res.status}${res.status === 404 ? ' (train a model with `npm start`, or choose a file)' : ''}`);
    await loadBytes(await res.arrayBuffer(), url);
  }));
  $('mnist-sample').addEventListener('click', () => void run('mnist-info', mnistSample));
  $('mnist-train').addEventListener('click', () => void mnistTrain());
  $('mnist-stop').addEventListener('click', () => void call({ type: 'stop' }));
  $('mnist-play').addEventListener('click', () => play(() => mnistFrames.length, drawMnistFrame, mnistAnim));
  input('mnist-frame').addEventListener('input', () => {
    cancelAnimationFrame(mnistAnim.id);
    drawMnistFrame(Number(input('mnist-frame').value));
  });
}

async function main(): Promise<void> {
  wire();
  syncButtons();
  if (!('gpu' in navigator) || !navigator.gpu) {
    fatal('WebGPU is not available in this browser (navigator.gpu is missing). Use a browser with WebGPU enabled: Chrome or Edge 113+, Firefox 141+, Safari 26+; on Linux, Chrome may need chrome://flags/#enable-unsafe-webgpu.');
    return;
  }
  startWorker();
  try {
    const { info } = await call({ type: 'init' });
    state.device = info;
    state.ready = true;
    setInfo('status', `WebGPU adapter: ${info.driver}${info.description ? ` (${info.description})` : info.vendor ? ` (${info.vendor})` : ''}, running in a worker.`);
  } catch (e) {
    fatal(`WebGPU could not start: ${(e as Error).message}`);
    return;
  }
  syncButtons();
}

void main();
