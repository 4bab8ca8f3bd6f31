/**
 * The op conformance suite, shared by the Node (Dawn) and browser (Chromium) test projects.
 *
 * Every case builds the same lazy graph twice from the same host data: once on the 'webgpu' device and
 * once on the float64 'cpu' reference interpreter (which shares no index math or kernel code with the
 * WGSL generator). Both results are read back and compared elementwise:
 *   - float outputs: the reference value rounded to f32 (`Math.fround`) is the expectation, and
 *     |got − expected| ≤ atol + rtol·|expected|; NaN must be NaN, ±Infinity must match exactly;
 *   - integer and bool outputs: exact equality.
 * Input data comes from a small deterministic JS PRNG (mulberry32 seeded by a hash of the case name),
 * never from kiln's own RNG, so a case always sees the same values in Node and in the browser.
 *
 * A case may also give `expected`, a closed form computed in the test (float64) from the host inputs;
 * both devices are then compared against it as well (this catches semantic errors that the two
 * implementations would share, since they interpret the same graph).
 */
import type * as KilnModule from '../../src/index.js';
import type { DType, Tensor, TypedArray } from '../../src/index.js';

/** The kiln module (passed in, so this file works with any import path of the engine). */
export type Kiln = typeof KilnModule;

/** How input values are drawn. */
export type InputKind =
  | 'normal' // N(0, scale²)
  | 'uniform' // U[lo, hi) (range)
  | 'positive' // log-uniform in [0.05, 8)
  | 'nonzero' // ±U[0.5, 3): safe denominators
  | 'int' // integers in [lo, hi) (range), stored in any dtype
  | 'bool' // 0/1
  | 'halves' // multiples of 0.5 in [-4, 4] (rounding ties)
  | 'values'; // the listed values, cycled to fill the shape

/** One input of a case. */
export interface InputSpec {
  shape: number[];
  /** Default 'f32'. */
  dtype?: DType;
  /** Default 'normal' for floats, 'int' for i32/u32, 'bool' for bool. */
  kind?: InputKind;
  /** Bounds for 'uniform' and 'int' (int: lo inclusive, hi exclusive). */
  range?: [number, number];
  /** Standard deviation for 'normal'. */
  scale?: number;
  /** Values for 'values'. */
  values?: number[];
}

/** Float tolerance: |got − expected| ≤ atol + rtol·|expected|. */
export interface Tol {
  atol: number;
  rtol: number;
}

/** A host-side input: the values exactly as both devices receive them. */
export interface HostInput {
  shape: number[];
  dtype: DType;
  data: Float32Array | Int32Array | Uint32Array | Uint8Array;
}

/** One conformance case. */
export interface Case {
  /** `group/name`, unique. */
  name: string;
  inputs: InputSpec[];
  /** Builds the outputs from the inputs (tensors already on the device under test). May create tensors with `k.*`. */
  build: (k: Kiln, x: Tensor[]) => Tensor | Tensor[];
  /** Float tolerance (default SIMPLE). Integer and bool outputs are always compared exactly. */
  tol?: Tol;
  /** Expected shape / dtype of the first output. */
  shape?: number[];
  dtype?: DType;
  /** Optional closed-form expectation (one flat array per output), checked on both devices. */
  expected?: (x: HostInput[]) => ArrayLike<number> | ArrayLike<number>[];
}

// ------------------------------------------------------------------------------------------------
// Tolerances

/** f32 unit roundoff. */
export const UNIT = 2 ** -24;
/** Bit-identical (movement, integer results, rand). */
export const EXACT: Tol = { atol: 0, rtol: 0 };
/**
 * A few correctly rounded f32 operations (+ − × ÷ sqrt: ≤ 2^-24 relative each) on O(1) values:
 * rtol 1e-5 ≈ 170 u leaves room for ~10 chained ops; atol 1e-6 covers cancellation in sums of
 * values below ~4 (4·2^-24 ≈ 2.4e-7).
 */
export const SIMPLE: Tol = { atol: 1e-6, rtol: 1e-5 };
/**
 * GPU transcendentals (exp, log, exp2, log2, and kiln's tanh/sigmoid/erf/log1p/expm1/pow/gelu built on
 * them) are not correctly rounded: WGSL allows exp/exp2 3+2|x| ULP and log/log2 3 ULP (absolute 2^-21
 * near 1). For the inputs used here (|x| ≤ ~8) that is ≤ ~20 ULP ≈ 1.2e-6 relative per call; composites
 * chain up to three such calls, so rtol 2e-5 keeps ~5× margin and atol 2e-6 covers outputs near 0.
 * Measured on lavapipe and SwiftShader: ≤ 4e-7 relative (see the error report the tests print).
 */
export const TRANS: Tol = { atol: 2e-6, rtol: 2e-5 };
/**
 * sin/cos: WGSL only promises an absolute error of 2^-11 on [−π, π] (and nothing outside). SwiftShader
 * (the browser project) is close to that bound (measured ~2e-4); lavapipe is near f32 rounding.
 */
export const SINCOS: Tol = { atol: 2 ** -11, rtol: 0 };
/**
 * Functions documented as accurate near 0 (log1p, expm1): relative accuracy for |x| ≤ 1e-4, where an
 * absolute bound says nothing. 1e-4 relative is ~1700 u — generous for an "accurate" f32 implementation.
 */
export const NEAR_ZERO: Tol = { atol: 0, rtol: 1e-4 };
/**
 * Recursive f32 summation of n terms: |error| ≤ (n−1)·u·Σ|x_i| (Higham). `mag` bounds the mean |x_i|.
 * (The split reduction path sums chunks then partials, which only lowers the depth.)
 */
export function sumTol(n: number, mag = 1): Tol {
  return { atol: Math.max(1e-6, 2 * n * UNIT * n * mag), rtol: 1e-5 };
}
/** A dot product of length K of O(1) values (fma or not): Higham's bound γ_K·Σ|a_k b_k| with slack 2. */
export function dotTol(K: number, mag = 1): Tol {
  return { atol: Math.max(1e-6, 2 * K * UNIT * K * mag), rtol: 1e-5 };
}

// ------------------------------------------------------------------------------------------------
// Deterministic host data

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: a tiny 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Draws one input's values deterministically from `seedText`. */
export function makeInput(spec: InputSpec, seedText: string): HostInput {
  const dtype = spec.dtype ?? 'f32';
  const kind: InputKind = spec.kind ?? (dtype === 'bool' ? 'bool' : dtype === 'i32' || dtype === 'u32' ? 'int' : 'normal');
  const n = numel(spec.shape);
  const rnd = mulberry32(hashString(seedText));
  const vals = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (kind) {
      case 'normal': {
        const u1 = 1 - rnd(), u2 = rnd();
        vals[i] = (spec.scale ?? 1) * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        break;
      }
      case 'uniform': {
        const [lo, hi] = spec.range ?? [-1, 1];
        vals[i] = lo + (hi - lo) * rnd();
        break;
      }
      case 'positive': vals[i] = Math.exp(Math.log(0.05) + (Math.log(8) - Math.log(0.05)) * rnd()); break;
      case 'nonzero': vals[i] = (rnd() < 0.5 ? -1 : 1) * (0.5 + 2.5 * rnd()); break;
      case 'int': {
        const [lo, hi] = spec.range ?? (dtype === 'u32' ? [0, 20] : [-9, 10]);
        vals[i] = lo + Math.floor((hi - lo) * rnd());
        break;
      }
      case 'bool': vals[i] = rnd() < 0.5 ? 1 : 0; break;
      case 'halves': vals[i] = Math.floor(rnd() * 17) / 2 - 4; break;
      case 'values': {
        const v = spec.values!;
        vals[i] = v[i % v.length]!;
        break;
      }
    }
  }
  let data: HostInput['data'];
  switch (dtype) {
    case 'f32': case 'f16': data = Float32Array.from(vals); break;
    case 'i32': data = Int32Array.from(vals); break;
    case 'u32': data = Uint32Array.from(vals, (v) => v >>> 0); break;
    case 'bool': data = Uint8Array.from(vals, (v) => (v ? 1 : 0)); break;
  }
  return { shape: [...spec.shape], dtype, data };
}

// ------------------------------------------------------------------------------------------------
// Case helpers

const N = (shape: number[], scale = 1): InputSpec => ({ shape, kind: 'normal', scale });
const Un = (shape: number[], lo: number, hi: number): InputSpec => ({ shape, kind: 'uniform', range: [lo, hi] });
const P = (shape: number[]): InputSpec => ({ shape, kind: 'positive' });
const NZ = (shape: number[]): InputSpec => ({ shape, kind: 'nonzero' });
const I = (shape: number[], lo = -9, hi = 10, dtype: DType = 'i32'): InputSpec => ({ shape, kind: 'int', range: [lo, hi], dtype });
const Uu = (shape: number[], lo = 0, hi = 20): InputSpec => ({ shape, kind: 'int', range: [lo, hi], dtype: 'u32' });
const Fi = (shape: number[], lo = -3, hi = 4): InputSpec => ({ shape, kind: 'int', range: [lo, hi], dtype: 'f32' });
const B = (shape: number[]): InputSpec => ({ shape, kind: 'bool', dtype: 'bool' });
const V = (shape: number[], values: number[], dtype: DType = 'f32'): InputSpec => ({ shape, kind: 'values', values, dtype });

const cases: Case[] = [];
function add(group: string, name: string, inputs: InputSpec[], build: Case['build'], extra: Omit<Partial<Case>, 'name' | 'inputs' | 'build'> = {}): void {
  cases.push({ name: `${group}/${name}`, inputs, build, ...extra });
}

// ---- elementwise: unary float ------------------------------------------------------------------

const S = [4, 6]; // default shape for elementwise cases
type UnaryRow = [string, InputSpec, (x: Tensor) => Tensor, Tol?];
const unary: UnaryRow[] = [
  ['neg', N(S), (x) => x.neg()],
  ['recip', NZ(S), (x) => x.recip()],
  ['abs', N(S), (x) => x.abs()],
  ['sign', Fi(S, -2, 3), (x) => x.sign()],
  ['exp', N(S, 2), (x) => x.exp(), TRANS],
  ['log', P(S), (x) => x.log(), TRANS],
  ['log1p', Un(S, -0.9, 5), (x) => x.log1p(), TRANS],
  ['log1p (tiny)', Un(S, -1e-4, 1e-4), (x) => x.log1p(), NEAR_ZERO],
  ['expm1', N(S, 2), (x) => x.expm1(), TRANS],
  ['expm1 (tiny)', Un(S, -1e-4, 1e-4), (x) => x.expm1(), NEAR_ZERO],
  ['sqrt', P(S), (x) => x.sqrt()],
  ['rsqrt', P(S), (x) => x.rsqrt()],
  ['sin', Un(S, -Math.PI, Math.PI), (x) => x.sin(), SINCOS],
  ['cos', Un(S, -Math.PI, Math.PI), (x) => x.cos(), SINCOS],
  ['tanh', N(S, 2), (x) => x.tanh(), TRANS],
  ['tanh (small)', Un(S, -0.3, 0.3), (x) => x.tanh(), TRANS],
  ['sigmoid', N(S, 4), (x) => x.sigmoid(), TRANS],
  ['erf', N(S, 1.5), (x) => x.erf(), TRANS],
  ['erf (small)', Un(S, -0.5, 0.5), (x) => x.erf(), TRANS],
  ['floor', N(S, 3), (x) => x.floor(), EXACT],
  ['ceil', N(S, 3), (x) => x.ceil(), EXACT],
  ['round', N(S, 3), (x) => x.round(), EXACT],
  ['round (half to even)', { shape: S, kind: 'halves' }, (x) => x.round(), EXACT],
  ['trunc', N(S, 3), (x) => x.trunc(), EXACT],
  ['floor/ceil/trunc (halves)', { shape: S, kind: 'halves' }, (x) => x.floor().add(x.ceil().mul(10)).add(x.trunc().mul(100)), EXACT],
  ['relu', N(S), (x) => x.relu(), EXACT],
  ['leakyRelu', N(S), (x) => x.leakyRelu()],
  ['leakyRelu(0.2)', N(S), (x) => x.leakyRelu(0.2)],
  ['silu', N(S, 3), (x) => x.silu(), TRANS],
  ['gelu', N(S, 2), (x) => x.gelu(), TRANS],
  ["gelu('tanh')", N(S, 2), (x) => x.gelu('tanh'), TRANS],
  ['softplus', Un(S, -30, 30), (x) => x.softplus(), TRANS],
  ['softplus(beta 2, threshold 5)', Un(S, -6, 6), (x) => x.softplus(2, 5), TRANS],
  ['clamp(min, max)', N(S, 2), (x) => x.clamp(-0.5, 1)],
  ['clamp(min)', N(S), (x) => x.clamp(0.1)],
  ['clamp(null, max)', N(S), (x) => x.clamp(null, -0.2)],
  ['pow 2 (square)', N(S), (x) => x.pow(2)],
  ['pow 3 (cube)', N(S), (x) => x.pow(3)],
  ['pow 0.5', P(S), (x) => x.pow(0.5)],
  ['pow -1', NZ(S), (x) => x.pow(-1)],
  ['pow 1', N(S), (x) => x.pow(1), EXACT],
  ['pow 2.5 (generic)', P(S), (x) => x.pow(2.5), TRANS],
  ['rpow: 2 ** x', N(S, 2), (x) => x.mul(0).add(2).pow(x), TRANS],
  ['isnan', V(S, [NaN, 1, -Infinity, 0, Infinity, -2.5, NaN]), (x) => x.isnan()],
  ['logicalNot (f32)', Fi(S, -1, 2), (x) => x.logicalNot()],
  ['odd size 130 (workgroup tail)', N([130]), (x) => x.mul(3).add(1).exp(), TRANS],
];
for (const [name, spec, fn, tol] of unary) add('unary', name, [spec], (_k, [x]) => fn(x!), { tol: tol ?? SIMPLE });

// ---- elementwise: binary float ------------------------------------------------------------------

type Bin = [string, InputSpec, InputSpec, (a: Tensor, b: Tensor) => Tensor, Tol?];
const binary: Bin[] = [
  ['add', N(S), N(S), (a, b) => a.add(b)],
  ['sub', N(S), N(S), (a, b) => a.sub(b)],
  ['mul', N(S), N(S), (a, b) => a.mul(b)],
  ['div', N(S), NZ(S), (a, b) => a.div(b)],
  ['floorDiv', N(S, 4), NZ(S), (a, b) => a.floorDiv(b), EXACT],
  ['floorDiv (integral floats)', Fi(S, -20, 21), { shape: S, kind: 'values', values: [3, -3, 7, -2, 5, 1, -1, 4] }, (a, b) => a.floorDiv(b), EXACT],
  ['mod', N(S, 4), NZ(S), (a, b) => a.mod(b)],
  ['mod (integral floats)', Fi(S, -20, 21), { shape: S, kind: 'values', values: [3, -3, 7, -2, 5, 1, -1, 4] }, (a, b) => a.mod(b), EXACT],
  ['pow', P(S), Un(S, -3, 3), (a, b) => a.pow(b), TRANS],
  ['pow (negative base, integral exponent)', N(S, 2), Fi(S, -3, 4), (a, b) => a.pow(b), TRANS],
  ['maximum', Fi(S), Fi(S), (a, b) => a.maximum(b), EXACT],
  ['minimum', N(S), N(S), (a, b) => a.minimum(b), EXACT],
  ['lt', Fi(S), Fi(S), (a, b) => a.lt(b)],
  ['le', Fi(S), Fi(S), (a, b) => a.le(b)],
  ['gt', Fi(S), Fi(S), (a, b) => a.gt(b)],
  ['ge', Fi(S), Fi(S), (a, b) => a.ge(b)],
  ['eq', Fi(S), Fi(S), (a, b) => a.eq(b)],
  ['ne', Fi(S), Fi(S), (a, b) => a.ne(b)],
  ['logicalAnd', B(S), B(S), (a, b) => a.logicalAnd(b)],
  ['logicalOr', B(S), B(S), (a, b) => a.logicalOr(b)],
  ['logicalXor', B(S), B(S), (a, b) => a.logicalXor(b)],
  ['logicalAnd (f32 operands)', Fi(S, -1, 2), Fi(S, -1, 2), (a, b) => a.logicalAnd(b)],
  ['logicalOr/Xor (mixed f32, i32)', Fi(S, -1, 2), I(S, -1, 2), (a, b) => a.logicalOr(b).logicalXor(b)],
  ['where', B(S), N(S), (c, a) => c.where(a, a.neg()), EXACT],
  ['x.where(cond, other)', N(S), N(S), (a, b) => a.where(a.gt(b), b), EXACT],
  ['maximum/minimum with scalars', N(S), N(S), (a, b) => a.maximum(0.25).add(b.minimum(-0.5))],
  ['scalar ops (weak scalars)', N(S), NZ(S), (a, b) => a.add(1.5).mul(-2).sub(0.25).div(b).add(3)],
  ['scalar comparisons', Fi(S), Fi(S), (a, b) => a.lt(1).logicalOr(b.ge(2)).logicalAnd(a.ne(0))],
];
for (const [name, sa, sb, fn, tol] of binary) add('binary', name, [sa, sb], (_k, [a, b]) => fn(a!, b!), { tol: tol ?? SIMPLE });

add('binary', 'where(cond, scalar, scalar)', [B(S)], (k, [c]) => k.where(c!, 2.5, -1), { tol: EXACT, dtype: 'f32' });
add('binary', 'where(cond, tensor, scalar)', [B(S), N(S)], (k, [c, a]) => k.where(c!, a!, 0), { tol: EXACT });

// ---- broadcasting ------------------------------------------------------------------------------

add('broadcast', 'add [4,1,5] + [3,1]', [N([4, 1, 5]), N([3, 1])], (_k, [a, b]) => a!.add(b!), { shape: [4, 3, 5] });
add('broadcast', 'mul [5] * [2,3,5]', [N([5]), N([2, 3, 5])], (_k, [a, b]) => a!.mul(b!), { shape: [2, 3, 5] });
add('broadcast', 'sub 0-d tensor', [N([]), N([3, 4])], (_k, [a, b]) => b!.sub(a!), { shape: [3, 4] });
add('broadcast', 'div [3,1] / [1,4]', [N([3, 1]), NZ([1, 4])], (_k, [a, b]) => a!.div(b!), { shape: [3, 4] });
add('broadcast', 'where [4,1,5] ? [3,1] : [5]', [B([4, 1, 5]), N([3, 1]), N([5])], (k, [c, a, b]) => k.where(c!, a!, b!), { shape: [4, 3, 5], tol: EXACT });
add('broadcast', 'maximum i32 [2,1] with f32 [3]', [I([2, 1]), Fi([3])], (_k, [a, b]) => a!.maximum(b!), { shape: [2, 3], dtype: 'f32', tol: EXACT });
add('broadcast', 'pow [3,1] ** [1,4]', [P([3, 1]), Un([1, 4], -2, 2)], (_k, [a, b]) => a!.pow(b!), { tol: TRANS });
add('broadcast', 'eq [2,3,1] vs [1,4]', [Fi([2, 3, 1], 0, 3), Fi([1, 4], 0, 3)], (_k, [a, b]) => a!.eq(b!), { shape: [2, 3, 4], dtype: 'bool' });
add('broadcast', 'chain over 3 shapes', [N([2, 1, 4]), N([3, 1]), N([4])], (_k, [a, b, c]) => a!.mul(b!).add(c!).tanh().mul(b!), { tol: TRANS });

// ---- non-contiguous inputs to elementwise ops ----------------------------------------------------------

add('strided', 'transposed + contiguous', [N([5, 4]), N([4, 5])], (_k, [a, b]) => a!.T.add(b!));
add('strided', 'sliced with step * x', [N([4, 9]), N([4, 3])], (_k, [a, b]) => a!.slice(1, 1, 9, 3).mul(b!));
add('strided', 'flipped - x', [N([3, 4]), N([3, 4])], (_k, [a, b]) => a!.flip(0).sub(b!.flip([0, 1])));
add('strided', 'padded + x', [N([2, 3]), N([5, 4])], (_k, [a, b]) => a!.pad([[1, 2], [0, 1]], 0.5).add(b!));
add('strided', 'expanded * x', [N([3, 1]), N([3, 4])], (_k, [a, b]) => a!.expand([3, 4]).mul(b!));
add('strided', 'permuted exp', [N([2, 3, 4])], (_k, [a]) => a!.permute([2, 0, 1]).exp(), { tol: TRANS });
add('strided', 'negative pad (crop) + slice with negative indices', [N([5, 6]), N([4, 3])], (_k, [a, b]) => a!.pad([[-1, 0], [0, -2]]).slice(1, -3, -1).add(b!.slice(1, 0, 2)), { shape: [4, 2] });
add('strided', 'two different views of one tensor', [N([4, 4])], (_k, [a]) => a!.mul(a!.T).add(a!.flip(1)));
add('strided', 'slice step of transposed, i32', [I([6, 5])], (_k, [a]) => a!.T.slice(1, 0, 6, 2).mul(3).sub(a!.slice(0, 1, 6, 2).T), { tol: EXACT });
add('strided', 'views of computed values', [N([3, 4]), N([4, 3])], (_k, [a, b]) => a!.exp().T.add(b!).flip(0).mul(2).reshape([2, 6]), { tol: TRANS });
add('strided', 'bool padded and flipped', [B([3, 4]), B([4, 5])], (_k, [a, b]) => a!.pad([[0, 1], [1, 0]], 1).flip(1).logicalXor(b!));

// ---- integer dtypes ---------------------------------------------------------------------------------

type IBin = [string, InputSpec, InputSpec, (a: Tensor, b: Tensor) => Tensor, DType?];
const intBinary: IBin[] = [
  ['i32 add', I(S), I(S), (a, b) => a.add(b), 'i32'],
  ['i32 sub', I(S), I(S), (a, b) => a.sub(b), 'i32'],
  ['i32 mul', I(S), I(S), (a, b) => a.mul(b), 'i32'],
  ['i32 div (true division → f32)', I(S), I(S, 1, 7), (a, b) => a.div(b.mul(b.gt(3).where(-1, 1))), 'f32'],
  ['i32 floorDiv (mixed signs)', I(S, -20, 21), V(S, [3, -3, 7, -2, 5, 1, -1, 4], 'i32'), (a, b) => a.floorDiv(b), 'i32'],
  ['i32 mod (mixed signs)', I(S, -20, 21), V(S, [3, -3, 7, -2, 5, 1, -1, 4], 'i32'), (a, b) => a.mod(b), 'i32'],
  ['i32 floorDiv/mod by zero → 0', I(S, -20, 21), V(S, [0], 'i32'), (a, b) => a.floorDiv(b).add(a.mod(b).mul(100)), 'i32'],
  ['i32 maximum/minimum', I(S), I(S), (a, b) => a.maximum(b).mul(100).add(a.minimum(b)), 'i32'],
  ['i32 comparisons', I(S, -2, 3), I(S, -2, 3), (a, b) => a.lt(b).logicalOr(a.eq(b).logicalAnd(b.ge(0))), 'bool'],
  ['i32 pow → f32', I(S, -3, 4), I(S, 0, 4), (a, b) => a.pow(b), 'f32'],
  ['i32 + scalar stays i32', I(S), I(S), (a, b) => a.add(3).mul(-2).sub(b), 'i32'],
  ['i32 + 0.5 → f32', I(S), I(S), (a) => a.add(0.5), 'f32'],
  ['i32 with f32 → f32', I(S), N(S), (a, b) => a.mul(b), 'f32'],
  ['u32 add', Uu(S), Uu(S), (a, b) => a.add(b), 'u32'],
  ['u32 sub (wraps)', Uu(S), Uu(S), (a, b) => a.sub(b), 'u32'],
  ['u32 mul', Uu(S), Uu(S), (a, b) => a.mul(b), 'u32'],
  ['u32 floorDiv/mod', Uu(S, 0, 100), Uu(S, 1, 9), (a, b) => a.floorDiv(b).mul(1000).add(a.mod(b)), 'u32'],
  ['u32 maximum/minimum', Uu(S), Uu(S), (a, b) => a.maximum(b).mul(100).add(a.minimum(b)), 'u32'],
  ['u32 comparisons', Uu(S, 0, 4), Uu(S, 0, 4), (a, b) => a.le(b).logicalXor(a.gt(b)), 'bool'],
  ['u32 with i32 → i32', Uu(S), I(S), (a, b) => a.add(b), 'i32'],
  ['bool + bool → i32', B(S), B(S), (a, b) => a.add(b), 'i32'],
  ['bool where bool', B(S), B(S), (a, b) => a.where(b, a.logicalNot()), 'bool'],
];
for (const [name, sa, sb, fn, dt] of intBinary) add('int', name, [sa, sb], (_k, [a, b]) => fn(a!, b!), { tol: name.includes('pow') ? TRANS : EXACT, dtype: dt });

type IUn = [string, InputSpec, (a: Tensor) => Tensor, DType?];
const intUnary: IUn[] = [
  ['i32 neg', I(S), (a) => a.neg(), 'i32'],
  ['i32 abs', I(S), (a) => a.abs(), 'i32'],
  ['i32 sign', I(S, -2, 3), (a) => a.sign(), 'i32'],
  ['i32 floor/ceil/round/trunc are identity', I(S), (a) => a.floor().add(a.ceil()).add(a.round()).add(a.trunc()), 'i32'],
  ['i32 relu', I(S), (a) => a.relu(), 'i32'],
  ['i32 clamp', I(S), (a) => a.clamp(-3, 4), 'i32'],
  ['i32 exp → f32', I(S, -4, 5), (a) => a.exp(), 'f32'],
  ['u32 neg (wraps)', Uu(S), (a) => a.neg(), 'u32'],
  ['u32 abs/sign', Uu(S, 0, 3), (a) => a.abs().add(a.sign().mul(10)), 'u32'],
  ['bool logicalNot', B(S), (a) => a.logicalNot(), 'bool'],
  ['bool neg → i32', B(S), (a) => a.neg(), 'i32'],
];
for (const [name, s, fn, dt] of intUnary) add('int', name, [s], (_k, [a]) => fn(a!), { tol: name.includes('exp') ? TRANS : EXACT, dtype: dt });

// weak-scalar semantics against a closed form (both devices share the graph, so only a closed form can catch this)
add('int', 'bool + 2 (weak int scalar) → i32', [B(S)], (_k, [a]) => a!.add(2), {
  dtype: 'i32',
  expected: ([a]) => Array.from(a!.data, (v) => v + 2),
});
add('int', 'bool * 3 (weak int scalar) → i32', [B(S)], (_k, [a]) => a!.mul(3), {
  dtype: 'i32',
  expected: ([a]) => Array.from(a!.data, (v) => v * 3),
});

// ---- casts between f32, i32, u32, bool ------------------------------------------------------------------------

const castSources: Record<'f32' | 'i32' | 'u32' | 'bool', InputSpec> = {
  // in-range values for every target (non-negative so that → u32 is well defined; includes 0 for → bool)
  f32: V([2, 7], [0, 0.4, 0.5, 1.9999, 2.5, 7.75, 100.2, 3e5, 16777216, 1, 0, 42.5, 0.0001, 9]),
  i32: I([2, 7], -1000, 1000),
  u32: V([2, 7], [0, 1, 2, 7, 100, 2147483647, 2147483648, 4294967295, 16777217, 3, 0, 65536, 12, 99], 'u32'),
  bool: B([2, 7]),
};
const castTargets: DType[] = ['f32', 'i32', 'u32', 'bool'];
for (const from of castTargets) {
  for (const to of castTargets) {
    add('cast', `${from} → ${to}`, [{ ...castSources[from as keyof typeof castSources], dtype: from }], (_k, [a]) => a!.cast(to), { tol: EXACT, dtype: to });
  }
}
add('cast', 'f32 (negative, fractional) → i32 truncates toward zero', [N([3, 5], 50)], (_k, [a]) => a!.cast('i32'), { tol: EXACT });
add('cast', 'i32 (negative) → u32 wraps', [I([3, 5], -50, 50)], (_k, [a]) => a!.cast('u32'), { tol: EXACT });
add('cast', 'cast chain f32 → i32 → bool → f32', [N([3, 5], 2)], (_k, [a]) => a!.cast('i32').cast('bool').cast('f32').add(a!.int().float()), { tol: EXACT });
add('cast', 'int() / float()', [I([3, 5])], (_k, [a]) => a!.float().mul(0.5).int(), { tol: EXACT, dtype: 'i32' });
// out-of-range float → int: WGSL saturates to the nearest f32-representable in-range value (i32 max → 2147483520,
// u32 max → 4294967040, negatives → 0 for u32); the reference must do the same
add('cast', 'f32 out of range → i32/u32 (devices agree)', [V([6], [-3.7, -1, 3e9, -3e9, 1e10, 5e9])], (_k, [a]) => [a!.cast('i32'), a!.cast('u32')], {
  tol: EXACT,
  expected: () => [[-3, -1, 2147483520, -2147483648, 2147483520, 2147483520], [0, 0, 3000000000, 0, 4294967040, 4294967040]],
});

// ---- views ------------------------------------------------------------------------------------------

const X3 = [2, 3, 4];
type View = [string, InputSpec, (x: Tensor) => Tensor | Tensor[], number[]?];
const views: View[] = [
  ['reshape', N(X3), (x) => x.reshape([4, 6]), [4, 6]],
  ['view with -1', N(X3), (x) => x.view([-1, 2]), [12, 2]],
  ['permute', N(X3), (x) => x.permute([1, 2, 0]), [3, 4, 2]],
  ['permute with negative axes', N(X3), (x) => x.permute([-1, 0, -2]), [4, 2, 3]],
  ['transpose(0, 2)', N(X3), (x) => x.transpose(0, 2), [4, 3, 2]],
  ['T (3-D reverses all axes)', N(X3), (x) => x.T, [4, 3, 2]],
  ['mT', N(X3), (x) => x.mT, [2, 4, 3]],
  ['expand', N([1, 3]), (x) => x.expand([4, 3]), [4, 3]],
  ['expand with new leading dims and -1', N([3, 1]), (x) => x.expand([2, -1, 5]), [2, 3, 5]],
  ['squeeze all', N([1, 3, 1, 4]), (x) => x.squeeze(), [3, 4]],
  ['squeeze one axis', N([1, 3, 1, 4]), (x) => x.squeeze(2), [1, 3, 4]],
  ['unsqueeze', N([3, 4]), (x) => [x.unsqueeze(0), x.unsqueeze(-1), x.unsqueeze(1)], [1, 3, 4]],
  ['flatten', N(X3), (x) => x.flatten(), [24]],
  ['flatten(1, 2)', N([2, 3, 4, 5]), (x) => x.flatten(1, 2), [2, 12, 5]],
  ['slice', N([6, 5]), (x) => x.slice(0, 1, 4), [3, 5]],
  ['slice with step 2', N([6, 7]), (x) => x.slice(1, 0, 7, 2), [6, 4]],
  ['slice with step 4 and offset', N([13]), (x) => x.slice(0, 2, 13, 4), [3]],
  ['slice with negative indices', N([6, 7]), (x) => x.slice(1, -4, -1), [6, 3]],
  ['slice end beyond size (clamped)', N([6, 5]), (x) => x.slice(0, 3, 100), [3, 5]],
  ['narrow', N([6, 5]), (x) => x.narrow(1, 1, 3), [6, 3]],
  ['narrow with negative start', N([6, 5]), (x) => x.narrow(0, -2, 2), [2, 5]],
  ['flip two axes', N(X3), (x) => x.flip([0, 2]), X3],
  ['pad with value', N([2, 3]), (x) => x.pad([[0, 1], [2, 2]], -7.5), [3, 7]],
  ['pad negative (crop)', N([5, 6]), (x) => x.pad([[-1, -2], [0, -3]]), [2, 3]],
  ['pad mixed', N([4, 4]), (x) => x.pad([[-1, 2], [3, -2]], 1), [5, 5]],
  ['contiguous of permuted', N(X3), (x) => x.permute([2, 0, 1]).contiguous(), [4, 2, 3]],
  ['reshape of permuted (needs a copy)', N(X3), (x) => x.permute([2, 0, 1]).reshape([4, 6]), [4, 6]],
  ['reshape of sliced', N([4, 6]), (x) => x.slice(1, 1, 5).reshape([2, 8]), [2, 8]],
  ['slice of flipped of transposed', N([5, 6]), (x) => x.T.flip(0).slice(0, 1, 6, 2), [3, 5]],
  ['expand then reshape', N([3, 1]), (x) => x.expand([3, 4]).reshape([2, 6]), [2, 6]],
  ['pad of transposed then flip', N([3, 2]), (x) => x.T.pad([[1, 0], [0, 2]], 3).flip(1), [3, 5]],
  ['split (sizes list)', N([7, 3]), (x) => x.split([2, 4, 1], 0), [2, 3]],
  ['split (size) on axis 1', N([2, 7]), (x) => x.split(3, 1), [2, 3]],
  ['chunk uneven', N([3, 8]), (x) => x.chunk(3, 1), [3, 3]],
  ['i32 permute + slice', I(X3), (x) => x.permute([2, 1, 0]).slice(0, 1, 4, 2), [2, 3, 2]],
  ['bool reshape + flip + pad(true)', B([3, 4]), (x) => x.reshape([2, 6]).flip(1).pad([[1, 0], [0, 1]], 1), [3, 7]],
  ['u32 transpose + expand', Uu([3, 1]), (x) => x.T.expand([2, 3]), [2, 3]],
  ['unfold (torch semantics)', N([2, 7]), (x) => x.unfold(1, 3, 2), [2, 3, 3]],
  ['unfold with dilation on axis 0', N([9, 2]), (x) => x.unfold(0, 3, 1, 3), [3, 2, 3]],
  ['unfold twice (2-D windows) of padded', N([1, 5, 6]), (x) => x.pad([[0, 0], [1, 1], [1, 1]]).unfold(1, 3, 2).unfold(2, 2, 3, 2), [1, 3, 2, 3, 2]],
];
for (const [name, s, fn, shape] of views) add('view', name, [s], (_k, [x]) => fn(x!), { tol: EXACT, shape });

add('view', 'cat axis 0 (3 tensors)', [N([2, 3]), N([1, 3]), N([4, 3])], (k, [a, b, c]) => k.cat([a!, b!, c!], 0), { tol: EXACT, shape: [7, 3] });
add('view', 'cat axis -1', [N([2, 3]), N([2, 1]), N([2, 2])], (k, [a, b, c]) => k.cat([a!, b!, c!], -1), { tol: EXACT, shape: [2, 6] });
add('view', 'cat of views (transposed, flipped)', [N([3, 2]), N([2, 3])], (k, [a, b]) => k.cat([a!.T, b!.flip(1)], 1), { tol: EXACT, shape: [2, 6] });
add('view', 'cat i32 + f32 promotes', [I([2, 2]), N([3, 2])], (k, [a, b]) => k.cat([a!, b!], 0), { tol: EXACT, dtype: 'f32' });
add('view', 'cat bool', [B([2, 3]), B([2, 2])], (k, [a, b]) => k.cat([a!, b!], 1), { tol: EXACT, dtype: 'bool' });
add('view', 'cat with special values', [V([2, 2], [Infinity, NaN, -Infinity, -0]), N([1, 2])], (k, [a, b]) => k.cat([a!, b!], 0), { tol: EXACT });
add('view', 'cat single tensor', [N([2, 3])], (k, [a]) => k.cat([a!], 1), { tol: EXACT });
add('view', 'stack axis 0', [N([2, 3]), N([2, 3]), N([2, 3])], (k, [a, b, c]) => k.stack([a!, b!, c!], 0), { tol: EXACT, shape: [3, 2, 3] });
add('view', 'stack axis 1', [N([2, 3]), N([2, 3])], (k, [a, b]) => k.stack([a!, b!], 1), { tol: EXACT, shape: [2, 2, 3] });
add('view', 'stack axis -1 (i32)', [I([2, 3]), I([2, 3])], (k, [a, b]) => k.stack([a!, b!], -1), { tol: EXACT, shape: [2, 3, 2] });

// ---- reductions ------------------------------------------------------------------------------------

const R = [3, 4, 5];
type Red = [string, InputSpec, (x: Tensor) => Tensor | Tensor[], Tol?, number[]?];
const reductions: Red[] = [
  ['sum all', N(R), (x) => x.sum(), sumTol(60), []],
  ['sum all keepDim', N(R), (x) => x.sum(undefined, { keepDim: true }), sumTol(60), [1, 1, 1]],
  ['sum axis 1 keepDim', N(R), (x) => x.sum(1, { keepDim: true }), sumTol(4), [3, 1, 5]],
  ['sum axis -1', N(R), (x) => x.sum(-1), sumTol(5), [3, 4]],
  ['sum axes [0, 2]', N(R), (x) => x.sum([0, 2]), sumTol(15), [4]],
  ['sum axes [2, 0] keepDim', N(R), (x) => x.sum([2, 0], { keepDim: true }), sumTol(15), [1, 4, 1]],
  ['sum i32', I(R), (x) => x.sum(1), EXACT, [3, 5]],
  ['sum bool → i32', B(R), (x) => x.sum(-1), EXACT, [3, 4]],
  ['mean axes [1, 2] keepDim', N(R), (x) => x.mean([1, 2], { keepDim: true }), sumTol(20), [3, 1, 1]],
  ['mean all of i32 → f32', I(R), (x) => x.mean(), SIMPLE, []],
  ['max all', N(R), (x) => x.max(), EXACT, []],
  ['max axes [0, 2] keepDim', N(R), (x) => x.max([0, 2], { keepDim: true }), EXACT, [1, 4, 1]],
  ['min axis -1', N(R), (x) => x.min(-1), EXACT, [3, 4]],
  ['max/min i32', I(R), (x) => [x.max(1), x.min([0, 2])], EXACT, [3, 5]],
  ['max/min u32 (values ≥ 2^31)', Uu(R, 0, 4000000000), (x) => [x.max(2), x.min(2)], EXACT, [3, 4]],
  ['argmax axis 1, ties → first', Fi(R, 0, 3), (x) => x.argmax(1), EXACT, [3, 5]],
  ['argmin axis -1 keepDim (i32, ties)', I(R, -3, 3), (x) => x.argmin(-1, { keepDim: true }), EXACT, [3, 4, 1]],
  ['argmax all (flattened)', N(R), (x) => x.argmax(), EXACT, []],
  ['var axis 1 (unbiased)', N(R), (x) => x.var(1), SIMPLE, [3, 5]],
  ['var axes [0, 2] keepDim, correction 0', N(R, 3), (x) => x.var([0, 2], { keepDim: true, correction: 0 }), SIMPLE, [1, 4, 1]],
  ['std axis 0 of i32', I(R), (x) => x.std(0), SIMPLE, [4, 5]],
  ['logsumexp axes [0, 1] keepDim, large values', Un(R, 500, 600), (x) => x.logsumexp([0, 1], { keepDim: true }), TRANS, [1, 1, 5]],
  ['softmax last axis', N(R, 3), (x) => x.softmax(), TRANS, R],
  ['softmax axis 0, large logits', Un(R, 100, 400), (x) => x.softmax(0), TRANS, R],
  ['logSoftmax axis 1', N(R, 3), (x) => x.logSoftmax(1), TRANS, R],
  ['cumsum middle axis of 3-D (non-last)', N([2, 5, 3]), (x) => x.cumsum(1), sumTol(5), [2, 5, 3]],
  ['cumsum axis 0 of i32', I([7, 4]), (x) => x.cumsum(0), EXACT, [7, 4]],
  ['sum of non-contiguous input (transposed, sliced)', N([5, 8]), (x) => x.T.slice(0, 1, 8, 2).sum(1), sumTol(5), [4]],
  ['max of padded input (pad value wins)', N([3, 4]), (x) => x.pad([[0, 0], [1, 1]], 10).max(1), EXACT, [3]],
  ['reduction then elementwise (epilogue)', N(R), (x) => x.sum(1).mul(2).exp(), TRANS, [3, 5]],
  ['elementwise then reduction (fused body)', N(R), (x) => x.mul(x).add(1).sqrt().sum([0, 2]), sumTol(15, 2), [4]],
  ['same reduction used twice (s * s)', N(R), (x) => { const s = x.sum(1); return s.mul(s); }, sumTol(4, 4), [3, 5]],
  ['reduction broadcast back (x - mean) / std', N(R), (x) => x.sub(x.mean(-1, { keepDim: true })).div(x.std(-1, { keepDim: true })), SIMPLE, R],
  ['reduction of reduction', N(R), (x) => x.sum(2).max(0), sumTol(5), [4]],
];
for (const [name, s, fn, tol, shape] of reductions) add('reduce', name, [s], (_k, [x]) => fn(x!), { tol: tol ?? SIMPLE, shape });

// large reductions (≥ 100k elements) exercise the two-pass split path: few outputs, many reduced elements
const BIG = 131072;
add('reduce-large', 'sum 1-D 131072 positive', [Un([BIG], 0, 1)], (_k, [x]) => x!.sum(), {
  // all terms positive: relative error ≤ depth·u where depth ≤ chunk + partials ≈ 768 → 4.6e-5
  tol: { atol: 0, rtol: 5e-5 }, shape: [],
});
add('reduce-large', 'mean [2, 65536] axis 1 (normal)', [N([2, 65536])], (_k, [x]) => x!.mean(1), {
  // |error| ≤ depth·u·mean|x| ≈ 768 · 6e-8 · 0.8
  tol: { atol: 4e-5, rtol: 0 }, shape: [2],
});
add('reduce-large', 'sum [65536, 2] axis 0 (non-trailing)', [Un([65536, 2], 0, 1)], (_k, [x]) => x!.sum(0), { tol: { atol: 0, rtol: 5e-5 }, shape: [2] });
add('reduce-large', 'max 1-D 131072', [N([BIG])], (_k, [x]) => x!.max(), { tol: EXACT });
add('reduce-large', 'argmin 1-D 131072', [N([BIG])], (_k, [x]) => x!.argmin(), { tol: EXACT });
add('reduce-large', 'sum i32 131072', [I([BIG], -5, 6)], (_k, [x]) => x!.sum(), { tol: EXACT });
add('reduce-large', 'sum [3, 40000] axis 1 then elementwise with another input', [Un([3, 40000], 0, 1), N([3])], (_k, [x, y]) => x!.sum(1).mul(y!).add(1), {
  tol: { atol: 1e-3, rtol: 5e-5 },
});
add('reduce-large', 'transposed |x| row sums [512, 256].T', [N([512, 256])], (_k, [x]) => x!.T.abs().sum(1), { tol: { atol: 0, rtol: 5e-5 }, shape: [256] });
add('reduce-large', 'var 1-D 100000', [Un([100000], -1, 3)], (_k, [x]) => x!.var(), { tol: { atol: 0, rtol: 1e-4 } });

// ---- indexing ----------------------------------------------------------------------------------------

add('index', 'gather axis 1 (negative indices wrap)', [N([3, 5]), I([3, 4], -5, 5)], (_k, [x, i]) => x!.gather(1, i!), { tol: EXACT, shape: [3, 4] });
add('index', 'gather axis 0', [N([4, 3]), I([6, 3], 0, 4)], (_k, [x, i]) => x!.gather(0, i!), { tol: EXACT, shape: [6, 3] });
add('index', 'gather at both ends of the range', [N([3, 5]), V([3, 5], [-5, 4, -1, 0, 2, 3, -4], 'i32')], (_k, [x, i]) => x!.gather(1, i!), { tol: EXACT });
add('index', 'gather 3-D axis 1, u32 index', [N([2, 4, 3]), Uu([2, 5, 3], 0, 4)], (_k, [x, i]) => x!.gather(1, i!), { tol: EXACT, shape: [2, 5, 3] });
add('index', 'gather from transposed, smaller index', [N([6, 4]), I([3, 2], -6, 6)], (_k, [x, i]) => x!.T.gather(1, i!), { tol: EXACT, shape: [3, 2] });
add('index', 'gather i32 values, computed index', [I([3, 6]), I([3, 4], 0, 6)], (_k, [x, i]) => x!.gather(1, i!.mul(2).mod(6)), { tol: EXACT, dtype: 'i32' });
add('index', 'gather then elementwise', [N([3, 5]), I([3, 5], -5, 5)], (_k, [x, i]) => x!.gather(1, i!).exp().add(x!), { tol: TRANS });
add('index', 'indexSelect axis 0 (repeats, negative)', [N([5, 3]), V([6], [4, 0, -1, 2, 2, 1], 'i32')], (_k, [x, i]) => x!.indexSelect(0, i!), { tol: EXACT, shape: [6, 3] });
add('index', 'indexSelect axis 1', [N([2, 5, 3]), I([4], 0, 5)], (_k, [x, i]) => x!.indexSelect(1, i!), { tol: EXACT, shape: [2, 4, 3] });
add('index', 'scatterAdd axis 0 (duplicates)', [N([4, 3]), I([6, 3], 0, 4), N([6, 3])], (_k, [x, i, s]) => x!.scatterAdd(0, i!, s!), { shape: [4, 3] });
add('index', 'scatterAdd i32 axis 1 into zeros', [I([3, 7], 0, 5), I([3, 7])], (k, [i, s]) => k.zeros([3, 5], { dtype: 'i32' }).scatterAdd(1, i!, s!), { tol: EXACT, shape: [3, 5] });
add('index', 'oneHot', [I([6], 0, 4)], (_k, [i]) => i!.oneHot(4), { tol: EXACT, shape: [6, 4], dtype: 'i32' });
add('index', 'oneHot f32, 2-D', [I([2, 3], 0, 4)], (_k, [i]) => i!.oneHot(4, { dtype: 'f32' }), { tol: EXACT, shape: [2, 3, 4], dtype: 'f32' });

// ---- matmul ------------------------------------------------------------------------------------------

// operands that get stored before the product ([3,4] x [4,5] after casts, pads, arithmetic) reuse one kernel
add('matmul', '2-D [3,4] x [4,5]', [N([3, 4]), N([4, 5])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(4), shape: [3, 5] });
add('matmul', '1-D x 2-D', [N([4]), N([4, 5])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(4), shape: [5] });
add('matmul', '2-D x 1-D', [N([3, 4]), N([4])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(4), shape: [3] });
add('matmul', 'batched broadcast [2,1,3,4] x [5,4,6]', [N([2, 1, 3, 4]), N([5, 4, 6])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(4), shape: [2, 5, 3, 6] });
add('matmul', 'a.T x b', [N([4, 3]), N([4, 5])], (_k, [a, b]) => a!.T.matmul(b!), { tol: dotTol(4), shape: [3, 5] });
add('matmul', 'a x b.mT (batched)', [N([2, 3, 4]), N([2, 5, 4])], (k, [a, b]) => k.matmul(a!, b!.mT), { tol: dotTol(4), shape: [2, 3, 5] });
add('matmul', '7 x 13 x 5 (sizes not multiples of 4)', [N([7, 13]), N([13, 5])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(13), shape: [7, 5] });
add('matmul', 'then bias + gelu (epilogue)', [N([7, 13]), N([13, 5]), N([5])], (_k, [x, w, b]) => x!.matmul(w!).add(b!).gelu(), { tol: { atol: 1e-4, rtol: 1e-4 } });
add('matmul', 'i32 operands → f32', [I([3, 4], -4, 5), I([4, 5], -4, 5)], (_k, [a, b]) => a!.matmul(b!), { tol: EXACT, dtype: 'f32' });
add('matmul', 'flipped and step-sliced operands', [N([3, 4]), N([4, 14])], (_k, [a, b]) => a!.flip(1).matmul(b!.flip(0).slice(1, 1, 14, 3)), { tol: dotTol(4), shape: [3, 5] });
add('matmul', 'padded operand', [N([3, 2]), N([4, 5])], (_k, [a, b]) => a!.pad([[0, 0], [1, 1]], 0.5).matmul(b!), { tol: dotTol(4) });
add('matmul', 'expanded and constant operands', [N([1, 4])], (k, [a]) => a!.expand([3, 4]).matmul(k.ones([4, 5])), { tol: dotTol(4), shape: [3, 5] });
add('matmul', 'computed operands', [N([3, 4]), N([4, 5])], (_k, [a, b]) => a!.mul(2).add(1).matmul(b!.tanh()), { tol: { atol: 1e-4, rtol: 1e-4 } });
// operands whose axes merge non-adjacent memory (read in place: convolution windows)
add('matmul', 'windowed operand (implicit GEMM)', [N([2, 3, 5, 6]), N([4, 3, 3, 3])], (_k, [x, w]) =>
  w!.reshape([4, 27]).matmul(x!.pad([[0, 0], [0, 0], [1, 1], [1, 1]]).unfold(2, 3, 2).unfold(3, 3, 1).permute([1, 4, 5, 0, 2, 3]).reshape([27, 2 * 3 * 6])), { tol: dotTol(27), shape: [4, 36] });
add('matmul', 'row axis merged from a permute', [N([3, 4, 5]), N([5, 2])], (_k, [a, b]) => a!.permute([1, 0, 2]).reshape([12, 5]).matmul(b!), { tol: dotTol(5), shape: [12, 2] });
add('matmul', 'k axis merged from a permute (weight-gradient form)', [N([2, 3, 4]), N([4, 2, 5])], (_k, [g, x]) => g!.permute([1, 0, 2]).reshape([3, 8]).matmul(x!.reshape([8, 5])), { tol: dotTol(8), shape: [3, 5] });
// few output tiles and a long k loop: the k loop is split into slices summed by a second pass
add('matmul', 'split k [5,1500] x [1500,3] then bias + relu', [N([5, 1500]), N([1500, 3]), N([3])], (_k, [a, b, c]) => a!.matmul(b!).add(c!).relu(), { tol: dotTol(1500) });
add('matmul', 'split k batched, windowed k axis', [N([2, 3, 700]), N([2, 700, 2])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(700), shape: [2, 3, 2] });
// several blocks and k tiles of each thread-grid shape of the workgroup-tiled kernel (hardware tuning)
add('matmul', 'blocks and k tiles [130,37] x [37,129]', [N([130, 37]), N([37, 129])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(37), shape: [130, 129] });
add('matmul', 'small M, wide blocks [12,40] x [40,300]', [N([12, 40]), N([40, 300])], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(40), shape: [12, 300] });
add('matmul', 'small N, tall blocks [300,20] x [20,10] then bias', [N([300, 20]), N([20, 10]), N([10])], (_k, [a, b, c]) => a!.matmul(b!).add(c!), { tol: dotTol(21), shape: [300, 10] });
// a k tile past K must add nothing: +∞ in A's last column and B's last row stay ∞ (0·∞ would make NaN)
const posWithInf = (n: number, inf: number[]) => Array.from({ length: n }, (_, i) => (inf.includes(i) ? Infinity : ((i * 7) % 11 + 1) / 10));
add('matmul', '+∞ in the last k of A and B [3,37] x [37,5]', [V([3, 37], posWithInf(111, [36])), V([37, 5], posWithInf(185, [182]))], (_k, [a, b]) => a!.matmul(b!), { tol: dotTol(37, 2) });
add('matmul', 'result used twice and reduced', [N([3, 4]), N([4, 5])], (_k, [a, b]) => { const c = a!.matmul(b!); return c.sum(0).add(c.max(0)); }, { tol: dotTol(6, 4) });

// ---- creation ------------------------------------------------------------------------------------------

type Cr = [string, (k: Kiln) => Tensor | Tensor[], number[]?, DType?];
const creation: Cr[] = [
  ['zeros', (k) => k.zeros([2, 3]), [2, 3], 'f32'],
  ['ones i32', (k) => k.ones([3], { dtype: 'i32' }), [3], 'i32'],
  ['full f32', (k) => k.full([2, 2], 7.5), [2, 2], 'f32'],
  ['full bool', (k) => k.full([3], true), [3], 'bool'],
  ['full i32 negative', (k) => k.full([2, 3], -4, { dtype: 'i32' }), [2, 3], 'i32'],
  ['full u32', (k) => k.full([2], 4000000000, { dtype: 'u32' }), [2], 'u32'],
  ['arange(n) i32', (k) => k.arange(5), [5], 'i32'],
  ['arange(start, end, step)', (k) => k.arange(2, 11, 3), [3], 'i32'],
  ['arange negative step (int)', (k) => k.arange(10, -5, -3), [5], 'i32'],
  ['arange float step', (k) => k.arange(0, 1, 0.1), [10], 'f32'],
  ['arange float negative step', (k) => k.arange(5, -1.5, -0.5), [13], 'f32'],
  ['arange int with dtype f32', (k) => k.arange(1, 4, 1, { dtype: 'f32' }), [3], 'f32'],
  ['arange u32', (k) => k.arange(3, 9, 2, { dtype: 'u32' }), [3], 'u32'],
  ['linspace(-3, 5, 10)', (k) => k.linspace(-3, 5, 10), [10], 'f32'],
  ['linspace 1 step', (k) => k.linspace(2, 2, 1), [1], 'f32'],
  ['eye(3)', (k) => k.eye(3), [3, 3], 'f32'],
  ['eye(3, 5)', (k) => k.eye(3, 5), [3, 5], 'f32'],
  ['eye(4, 2) i32', (k) => k.eye(4, 2, { dtype: 'i32' }), [4, 2], 'i32'],
  ['arange reshaped into an op', (k) => k.arange(12).reshape([3, 4]).float().div(4).add(k.eye(3, 4)), [3, 4], 'f32'],
];
for (const [name, fn, shape, dtype] of creation) add('create', name, [], (k) => fn(k), { tol: SIMPLE, shape, dtype });
add('create', 'zerosLike / onesLike (i32)', [I([2, 3])], (k, [x]) => [k.zerosLike(x!), k.onesLike(x!)], { tol: EXACT, shape: [2, 3], dtype: 'i32' });
add('create', 'zerosLike / onesLike (f32, bool)', [N([4]), B([3])], (k, [x, b]) => [k.onesLike(x!).add(x!), k.zerosLike(b!), k.onesLike(b!)], { tol: EXACT });
add('create', 'linspace descending, endpoints exact', [], (k) => k.linspace(2.7, -1.3, 9), { tol: SIMPLE, expected: () => [Math.fround(2.7), ...Array.from({ length: 7 }, (_, i) => 2.7 - ((i + 1) * 4) / 8), Math.fround(-1.3)] });
add('create', 'arange closed form', [], (k) => k.arange(7, -8, -2), { tol: EXACT, expected: () => [7, 5, 3, 1, -1, -3, -5, -7] });
add('create', 'eye closed form', [], (k) => k.eye(2, 3), { tol: EXACT, expected: () => [1, 0, 0, 0, 1, 0] });

// ---- random (kiln's Philox stream: bit-identical between webgpu and the cpu reference) -----------------

add('random', 'rand [257] bit-identical', [], (k) => { k.manualSeed(1234); return k.rand([257]); }, { tol: EXACT, shape: [257] });
add('random', 'rand two calls (counter advances)', [], (k) => { k.manualSeed(99); return [k.rand([3, 70]), k.rand([3, 70])]; }, { tol: EXACT });
add('random', 'rand with 64-bit seed', [], (k) => { k.manualSeed(2 ** 40 + 12345); return k.rand([100]); }, { tol: EXACT });
add('random', 'randint [-5, 7) bit-identical', [], (k) => { k.manualSeed(7); return k.randint(-5, 7, [500]); }, { tol: EXACT, dtype: 'i32' });
add('random', 'randint [0, 1e6)', [], (k) => { k.manualSeed(8); return k.randint(0, 1000000, [300]); }, { tol: EXACT, dtype: 'i32' });
add('random', 'rand fused into elementwise', [N([64])], (k, [x]) => { k.manualSeed(5); return k.rand([64]).mul(2).sub(1).add(x!); }, { tol: SIMPLE });
add('random', 'setRngState replays the stream', [], (k) => {
  k.manualSeed(31);
  k.rand([4]);
  const st = k.getRngState();
  const a = k.rand([50]);
  k.setRngState(st);
  return [a, k.rand([50])];
}, { tol: EXACT });
/**
 * randn = −sqrt(−2 ln u0)·cos(2π(u1 − ½)) goes through the driver's log, sqrt and cos: the cos argument
 * is in [−π, π], where WGSL allows 2^-11 absolute error, and the radius is at most sqrt(2·24·ln 2) ≈ 5.77,
 * so the WGSL-conformance bound is ≈ 5.77·2^-11 ≈ 2.8e-3 absolute (plus the log's few ULP, relative).
 * Measured: ~1e-6 on lavapipe, ~5e-4 on SwiftShader (see the error report).
 */
export const RANDN_TOL: Tol = { atol: 3e-3, rtol: 1e-4 };
add('random', 'randn [4096] vs reference', [], (k) => { k.manualSeed(2024); return k.randn([4096]); }, { tol: RANDN_TOL });
add('random', 'randn [3, 5] after rand (shared counter)', [], (k) => { k.manualSeed(3); k.rand([2]); return k.randn([3, 5]); }, { tol: RANDN_TOL });

// ---- special values ----------------------------------------------------------------------------------

add('special', 'maximum / minimum propagate NaN', [V([8], [NaN, 1, NaN, -Infinity, Infinity, 2, 0, -1]), V([8], [0, NaN, NaN, 5, -Infinity, NaN, -0, -1])], (_k, [a, b]) => [a!.maximum(b!), a!.minimum(b!)], { tol: EXACT });
add('special', 'max / min / sum reductions with NaN', [V([3, 4], [1, NaN, 3, -2, 5, 6, 7, 8, NaN, -Infinity, 0, 1])], (_k, [x]) => [x!.max(1), x!.min(1), x!.sum(1)], { tol: EXACT });
add('special', 'argmax treats NaN as the maximum', [V([2, 4], [1, NaN, 3, NaN, 5, 2, 9, 1])], (_k, [x]) => x!.argmax(1), { tol: EXACT });
add('special', 'max of 131072 with one NaN (split path)', [N([BIG])], (k, [x]) => x!.where(k.arange(BIG).ne(77777), NaN).max(), { tol: EXACT });
add('special', 'exp overflow → inf, underflow → 0', [V([8], [100, 88.8, 89, -100, -Infinity, Infinity, 0, -87])], (_k, [x]) => x!.exp(), { tol: TRANS });
add('special', 'log(0) = -inf, log(<0) = NaN, log(inf) = inf', [V([5], [0, -1, Infinity, 1, 1e-30])], (_k, [x]) => x!.log(), { tol: TRANS });
add('special', 'sqrt / rsqrt of 0, negative, inf', [V([4], [0, -1, Infinity, 4])], (_k, [x]) => [x!.sqrt(), x!.rsqrt()], { tol: SIMPLE });
add('special', 'division by zero (float)', [V([4], [1, -1, 0, 5]), V([4], [0, 0, 0, Infinity])], (_k, [a, b]) => [a!.div(b!), a!.recip()], { tol: EXACT });
add('special', 'floorDiv / mod by zero (float)', [V([4], [1, -1, 0, 5]), V([4], [0, 0, 0, 0])], (_k, [a, b]) => [a!.floorDiv(b!), a!.mod(b!)], { tol: EXACT });
add('special', 'pow special cases', [V([8], [0, 0, -2, -2, 2, -8, 3, 4]), V([8], [-1, 0, 3, 0.5, 200, 1 / 3, -2, -0.5])], (_k, [a, b]) => a!.pow(b!), { tol: TRANS });
add('special', 'tanh / sigmoid / erf saturate', [V([6], [50, -50, 100, -100, Infinity, -Infinity])], (_k, [x]) => [x!.tanh(), x!.sigmoid(), x!.erf()], { tol: TRANS });
add('special', 'sum with inf', [V([2, 2], [Infinity, 1, Infinity, -Infinity])], (_k, [x]) => x!.sum(1), { tol: EXACT });
add('special', 'softmax with -inf (masked) logits', [V([3, 4], [-Infinity, 1, 2, -Infinity, 0.5, -Infinity, -Infinity, -Infinity, 3, -1, 0, -Infinity])], (_k, [x]) => x!.softmax(-1), { tol: TRANS });
add('special', 'logsumexp of all -inf row = -inf, with +inf = inf', [V([3, 3], [-Infinity, -Infinity, -Infinity, Infinity, 1, 2, 0, 1, 2])], (_k, [x]) => x!.logsumexp(1), { tol: TRANS });
add('special', 'isnan / where with NaN', [V([6], [NaN, 1, Infinity, NaN, -0, -Infinity])], (k, [x]) => k.where(x!.isnan(), 0, x!), { tol: EXACT });
add('special', 'clamp with inf', [V([4], [Infinity, -Infinity, 0.5, -2])], (_k, [x]) => x!.clamp(-1, 1), { tol: EXACT });

// ---- mixed precision (k.autocast): f16 storage, f32 arithmetic -------------------------------------

/** f16 unit roundoff. */
export const HALF = 2 ** -11;
/**
 * Values that went through `n` roundings to f16 (2^-11 relative each). The GPU rounds where it stores (a
 * fused f16 intermediate stays f32 until the kernel's store) and the reference at every f16 op, so the two
 * can differ by ~2n·2^-11 relative; `mag` bounds the magnitude of intermediates (cancellation near 0).
 * On an adapter without shader-f16 autocast runs in f32 on both devices, well inside these bounds.
 */
export function halfTol(n: number, mag = 1): Tol {
  return { atol: 2 * n * HALF * mag, rtol: 2 * n * HALF };
}
const amp = (fn: (k: Kiln, x: Tensor[]) => Tensor | Tensor[]): Case['build'] => (k, x) => k.autocast(() => fn(k, x));
add('autocast', 'matmul [8,32] x [32,12] (f16 operands, f32 accumulation)', [N([8, 32]), N([32, 12])], amp((_k, [a, b]) => a!.matmul(b!)), { tol: halfTol(1, 6), shape: [8, 12] });
add('autocast', 'linear with bias', [N([6, 20]), N([10, 20]), N([10])], amp((k, [x, w, b]) => k.F.linear(x!, w!, b!)), { tol: halfTol(2, 5) });
add('autocast', 'conv2d 3x3 pad 1 with bias', [N([2, 3, 6, 6]), N([4, 3, 3, 3], 0.3), N([4])], amp((k, [x, w, b]) => k.F.conv2d(x!, w!, b!, { padding: 1 })), { tol: halfTol(2, 3) });
add('autocast', 'convTranspose2d stride 2', [N([2, 4, 3, 3]), N([4, 3, 3, 3], 0.3)], amp((k, [x, w]) => k.F.convTranspose2d(x!, w!, null, { stride: 2, padding: 1, outputPadding: 1 })), { tol: halfTol(2, 3) });
add('autocast', 'conv2d → groupNorm → silu (f16 activations, f32 statistics)', [N([2, 4, 5, 5]), N([8, 4, 3, 3], 0.3), N([8]), N([8])], amp((k, [x, w, g, b]) => k.F.groupNorm(k.F.conv2d(x!, w!, null, { padding: 1 }), 4, g!, b!).silu()), { tol: halfTol(6, 3) });
add('autocast', 'linear → layerNorm → linear', [N([5, 12]), N([16, 12], 0.3), N([16, 16], 0.3), N([16])], amp((k, [x, w1, w2, g]) => k.F.linear(k.F.layerNorm(k.F.linear(x!, w1!), [16], g!), w2!)), { tol: halfTol(6, 4) });
add('autocast', 'softmax and logSoftmax of f16 logits (f32 results)', [N([4, 10]), N([10, 9])], amp((_k, [x, w]) => { const z = x!.matmul(w!); return [z.softmax(-1), z.logSoftmax(-1)]; }), { tol: halfTol(3, 4) });
add('autocast', 'scaled dot-product attention', [N([2, 6, 8]), N([8, 8], 0.4), N([8, 8], 0.4), N([8, 8], 0.4)], amp((k, [x, wq, wk, wv]) => k.F.scaledDotProductAttention(x!.matmul(wq!), x!.matmul(wk!), x!.matmul(wv!))), { tol: halfTol(6, 3) });
add('autocast', 'sum, mean and mseLoss of f16 activations (f32 results)', [N([6, 16]), N([16, 8]), N([6, 8])], amp((k, [x, w, t]) => { const y = x!.matmul(w!); return [y.sum(1), y.mean(), k.F.mseLoss(y, t!)]; }), { tol: halfTol(2, 16) });
// two kernels that share an input merge into one: the f16 result of one, read by the other, is rounded in between
add('autocast', 'f16 result re-read by a kernel merged with its producer', [N([8, 16]), N([16, 8])], amp((_k, [x, w]) => { const y = x!.matmul(w!); const a = y.mul(3); return [a, a.add(y)]; }), { tol: halfTol(3, 24) });

// ------------------------------------------------------------------------------------------------

export { cases };

// ------------------------------------------------------------------------------------------------
// Runner

/** One output read back from a device. */
export interface Output {
  shape: number[];
  dtype: DType;
  data: TypedArray;
}

/** The outcome of one case on the device under test. */
export interface CaseResult {
  name: string;
  ok: boolean;
  /** Readable mismatch descriptions (the first few per output) or the error thrown. */
  failures: string[];
  /** Largest |got − expected| over finite float elements (0 when there are none). */
  maxAbs: number;
  /** Largest |got − expected| / |expected| over float elements with |expected| ≥ 1e-30. */
  maxRel: number;
  /** Largest error as a fraction of the allowed tolerance (≤ 1 passes). */
  tolUse: number;
  ms: number;
  /** GPU pipelines compiled for this case (new kernel sources; the main cost on software adapters). */
  pipelines: number;
}

/** Options of a run. */
export interface RunOptions {
  /** Kernel fusion on (default) or off: results must agree either way. */
  fusion?: boolean;
  /** Mismatches listed per output before summarizing (default 5). */
  maxReports?: number;
}

const isFloatDtype = (dt: DType) => dt === 'f32' || dt === 'f16';

function coordsOf(i: number, shape: number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

/** Builds the case on `device` from the host inputs and reads every output back (all tensors disposed). */
async function evaluate(k: Kiln, device: 'webgpu' | 'cpu', c: Case, inputs: HostInput[]): Promise<Output[]> {
  return k.scope(async () => {
    const outs = k.withDevice(device, () => {
      const xs = inputs.map((h) => k.tensor(h.data, { shape: h.shape, dtype: h.dtype }));
      const r = c.build(k, xs);
      return Array.isArray(r) ? r : [r];
    });
    for (const t of outs) if (t.device !== device) throw new Error(`output on device ${t.device}, expected ${device}`);
    const data = await Promise.all(outs.map((t) => t.data()));
    return outs.map((t, i) => ({ shape: [...t.shape], dtype: t.dtype, data: data[i]! }));
  });
}

interface ErrStats { maxAbs: number; maxRel: number; tolUse: number }

/** Compares `got` with `want` (float: want rounded to f32, within tol; otherwise exact); appends failures. */
function compareArrays(label: string, shape: number[], dtype: DType, got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, failures: string[], stats: ErrStats, maxReports: number): void {
  if (got.length !== want.length) {
    failures.push(`${label}: ${got.length} values, expected ${want.length}`);
    return;
  }
  const float = isFloatDtype(dtype);
  let bad = 0;
  for (let i = 0; i < got.length; i++) {
    const g = Number(got[i]);
    const e = float ? Math.fround(Number(want[i])) : Number(want[i]);
    let ok: boolean;
    let detail = '';
    if (!float) ok = g === e;
    else if (Number.isNaN(e)) ok = Number.isNaN(g);
    else if (!Number.isFinite(e)) ok = g === e;
    else if (!Number.isFinite(g)) ok = false;
    else {
      const err = Math.abs(g - e);
      const allowed = tol.atol + tol.rtol * Math.abs(e);
      ok = err <= allowed;
      stats.maxAbs = Math.max(stats.maxAbs, err);
      if (Math.abs(e) >= 1e-30) stats.maxRel = Math.max(stats.maxRel, err / Math.abs(e));
      stats.tolUse = Math.max(stats.tolUse, allowed > 0 ? err / allowed : err > 0 ? Infinity : 0);
      detail = ` (|diff| ${err.toPrecision(3)} > tol ${allowed.toPrecision(3)})`;
    }
    if (!ok) {
      if (bad < maxReports) failures.push(`${label}[${i}] at [${coordsOf(i, shape).join(', ')}]: got ${g}, expected ${e}${detail}`);
      bad++;
    }
  }
  if (bad > maxReports) failures.push(`${label}: ${bad} mismatches of ${got.length} in total`);
}

/** Runs one case on webgpu and on the cpu reference and compares them. */
export async function runCase(k: Kiln, c: Case, opts: RunOptions = {}): Promise<CaseResult> {
  const t0 = performance.now();
  const maxReports = opts.maxReports ?? 5;
  const failures: string[] = [];
  const stats: ErrStats = { maxAbs: 0, maxRel: 0, tolUse: 0 };
  const tol = c.tol ?? SIMPLE;
  const compiled0 = k.stats().pipelinesCompiled;
  k.setFusion(opts.fusion ?? true);
  try {
    const inputs = c.inputs.map((spec, i) => makeInput(spec, `${c.name}#${i}`));
    const ref = await evaluate(k, 'cpu', c, inputs);
    const got = await evaluate(k, 'webgpu', c, inputs);
    if (got.length !== ref.length) failures.push(`webgpu gave ${got.length} outputs, the reference ${ref.length}`);
    if (c.shape && JSON.stringify(got[0]?.shape) !== JSON.stringify(c.shape)) failures.push(`output shape [${got[0]?.shape}], expected [${c.shape}]`);
    if (c.dtype && got[0]?.dtype !== c.dtype) failures.push(`output dtype ${got[0]?.dtype}, expected ${c.dtype}`);
    for (let o = 0; o < Math.min(got.length, ref.length); o++) {
      const g = got[o]!, r = ref[o]!;
      if (JSON.stringify(g.shape) !== JSON.stringify(r.shape) || g.dtype !== r.dtype) {
        failures.push(`output ${o}: webgpu ${g.dtype}[${g.shape}] vs reference ${r.dtype}[${r.shape}]`);
        continue;
      }
      compareArrays(`output ${o} (webgpu vs cpu reference)`, g.shape, g.dtype, g.data, r.data, tol, failures, stats, maxReports);
    }
    if (c.expected) {
      const e = c.expected(inputs);
      const list = (Array.isArray(e) && typeof e[0] === 'object' ? e : [e]) as ArrayLike<number>[];
      list.forEach((want, o) => {
        for (const [dev, outs] of [['webgpu', got], ['cpu', ref]] as const) {
          const out = outs[o];
          if (out) compareArrays(`output ${o} (${dev} vs closed form)`, out.shape, out.dtype, out.data, want, tol, failures, { ...stats }, maxReports);
        }
      });
    }
  } catch (e) {
    failures.push(`threw: ${(e as Error).stack ?? String(e)}`);
  } finally {
    k.setFusion(true);
  }
  return { name: c.name, ok: failures.length === 0, failures, ...stats, ms: performance.now() - t0, pipelines: k.stats().pipelinesCompiled - compiled0 };
}

/** Runs every case (optionally a filtered subset) and returns the results in order. */
export async function runConformance(k: Kiln, opts: RunOptions & { filter?: (c: Case) => boolean } = {}): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) if (!opts.filter || opts.filter(c)) results.push(await runCase(k, c, opts));
  return results;
}

/** A failure message for one result (for expect(...)). */
export function describeFailure(r: CaseResult): string {
  return `${r.name}:\n  ${r.failures.join('\n  ')}`;
}

/**
 * The measured float errors: the `top` cases closest to their tolerance, then every randn/transcendental
 * unary case (for the test log; passing cases included).
 */
export function errorReport(results: CaseResult[], top = 12): string {
  const line = (r: CaseResult) => `  ${r.name.padEnd(56)} maxAbs ${r.maxAbs.toExponential(2)}  maxRel ${r.maxRel.toExponential(2)}  ${(r.tolUse * 100).toFixed(1).padStart(5)}% of tol`;
  const closest = [...results].filter((r) => r.tolUse > 0 && Number.isFinite(r.tolUse)).sort((a, b) => b.tolUse - a.tolUse).slice(0, top);
  const watched = /^(random\/randn|unary\/(exp|log1p|log |log$|expm1|sin|cos|tanh|sigmoid|erf|gelu|silu|softplus|pow 2\.5))|^matmul\/then/;
  const picked = results.filter((r) => watched.test(r.name) && !closest.includes(r));
  return [`closest to tolerance:`, ...closest.map(line), `transcendental and randn cases:`, ...picked.map(line)].join('\n');
}

// ------------------------------------------------------------------------------------------------
// Statistical and golden checks of kiln's generator

/** Sample moments of `n` randn and rand draws, with z-scores against the closed forms (N(0,1), U[0,1)). */
export async function randomMoments(k: Kiln, n = 65536, seed = 4242): Promise<{ normal: { mean: number; std: number; zMean: number; zStd: number }; uniform: { mean: number; variance: number; zMean: number; zVar: number } }> {
  return k.scope(async () => {
    k.manualSeed(seed);
    const z = (await k.randn([n]).data()) as Float32Array;
    const u = (await k.rand([n]).data()) as Float32Array;
    let s = 0, s2 = 0;
    for (const v of z) s += v;
    const mean = s / n;
    for (const v of z) s2 += (v - mean) ** 2;
    const std = Math.sqrt(s2 / (n - 1));
    // standard errors: mean σ/√n; sample std of a normal ≈ σ/√(2n)
    const normal = { mean, std, zMean: mean / (1 / Math.sqrt(n)), zStd: (std - 1) / (1 / Math.sqrt(2 * n)) };
    let t = 0, t2 = 0;
    for (const v of u) t += v;
    const um = t / n;
    for (const v of u) t2 += (v - um) ** 2;
    const variance = t2 / (n - 1);
    // U[0,1): mean 1/2, variance 1/12 (SE √(1/12n)); sample variance SE √((μ4 − σ⁴)/n), μ4 = 1/80
    const uniform = { mean: um, variance, zMean: (um - 0.5) / Math.sqrt(1 / 12 / n), zVar: (variance - 1 / 12) / Math.sqrt((1 / 80 - 1 / 144) / n) };
    return { normal, uniform };
  });
}


/** Philox4x32-10 known-answer vectors of Random123 (counter, key → four words). */
export const PHILOX_KAT: { ctr: [number, number, number, number]; key: [number, number]; out: [number, number, number, number] }[] = [
  { ctr: [0, 0, 0, 0], key: [0, 0], out: [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8] },
  { ctr: [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], key: [0xffffffff, 0xffffffff], out: [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd] },
  { ctr: [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], key: [0xa4093822, 0x299f31d0], out: [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1] },
];

/**
 * kiln's seeded streams read back from the GPU, next to the values derived from `k.philox4x32` in JS:
 * element i of the c-th random call after `manualSeed(seed)` uses counter (i, c, 0, 0) under the key
 * (seed mod 2^32, floor(seed / 2^32)); rand = (w0 >> 8)·2^-24 and randint(lo, hi) = lo + w0 mod (hi − lo).
 */
export async function philoxGolden(k: Kiln, seed = 2 ** 33 + 777, n = 70): Promise<{ got: number[]; want: number[] }> {
  const key = [seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0] as const;
  k.manualSeed(seed);
  const outs = await k.scope(() => Promise.all([k.rand([n]).data(), k.rand([n]).data(), k.randint(-3, 10, [n]).data()]));
  const want: number[] = [];
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      const w0 = k.philox4x32(i, c, 0, 0, key[0], key[1])[0];
      want.push(c < 2 ? (w0 >>> 8) * 2 ** -24 : (w0 % 13) - 3);
    }
  }
  return { got: outs.flatMap((o) => Array.from(o)), want };
}
