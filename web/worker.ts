/**
 * The demo's worker: kiln and its WebGPU device live here, off the page's main thread, so training and
 * sampling never block the UI. It answers the requests of `protocol.ts` one at a time; `stop` ends a
 * training run early. Node's tests import it and serve requests through `serve` with a scope of their own.
 */
import * as k from '../src/index.js';
import { DiffusionTrainer, toyProcess, TRAIN_DEFAULTS, trainToy, type TrainConfig } from '../src/train/index.js';
import { EXAMPLE_PROMPTS } from './explain.js';
import type { Envelope, ModelSummary, NoiseLevel, Progress, Reply, Request, Results, SamplerLists, StudentSummary } from './protocol.js';

type Denoiser = k.diffusion.Denoiser;
type StudentSpec = k.diffusion.StudentSpec;
/** What `k.diffusion.loadDenoiser` gives: the model, its metadata, its VAE, student record and tokenizer. */
type Loaded = Awaited<ReturnType<typeof k.diffusion.loadDenoiser>>;

/** The parts of the dedicated-worker global scope the worker uses (a test passes one of its own). */
export interface WorkerScope {
  postMessage(message: Reply, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent<Envelope>) => void) | null;
}

/** The trained toy model and how it was trained. */
let toy: { net: k.diffusion.ToyDenoiser; process: k.diffusion.NoiseProcess; prediction: k.diffusion.Prediction; dataset: k.data.Toy2D; objective: 'ddpm-eps' | 'flow' } | null = null;
/**
 * The image model used for sampling (loaded from a checkpoint or trained in the page): the denoiser, the
 * shape it samples, for a latent checkpoint the codec that decodes its samples to images, for a student
 * of `kiln distill` how it samples, and for a text-conditioned model the tokenizer of its prompts.
 */
let image: { model: Denoiser; latent: k.nn.LatentCodec | null; sampleShape: [number, number, number]; summary: ModelSummary; student: StudentSpec | null; tokenizer: k.data.WordTokenizer | null } | null = null;
/** Aborted by a `stop` request: training loops end early (keeping what was learned), sampling ends. */
let stop = new AbortController();
/** Serializes the requests (one job at a time; `stop` bypasses the queue). */
let queue: Promise<void> = Promise.resolve();

class Stopped extends Error {
  constructor() {
    super('stopped');
  }
}

function disposeModule(m: k.nn.Module): void {
  for (const t of Object.values(m.stateDict())) t.dispose();
}

function integer(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** The noise level at each point of a sampling path: what the page labels its trajectory slider with. */
function noiseLevels(path: k.diffusion.TimePoint[]): NoiseLevel[] {
  return path.map((p) => ({ t: p.t, sigma: p.a > 0 ? p.s / p.a : Infinity }));
}

/** Throws `Stopped` once a stop was requested (called between sampling steps). */
function checkStop(): void {
  if (stop.signal.aborted) throw new Stopped();
}

/**
 * Samples `count` points from the toy model with noise from a generator of its own (so a preview drawn
 * during training leaves the training's random stream as it is); `onFrame` sees the start and every step.
 */
async function toyPoints(o: { count: number; steps: number; sampler: k.diffusion.SamplerName; seed: number }, onFrame?: (step: number, x: Float32Array, level: NoiseLevel) => void): Promise<Float32Array> {
  const { net, process, prediction } = toy!;
  const path = k.diffusion.samplingPath(process, { steps: o.steps });
  const levels = noiseLevels(path);
  const generator = new k.Generator(o.seed);
  const noise = k.randn([o.count, 2], { generator });
  try {
    if (onFrame) {
      const x0 = noise.mul(path[0]!.s);
      onFrame(0, (await x0.data()) as Float32Array, levels[0]!);
      x0.dispose();
    }
    const { x } = await k.noGrad(() => k.diffusion.sample({
      model: net.asModel(), prediction, process, path, noise, sampler: o.sampler, clip: 5, generator,
      onStep: async ({ step, x: xi }) => {
        checkStop();
        if (onFrame) onFrame(step, (await xi.data()) as Float32Array, levels[step]!);
      },
    }));
    const values = (await x.data()) as Float32Array;
    x.dispose();
    return values;
  } finally {
    noise.dispose();
  }
}

/** Samples of the model being trained: a quick deterministic sampler, the same noise each time. */
const TOY_PREVIEW = { count: 600, steps: 20, seed: 99 };

async function toyTrain(r: Extract<Request, { type: 'toy-train' }>, emit: (e: Progress, transfer?: Transferable[]) => void): Promise<Results['toy-train']> {
  integer('training steps', r.steps, 1, 100000);
  integer('batch size', r.batchSize, 1, 65536);
  integer('preview interval', r.previewEvery, 0, 100000);
  if (!(r.lr > 0)) throw new Error(`the learning rate must be positive, got ${r.lr}`);
  const t0 = performance.now();
  if (toy) disposeModule(toy.net);
  toy = null;
  const sampler = r.objective === 'flow' ? 'flow_euler' : 'ddim';
  const out = await trainToy({
    dataset: r.dataset, objective: r.objective, steps: r.steps, batchSize: r.batchSize, lr: r.lr, seed: r.seed, signal: stop.signal,
    onStep: async (step, loss, trainer) => {
      emit({ type: 'toy-loss', step, loss });
      if (r.previewEvery === 0 || step % r.previewEvery !== 0) return;
      // the model under training (its parameters change in place), sampled between two steps
      toy = { net: trainer.model, process: trainer.process, prediction: trainer.prediction, dataset: r.dataset, objective: r.objective };
      try {
        const x = await toyPoints({ ...TOY_PREVIEW, sampler });
        emit({ type: 'toy-preview', step, x }, [x.buffer]);
      } catch (e) {
        if (!(e instanceof Stopped)) throw e;
      } finally {
        toy = null;
      }
    },
  });
  toy = { net: out.net, process: out.process, prediction: out.prediction, dataset: r.dataset, objective: r.objective };
  return { losses: out.losses, seconds: (performance.now() - t0) / 1000 };
}

async function toySample(r: Extract<Request, { type: 'toy-sample' }>, emit: (e: Progress, transfer?: Transferable[]) => void): Promise<Results['toy-sample']> {
  if (!toy) throw new Error('train a toy model first');
  integer('sampling steps', r.steps, 1, 1000);
  integer('number of samples', r.count, 1, 20000);
  const t0 = performance.now();
  const x = await toyPoints(r, (step, v, level) => emit({ type: 'toy-frame', step, total: r.steps, x: v, ...level }, [v.buffer]));
  return { x, data: k.data.toy2d(toy.dataset, r.count, 123), seconds: (performance.now() - t0) / 1000 };
}

/** Whether the tokenizer reads a prompt whole: every word in its vocabulary, not too many words. */
function readable(tokenizer: k.data.WordTokenizer, prompt: string): boolean {
  try {
    tokenizer.encodePrompts('prompt', [prompt]);
    return true;
  } catch {
    return false;
  }
}

/** A student as the page shows it. */
function studentSummary(s: StudentSpec): StudentSummary {
  return {
    method: s.method, steps: s.steps, sampler: s.method === 'consistency' ? null : (s.sampler ?? 'flow_euler'), times: s.times ?? null, guidance: s.guidance, scales: s.scales ?? null,
    summary: k.diffusion.studentSummary(s), description: k.diffusion.describeStudent(s, k.diffusion.studentSampling(s)),
  };
}

/** Makes a loaded checkpoint the model sampled from (with its student record and tokenizer, if any), with a summary for the page. */
function useModel({ model, latent, meta, student, tokenizer }: Loaded, source: string): ModelSummary {
  const spec = meta.model as { kind: string; config: { channels: number; size: number; numClasses: number } };
  // a student's `train` metadata is its distillation's: its objective is in its record
  const objective = student?.objective ?? (meta.train as TrainConfig).objective;
  const sampleShape: [number, number, number] = [spec.config.channels, spec.config.size, spec.config.size];
  // the decoded shape, from the lazy graph (nothing runs on the GPU)
  const shape = latent ? (k.scope(() => latent.decode(k.zeros([1, ...sampleShape])).shape.slice(1)) as [number, number, number]) : sampleShape;
  if (shape[0] !== 1) {
    disposeModule(model);
    throw new Error(`${source}: the page shows single-channel images; this model makes ${shape[0]} channels`);
  }
  const summary: ModelSummary = {
    source, kind: spec.kind, objective,
    parameters: model.parameters().reduce((s, p) => s + p.size, 0),
    numClasses: spec.config.numClasses,
    shape,
    latent: latent ? sampleShape : null,
    step: Number(meta.step ?? 0),
    student: student ? studentSummary(student) : null,
    text: tokenizer ? { words: [...tokenizer.words], maxWords: tokenizer.length - 1, examples: EXAMPLE_PROMPTS.filter((p) => readable(tokenizer, p)), sampling: k.diffusion.defaultSampling(objective, true) } : null,
  };
  if (image) {
    disposeModule(image.model);
    if (image.latent) disposeModule(image.latent.vae);
  }
  image = { model, latent, sampleShape, summary, student, tokenizer };
  return summary;
}

async function mnistLoad(r: Extract<Request, { type: 'mnist-load' }>): Promise<Results['mnist-load']> {
  return { model: useModel(await k.diffusion.loadDenoiser(new Uint8Array(r.bytes)), r.source) };
}

/**
 * What `imageSamples` draws: the class of each image (`labels`) or for a text-conditioned model the token ids
 * of its caption (`tokens`), the seed, and a sampler with its steps and guidance or a consistency model's times.
 */
type ImageRequest = ({ labels: number[]; tokens?: undefined } | { tokens: Int32Array; labels?: undefined }) & { seed: number } & k.diffusion.StudentSampling;

/**
 * Samples images from a denoiser (decoded by `latent` for a latent model): their values, shape and the batch
 * of each network evaluation; `onFrame` sees x_t and the predicted x₀ after every step (decoded too; a
 * consistency model: the input of each evaluation, at its time, and its output).
 */
async function imageSamples(model: Denoiser, latent: k.nn.LatentCodec | null, objective: k.diffusion.Objective, sampleShape: [number, number, number], r: ImageRequest,
  onFrame?: (step: number, total: number, x: Float32Array, x0: Float32Array, level: NoiseLevel) => void): Promise<{ x: Float32Array; shape: number[]; evaluations: number[] }> {
  const decoded = (t: k.Tensor) => (latent ? latent.decode(t) : t);
  const process = k.diffusion.objectiveSetup(objective).process;
  const times = r.consistency?.times;
  const levels = noiseLevels(times ? times.map((t) => process.at(t)) : k.diffusion.samplingPath(process, { steps: r.steps ?? 20 }));
  // a sampler's frame `step` is at the path's point `step`; a consistency model's at the time of its evaluation
  const levelOf = (step: number) => levels[times ? step - 1 : step] ?? levels[levels.length - 1]!;
  const evaluations: number[] = [];
  const z = await k.noGrad(() => k.diffusion.generate(model, {
    objective, ...(r.tokens ? { tokens: r.tokens } : { labels: r.labels }), shape: sampleShape, seed: r.seed,
    // a consistency student that takes the guidance scale gets it too
    ...(r.consistency ? { consistency: r.consistency, ...(r.guidance !== undefined ? { guidance: r.guidance } : {}) } : { sampler: r.sampler, steps: r.steps, guidance: r.guidance }),
    onEvaluate: ({ batch }) => void evaluations.push(batch),
    onStep: async ({ step, total, x: xi, x0 }) => {
      checkStop();
      if (!onFrame) return;
      const [a, b] = (await k.scope(async () => Promise.all([decoded(xi).data(), decoded(x0).data()]))) as [Float32Array, Float32Array];
      onFrame(step, total, a, b, levelOf(step));
    },
  }));
  const x = decoded(z);
  const values = (await x.data()) as Float32Array;
  const shape = [...x.shape];
  x.dispose();
  z.dispose();
  return { x: values, shape, evaluations };
}

/**
 * How a student of `kiln distill` samples request `r`: its own sampling (`k.diffusion.studentSampling`) with
 * the request's number of steps — the page offers the student's steps, and other counts run (Euler steps
 * along a progressive or reflow student's flow, evenly spaced times for a consistency model), though it was
 * distilled for its own. Guidance other than 0 (outside the learned range, for a student that takes the
 * scale as an input), another sampler and the null class are refused: the teacher's guidance is built in
 * and the null class was not distilled.
 */
function studentRequest(s: StudentSpec, m: ModelSummary, r: Extract<Request, { type: 'mnist-sample' }>): k.diffusion.StudentSampling {
  const what = `${m.source} is a ${s.method} student of kiln distill`;
  if (s.scales && !(r.guidance >= s.scales.wMin && r.guidance <= s.scales.wMax)) throw new Error(`guidance ${r.guidance}: ${what} that learned the guidance scales ${s.scales.wMin} to ${s.scales.wMax}; pick one in that range`);
  if (!s.scales && r.guidance !== 0) throw new Error(`guidance ${r.guidance}: ${what} with its teacher's guidance ${s.guidance} built in; it samples with one network evaluation per step and no classifier-free guidance (set the guidance to 0)`);
  const nc = m.numClasses;
  if (r.labels?.includes(nc)) throw new Error(`digit ${nc} (none, unconditional): ${what}, distilled for the digits 0–${nc - 1} only; the null class ${nc} was not distilled`);
  const how = k.diffusion.studentSampling(s, r.steps, s.scales ? r.guidance : s.guidance);
  if (r.sampler !== undefined && r.sampler !== how.sampler) throw new Error(`sampler ${r.sampler}: ${what}, which samples ${how.consistency ? 'at its own times (consistency sampling)' : `with ${how.sampler}`}; leave the sampler to it`);
  return how;
}

/**
 * The conditioning of a sampling request: class labels for a model of digit classes, or the token ids of the
 * prompts for a text-conditioned model (the tokenizer's error names a word outside its vocabulary).
 */
function requestConditions(r: Extract<Request, { type: 'mnist-sample' }>, tokenizer: k.data.WordTokenizer | null, source: string): { labels: number[] } | { tokens: Int32Array } {
  const given = tokenizer ? r.prompts : r.labels;
  if (tokenizer && r.labels !== undefined) throw new Error(`${source} is text-conditioned: it samples from prompts, not digit labels`);
  if (!tokenizer && r.prompts !== undefined) throw new Error(`${source} is conditioned on digit classes, not text: it takes digit labels, not prompts`);
  if (!Array.isArray(given)) throw new Error(tokenizer ? 'expected prompts: an array of captions, one per image' : 'expected labels: an array of digits, one per image');
  if (given.length < 1 || given.length > 200) throw new Error(`between 1 and 200 samples at a time, got ${given.length}`);
  if (!tokenizer) return { labels: r.labels! };
  if (!r.prompts!.every((p) => typeof p === 'string')) throw new Error('prompts must be strings');
  return { tokens: tokenizer.encodePrompts('prompt', r.prompts!) };
}

async function mnistSample(r: Extract<Request, { type: 'mnist-sample' }>, emit: (e: Progress, transfer?: Transferable[]) => void): Promise<Results['mnist-sample']> {
  if (!image) throw new Error('load a checkpoint (or train a model) first');
  const { model, summary, latent, sampleShape, student, tokenizer } = image;
  const conditions = requestConditions(r, tokenizer, summary.source);
  integer('sampling steps', r.steps, 1, 1000);
  if (!Number.isFinite(r.guidance)) throw new Error(`the guidance scale must be a number, got ${r.guidance}`);
  if (!student && !r.sampler) throw new Error('choose a sampler');
  const how: k.diffusion.StudentSampling = student ? studentRequest(student, summary, r) : { sampler: r.sampler, steps: r.steps, guidance: r.guidance };
  const sampling = student ? k.diffusion.describeStudent(student, how) : `${how.sampler}, ${how.steps} steps, guidance ${how.guidance}`;
  const t0 = performance.now();
  const { x, shape, evaluations } = await imageSamples(model, latent, summary.objective, sampleShape, { ...conditions, seed: r.seed, ...how }, (step, total, a, b, level) => emit({ type: 'mnist-frame', step, total, x: a, x0: b, ...level }, [a.buffer, b.buffer]));
  return { x, shape, seconds: (performance.now() - t0) / 1000, sampling, evaluations };
}

/** Fetches a file with download progress. */
async function fetchBytes(url: string, onProgress: (done: number, total: number) => void): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let done = 0;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    parts.push(value);
    done += value.length;
    onProgress(done, total || done);
  }
  const out = new Uint8Array(done);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The MNIST training split fetched from `dataUrl` (kept for the next run). */
let mnistCache: { url: string; split: k.data.MnistSplit } | null = null;

/** Fetches and parses the idx files of the MNIST training split (the same parser as `k.data.loadMnist`). */
async function mnistTrainSplit(dataUrl: string, emit: (e: Progress) => void): Promise<k.data.MnistSplit> {
  const base = dataUrl.endsWith('/') ? dataUrl : `${dataUrl}/`;
  if (mnistCache?.url === base) return mnistCache.split;
  const files = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'];
  const got: Uint8Array[] = [];
  for (const [i, f] of files.entries()) {
    got.push(await fetchBytes(base + f, (done, total) => emit({ type: 'mnist-progress', phase: 'download', done, total, file: `${i + 1}/${files.length}` })));
    checkStop();
  }
  const img = k.data.parseIdx(got[0]!, files[0]);
  const lab = k.data.parseIdx(got[1]!, files[1]);
  if (img.dims.length !== 3 || lab.dims.length !== 1 || img.dims[0] !== lab.dims[0]) throw new Error(`MNIST: image dims ${img.dims} and label dims ${lab.dims} do not match`);
  const split: k.data.MnistSplit = { images: img.data, labels: Int32Array.from(lab.data), count: img.dims[0]!, rows: img.dims[1]!, cols: img.dims[2]! };
  mnistCache = { url: base, split };
  return split;
}

/** The previews of in-page MNIST training: one digit of each class, a few Euler steps, fixed noise. */
const MNIST_PREVIEW = { labels: Array.from({ length: 10 }, (_, d) => d), sampler: 'flow_euler' as const, steps: 10, guidance: 2, seed: 5 };

async function mnistTrain(r: Extract<Request, { type: 'mnist-train' }>, emit: (e: Progress, transfer?: Transferable[]) => void): Promise<Results['mnist-train']> {
  integer('training steps', r.steps, 1, 1000000);
  integer('batch size', r.batchSize, 1, 4096);
  integer('preview interval', r.previewEvery, 0, 1000000);
  if (!(r.lr > 0)) throw new Error(`the learning rate must be positive, got ${r.lr}`);
  const split = await mnistTrainSplit(r.dataUrl, emit);
  const t0 = performance.now();
  const groups = Math.min(4, ...r.widths);
  const config = { size: split.rows, widths: r.widths, depth: 1, attention: [], midAttention: false, heads: 2, groups, patch: 2 };
  const model = k.diffusion.buildDenoiser('unet', config);
  // the weights being trained, copied in for each preview (the EMA, which the trained model gets, still
  // holds much of the random initialization in the first few hundred steps)
  const preview = k.diffusion.buildDenoiser('unet', config);
  preview.eval();
  const sampleShape: [number, number, number] = [1, split.rows, split.cols];
  const train: TrainConfig = { ...TRAIN_DEFAULTS, objective: 'flow', steps: r.steps, batchSize: r.batchSize, lr: r.lr, warmup: Math.min(50, r.steps >> 3), emaDecay: r.steps < 1000 ? 0.99 : 0.995, seed: r.seed };
  k.manualSeed(train.seed);
  const trainer = new DiffusionTrainer(model, train);
  try {
    // `stop` ends training early and keeps what was learned so far
    training: for (let epoch = 0; trainer.step < r.steps; epoch++) {
      for (const { x, y } of k.data.batches(split, { batchSize: r.batchSize, seed: r.seed, epoch, dropLast: true })) {
        await trainer.trainStep(x, y);
        x.dispose();
        y.dispose();
        emit({ type: 'mnist-progress', phase: 'train', done: trainer.step, total: r.steps, loss: trainer.losses[trainer.losses.length - 1] });
        if (stop.signal.aborted || trainer.step >= r.steps) break training;
        if (r.previewEvery > 0 && trainer.step % r.previewEvery === 0) {
          // sampling draws from its own generator: the training's random stream is left as it is
          preview.loadStateDict(model.stateDict());
          try {
            const s = await imageSamples(preview, null, 'flow', sampleShape, MNIST_PREVIEW);
            emit({ type: 'mnist-preview', step: trainer.step, x: s.x, shape: s.shape }, [s.x.buffer]);
          } catch (e) {
            if (!(e instanceof Stopped)) throw e;
            break training;
          }
        }
      }
    }
    await trainer.flush();
    // the checkpoint `kiln train` would write, loaded back the way a file is: one path for both
    const bytes = await trainer.save(undefined, { model: { kind: 'unet', config: model.config } });
    const summary = useModel(await k.diffusion.loadDenoiser(bytes), 'trained in this page');
    const checkpoint = bytes.buffer.byteLength === bytes.byteLength ? bytes.buffer : bytes.slice().buffer;
    return { model: summary, losses: trainer.losses, seconds: (performance.now() - t0) / 1000, checkpoint };
  } finally {
    disposeModule(model);
    disposeModule(preview);
    for (const t of Object.values(trainer.opt.stateDict().tensors)) t.dispose();
    for (const t of trainer.ema.shadow.values()) t.dispose();
  }
}

/** The samplers that fit `process`, `first` first, without the adaptive-step pf_ode_rk45. */
function offered(process: k.diffusion.NoiseProcess, first: k.diffusion.SamplerName): k.diffusion.SamplerName[] {
  const fit = k.diffusion.samplersFor(process).filter((s) => s !== 'pf_ode_rk45' && s !== first);
  return [first, ...fit];
}

/** What the page offers: the samplers of each toy process and image objective. */
function samplerLists(): SamplerLists {
  const image = (o: k.diffusion.Objective) => offered(k.diffusion.objectiveSetup(o).process, k.diffusion.defaultSampler(o));
  return {
    toy: { flow: offered(toyProcess('flow'), 'flow_euler'), 'ddpm-eps': offered(toyProcess('ddpm-eps'), 'ddim') },
    image: { eps: image('eps'), v: image('v'), flow: image('flow') },
  };
}

async function handle(req: Request, emit: (e: Progress, transfer?: Transferable[]) => void): Promise<{ result: Results[keyof Results]; transfer?: Transferable[] }> {
  switch (req.type) {
    case 'init':
      return { result: { info: await k.init(), samplers: samplerLists() } };
    case 'toy-train':
      return { result: await toyTrain(req, emit) };
    case 'toy-sample': {
      const result = await toySample(req, emit);
      return { result, transfer: [result.x.buffer, result.data.buffer] };
    }
    case 'mnist-load':
      return { result: await mnistLoad(req) };
    case 'mnist-sample': {
      const result = await mnistSample(req, emit);
      return { result, transfer: [result.x.buffer] };
    }
    case 'mnist-train': {
      const result = await mnistTrain(req, emit);
      return { result, transfer: [result.checkpoint] };
    }
    default:
      throw new Error(`unknown request ${JSON.stringify((req as { type: unknown }).type)}`);
  }
}

/** Answers the page's requests arriving at `scope` (the worker's global scope, or a test's stand-in). */
export function serve(scope: WorkerScope): void {
  scope.onmessage = (ev) => {
    const { id, req } = ev.data;
    if (req.type === 'stop') {
      stop.abort();
      scope.postMessage({ id, kind: 'done', result: {} });
      return;
    }
    queue = queue.then(async () => {
      stop = new AbortController();
      const emit = (event: Progress, transfer: Transferable[] = []) => scope.postMessage({ id, kind: 'progress', event }, transfer);
      try {
        const { result, transfer } = await handle(req, emit);
        scope.postMessage({ id, kind: 'done', result }, transfer ?? []);
      } catch (e) {
        scope.postMessage({ id, kind: 'error', message: e instanceof Stopped ? 'stopped' : (e as Error).message ?? String(e) });
      }
    });
  };
}

// in a dedicated worker (not when Node imports this module)
if ('WorkerGlobalScope' in globalThis) serve(self as unknown as WorkerScope);
