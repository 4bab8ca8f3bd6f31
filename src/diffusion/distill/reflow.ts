/**
 * Reflow (Liu et al., "Flow straight and fast", 2-rectified flow): couples (z, x) of noise and the teacher's
 * ODE sample from it are drawn once; a new rectified flow trained on straight interpolations
 * x_t = (1 − t)·x + t·z with velocity z − x has straighter trajectories, so 1–2 Euler steps sample well.
 * `straightness` measures how straight a flow's trajectories are.
 */
import * as F from '../../nn/functional.js';
import { keep, scope } from '../../tensor/memory.js';
import { noGrad, realize, zeros, type Tensor } from '../../tensor/index.js';
import { toDenoised, type Prediction } from '../predict.js';
import type { RectifiedFlow } from '../process.js';
import { sample, type Model, type SamplerName } from '../samplers.js';
import { samplingPath } from '../timesteps.js';
import { coefficients, drawTimes, type TimeSampling } from '../training.js';
import { sumSquares, type NetForward } from './common.js';

/** Options of `reflowCouples`. */
export interface ReflowCouplesOptions {
  /** The teacher (a flow over the same process). */
  model: Model;
  prediction: Prediction;
  process: RectifiedFlow;
  /** Standard normal noise z [N, …]: the first half of each couple. */
  noise: Tensor;
  /** ODE steps (default 32) and sampler (default 'flow_heun'). */
  steps?: number;
  sampler?: SamplerName;
}

/** The teacher's deterministic ODE sample x from each noise z: the couples (z, x) reflow trains on (the caller disposes x). */
export async function reflowCouples(o: ReflowCouplesOptions): Promise<Tensor> {
  const sampler = o.sampler ?? 'flow_heun';
  if (!['flow_heun', 'flow_euler', 'ddim', 'heun', 'dpmpp_2m', 'unipc', 'euler', 'pf_ode_rk45'].includes(sampler)) throw new Error(`reflowCouples: the couples need a deterministic ODE sampler, got '${sampler}'`);
  const { x } = await noGrad(() => sample({ model: o.model, prediction: o.prediction, process: o.process, path: samplingPath(o.process, { steps: o.steps ?? 32 }), noise: o.noise, sampler, eta: 0 }));
  return x;
}

/**
 * The flow-matching loss on couples: noise z [N, …] and the teacher's samples x (labels [N] for
 * class-conditional networks); times drawn per call (default uniform), x_t = (1 − t)·x + t·z, and the mean
 * squared error of the network's velocity to z − x.
 */
export function reflowLoss(net: NetForward, process: RectifiedFlow, z: Tensor, x: Tensor, labels?: Tensor | null, times: TimeSampling = 'uniform'): Tensor {
  if (process.kind !== 'flow') throw new Error(`reflowLoss: reflow trains a rectified flow, got a ${(process as { constructor: { name: string } }).constructor.name} process`);
  if (z.shape.join() !== x.shape.join()) throw new Error(`reflowLoss: noise [${z.shape}] and samples [${x.shape}] of the couples differ in shape`);
  const points = drawTimes(process, z.shape[0]!, times);
  return scope(() => {
    const { a, s, t } = coefficients(points, z.shape);
    return F.mseLoss(net.forward(x.mul(a).add(z.mul(s)), t, labels), z.sub(x));
  });
}

/** Options of `straightness`. */
export interface StraightnessOptions {
  model: Model;
  prediction: Prediction;
  process: RectifiedFlow;
  /** Standard normal noise [N, …] where the trajectories start. */
  noise: Tensor;
  /** Euler steps along each trajectory (default 32). */
  steps?: number;
}

/**
 * How straight a flow's trajectories are, by Euler steps from the noise: `straightness` is Liu et al.'s
 * S = ∫ E‖(z − x) − u(x_t, t)‖² dt, with z the start, x the end and u the velocity, here
 * Σ_k Δt_k·E‖u_k‖² − E‖z − x‖² (the Euler path's displacement is Σ Δt_k·u_k); 0 for straight paths
 * travelled at constant speed. `relative` is S/E‖z − x‖², and `pathRatio` the mean path length over the
 * mean displacement (≥ 1; 1 for straight paths).
 */
export async function straightness(o: StraightnessOptions): Promise<{ straightness: number; relative: number; pathRatio: number }> {
  const path = samplingPath(o.process, { steps: o.steps ?? 32 });
  const N = o.noise.shape[0]!;
  let x = keep(o.noise.contiguousView()), energy = keep(zeros([N])), length = keep(zeros([N]));
  for (let i = 0; i + 1 < path.length; i++) {
    const p = path[i]!, dt = path[i + 1]!.t - p.t;
    const next = noGrad(() => scope(() => {
      const d = toDenoised(o.model(x, p.t), x, p, o.prediction);
      const u = d.eps.sub(d.x0), sq = sumSquares(u);
      return [x.add(u.mul(dt)), energy.add(sq.mul(Math.abs(dt))), length.add(sq.sqrt().mul(Math.abs(dt)))];
    }));
    [x, energy, length].forEach((t) => t.dispose());
    [x, energy, length] = next.map((t) => keep(t)) as [Tensor, Tensor, Tensor];
    await realize(x, energy, length);
  }
  const disp = noGrad(() => sumSquares(o.noise.sub(x)));
  const [e, l, d2] = await Promise.all([energy.data(), length.data(), disp.data()]);
  [x, energy, length, disp].forEach((t) => t.dispose());
  const mean = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => a + b, 0) / v.length;
  const S = mean(e) - mean(d2);
  return { straightness: S, relative: S / mean(d2), pathRatio: mean(l) / mean(Array.from(d2, Math.sqrt)) };
}
