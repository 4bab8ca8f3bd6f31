/**
 * Elementwise primitives: for each, the dtype rule, a WGSL expression fragment (so it fuses with its
 * neighbours), a float64 reference and the vector-Jacobian product. Built-in primitives and user ops
 * (`k.defineOp`) are defined the same way.
 *
 * Gradient rules worth knowing: `maximum`/`minimum` give half to each side on ties; `abs`, `relu` and
 * friends use a zero subgradient at 0; rounding, comparisons and random bits have zero gradient.
 */
import { type DType, coerce, isFloat, promote } from '../dtype.js';
import type { LazyNode } from '../node.js';
import type { Tensor } from '../tensor.js';
import * as ir from '../../wgsl/ir.js';
import { PHILOX_WGSL } from '../../wgsl/rng.js';
import { register, type ElementwiseDef, type FragmentContext, type Vjp } from './registry.js';
import { vt, type Index, type Lowering } from './lowering.js';

export type { FragmentContext };

/** Options of `defineOp`/`defineElementwise`. */
export interface ElementwiseSpec {
  name: string;
  arity: number;
  /** A WGSL expression using `$0`, `$1`, … for the inputs, or a builder function. */
  wgsl: string | ((args: string[], ctx: FragmentContext) => string);
  ref: (...xs: number[]) => number;
  /** Input dtype rule; default casts all inputs to their promoted dtype (f32 when `float`, i32 for bool). */
  inputs?: (inDtypes: DType[], arg: unknown) => DType[];
  /** Output dtype from the cast input dtypes; default the first input's ('bool' when `predicate`). */
  dtype?: (inDtypes: DType[], arg: unknown) => DType;
  /** The op works on floats: integer inputs are computed as f32. */
  float?: boolean;
  /** The op returns bool (comparisons). */
  predicate?: boolean;
  /** WGSL helper declarations the fragment calls (each entry is emitted once per kernel). */
  helpers?: string | string[];
  /** A reference that also sees the dtypes (when the semantics depend on them). */
  refWithContext?: (xs: number[], ctx: FragmentContext) => number;
  /** Gradients of the inputs (Tensor ops); omitted: the op has no gradient. */
  vjp?: Vjp;
  /** Zero gradient for every input (rounding, comparisons, random bits). */
  constant?: boolean;
  cost?: number;
}

const contextOf = (n: LazyNode): FragmentContext => ({ inDtypes: n.src.map((s) => s.dtype), outDtype: n.dtype, arg: n.arg });
const argKey = (arg: unknown) => (arg === undefined || arg === null ? '' : typeof arg === 'object' ? JSON.stringify(arg) : String(arg));

/** Registers an elementwise op (built-in or user) and returns its definition. */
export function defineElementwise(spec: ElementwiseSpec): ElementwiseDef {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.name)) throw new Error(`defineOp: invalid op name ${JSON.stringify(spec.name)} (use letters, digits and _)`);
  if (!Number.isInteger(spec.arity) || spec.arity < 1 || spec.arity > 4) throw new Error(`defineOp '${spec.name}': arity must be 1..4, got ${spec.arity}`);
  const tmpl = spec.wgsl;
  const wgsl = typeof tmpl === 'string' ? (args: string[]) => tmpl.replace(/\$(\d)/g, (_, i) => `(${args[Number(i)]})`) : tmpl;
  const float = spec.float ?? false;
  const predicate = spec.predicate ?? false;
  const inputs = spec.inputs ?? ((ins: DType[]) => {
    let p = ins.reduce((a, b) => promote(a, b));
    if (float && !isFloat(p)) p = 'f32';
    else if (p === 'bool' && !predicate) p = 'i32';
    return ins.map(() => p);
  });
  const dtype = spec.dtype ?? ((ins: DType[]) => (predicate ? 'bool' : ins[0]!));
  const ref = spec.refWithContext ?? ((xs: number[]) => spec.ref(...xs));
  const helpers = spec.helpers === undefined ? [] : typeof spec.helpers === 'string' ? [spec.helpers] : spec.helpers;
  const keys = new WeakMap<LazyNode, string>();
  return register<ElementwiseDef>({
    kind: 'elementwise',
    name: spec.name,
    arity: spec.arity,
    wgsl,
    ref,
    inputs,
    dtype,
    helpers,
    vjp: spec.vjp ?? (spec.constant ? (_g, xs) => xs.map(() => null) : undefined),
    cost: spec.cost ?? 1,
    lower(n: LazyNode, idx: Index, lo: Lowering) {
      for (const h of helpers) lo.helper(h);
      const args = n.src.map((s) => lo.value(s, idx));
      const ctx = contextOf(n);
      let key = keys.get(n);
      if (key === undefined) keys.set(n, (key = `${spec.name}:${argKey(n.arg)}:${ctx.inDtypes.join(',')}`));
      return ir.call(key, (a) => wgsl(a, ctx), args, vt(n.dtype));
    },
    reference(n: LazyNode, srcs: Float64Array[]) {
      const ctx = contextOf(n);
      const out = new Float64Array(n.size);
      const xs = new Array<number>(srcs.length);
      const exact = isFloat(n.dtype);
      for (let i = 0; i < n.size; i++) {
        for (let j = 0; j < srcs.length; j++) xs[j] = srcs[j]![i]!;
        const r = ref(xs, ctx);
        out[i] = exact ? r : coerce(r, n.dtype);
      }
      return out;
    },
  });
}

// ---------------------------------------------------------------------------------------------
// WGSL helpers shared by the built-in primitives.

const INF = 'kiln_inf()';
const NAN = 'kiln_nan()';

const H: Record<string, string> = {
  // log outside its domain is undefined in WGSL (SwiftShader returns finite values): pin IEEE results
  kiln_log: /* wgsl */ `fn kiln_log(x: f32) -> f32 {
  if (x == 0.0) { return -kiln_inf(); }
  if (x < 0.0 || kiln_isnan(x)) { return kiln_nan(); }
  return log(x);
}
`,
  kiln_tanh: /* wgsl */ `fn kiln_tanh(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.3) {
    let z = x * x;
    return x * (1.0 + z * (-0.33333333333 + z * (0.13333333333 + z * (-0.053968253968 + z * (0.021869488536 + z * -0.0088632355299)))));
  }
  let e = exp(-2.0 * min(a, 20.0));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
`,
  kiln_sigmoid: /* wgsl */ `fn kiln_sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  let p = 1.0 / (1.0 + e);
  return select(e * p, p, x >= 0.0);
}
`,
  kiln_erf: /* wgsl */ `fn kiln_erf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.5) {
    let z = x * x;
    return 1.1283791670955126 * x * (1.0 + z * (-0.3333333333333333 + z * (0.1 + z * (-0.023809523809523808 + z * (0.004629629629629629 + z * -0.0007575757575757576)))));
  }
  let t = 1.0 / (1.0 + 0.5 * a);
  let c = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(x) * (1.0 - c);
}
`,
  kiln_pow: /* wgsl */ `fn kiln_pow(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (x == 0.0) { return select(0.0, ${INF}, y < 0.0); }
  let r = exp2(y * log2(abs(x)));
  if (x > 0.0) { return r; }
  if (fract(y) != 0.0) { return ${NAN}; }
  return select(r, -r, fract(y * 0.5) != 0.0);
}
`,
  kiln_log1p: /* wgsl */ `fn kiln_log1p(x: f32) -> f32 {
  if (abs(x) < 0.1) { return x * (1.0 - x * (0.5 - x * (0.33333333333 - x * (0.25 - x * (0.2 - x * (0.16666666667 - x * (0.14285714286 - x * (0.125 - x * 0.11111111111)))))))); }
  return log(1.0 + x);
}
`,
  kiln_expm1: /* wgsl */ `fn kiln_expm1(x: f32) -> f32 {
  if (abs(x) < 0.1) { return x * (1.0 + x * (0.5 + x * (0.16666666667 + x * (0.041666666667 + x * (0.0083333333333 + x * (0.0013888888889 + x * (0.00019841269841 + x * 0.0000248015873))))))); }
  return exp(x) - 1.0;
}
`,
  kiln_fmod_f: /* wgsl */ `fn kiln_fmod_f(a: f32, b: f32) -> f32 { let r = a - b * trunc(a / b); return select(r, r + b, r != 0.0 && ((r < 0.0) != (b < 0.0))); }
`,
  kiln_fdiv_i: /* wgsl */ `fn kiln_fdiv_i(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } let q = a / b; return select(q, q - 1, (a % b != 0) && ((a < 0) != (b < 0))); }
`,
  kiln_fmod_i: /* wgsl */ `fn kiln_fmod_i(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } let r = a % b; return select(r, r + b, r != 0 && ((r < 0) != (b < 0))); }
`,
  kiln_fdiv_u: /* wgsl */ `fn kiln_fdiv_u(a: u32, b: u32) -> u32 { if (b == 0u) { return 0u; } return a / b; }
`,
  kiln_fmod_u: /* wgsl */ `fn kiln_fmod_u(a: u32, b: u32) -> u32 { if (b == 0u) { return 0u; } return a % b; }
`,
};

/** WGSL helpers every kernel gets: runtime infinities (WGSL constant expressions cannot hold inf/NaN). */
export const BASE_HELPERS = /* wgsl */ `fn kiln_inf() -> f32 { var u = 0x7f800000u; return bitcast<f32>(u); }
fn kiln_nan() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
fn kiln_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
`;

// float64 reference for erf (series near 0, continued fraction for erfc in the tails).
export function erf64(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let k = a;
  for (let n = 80; n >= 1; n--) k = a + n / 2 / k;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / k;
  return Math.sign(x) * (1 - erfc);
}

function floorDivRef(a: number, b: number, float: boolean): number { return b === 0 && !float ? 0 : Math.floor(a / b); }
function floorModRef(a: number, b: number, float: boolean): number {
  if (b === 0) return float ? NaN : 0;
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
}

const ty = (dt: DType) => (dt === 'f16' ? 'f32' : dt);
const allBool = (ins: DType[]) => ins.map(() => 'bool' as DType);

// ---------------------------------------------------------------------------------------------
// Built-in primitives.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
/** 1 where x > y, ½ on ties, else 0: how `maximum`/`minimum` share a gradient. */
const tieSplit = (x: Tensor, y: Tensor) => x.gt(y).float().add(x.eq(y).float().mul(0.5));

const u = (name: string, wgsl: ElementwiseSpec['wgsl'], ref: (x: number) => number, extra: Partial<ElementwiseSpec> = {}) =>
  defineElementwise({ name, arity: 1, wgsl, ref, ...extra });
const b = (name: string, wgsl: ElementwiseSpec['wgsl'], ref: (x: number, y: number) => number, extra: Partial<ElementwiseSpec> = {}) =>
  defineElementwise({ name, arity: 2, wgsl, ref, ...extra });

u('neg', (a, c) => (c.outDtype === 'u32' ? `(0u - ${a[0]})` : `(-${a[0]})`), (x) => -x, { vjp: (g) => [g.neg()] });
u('recip', '1.0 / $0', (x) => 1 / x, { float: true, vjp: (g, _x, out) => [g.mul(out.mul(out)).neg()] });
u('sqrt', 'sqrt($0)', Math.sqrt, { float: true, cost: 2, vjp: (g, _x, out) => [g.div(out.mul(2))] });
u('exp', 'exp($0)', Math.exp, { float: true, cost: 4, vjp: (g, _x, out) => [g.mul(out)] });
u('log', 'kiln_log($0)', Math.log, { float: true, cost: 4, helpers: H.kiln_log!, vjp: (g, [a]) => [g.div(a!)] });
u('sin', 'sin($0)', Math.sin, { float: true, cost: 4, vjp: (g, [a]) => [g.mul(a!.cos())] });
u('cos', 'cos($0)', Math.cos, { float: true, cost: 4, vjp: (g, [a]) => [g.mul(a!.sin()).neg()] });
u('log1p', 'kiln_log1p($0)', Math.log1p, { float: true, cost: 6, helpers: H.kiln_log1p!, vjp: (g, [a]) => [g.div(a!.add(1))] });
u('expm1', 'kiln_expm1($0)', Math.expm1, { float: true, cost: 6, helpers: H.kiln_expm1!, vjp: (g, _x, out) => [g.mul(out.add(1))] });
u('tanh', 'kiln_tanh($0)', Math.tanh, { float: true, cost: 6, helpers: H.kiln_tanh!, vjp: (g, _x, out) => [g.mul(out.mul(out).neg().add(1))] });
u('sigmoid', 'kiln_sigmoid($0)', (x) => 1 / (1 + Math.exp(-x)), { float: true, cost: 6, helpers: H.kiln_sigmoid!, vjp: (g, _x, out) => [g.mul(out).mul(out.neg().add(1))] });
u('erf', 'kiln_erf($0)', erf64, { float: true, cost: 12, helpers: H.kiln_erf!, vjp: (g, [a]) => [g.mul(a!.mul(a!).neg().exp().mul(TWO_OVER_SQRT_PI))] });
u('abs', (a, c) => (c.outDtype === 'u32' ? a[0]! : `abs(${a[0]})`), Math.abs, { vjp: (g, [a]) => [g.mul(a!.sign())] });
u('sign', (a, c) => (c.outDtype === 'u32' ? `select(0u, 1u, ${a[0]} > 0u)` : `sign(${a[0]})`), Math.sign, { constant: true });
u('floor', (a, c) => (isFloat(c.outDtype) ? `floor(${a[0]})` : a[0]!), Math.floor, { constant: true });
u('ceil', (a, c) => (isFloat(c.outDtype) ? `ceil(${a[0]})` : a[0]!), Math.ceil, { constant: true });
u('trunc', (a, c) => (isFloat(c.outDtype) ? `trunc(${a[0]})` : a[0]!), Math.trunc, { constant: true });
u('round', (a, c) => (isFloat(c.outDtype) ? `round(${a[0]})` : a[0]!), (x) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // half to even, like WGSL and PyTorch
}, { constant: true });
u('relu', (a, c) => (isFloat(c.outDtype) ? `select(${a[0]}, 0.0, ${a[0]} < 0.0)` : c.outDtype === 'u32' ? a[0]! : `max(${a[0]}, 0)`), (x) => (x < 0 ? 0 : x), {
  vjp: (g, [a]) => [g.where(a!.gt(0), 0)],
});
u('logical_not', '!$0', (x) => (x ? 0 : 1), { inputs: allBool, predicate: true, constant: true });
u('isnan', 'kiln_isnan($0)', (x) => (Number.isNaN(x) ? 1 : 0), { predicate: true, float: true, constant: true });

/** dtype conversion; `arg` is the target dtype. */
defineElementwise({
  name: 'cast',
  arity: 1,
  wgsl: ([a], c) => {
    const from = ty(c.inDtypes[0]!);
    const to = ty(c.outDtype);
    if (from === to) return a!;
    if (to === 'bool') return from === 'f32' ? `(${a} != 0.0 || kiln_isnan(${a}))` : from === 'i32' ? `(${a} != 0)` : `(${a} != 0u)`;
    if (from === 'bool') return to === 'f32' ? `select(0.0, 1.0, ${a})` : to === 'i32' ? `select(0, 1, ${a})` : `select(0u, 1u, ${a})`;
    if (from === 'f32' && to === 'u32') return `u32(max(${a}, 0.0))`;
    return `${to}(${a})`;
  },
  ref: (x) => x,
  refWithContext: ([x], c) => {
    const from = c.inDtypes[0]!;
    if (isFloat(from) && (c.outDtype === 'i32' || c.outDtype === 'u32')) {
      if (Number.isNaN(x!)) return 0;
      const t = Math.trunc(x!);
      // WGSL clamps in f32 to the largest representable values: 2^31 − 128 and 2^32 − 256
      return c.outDtype === 'i32' ? Math.min(Math.max(t, -2147483648), 2147483520) : Math.min(Math.max(t, 0), 4294967040);
    }
    return x!;
  },
  inputs: (ins) => ins,
  dtype: (_ins, arg) => arg as DType,
  // a conversion instruction at most (f16 ↔ f32 is none: f16 is rounded where it is stored)
  cost: 0,
  vjp: (g, [a]) => [g.cast(a!.dtype)],
});

b('add', '$0 + $1', (x, y) => x + y, { vjp: (g) => [g, g] });
b('sub', '$0 - $1', (x, y) => x - y, { vjp: (g) => [g, g.neg()] });
b('mul', '$0 * $1', (x, y) => x * y, { vjp: (g, [a, b]) => [g.mul(b!), g.mul(a!)] });
b('div', (a, c) => (c.outDtype === 'i32' ? `kiln_fdiv_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fdiv_u(${a[0]}, ${a[1]})` : `(${a[0]} / ${a[1]})`),
  (x, y) => x / y, { float: true, helpers: [H.kiln_fdiv_i!, H.kiln_fdiv_u!], vjp: (g, [a, b], _o, _arg, needs) => [g.div(b!), needs[1] ? g.mul(a!).div(b!.mul(b!)).neg() : null] });
b('floordiv', (a, c) => (c.outDtype === 'i32' ? `kiln_fdiv_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fdiv_u(${a[0]}, ${a[1]})` : `floor(${a[0]} / ${a[1]})`),
  (x, y) => floorDivRef(x, y, true), { refWithContext: ([x, y], c) => floorDivRef(x!, y!, isFloat(c.outDtype)), helpers: [H.kiln_fdiv_i!, H.kiln_fdiv_u!], constant: true });
b('mod', (a, c) => (c.outDtype === 'i32' ? `kiln_fmod_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fmod_u(${a[0]}, ${a[1]})` : `kiln_fmod_f(${a[0]}, ${a[1]})`),
  (x, y) => floorModRef(x, y, true), { refWithContext: ([x, y], c) => floorModRef(x!, y!, isFloat(c.outDtype)), helpers: [H.kiln_fmod_f!, H.kiln_fmod_i!, H.kiln_fmod_u!],
    vjp: (g, [a, b], _o, _arg, needs) => [g, needs[1] ? g.mul(a!.floorDiv(b!)).neg() : null] });
b('pow', 'kiln_pow($0, $1)', (x, y) => Math.pow(x, y), { float: true, cost: 10, helpers: H.kiln_pow!, vjp: (g, [a, b], out, _arg, needs) => [
  needs[0] ? g.mul(b!).mul(a!.pow(b!.sub(1))) : null,
  needs[1] ? g.mul(out).mul(a!.log()).where(a!.gt(0), 0) : null,
] });
b('maximum', (a, c) => (isFloat(c.outDtype) ? `select(max(${a[0]}, ${a[1]}), ${NAN}, kiln_isnan(${a[0]}) || kiln_isnan(${a[1]}))` : `max(${a[0]}, ${a[1]})`),
  (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y)), { vjp: (g, [a, b]) => [g.mul(tieSplit(a!, b!)), g.mul(tieSplit(b!, a!))] });
b('minimum', (a, c) => (isFloat(c.outDtype) ? `select(min(${a[0]}, ${a[1]}), ${NAN}, kiln_isnan(${a[0]}) || kiln_isnan(${a[1]}))` : `min(${a[0]}, ${a[1]})`),
  (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y)), { vjp: (g, [a, b]) => [g.mul(tieSplit(b!, a!)), g.mul(tieSplit(a!, b!))] });
b('lt', '$0 < $1', (x, y) => +(x < y), { predicate: true, constant: true });
b('le', '$0 <= $1', (x, y) => +(x <= y), { predicate: true, constant: true });
b('eq', '$0 == $1', (x, y) => +(x === y), { predicate: true, constant: true });
b('ne', '$0 != $1', (x, y) => +(x !== y), { predicate: true, constant: true });
b('logical_and', '$0 && $1', (x, y) => +(!!x && !!y), { inputs: allBool, predicate: true, constant: true });
b('logical_or', '$0 || $1', (x, y) => +(!!x || !!y), { inputs: allBool, predicate: true, constant: true });
b('logical_xor', '$0 != $1', (x, y) => +(!!x !== !!y), { inputs: allBool, predicate: true, constant: true });

/** where(cond, a, b); cond is bool. */
defineElementwise({
  name: 'where',
  arity: 3,
  wgsl: ([c, x, y]) => `select(${y}, ${x}, ${c})`,
  ref: (c, x, y) => (c ? x : y),
  inputs: (ins) => { const p = promote(ins[1]!, ins[2]!); return ['bool', p, p]; },
  dtype: (ins) => ins[1]!,
  vjp: (g, [c]) => [null, g.where(c!, 0), g.newZeros([]).where(c!, g)],
});

/** Uniform float in [0, 1) from a random u32 word. */
u('uniform_bits', 'kiln_uniform($0)', (w) => (w >>> 8) * 2 ** -24, { inputs: () => ['u32'], dtype: () => 'f32', helpers: PHILOX_WGSL, constant: true });
/** Standard normal from two random u32 words (Box–Muller). */
b('normal_bits', 'kiln_normal($0, $1)', (w0, w1) => {
  const u0 = 1 - (w0 >>> 8) * 2 ** -24;
  const u1 = (w1 >>> 8) * 2 ** -24;
  return -Math.sqrt(-2 * Math.log(u0)) * Math.cos(2 * Math.PI * (u1 - 0.5));
}, { inputs: () => ['u32', 'u32'], dtype: () => 'f32', cost: 12, helpers: PHILOX_WGSL, constant: true });

