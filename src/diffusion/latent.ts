/** Latent diffusion's frozen autoencoder: the codec that normalizes a VAE's latents over a data set. */
import { noGrad } from '../tensor/index.js';
import { LatentCodec, latentNormalization, type VAE } from '../nn/models/vae.js';
import { scope } from '../tensor/memory.js';
import type { Tensor } from '../tensor/index.js';

/**
 * The codec of a VAE whose normalization gives sampled latents zero mean and unit variance over the
 * images of `batches` (e.g. `k.data.batches(split, { batchSize: 250, limit: n })`): the posterior moments
 * of each image (no sampling) reduced by `latentNormalization`. The batches' tensors are disposed as they
 * are consumed; `onProgress` gets the number of images encoded so far.
 */
export async function latentCodec(vae: VAE, batches: Iterable<{ x: Tensor; y?: Tensor }>, onProgress?: (done: number) => void): Promise<LatentCodec> {
  const means: Float32Array[] = [], logvars: Float32Array[] = [];
  let done = 0;
  vae.eval();
  for (const { x, y } of batches) {
    const [m, lv] = await noGrad(() => scope(async () => {
      const e = vae.encode(x);
      return [(await e.mean.data()) as Float32Array, (await e.logvar.data()) as Float32Array];
    }));
    means.push(m!);
    logvars.push(lv!);
    done += x.shape[0]!;
    x.dispose();
    y?.dispose();
    onProgress?.(done);
  }
  const flat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
    return out;
  };
  const { scale, shift } = latentNormalization(flat(means), flat(logvars));
  return new LatentCodec(vae, scale, shift);
}
