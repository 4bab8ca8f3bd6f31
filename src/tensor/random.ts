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
import { normalFromBits, philox4x32, seedKey, uniformFromBits } from '../wgsl/rng.js';

const rngState = { seed: 0, counter: 0 };

/** Seeds the global generator (resets its counter). */
export function manualSeed(seed: number): void {
  seedKey(seed);
  rngState.seed = seed;
  rngState.counter = 0;
}

/** The generator state, for checkpoints. */
export function getRngState(): { seed: number; counter: number } {
  return { ...rngState };
}

/** Restores a generator state from `getRngState()`. */
export function setRngState(s: { seed: number; counter: number }): void {
  seedKey(s.seed);
  rngState.seed = s.seed;
  rngState.counter = s.counter;
}

function randomBits(shape: number[], device: Device, words: number): Tensor[] {
  checkShape('random', shape);
  const key = seedKey(rngState.seed);
  const ctr = rngState.counter;
  rngState.counter = (rngState.counter + 1) >>> 0;
  return Array.from({ length: words }, (_, word) => mk('rng', [], shape, 'u32', device, { key, ctr, word }));
}

/** Uniform floats in [0, 1). */
export function rand(shape: Shape, opts: CreateOptions = {}): Tensor {
  const device = defaultDeviceOf(opts);
  return leaf(scope(() => applyElementwise('uniform_bits', randomBits([...shape], device, 1)).cast(opts.dtype ?? 'f32')), opts);
}

/** Standard normal floats (Box–Muller on two Philox words). */
export function randn(shape: Shape, opts: CreateOptions = {}): Tensor {
  const device = defaultDeviceOf(opts);
  return leaf(scope(() => applyElementwise('normal_bits', randomBits([...shape], device, 2)).cast(opts.dtype ?? 'f32')), opts);
}

/** Integers uniform in [low, high) (modulo reduction of 32 random bits; bias below 2^-32·(high-low)). */
export function randint(low: number, high: number, shape: Shape, opts: CreateOptions = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) throw new Error(`randint: need integers low < high, got ${low}, ${high}`);
  const device = defaultDeviceOf(opts);
  return scope(() => {
    const [bits] = randomBits([...shape], device, 1);
    return bits!.mod(high - low >>> 0).cast('i32').add(low).cast(opts.dtype ?? 'i32');
  });
}

/**
 * Draws from the same generator on the host, without a GPU round trip: uniforms are bit-identical to
 * `rand([n])`, normals equal `randn([n])` up to float rounding, integers equal `randint`. Each call
 * consumes one generator step, like its device counterpart.
 */
export function randomHost(kind: 'uniform' | 'normal' | 'int', n: number, range: [number, number] = [0, 1]): Float64Array {
  const [k0, k1] = seedKey(rngState.seed);
  const ctr = rngState.counter;
  rngState.counter = (rngState.counter + 1) >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = philox4x32(i, ctr, 0, 0, k0, k1);
    if (kind === 'uniform') out[i] = uniformFromBits(w[0]);
    else if (kind === 'normal') out[i] = normalFromBits(w[0], w[1]);
    else out[i] = (w[0] % ((range[1] - range[0]) >>> 0)) + range[0];
  }
  return out;
}
