/** Time embeddings for diffusion models. */
import { scope } from '../tensor/memory.js';
import { arange, cat, type Tensor } from '../tensor/index.js';

/**
 * Sinusoidal embedding of (possibly fractional) timesteps [N] → [N, dim], the DDPM/DiT form:
 * [cos(t·f_i), sin(t·f_i)] with f_i = maxPeriod^(−i/half).
 */
export function timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10000): Tensor {
  if (t.rank !== 1) throw new Error(`timestepEmbedding: expected timesteps of shape [N], got [${t.shape}]`);
  if (!Number.isInteger(dim) || dim < 2 || dim % 2) throw new Error(`timestepEmbedding: dim must be an even integer ≥ 2, got ${dim}`);
  const half = dim / 2;
  return scope(() => {
    const freqs = arange(half, undefined, 1, { dtype: 'f32', device: t.device }).mul(-Math.log(maxPeriod) / half).exp();
    const args = t.float().unsqueeze(1).mul(freqs.unsqueeze(0));
    return cat([args.cos(), args.sin()], 1);
  });
}

/** Random Fourier features of continuous t ∈ [0, 1] → [N, dim] with fixed frequencies `freqs` [dim/2] (scale · N(0, 1) draws). */
export function fourierFeatures(t: Tensor, freqs: Tensor): Tensor {
  return scope(() => {
    const args = t.float().unsqueeze(1).mul(freqs.unsqueeze(0)).mul(2 * Math.PI);
    return cat([args.cos(), args.sin()], 1);
  });
}
