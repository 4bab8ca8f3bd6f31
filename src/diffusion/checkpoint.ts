/**
 * Reading a diffusion checkpoint back into a model, in Node (a path) or in a browser (bytes, a Blob):
 * the backbone named by the checkpoint's metadata, built from its stored config, with the EMA (or raw)
 * weights loaded. A latent checkpoint also carries its frozen VAE (tensors under `vae.`) and the latent
 * normalization, returned as a `LatentCodec` that decodes sampled latents to images.
 */
import { DiT } from '../nn/models/dit.js';
import { UNet } from '../nn/models/unet.js';
import { LatentCodec, vaeFromTensors, type VAEConfig } from '../nn/models/vae.js';
import { readCheckpointMeta, withoutPrefix } from '../nn/checkpoint.js';
import { loadWithMetadata } from '../nn/safetensors.js';
import type { Denoiser } from './training.js';

/** The `format` tag in the metadata of diffusion checkpoints. */
export const DIFFUSION_CHECKPOINT_FORMAT = 'kiln-diffusion-checkpoint/1';

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

/**
 * Loads a diffusion checkpoint (written by `DiffusionTrainer.save` of `src/train`) (a path in Node, or its bytes anywhere): the
 * model with EMA weights unless `ema` is false, in eval mode, the checkpoint's metadata, and for a
 * latent checkpoint the codec that decodes its samples (null for a pixel-space model).
 */
export async function loadDenoiser(src: string | Uint8Array | ArrayBuffer | Blob, opts: { ema?: boolean } = {}): Promise<{ model: Denoiser; meta: Record<string, unknown>; latent: LatentCodec | null }> {
  const name = typeof src === 'string' ? src : 'checkpoint';
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const meta = readCheckpointMeta(name, metadata, DIFFUSION_CHECKPOINT_FORMAT);
    const spec = meta.model as { kind: DenoiserKind; config: Record<string, unknown> } | undefined;
    if (!spec) throw new Error(`${name}: the checkpoint's metadata names no model`);
    const model = buildDenoiser(spec.kind, spec.config);
    model.loadStateDict(withoutPrefix(tensors, opts.ema === false ? 'model.' : 'ema.'), { strict: false });
    model.eval();
    const lat = meta.latent as LatentSpec | undefined;
    let latent: LatentCodec | null = null;
    if (lat) {
      if (!Object.keys(tensors).some((n) => n.startsWith('vae.'))) throw new Error(`${name}: a latent checkpoint, but it holds no VAE weights (tensors 'vae.*')`);
      latent = new LatentCodec(vaeFromTensors(lat.vae, tensors, 'vae.'), lat.scale, lat.shift);
    }
    return { model, meta, latent };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
