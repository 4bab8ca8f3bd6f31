/**
 * Reading a diffusion checkpoint back into a model, in Node (a path) or in a browser (bytes, a Blob):
 * the backbone named by the checkpoint's metadata, built from its stored config, with the EMA (or raw)
 * weights loaded. A latent checkpoint also carries its frozen VAE (tensors under `vae.`) and the latent
 * normalization, returned as a `LatentCodec` that decodes sampled latents to images. A distilled student
 * (`kiln distill`) is a checkpoint of a distillation trainer whose metadata `student` says how it samples.
 */
import { DiT } from '../nn/models/dit.js';
import { UNet } from '../nn/models/unet.js';
import { LatentCodec, vaeFromTensors, type VAEConfig } from '../nn/models/vae.js';
import { parseCheckpointMeta, withoutPrefix } from '../nn/checkpoint.js';
import { loadWithMetadata } from '../nn/safetensors.js';
import { WordTokenizer, type TokenizerSpec } from '../data/tokenizer.js';
import type { ConsistencyBoundary } from './distill/consistency.js';
import type { SamplerName } from './samplers.js';
import type { Denoiser, Objective } from './training.js';

/** The `format` tag in the metadata of diffusion checkpoints. */
export const DIFFUSION_CHECKPOINT_FORMAT = 'kiln-diffusion-checkpoint/1';

/** The `format` tags of the distillation checkpoints (the trainers of `src/train/distill.ts`). */
export const DISTILL_CHECKPOINT_FORMATS = {
  progressive: 'kiln-distill-progressive/1',
  consistency: 'kiln-distill-consistency/1',
  reflow: 'kiln-distill-reflow/1',
  guidance: 'kiln-distill-guidance/1',
} as const;

/**
 * How a distilled student samples, as the metadata key `student` of its checkpoint records it: samplers
 * and tools read it instead of asking for steps, sampler and guidance.
 */
export interface StudentSpec {
  method: 'progressive' | 'consistency' | 'reflow' | 'guidance';
  /** The student's process and prediction (`objectiveSetup`). */
  objective: Objective;
  /** Network evaluations per sample: the sampling steps. */
  steps: number;
  /** Progressive distillation and reflow: the sampler, on `samplingPath(process, { steps })`. */
  sampler?: SamplerName;
  /** Consistency models: the model times of the evaluations (descending) and the boundary of the parameterization. */
  times?: number[];
  boundary?: ConsistencyBoundary;
  /**
   * The classifier-free guidance scale w of the teacher that the student learned: baked in (it samples
   * without guidance), or, for a student that takes w as an input (`scales`), the scale it samples at by default.
   */
  guidance: number;
  /** A student that takes the guidance scale as an input (its model's `guidanceInput`): the scales it learned. */
  scales?: { wMin: number; wMax: number };
  /** The teacher checkpoint (informational). */
  teacher?: string;
}

/** The backbones a checkpoint can name. */
export type DenoiserKind = 'unet' | 'dit';

/** What a latent checkpoint's metadata says about its VAE: z_normalized = (z − shift)·scale. */
export interface LatentSpec {
  vae: VAEConfig;
  scale: number;
  shift: number;
  /** The VAE checkpoint the latents came from (informational; the weights are in the checkpoint). */
  source?: string;
}

/** Builds a denoiser from its kind and config. */
export function buildDenoiser(kind: DenoiserKind, config: Record<string, unknown>): Denoiser {
  if (kind !== 'unet' && kind !== 'dit') throw new Error(`buildDenoiser: kind must be 'unet' or 'dit', got ${JSON.stringify(kind)}`);
  return kind === 'dit' ? new DiT(config) : new UNet(config);
}

/** The distillation formats a student checkpoint may have (every format tag of `DISTILL_CHECKPOINT_FORMATS`). */
const STUDENT_FORMATS: readonly string[] = Object.values(DISTILL_CHECKPOINT_FORMATS);

/**
 * Loads a diffusion checkpoint (written by `DiffusionTrainer.save` of `src/train`, or a student written by
 * `kiln distill`) (a path in Node, or its bytes anywhere): the model with EMA weights unless `ema` is false
 * (a checkpoint without EMA weights gives its trained ones), in eval mode, the checkpoint's metadata, for a
 * latent checkpoint the codec that decodes its samples (null for a pixel-space model), and for a student
 * how it samples (null for a model trained by `kiln train`).
 */
export async function loadDenoiser(src: string | Uint8Array | ArrayBuffer | Blob, opts: { ema?: boolean } = {}): Promise<{ model: Denoiser; meta: Record<string, unknown>; latent: LatentCodec | null; student: StudentSpec | null; tokenizer: WordTokenizer | null }> {
  const name = typeof src === 'string' ? src : 'checkpoint';
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const meta = parseCheckpointMeta(name, metadata);
    const student = (meta.student as StudentSpec | undefined) ?? null;
    if (meta.format !== DIFFUSION_CHECKPOINT_FORMAT && !(student && STUDENT_FORMATS.includes(meta.format as string))) {
      throw new Error(`${name}: expected a checkpoint of format ${DIFFUSION_CHECKPOINT_FORMAT} (kiln train) or a student of kiln distill, got format ${JSON.stringify(meta.format)}`);
    }
    const spec = meta.model as { kind: DenoiserKind; config: Record<string, unknown> } | undefined;
    if (!spec) throw new Error(`${name}: the checkpoint's metadata names no model`);
    const model = buildDenoiser(spec.kind, spec.config);
    const hasEma = Object.keys(tensors).some((n) => n.startsWith('ema.'));
    model.loadStateDict(withoutPrefix(tensors, opts.ema === false || !hasEma ? 'model.' : 'ema.'), { strict: false });
    model.eval();
    const lat = meta.latent as LatentSpec | undefined;
    let latent: LatentCodec | null = null;
    if (lat) {
      if (!Object.keys(tensors).some((n) => n.startsWith('vae.'))) throw new Error(`${name}: a latent checkpoint, but it holds no VAE weights (tensors 'vae.*')`);
      latent = new LatentCodec(vaeFromTensors(lat.vae, tensors, 'vae.'), lat.scale, lat.shift);
    }
    return { model, meta, latent, student, tokenizer: checkpointTokenizer(name, spec.config, meta) };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/**
 * The tokenizer of a text-conditioned checkpoint (metadata `tokenizer`, written by `kiln train --captions`),
 * checked against the model's text encoder; null for a model without text.
 */
function checkpointTokenizer(name: string, config: Record<string, unknown>, meta: Record<string, unknown>): WordTokenizer | null {
  const text = config.text as { encoder: { vocabSize: number; length: number } } | undefined;
  if (!text) return null;
  if (!meta.tokenizer) throw new Error(`${name}: a text-conditioned model, but the metadata has no tokenizer (expected 'tokenizer': {kind: 'word', words, length})`);
  const tok = WordTokenizer.fromSpec(meta.tokenizer as TokenizerSpec);
  if (tok.vocabSize !== text.encoder.vocabSize || tok.length !== text.encoder.length) {
    throw new Error(`${name}: the tokenizer (${tok.vocabSize} ids, length ${tok.length}) does not fit the text encoder (${text.encoder.vocabSize} ids, length ${text.encoder.length})`);
  }
  return tok;
}
