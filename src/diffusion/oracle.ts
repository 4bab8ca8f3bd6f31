/**
 * Data with a known score: a mixture of isotropic Gaussians p0 = Σ π_k N(μ_k, c_k² I). Under any process
 * x_t = a·x0 + s·z its marginal is Σ π_k N(a μ_k, (a²c_k² + s²) I), so the exact denoiser E[x0 | x_t]
 * (the "oracle" a perfect network would learn) has a closed form. Used to test samplers without training.
 */
import { scope } from '../tensor/memory.js';
import { rand, randn, tensor, unchecked, where, type Tensor } from '../tensor/index.js';
import type { Model } from './samplers.js';
import type { NoiseProcess } from './process.js';

/** A mixture of isotropic Gaussians in d dimensions. */
export class GaussianMixture {
  readonly d: number;
  constructor(readonly weights: number[], readonly means: number[][], readonly stds: number[]) {
    const K = weights.length;
    if (!K || means.length !== K || stds.length !== K) throw new Error('GaussianMixture: weights, means and stds need one entry per component');
    this.d = means[0]!.length;
    if (means.some((m) => m.length !== this.d)) throw new Error('GaussianMixture: all means need the same dimension');
    const total = weights.reduce((a, b) => a + b, 0);
    this.weights = weights.map((w) => w / total);
  }

  /** E[x0 | x_t = x] for x: [N, d] at coefficients (a, s). */
  denoise(x: Tensor, a: number, s: number): Tensor {
    const K = this.weights.length, d = this.d;
    return scope(() => {
      const mu = tensor(this.means, { device: x.device }).reshape([1, K, d]);
      const c2 = this.stds.map((c) => c * c);
      const v = c2.map((c) => a * a * c + s * s);
      const vT = tensor(v, { device: x.device });
      const diff = x.reshape([-1, 1, d]).sub(mu.mul(a)); // [N, K, d]
      const sq = diff.mul(diff).sum(2); // [N, K]
      const logits = tensor(this.weights.map((w, k) => Math.log(w) - (d / 2) * Math.log(v[k]!)), { device: x.device }).sub(sq.div(vT.mul(2)));
      const w = logits.softmax(1).unsqueeze(2); // [N, K, 1]
      const gain = tensor(c2.map((c, k) => (a * c) / v[k]!), { device: x.device }).reshape([1, K, 1]);
      return w.mul(mu.add(diff.mul(gain))).sum(1);
    });
  }

  /** The oracle as a model predicting x0 at model time t of `process`. */
  model(process: NoiseProcess): Model {
    return (x, t) => {
      const p = process.at(t);
      return this.denoise(x, p.a, p.s);
    };
  }

  /** n exact draws from p0 (uses kiln's seeded generator). */
  sample(n: number, device?: 'webgpu' | 'cpu'): Tensor {
    const K = this.weights.length;
    return scope(() => {
      const u = rand([n, 1], { device });
      // component index by inverse CDF of the weights
      let comp: Tensor = tensor(new Int32Array(n).fill(K - 1), { shape: [n, 1], device });
      let acc = 0;
      for (let k = K - 2; k >= 0; k--) {
        acc = this.weights.slice(0, k + 1).reduce((a, b) => a + b, 0);
        comp = where(u.lt(acc), k, comp);
      }
      void acc;
      const idx = comp.reshape([n]);
      // component indices in [0, K) by construction: no device-side index check needed
      const mu = unchecked(() => tensor(this.means, { device }).indexSelect(0, idx));
      const c = unchecked(() => tensor(this.stds, { device }).indexSelect(0, idx)).reshape([n, 1]);
      return mu.add(randn([n, this.d], { device }).mul(c));
    });
  }

  /** log p_t(x) under x_t = a·x0 + s·z, in float64 on the host (x: rows of d numbers). */
  logDensity(x: ArrayLike<number>, a: number, s: number): number[] {
    const d = this.d, n = x.length / d;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const terms = this.weights.map((w, k) => {
        const v = a * a * this.stds[k]! ** 2 + s * s;
        let sq = 0;
        for (let j = 0; j < d; j++) sq += (x[i * d + j]! - a * this.means[k]![j]!) ** 2;
        return Math.log(w) - sq / (2 * v) - (d / 2) * Math.log(2 * Math.PI * v);
      });
      const m = Math.max(...terms);
      out.push(m + Math.log(terms.reduce((acc, t) => acc + Math.exp(t - m), 0)));
    }
    return out;
  }
}

/** Energy distance between two point sets (rows of d numbers), in float64: 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖. */
export function energyDistance(X: ArrayLike<number>, Y: ArrayLike<number>, d: number): number {
  const nx = X.length / d, ny = Y.length / d;
  const dist = (A: ArrayLike<number>, i: number, B: ArrayLike<number>, j: number) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += (A[i * d + k]! - B[j * d + k]!) ** 2;
    return Math.sqrt(s);
  };
  let xy = 0, xx = 0, yy = 0;
  for (let i = 0; i < nx; i++) for (let j = 0; j < ny; j++) xy += dist(X, i, Y, j);
  for (let i = 0; i < nx; i++) for (let j = 0; j < nx; j++) xx += dist(X, i, X, j);
  for (let i = 0; i < ny; i++) for (let j = 0; j < ny; j++) yy += dist(Y, i, Y, j);
  return (2 * xy) / (nx * ny) - xx / (nx * nx) - yy / (ny * ny);
}
