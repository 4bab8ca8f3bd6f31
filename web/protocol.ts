/**
 * Messages between the demo page (main thread) and its worker (where kiln and WebGPU run). Every request
 * carries an id; the worker answers with any number of progress events and then exactly one `done` or
 * `error` message with the same id.
 */
import type { DeviceInfo } from '../src/index.js';
import type { SamplerName } from '../src/diffusion/samplers.js';
import type { Sampling } from '../src/diffusion/generate.js';
import type { Toy2D } from '../src/data/toy2d.js';

/** The two toy processes: DDPM ε-prediction on a linear β schedule, or rectified flow. */
export type ToyObjective = 'ddpm-eps' | 'flow';

/**
 * The samplers the page offers for each toy process and each image objective: those that fit the process
 * (`k.diffusion.samplersFor`), the default first; the adaptive-step `pf_ode_rk45` is left out (the page
 * shows a fixed number of steps).
 */
export interface SamplerLists {
  toy: Record<ToyObjective, SamplerName[]>;
  image: Record<'eps' | 'v' | 'flow', SamplerName[]>;
}

/**
 * A student of `kiln distill` as the page shows it: it samples its own way (`k.diffusion.studentSampling`),
 * with its teacher's guidance built in and no classifier-free guidance.
 */
export interface StudentSummary {
  method: 'progressive' | 'consistency' | 'reflow' | 'guidance';
  /** The network evaluations (steps) it was distilled for: the page's default steps for it. */
  steps: number;
  /** Its sampler (progressive, reflow); null for a consistency model, which samples at its own times. */
  sampler: SamplerName | null;
  /** A consistency model's times (one evaluation each); null for the others. */
  times: number[] | null;
  /** The teacher's classifier-free guidance scale it learned (built in), or its default scale when `scales` is set. */
  guidance: number;
  /** A student that takes the guidance scale as an input: the scales it learned (the page's guidance picks one). */
  scales: { wMin: number; wMax: number } | null;
  /** What it is in a few words: `progressive student, 1 step, guidance 1.5 built in`. */
  summary: string;
  /** How it samples at its own steps, in words (`k.diffusion.describeStudent`). */
  description: string;
}

/** A summary of the image model the worker holds. */
export interface ModelSummary {
  source: string;
  kind: string;
  objective: 'eps' | 'v' | 'flow';
  parameters: number;
  numClasses: number;
  /** [C, H, W] of the images. */
  shape: [number, number, number];
  /** For a latent model, the [C, h, w] of the latents it samples (decoded by the checkpoint's VAE). */
  latent: [number, number, number] | null;
  /** Training steps the checkpoint went through. */
  step: number;
  /** A distilled student (its checkpoint's `student` record); null for a model of `kiln train` or the page. */
  student: StudentSummary | null;
  /**
   * A text-conditioned model (`config.text`, e.g. of `kiln train --captions`): the words its tokenizer knows
   * and the most words a prompt may have, the page's example prompts it can read, and how `kiln sample`
   * samples it by default (`k.diffusion.defaultSampling`); null for a model of digit classes.
   */
  text: { words: string[]; maxWords: number; examples: string[]; sampling: Sampling } | null;
}

/** Requests from the page to the worker. */
export type Request =
  | { type: 'init' }
  | { type: 'toy-train'; dataset: Toy2D; objective: ToyObjective; steps: number; batchSize: number; lr: number; seed: number; previewEvery: number }
  | { type: 'toy-sample'; sampler: SamplerName; steps: number; count: number; seed: number }
  | { type: 'mnist-load'; bytes: ArrayBuffer; source: string }
  /**
   * One image per entry of `labels` (a model of digit classes: the digit, numClasses = none) or of `prompts`
   * (a text-conditioned model: the caption; words outside its vocabulary are an error). A student samples
   * with its own sampler (omit `sampler`, or give that one) at `steps` evaluations (its own steps unless the
   * page changes them) and refuses guidance other than 0 and the null class.
   */
  | { type: 'mnist-sample'; labels?: number[]; prompts?: string[]; sampler?: SamplerName; steps: number; guidance: number; seed: number }
  | { type: 'mnist-train'; dataUrl: string; widths: number[]; steps: number; batchSize: number; lr: number; seed: number; previewEvery: number }
  | { type: 'stop' };

/**
 * Where a sampler is after a step: the process time t (rectified flow: t ∈ [0, 1], 1 = pure noise; DDPM:
 * the timestep, 999 = noisiest) and the noise level σ = s/a (x_t/a = x₀ + σ·ε; 0 at the data).
 */
export interface NoiseLevel {
  t: number;
  sigma: number;
}

/** Progress events from the worker. */
export type Progress =
  | { type: 'toy-loss'; step: number; loss: number }
  /** Samples of the model being trained, drawn every `previewEvery` steps. */
  | { type: 'toy-preview'; step: number; x: Float32Array }
  | ({ type: 'toy-frame'; step: number; total: number; x: Float32Array } & NoiseLevel)
  | ({ type: 'mnist-frame'; step: number; total: number; x: Float32Array; x0: Float32Array } & NoiseLevel)
  /** One sample per digit 0–9 from the current weights of the model being trained, every `previewEvery` steps. */
  | { type: 'mnist-preview'; step: number; x: Float32Array; shape: number[] }
  | { type: 'mnist-progress'; phase: 'download' | 'train'; done: number; total: number; loss?: number; file?: string };

/** Final results, by request type. */
export interface Results {
  init: { info: DeviceInfo; samplers: SamplerLists };
  'toy-train': { losses: number[]; seconds: number };
  'toy-sample': { x: Float32Array; data: Float32Array; seconds: number };
  'mnist-load': { model: ModelSummary };
  /** `sampling`: how the images were sampled, in words; `evaluations`: the batch of each network evaluation, in order. */
  'mnist-sample': { x: Float32Array; shape: number[]; seconds: number; sampling: string; evaluations: number[] };
  /** `checkpoint`: the trained run as a `.safetensors` checkpoint (what `kiln train` writes; `kiln sample` reads it). */
  'mnist-train': { model: ModelSummary; losses: number[]; seconds: number; checkpoint: ArrayBuffer };
  stop: Record<string, never>;
}

/** What the page sends: a request and its id. */
export type Envelope = { id: number; req: Request };

/** What the worker sends back. */
export type Reply =
  | { id: number; kind: 'progress'; event: Progress }
  | { id: number; kind: 'done'; result: Results[keyof Results] }
  | { id: number; kind: 'error'; message: string };
