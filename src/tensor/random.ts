/**
 * Random numbers: a counter-based Philox generator, the same stream on the GPU, the float64 reference and
 * the browser. Each draw takes the next counter value; the state is (seed, counter), saved in checkpoints.
 */
import type { Device } from './node.js';
import { checkShape, type Shape } from './shape.js';
import { scope } from './memory.js';
import { Tensor } from './tensor.js';
import { applyElementwise, mk } from './apply.js';
import { defaultDeviceOf, leaf, type CreateOptions } from './creation.js';
import { perCall } from './percall.js';
import { checkHostStep } from './trace.js';
import { normalFromBits, philox4x32, seedKey, uniformFromBits } from '../wgsl/rng.js';

/**
 * A random number generator: a Philox key (the seed) and a counter, like PyTorch's `torch.Generator`.
 * Every draw takes the next counter value. Draws that pass their own generator (`{ generator }`) never
 * touch the global one, so concurrent work (two samplers at once) gets the same numbers whatever the timing.
 */
export class Generator {
  seed = 0;
  counter = 0;
  private key: [number, number] = [0, 0];

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Seeds the generator (resets its counter); returns it. */
  manualSeed(seed: number): this {
    this.key = seedKey(seed);
    this.seed = seed;
    this.counter = 0;
    return this;
  }

  /** The state, for checkpoints. */
  getState(): { seed: number; counter: number } {
    return { seed: this.seed, counter: this.counter };
  }

  /** Restores a state from `getState()`. */
  setState(s: { seed: number; counter: number }): void {
    this.manualSeed(s.seed);
    if (!Number.isInteger(s.counter) || s.counter < 0 || s.counter >= 2 ** 32) throw new RangeError(`Generator.setState: counter must be an integer in [0, 2^32), got ${s.counter}`);
    this.counter = s.counter;
  }

  /** The Philox key and counter of the next draw (advancing the counter). */
  next(): { key: [number, number]; ctr: number } {
    const ctr = this.counter;
    this.counter = (this.counter + 1) >>> 0;
    return { key: this.key, ctr };
  }
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** Draw from this generator instead of the global one (seeded with `manualSeed`). */
  generator?: Generator;
}

const globalGenerator = new Generator(0);

/** Seeds the global generator (resets its counter). */
export function manualSeed(seed: number): void {
  globalGenerator.manualSeed(seed);
}

/** The global generator's state, for checkpoints. */
export function getRngState(): { seed: number; counter: number } {
  return globalGenerator.getState();
}

/** Restores the global generator's state from `getRngState()`. */
export function setRngState(s: { seed: number; counter: number }): void {
  globalGenerator.setState(s);
}

function randomBits(shape: number[], device: Device, words: number, gen: Generator | undefined): Tensor[] {
  checkShape('random', shape);
  // in a compiled function the draw is taken again at every call
  const draw = perCall(() => (gen ?? globalGenerator).next());
  const { key, ctr } = draw.value;
  return Array.from({ length: words }, (_, word) => {
    const t = mk('rng', [], shape, 'u32', device, { key, ctr, word });
    draw.bind(t.rawNode, (d) => ({ key: d.key, ctr: d.ctr, word }));
    return t;
  });
}

/** Uniform floats in [0, 1). */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  const device = defaultDeviceOf(opts);
  return leaf(scope(() => applyElementwise('uniform_bits', randomBits([...shape], device, 1, opts.generator)).cast(opts.dtype ?? 'f32')), opts);
}

/** Standard normal floats (Box–Muller on two Philox words). */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  const device = defaultDeviceOf(opts);
  return leaf(scope(() => applyElementwise('normal_bits', randomBits([...shape], device, 2, opts.generator)).cast(opts.dtype ?? 'f32')), opts);
}

/** Integers uniform in [low, high) (modulo reduction of 32 random bits; bias below 2^-32·(high-low)). */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) throw new Error(`randint: need integers low < high, got ${low}, ${high}`);
  const device = defaultDeviceOf(opts);
  return scope(() => {
    const [bits] = randomBits([...shape], device, 1, opts.generator);
    return bits!.mod(high - low >>> 0).cast('i32').add(low).cast(opts.dtype ?? 'i32');
  });
}

/**
 * Draws from the same generator on the host, without a GPU round trip: uniforms are bit-identical to
 * `rand([n])`, normals equal `randn([n])` up to float rounding, integers equal `randint`. Each call
 * consumes one generator step, like its device counterpart (of `generator` when given, else the global one).
 */
export function randomHost(kind: 'uniform' | 'normal' | 'int', n: number, range: [number, number] = [0, 1], generator?: Generator): Float64Array {
  checkHostStep('randomHost');
  const { key: [k0, k1], ctr } = (generator ?? globalGenerator).next();
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = philox4x32(i, ctr, 0, 0, k0, k1);
    if (kind === 'uniform') out[i] = uniformFromBits(w[0]);
    else if (kind === 'normal') out[i] = normalFromBits(w[0], w[1]);
    else out[i] = (w[0] % ((range[1] - range[0]) >>> 0)) + range[0];
  }
  return out;
}
