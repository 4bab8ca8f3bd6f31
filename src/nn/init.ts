/**
 * Parameter initialization (PyTorch's torch.nn.init semantics). Each function replaces the tensor's
 * values in place (through `assign`) using kiln's seeded generator, and returns the tensor.
 */
import { noGrad } from '../tensor/index.js';
import { scope } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { full, rand, randn, type Tensor } from '../tensor/index.js';

/** The nonlinearities `calculateGain` knows. */
export type Nonlinearity = 'linear' | 'conv1d' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** Recommended gain for a nonlinearity (as torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': { const s = param ?? 0.01; return Math.sqrt(2 / (1 + s * s)); }
    case 'selu': return 3 / 4;
  }
}

/** fan_in and fan_out of a weight ([out, in, ...receptive field]). */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.rank < 2) throw new Error(`init: fan in/out need a tensor with at least 2 dimensions, got ${fmt(t.shape)}`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

function fill(t: Tensor, make: () => Tensor): Tensor {
  noGrad(() => scope(() => { t.assign(make()); }));
  return t;
}

/** U(a, b). */
export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  return fill(t, () => rand(t.shape, { device: t.device }).mul(b - a).add(a));
}

/** N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return fill(t, () => randn(t.shape, { device: t.device }).mul(std).add(mean));
}

/** N(mean, std²) truncated to [a, b] by inverse-CDF-free resampling-free clamping of a uniform draw. */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2): Tensor {
  // inverse-CDF sampling: u ~ U(Φ(α), Φ(β)), x = μ + σ·√2·erfinv(2u − 1), with erfinv by Newton steps on erf
  const phi = (x: number) => 0.5 * (1 + erfApprox(x / Math.SQRT2));
  const lo = phi((a - mean) / std), hi = phi((b - mean) / std);
  return fill(t, () => {
    const u = rand(t.shape, { device: t.device }).mul(hi - lo).add(lo).mul(2).sub(1).clamp(-1 + 1e-7, 1 - 1e-7);
    let x = u.mul(Math.sqrt(Math.PI) / 2); // erfinv initial guess
    for (let i = 0; i < 8; i++) x = x.sub(x.erf().sub(u).div(x.mul(x).neg().exp().mul(2 / Math.sqrt(Math.PI))));
    return x.mul(std * Math.SQRT2).add(mean).clamp(a, b);
  });
}

function erfApprox(x: number): number {
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : -y;
}

/** Fills with a constant. */
export function constant_(t: Tensor, value: number): Tensor {
  return fill(t, () => full(t.shape, value, { dtype: t.dtype, device: t.device }));
}
/** Zeros. */
export function zeros_(t: Tensor): Tensor { return constant_(t, 0); }
/** Ones. */
export function ones_(t: Tensor): Tensor { return constant_(t, 1); }

/** Glorot uniform: U(−g·√(6/(fan_in+fan_out)), +…). */
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound);
}
/** Glorot normal: N(0, g²·2/(fan_in+fan_out)). */
export function xavierNormal_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)));
}

/** Options of the Kaiming initializers. */
export interface KaimingOptions {
  /** Negative slope of the following leaky ReLU (PyTorch's default for Linear/Conv is √5). */
  a?: number;
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: Nonlinearity;
}

/** He uniform: U(−b, b) with b = gain·√(3/fan). */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  const fan = opts.mode === 'fanOut' ? fanOut : fanIn;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  const bound = gain * Math.sqrt(3 / fan);
  return uniform_(t, -bound, bound);
}
/** He normal: N(0, gain²/fan). */
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  const fan = opts.mode === 'fanOut' ? fanOut : fanIn;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return normal_(t, 0, gain / Math.sqrt(fan));
}
