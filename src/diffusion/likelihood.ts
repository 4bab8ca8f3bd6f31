/**
 * Log-likelihood by the probability-flow ODE (Song et al.): integrating d/dt [x, log p] = [f(x, t), −∇·f(x, t)]
 * from the data time to the end of the process gives log p(x) = log p_T(x_T) + ∫ ∇·f dt. The divergence is
 * exact (one backward pass per dimension, for low dimensions) or Hutchinson's estimate εᵀ(∂f/∂x)ε.
 */
import { gradients } from '../autograd/index.js';
import { keep, scope } from '../tensor/memory.js';
import { randint, realize, tensor, type Tensor } from '../tensor/index.js';
import { toDenoised, type Prediction } from './predict.js';
import type { NoiseProcess } from './process.js';
import type { Model } from './samplers.js';

/** A process as an SDE dx = f(t)·x dt + g(t) dw: `VPSDE`, `VESDE`, or any process given its f and g. */
export type SDEProcess = NoiseProcess & { driftCoef(t: number): number; diffusion(t: number): number };

/** Options of `logLikelihood`. */
export interface LikelihoodOptions {
  model: Model;
  prediction: Prediction;
  process: SDEProcess;
  /** Data points [N, d]. */
  x: Tensor;
  /** Start time (score_sde: 1e-3) and end time (1). */
  eps?: number;
  T?: number;
  /** 'exact' (d backward passes per evaluation) or 'hutchinson' (one Rademacher probe, fixed per run). */
  divergence?: 'exact' | 'hutchinson';
  /** Fixed RK4 steps (the integration is in float32 on the device). */
  steps?: number;
  /** log p_T of the end points [N, d] → N numbers (default: the process's Gaussian prior). */
  priorLogProb?: (xT: Float32Array | Float64Array, d: number) => number[];
}

/** Per-point log p(x) (nats) at time `eps` of the process, and the number of model evaluations. */
export async function logLikelihood(o: LikelihoodOptions): Promise<{ logp: number[]; nfe: number }> {
  const { process } = o;
  const eps = o.eps ?? 1e-3, T = o.T ?? 1, steps = o.steps ?? 100;
  const [N, d] = o.x.shape as [number, number];
  let nfe = 0;
  const probe = o.divergence === 'hutchinson' ? keep(randint(0, 2, [N, d]).cast('f32').mul(2).sub(1)) : null;
  const field = (x: Tensor, t: number): { dx: Tensor; div: Tensor } => scope(() => {
    nfe++;
    const xi = x.detach();
    xi.requiresGrad = true;
    const p = process.at(t);
    const { eps: e } = toDenoised(o.model(xi, t), xi, p, o.prediction);
    const f = process.driftCoef(t), g = process.diffusion(t);
    const dx = xi.mul(f).sub(e.div(-p.s).mul(0.5 * g * g));
    let div: Tensor;
    if (probe) div = gradients(dx.mul(probe).sum(), [xi])[0]!.mul(probe).sum(1);
    else {
      const cols: Tensor[] = [];
      for (let j = 0; j < d; j++) cols.push(gradients(dx.slice(1, j, j + 1).sum(), [xi], { retainGraph: j < d - 1 })[0]!.slice(1, j, j + 1));
      div = cols.reduce((a, b) => a.add(b)).reshape([N]);
    }
    return { dx: dx.detach(), div: div.detach() };
  });
  // classic RK4 on (x, ∫div)
  let x = keep(o.x.contiguousView());
  let acc = keep(tensor(new Float32Array(N)));
  const h = (T - eps) / steps;
  for (let i = 0; i < steps; i++) {
    const t = eps + i * h;
    const next = scope(() => {
      const k1 = field(x, t);
      const k2 = field(x.add(k1.dx.mul(h / 2)), t + h / 2);
      const k3 = field(x.add(k2.dx.mul(h / 2)), t + h / 2);
      const k4 = field(x.add(k3.dx.mul(h)), t + h);
      const nx = x.add(k1.dx.add(k2.dx.mul(2)).add(k3.dx.mul(2)).add(k4.dx).mul(h / 6));
      const na = acc.add(k1.div.add(k2.div.mul(2)).add(k3.div.mul(2)).add(k4.div).mul(h / 6));
      return [keep(nx), keep(na)];
    });
    x.dispose();
    acc.dispose();
    [x, acc] = next as [Tensor, Tensor];
    await realize(x, acc);
  }
  const [xT, integral] = [await x.data(), await acc.data()];
  x.dispose();
  acc.dispose();
  probe?.dispose();
  const prior = o.priorLogProb ?? ((z: Float32Array | Float64Array, dim: number) => {
    const pT = process.at(T);
    const v = pT.s * pT.s;
    return Array.from({ length: z.length / dim }, (_, i) => {
      let sq = 0;
      for (let j = 0; j < dim; j++) sq += z[i * dim + j]! ** 2;
      return -sq / (2 * v) - (dim / 2) * Math.log(2 * Math.PI * v);
    });
  });
  const lp = prior(xT as Float32Array, d);
  return { logp: lp.map((v, i) => v + integral[i]!), nfe };
}

/** Bits per dimension of a log-likelihood in nats (add 8 for data dequantized from 8-bit, scaled to [0, 1]). */
export function bitsPerDim(logp: number, dims: number): number {
  return -logp / (dims * Math.LN2);
}

export type { NoiseProcess };
