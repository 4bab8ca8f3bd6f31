/**
 * The demo page (main thread): controls, plots and animations. All kiln work happens in `worker.ts`;
 * this side only sends requests and draws what comes back. `window.kilnDemo` exposes the page's state
 * (losses, samples, the adapter) to the console and to automated browsers.
 */
import type { DeviceInfo } from '../src/index.js';
import type { SamplerName } from '../src/diffusion/samplers.js';
import { toy2d, type Toy2D } from '../src/data/toy2d.js';
import type { CheckpointEntry } from './build.js';
import { COLORS, drawImageGrid, drawLoss, drawScatter, frameLabel, gridLayout, play } from './draw.js';
import { duration, Meter } from './meter.js';
import { fitSamplingControls, samplingCost, studentLine } from './student.js';
import { conditioningLine, fitConditioningControls, sampleConditions, wirePromptBox } from './prompt.js';
import { DATASET_NOTES, GUIDANCE_NOTE, PROCESS_NOTES, SAMPLER_NOTES, WEBGPU_HELP } from './explain.js';
import { type Envelope, type ModelSummary, type NoiseLevel, type Progress, type Reply, type Request, type Results, type SamplerLists, type ToyObjective } from './protocol.js';

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
   * Seconds are the worker's time for the last training run / sampling run. `previews` counts the sample
   * plots drawn while training. `mnist.samples` are in sampling order (as `kiln sample` draws them); the
   * grid shows one digit per column (a text-conditioned model: a row per prompt, `mnist.prompts`). `mnist.defaultLoaded` is set once the page's own choice of
   * checkpoint has been loaded (or has failed) at start.
   */
  toy: { losses: number[]; samples: Float32Array | null; frames: number; previews: number; error: string | null; trainSeconds: number; sampleSeconds: number };
  mnist: {
    model: ModelSummary | null; samples: Float32Array | null; shape: number[]; cols: number; frames: number; trainLosses: number[]; previews: number;
    error: string | null; sampleSeconds: number; defaultLoaded: boolean; checkpoint: ArrayBuffer | null;
    /** The batch of each network evaluation of the last sampling run (guidance doubles it). */
    evaluations: number[];
    /** The prompt of each image of the last sampling run of a text-conditioned model (null: digits). */
    prompts: string[] | null;
  };
}

const state: DemoState = {
  ready: false, busy: false, fatal: null, device: null,
  toy: { losses: [], samples: null, frames: 0, previews: 0, error: null, trainSeconds: 0, sampleSeconds: 0 },
  mnist: { model: null, samples: null, shape: [], cols: 1, frames: 0, trainLosses: [], previews: 0, error: null, sampleSeconds: 0, defaultLoaded: false, checkpoint: null, evaluations: [], prompts: null },
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

/** Shows why the page cannot run and how to get WebGPU in each browser; disables every button. */
function fatal(message: string): void {
  state.fatal = message;
  state.ready = false;
  const b = $('webgpu-missing');
  const head = document.createElement('strong');
  head.textContent = message;
  const list = document.createElement('ul');
  for (const [browser, how] of WEBGPU_HELP) {
    const li = document.createElement('li');
    const name = document.createElement('b');
    name.textContent = `${browser}: `;
    li.append(name, how);
    list.append(li);
  }
  b.replaceChildren(head, 'How to get WebGPU:', list);
  b.hidden = false;
  setInfo('status', 'Not running');
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

/** The section an info line belongs to. */
const sectionOf = (infoId: string): 'toy' | 'mnist' => (infoId.startsWith('toy') ? 'toy' : 'mnist');

/**
 * Runs one job at a time: action buttons are disabled meanwhile, stop buttons enabled. A failure is shown
 * in the section's info line (and kept in `kilnDemo`); the next job clears it.
 */
async function run(infoId: string, job: () => Promise<void>): Promise<void> {
  if (state.busy || !state.ready) return;
  state.busy = true;
  state[sectionOf(infoId)].error = null;
  $(infoId).classList.remove('error');
  syncButtons();
  try {
    await job();
  } catch (e) {
    const msg = (e as Error).message;
    setInfo(infoId, msg === 'stopped' ? 'Stopped.' : `Error: ${msg}`, msg !== 'stopped');
    state[sectionOf(infoId)].error = msg;
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
  input('mnist-file').disabled = !on;
}

const toyAnim = { id: 0 };
const mnistAnim = { id: 0 };

// ---- 2D toy diffusion ----

let toyTrained: ToyObjective | null = null;
let toyDataset = '';
let toyFrames: { x: Float32Array; level: NoiseLevel }[] = [];
/** The data shown behind samples (the dataset selected, or the one the model was trained on). */
let toyData: Float32Array = new Float32Array();
const TRAILS = 16;
const toyMeter = new Meter('toy-progress', 'toy-progress-label', 'steps');

/** Draws the data, optionally with points and trajectory trails over it. */
function drawToy(points?: Float32Array, trails?: number[][]): void {
  drawScatter(canvas('toy-plot'), [
    { points: toyData, color: COLORS.data, size: 2 },
    ...(points ? [{ points, color: COLORS.samples, size: 2 }] : []),
    ...(trails ? [{ trails, color: COLORS.trails }] : []),
  ]);
}

/** Shows the selected dataset (before anything is trained, and whenever it changes). */
function showToyData(): void {
  const d = select('toy-dataset').value as Toy2D;
  $('toy-dataset-note').textContent = DATASET_NOTES[d];
  toyData = toy2d(d, 1000, 123);
  if (!state.busy) drawToy();
}

/** The samplers the worker offers (known once it has started). */
let samplers: SamplerLists | null = null;

function fillToySamplers(): void {
  const objective = select('toy-objective').value as ToyObjective;
  const s = select('toy-sampler');
  const keep = s.value;
  s.replaceChildren(...(samplers?.toy[objective] ?? []).map((name) => new Option(name, name)));
  if (Array.from(s.options).some((o) => o.value === keep)) s.value = keep;
  $('toy-objective-note').textContent = PROCESS_NOTES[objective];
  explainSampler('toy-sampler', 'toy-sampler-note');
}

function explainSampler(selectId: string, noteId: string): void {
  $(noteId).textContent = SAMPLER_NOTES[select(selectId).value as SamplerName] ?? '';
}

function drawToyFrame(f: number): void {
  const frames = toyFrames.slice(0, f + 1);
  const trails = Array.from({ length: TRAILS }, (_, i) => frames.flatMap(({ x }) => [x[2 * i]!, x[2 * i + 1]!]));
  drawToy(frames[frames.length - 1]?.x, trails);
  input('toy-frame').value = String(f);
  $('toy-frame-label').textContent = frameLabel(f, toyFrames.length - 1, toyFrames[f]?.level, toyTrained === 'flow');
}

async function toySample(): Promise<void> {
  if (!toyTrained) throw new Error('train a model first');
  if (toyTrained !== select('toy-objective').value) throw new Error(`the model was trained with ${toyTrained}; train again for the selected process`);
  const req = { type: 'toy-sample' as const, sampler: select('toy-sampler').value as SamplerName, steps: num('toy-sample-steps', 'Sampling steps', { integer: true, min: 1, max: 1000 }), count: num('toy-count', 'Samples', { integer: true, min: TRAILS, max: 20000 }), seed: num('toy-seed', 'Seed', { integer: true, min: 0 }) };
  cancelAnimationFrame(toyAnim.id);
  toyFrames = [];
  state.toy.samples = null;
  toyMeter.start(req.steps);
  setInfo('toy-info', `Sampling ${req.count} points with ${req.sampler}, ${req.steps} steps…`);
  const r = await call(req, (e) => {
    if (e.type !== 'toy-frame') return;
    toyFrames.push({ x: e.x, level: { t: e.t, sigma: e.sigma } });
    drawToyFrame(toyFrames.length - 1);
    if (e.step > 0) toyMeter.update(e.step, req.steps);
  });
  toyData = r.data;
  state.toy.samples = r.x;
  state.toy.sampleSeconds = r.seconds;
  state.toy.frames = toyFrames.length;
  const slider = input('toy-frame');
  slider.max = String(toyFrames.length - 1);
  slider.disabled = false;
  drawToyFrame(toyFrames.length - 1);
  toyMeter.finish(`sampled in ${r.seconds.toFixed(1)} s`);
  setInfo('toy-info', `Trained on ${toyDataset} (${toyTrained === 'flow' ? 'rectified flow' : 'DDPM'}); ${req.count} samples with ${req.sampler} in ${req.steps} steps (${r.seconds.toFixed(1)} s). Drag the slider or press ▶ to watch them move from noise (t = ${toyTrained === 'flow' ? '1' : '999'}) to data.`);
  syncButtons();
  play(() => toyFrames.length, drawToyFrame, toyAnim);
}

function toyTrain(): Promise<void> {
  return run('toy-info', async () => {
    const steps = num('toy-steps', 'Training steps', { integer: true, min: 1, max: 100000 });
    const req = {
      type: 'toy-train' as const, dataset: select('toy-dataset').value as Toy2D, objective: select('toy-objective').value as ToyObjective,
      steps, batchSize: num('toy-batch', 'Batch', { integer: true, min: 1, max: 65536 }),
      lr: num('toy-lr', 'Learning rate', { positive: true }), seed: num('toy-seed', 'Seed', { integer: true, min: 0 }),
      // about six redraws per run, at most one per 50 steps
      previewEvery: Math.max(50, Math.round(steps / 6)),
    };
    cancelAnimationFrame(toyAnim.id);
    toyTrained = null;
    toyFrames = [];
    showToyData();
    drawToy();
    input('toy-frame').disabled = true;
    $('toy-frame-label').textContent = '';
    state.toy = { losses: [], samples: null, frames: 0, previews: 0, error: null, trainSeconds: 0, sampleSeconds: 0 };
    setInfo('toy-info', `Training ${req.steps} steps… samples of the model are redrawn every ${req.previewEvery} steps.`);
    toyMeter.start(req.steps, 'compiling…');
    let queued = false;
    const r = await call(req, (e) => {
      if (e.type === 'toy-preview') {
        state.toy.previews++;
        drawToy(e.x);
        $('toy-frame-label').textContent = `samples at training step ${e.step}`;
        return;
      }
      if (e.type !== 'toy-loss') return;
      state.toy.losses.push(e.loss);
      toyMeter.update(e.step + 1, req.steps, ` · loss ${e.loss.toFixed(3)}`);
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
    const stopped = r.losses.length < req.steps ? `stopped after ${r.losses.length} of ${req.steps} steps` : `${req.steps} steps`;
    toyMeter.finish(`${stopped} in ${r.seconds.toFixed(1)} s (${(r.losses.length / r.seconds).toFixed(1)} steps/s)`);
    await toySample();
  });
}

// ---- MNIST ----

let mnistFrames: { x: Float32Array; x0: Float32Array; level: NoiseLevel }[] = [];
const sampleMeter = new Meter('mnist-sample-progress', 'mnist-sample-progress-label', 'steps');
const trainMeter = new Meter('mnist-progress', 'mnist-progress-label', 'steps');
/** Whether the model was chosen by the user (loaded or trained), not the page's default: replacing it asks first. */
let userModel = false;
/** The model was trained here and its checkpoint not downloaded yet. */
let unsaved = false;

function fillImageSamplers(objective: 'eps' | 'v' | 'flow'): void {
  const s = select('mnist-sampler');
  const keep = s.value;
  s.replaceChildren(...(samplers?.image[objective] ?? []).map((name) => new Option(name, name)));
  if (Array.from(s.options).some((o) => o.value === keep)) s.value = keep;
  explainSampler('mnist-sampler', 'mnist-sampler-note');
}

function showModel(m: ModelSummary): void {
  state.mnist.model = m;
  fitSamplingControls(m, () => fillImageSamplers(m.objective));
  fitConditioningControls(m, () => void run('mnist-info', mnistSample));
  const space = m.latent ? `latents ${m.latent.join('×')} decoded by its VAE to images ${m.shape.join('×')}` : `images ${m.shape.join('×')}`;
  const objective = { flow: 'rectified flow', eps: 'ε-prediction', v: 'v-prediction' }[m.objective];
  setInfo('mnist-model', `Loaded ${m.source}: ${m.kind}, ${(m.parameters / 1000).toFixed(0)}k parameters, ${objective}, ${m.step} training steps, ${space}, ${conditioningLine(m)}.${studentLine(m)}`);
}

/** Asks before the user's model is replaced (false: keep it). */
function mayReplace(by: string): boolean {
  const m = state.mnist.model;
  if (!m || !userModel) return true;
  const note = unsaved ? ' It was trained in this page and not downloaded: it will be lost.' : '';
  return window.confirm(`${by} replaces the loaded model (${m.source}).${note} Continue?`);
}

async function loadBytes(bytes: ArrayBuffer, source: string, byUser = true): Promise<void> {
  const shown = $('mnist-model').textContent ?? '';
  setInfo('mnist-model', `Loading ${source}…`);
  let r: Results['mnist-load'];
  try {
    r = await call({ type: 'mnist-load', bytes, source }, undefined, [bytes]);
  } catch (e) {
    // the worker keeps its model when a load fails
    setInfo('mnist-model', shown);
    throw e;
  }
  showModel(r.model);
  userModel = byUser;
  unsaved = false;
  $('mnist-download').hidden = true;
}

async function loadUrl(url: string, byUser = true): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`fetch ${url}: HTTP ${res.status}${res.status === 404 ? ' (train a model with `npm start`, or choose a file)' : ''}`);
  await loadBytes(await res.arrayBuffer(), url, byUser);
}

/** Lists the checkpoints the server offers and loads the first, so sampling works on the first click. */
async function loadDefault(): Promise<void> {
  try {
    const res = await fetch('checkpoints/index.json');
    const list = res.ok ? ((await res.json()) as CheckpointEntry[]) : [];
    select('mnist-checkpoints').replaceChildren(...list.map((c) => new Option(c.label, c.url)));
    if (list.length) await run('mnist-info', () => loadUrl(list[0]!.url, false));
  } finally {
    state.mnist.defaultLoaded = true;
  }
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
  $('mnist-frame-label').textContent = frameLabel(f + 1, mnistFrames.length, fr.level, state.mnist.model?.objective === 'flow');
}

async function mnistSample(): Promise<void> {
  const m = state.mnist.model;
  if (!m) throw new Error('load a checkpoint or train a model first');
  const per = num('mnist-count', m.text ? 'Per prompt' : 'Per digit', { integer: true, min: 1, max: 20 });
  const { labels, prompts, cols, byDigit, caption } = sampleConditions(m, per, select('mnist-digit').value);
  const count = (labels ?? prompts!).length;
  // a student samples with its own sampler (the worker refuses another)
  const sampler = m.student ? undefined : (select('mnist-sampler').value as SamplerName);
  const req = { type: 'mnist-sample' as const, labels, prompts, sampler, steps: num('mnist-steps', 'Steps', { integer: true, min: 1, max: 1000 }), guidance: num('mnist-guidance', 'Guidance'), seed: num('mnist-seed', 'Seed', { integer: true, min: 0 }) };
  cancelAnimationFrame(mnistAnim.id);
  state.mnist.cols = cols;
  Object.assign(mnistLayout, { byDigit, perDigit: per });
  state.mnist.shape = [count, ...m.shape];
  state.mnist.samples = null;
  state.mnist.prompts = null;
  mnistFrames = [];
  $('mnist-sample-plots').hidden = false;
  sampleMeter.start(req.steps, 'compiling…');
  setInfo('mnist-info', `Sampling ${count} images with ${m.student ? `the ${m.student.method} student` : req.sampler}, ${req.steps} steps${m.student ? '' : `, guidance ${req.guidance}`}…`);
  const r = await call(req, (e) => {
    if (e.type !== 'mnist-frame') return;
    mnistFrames.push({ x: e.x, x0: e.x0, level: { t: e.t, sigma: e.sigma } });
    drawMnistFrame(mnistFrames.length - 1);
    sampleMeter.update(e.step, e.total);
  }).catch((e: Error) => {
    // a refused request (a word outside the vocabulary, guidance a student lacks) leaves no meter running
    sampleMeter.finish(e.message === 'stopped' ? 'stopped' : 'not sampled');
    throw e;
  });
  const [n, , h, w] = r.shape as [number, number, number, number];
  drawImageGrid(canvas('mnist-grid'), forDisplay(r.x), n, h, w, state.mnist.cols, 3);
  state.mnist.samples = r.x;
  state.mnist.prompts = prompts ?? null;
  $('mnist-grid-caption').textContent = caption;
  state.mnist.sampleSeconds = r.seconds;
  state.mnist.frames = mnistFrames.length;
  state.mnist.evaluations = r.evaluations;
  const slider = input('mnist-frame');
  slider.max = String(Math.max(0, mnistFrames.length - 1));
  slider.value = slider.max;
  slider.disabled = mnistFrames.length < 2;
  sampleMeter.finish(`${n} images in ${r.seconds.toFixed(1)} s`);
  setInfo('mnist-info', `${n} samples in ${r.seconds.toFixed(1)} s (${r.sampling}, seed ${req.seed}; ${samplingCost(r.evaluations, n)}). Drag the slider to see x_t and the predicted x₀ at each step.`);
  syncButtons();
}

function mnistTrain(): Promise<void> {
  return run('mnist-train-info', async () => {
    const widths = select('mnist-widths').value.split(',').map(Number);
    const steps = num('mnist-train-steps', 'Steps', { integer: true, min: 1, max: 1000000 });
    const req = {
      type: 'mnist-train' as const, widths, dataUrl: new URL(input('mnist-data-url').value.trim() || 'data/mnist/', location.href).href,
      steps, batchSize: num('mnist-batch', 'Batch', { integer: true, min: 1, max: 4096 }),
      lr: num('mnist-lr', 'Learning rate', { positive: true }), seed: 0,
      previewEvery: Math.max(25, Math.round(steps / 12)),
    };
    if (!mayReplace('Training a new model')) {
      setInfo('mnist-train-info', 'Training cancelled: the loaded model is kept.');
      return;
    }
    state.mnist.trainLosses = [];
    state.mnist.previews = 0;
    state.mnist.checkpoint = null;
    $('mnist-download').hidden = true;
    trainMeter.start(1, '');
    setInfo('mnist-train-info', 'Downloading the MNIST training set…');
    let phase = '';
    const r = await call(req, (e) => {
      if (e.type === 'mnist-preview') {
        state.mnist.previews++;
        $('mnist-preview-figure').hidden = false;
        const [n, , h, w] = e.shape as [number, number, number, number];
        drawImageGrid(canvas('mnist-preview'), e.x, n, h, w, n, 3);
        $('mnist-preview-label').textContent = `Digits 0–9 from the weights at step ${e.step} (flow Euler, 10 steps, guidance 2, the same noise each time)`;
        return;
      }
      if (e.type !== 'mnist-progress') return;
      if (e.phase !== phase) {
        phase = e.phase;
        trainMeter.start(e.total, phase === 'train' ? 'compiling…' : '');
        if (phase === 'train') setInfo('mnist-train-info', `Training ${req.steps} steps (batch ${req.batchSize}); digits 0–9 are sampled every ${req.previewEvery} steps…`);
      }
      if (e.phase === 'download') {
        $<HTMLProgressElement>('mnist-progress').max = e.total;
        $<HTMLProgressElement>('mnist-progress').value = e.done;
        $('mnist-progress-label').textContent = `downloading file ${e.file ?? ''}: ${(e.done / 1e6).toFixed(1)} / ${(e.total / 1e6).toFixed(1)} MB`;
        return;
      }
      if (e.loss !== undefined) state.mnist.trainLosses.push(e.loss);
      trainMeter.update(e.done, e.total, e.loss !== undefined ? ` · loss ${e.loss.toFixed(3)}` : '');
      if (e.done % 5 === 0 || e.done === e.total) drawLoss(canvas('mnist-loss'), state.mnist.trainLosses, e.total);
    });
    state.mnist.trainLosses = r.losses;
    drawLoss(canvas('mnist-loss'), r.losses, req.steps);
    const done = r.model.step < req.steps ? `stopped after ${r.model.step} of ${req.steps} steps` : `${r.model.step} steps`;
    trainMeter.finish(`${done} in ${duration(r.seconds)}`);
    showModel(r.model);
    setInfo('mnist-train-info', `Trained: ${done}. The model (its EMA weights) is loaded and sampled above; download it to keep it.`);
    userModel = true;
    unsaved = true;
    state.mnist.checkpoint = r.checkpoint;
    const link = $<HTMLAnchorElement>('mnist-download');
    if (link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([r.checkpoint], { type: 'application/octet-stream' }));
    link.textContent = `Download the model (${(r.checkpoint.byteLength / 1e6).toFixed(1)} MB)`;
    link.hidden = false;
    await mnistSample();
  });
}

// ---- wiring ----

function wire(): void {
  showToyData();
  fillToySamplers();
  fillImageSamplers('flow');
  $('mnist-guidance-note').textContent = GUIDANCE_NOTE;
  drawLoss(canvas('toy-loss'), [], Number(input('toy-steps').value) || 1);
  drawLoss(canvas('mnist-loss'), [], Number(input('mnist-train-steps').value) || 1);
  select('toy-dataset').addEventListener('change', showToyData);
  select('toy-objective').addEventListener('change', fillToySamplers);
  select('toy-sampler').addEventListener('change', () => explainSampler('toy-sampler', 'toy-sampler-note'));
  select('mnist-sampler').addEventListener('change', () => explainSampler('mnist-sampler', 'mnist-sampler-note'));
  $('toy-train').addEventListener('click', () => void toyTrain());
  $('toy-sample').addEventListener('click', () => void run('toy-info', toySample));
  $('toy-play').addEventListener('click', () => play(() => toyFrames.length, drawToyFrame, toyAnim));
  input('toy-frame').addEventListener('input', () => {
    cancelAnimationFrame(toyAnim.id);
    drawToyFrame(Number(input('toy-frame').value));
  });
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.stop'))) el.addEventListener('click', () => void call({ type: 'stop' }));
  input('mnist-file').addEventListener('change', () => {
    const f = input('mnist-file').files?.[0];
    input('mnist-file').value = '';
    if (f && mayReplace(`Loading ${f.name}`)) void run('mnist-info', async () => loadBytes(await f.arrayBuffer(), f.name));
  });
  $('mnist-fetch').addEventListener('click', () => {
    const url = input('mnist-url').value.trim() || select('mnist-checkpoints').value;
    if (!url) {
      setInfo('mnist-info', 'Error: enter the URL of a .safetensors checkpoint', true);
      return;
    }
    if (mayReplace(`Loading ${url}`)) void run('mnist-info', () => loadUrl(url));
  });
  $('mnist-sample').addEventListener('click', () => void run('mnist-info', mnistSample));
  wirePromptBox(() => void run('mnist-info', mnistSample));
  $('mnist-train').addEventListener('click', () => void mnistTrain());
  $('mnist-download').addEventListener('click', () => {
    unsaved = false;
  });
  $('mnist-play').addEventListener('click', () => play(() => mnistFrames.length, drawMnistFrame, mnistAnim));
  input('mnist-frame').addEventListener('input', () => {
    cancelAnimationFrame(mnistAnim.id);
    drawMnistFrame(Number(input('mnist-frame').value));
  });
  window.addEventListener('beforeunload', (ev) => {
    if (unsaved) ev.preventDefault();
  });
}

async function main(): Promise<void> {
  wire();
  syncButtons();
  if (!('gpu' in navigator) || !navigator.gpu) {
    fatal(window.isSecureContext
      ? 'WebGPU is not available in this browser (navigator.gpu is missing).'
      : 'WebGPU is not available in this browser here: the page is not a secure context (open it at http://localhost or over https).');
    return;
  }
  startWorker();
  try {
    const { info, samplers: lists } = await call({ type: 'init' });
    samplers = lists;
    fillToySamplers();
    const m = state.mnist.model;
    if (m) fitSamplingControls(m, () => fillImageSamplers(m.objective));
    else fillImageSamplers('flow');
    state.device = info;
    state.ready = true;
    setInfo('status', `WebGPU adapter: ${info.driver}${info.description ? ` (${info.description})` : info.vendor ? ` (${info.vendor})` : ''}, running in a worker`);
  } catch (e) {
    fatal(`WebGPU could not start: ${(e as Error).message}`);
    return;
  }
  syncButtons();
  await loadDefault();
}

void main();
