/**
 * The elementwise op registry: one definition per op holding its dtype rule, a WGSL expression fragment
 * (so it fuses with its neighbours), a float64 reference and, optionally, a vector-Jacobian product.
 * Built-in elementwise primitives and user ops (`k.defineOp`) are registered the same way.
 */
import { type DType, isFloat, promote } from './dtype.js';
import { PHILOX_WGSL } from '../wgsl/rng.js';

/** What a WGSL fragment builder receives. */
export interface FragmentContext {
  /** dtypes of the inputs (as stored; bool inputs arrive as WGSL bool, f16 as f32). */
  inDtypes: DType[];
  outDtype: DType;
  /** The op's static argument (e.g. the target dtype of a cast). */
  arg: unknown;
}

/** A registered elementwise op. `T` is the tensor type of the autograd layer. */
export interface ElementwiseDef<T = unknown> {
  name: string;
  arity: number;
  /** WGSL expression computing the result from argument expressions. */
  wgsl: (args: string[], ctx: FragmentContext) => string;
  /** Float64 reference of one element (its result is then rounded to the output dtype's values). */
  ref: (xs: number[], ctx: FragmentContext) => number;
  /** The dtypes the inputs are cast to before the op (from the callers' dtypes). */
  inputs: (inDtypes: DType[], arg: unknown) => DType[];
  /** Output dtype from the (already cast) input dtypes. */
  dtype: (inDtypes: DType[], arg: unknown) => DType;
  /** Extra WGSL declarations (helper functions) the fragment calls, one per entry (de-duplicated per kernel). */
  helpers: string[];
  /** Vector-Jacobian product: gradients for each input from the output gradient (null = no gradient). */
  vjp?: (g: T, inputs: T[], out: T, arg: unknown, needs: boolean[]) => (T | null)[];
  /** Estimated cost in simple ALU ops (used by fusion heuristics). */
  cost: number;
}

/** Options of `defineOp`/`defineElementwise`. */
export interface ElementwiseSpec<T = unknown> {
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
  vjp?: (g: T, inputs: T[], out: T, arg: unknown, needs: boolean[]) => (T | null)[];
  cost?: number;
}

const registry = new Map<string, ElementwiseDef<any>>();

/** Registers an elementwise op (built-in or user) and returns its definition. */
export function defineElementwise<T>(spec: ElementwiseSpec<T>): ElementwiseDef<T> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.name)) throw new Error(`defineOp: invalid op name ${JSON.stringify(spec.name)} (use letters, digits and _)`);
  if (registry.has(spec.name)) throw new Error(`defineOp: an op named '${spec.name}' is already registered`);
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
  const ref = spec.ref;
  const def: ElementwiseDef<T> = {
    name: spec.name,
    arity: spec.arity,
    wgsl,
    ref: spec.refWithContext ?? ((xs) => ref(...xs)),
    inputs,
    dtype,
    helpers: spec.helpers === undefined ? [] : typeof spec.helpers === 'string' ? [spec.helpers] : spec.helpers,
    vjp: spec.vjp,
    cost: spec.cost ?? 1,
  };
  registry.set(spec.name, def);
  return def;
}

/** Looks up a registered elementwise op. */
export function elementwiseDef(name: string): ElementwiseDef<any> {
  const d = registry.get(name);
  if (!d) throw new Error(`kiln: unknown elementwise op '${name}'`);
  return d;
}

/** True when an elementwise op of that name exists. */
export function hasElementwise(name: string): boolean {
  return registry.has(name);
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

/** The Philox helpers (random number leaves). */
export const RNG_HELPERS = PHILOX_WGSL;

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
// Built-in primitives. VJPs are attached by the autograd layer.

const u = (name: string, wgsl: ElementwiseSpec['wgsl'], ref: (x: number) => number, extra: Partial<ElementwiseSpec> = {}) =>
  defineElementwise({ name, arity: 1, wgsl, ref, ...extra });
const b = (name: string, wgsl: ElementwiseSpec['wgsl'], ref: (x: number, y: number) => number, extra: Partial<ElementwiseSpec> = {}) =>
  defineElementwise({ name, arity: 2, wgsl, ref, ...extra });

u('neg', (a, c) => (c.outDtype === 'u32' ? `(0u - ${a[0]})` : `(-${a[0]})`), (x) => -x);
u('recip', '1.0 / $0', (x) => 1 / x, { float: true });
u('sqrt', 'sqrt($0)', Math.sqrt, { float: true, cost: 2 });
u('exp', 'exp($0)', Math.exp, { float: true, cost: 4 });
u('log', 'kiln_log($0)', Math.log, { float: true, cost: 4, helpers: H.kiln_log! });
u('sin', 'sin($0)', Math.sin, { float: true, cost: 4 });
u('cos', 'cos($0)', Math.cos, { float: true, cost: 4 });
u('log1p', 'kiln_log1p($0)', Math.log1p, { float: true, cost: 6, helpers: H.kiln_log1p! });
u('expm1', 'kiln_expm1($0)', Math.expm1, { float: true, cost: 6, helpers: H.kiln_expm1! });
u('tanh', 'kiln_tanh($0)', Math.tanh, { float: true, cost: 6, helpers: H.kiln_tanh! });
u('sigmoid', 'kiln_sigmoid($0)', (x) => 1 / (1 + Math.exp(-x)), { float: true, cost: 6, helpers: H.kiln_sigmoid! });
u('erf', 'kiln_erf($0)', erf64, { float: true, cost: 12, helpers: H.kiln_erf! });
u('abs', (a, c) => (c.outDtype === 'u32' ? a[0]! : `abs(${a[0]})`), Math.abs);
u('sign', (a, c) => (c.outDtype === 'u32' ? `select(0u, 1u, ${a[0]} > 0u)` : `sign(${a[0]})`), Math.sign);
u('floor', (a, c) => (isFloat(c.outDtype) ? `floor(${a[0]})` : a[0]!), Math.floor);
u('ceil', (a, c) => (isFloat(c.outDtype) ? `ceil(${a[0]})` : a[0]!), Math.ceil);
u('trunc', (a, c) => (isFloat(c.outDtype) ? `trunc(${a[0]})` : a[0]!), Math.trunc);
u('round', (a, c) => (isFloat(c.outDtype) ? `round(${a[0]})` : a[0]!), (x) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // half to even, like WGSL and PyTorch
});
u('relu', (a, c) => (isFloat(c.outDtype) ? `select(${a[0]}, 0.0, ${a[0]} < 0.0)` : c.outDtype === 'u32' ? a[0]! : `max(${a[0]}, 0)`), (x) => (x < 0 ? 0 : x));
u('logical_not', '!$0', (x) => (x ? 0 : 1), { inputs: allBool, predicate: true });
u('isnan', 'kiln_isnan($0)', (x) => (Number.isNaN(x) ? 1 : 0), { predicate: true, float: true });

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
});

b('add', '$0 + $1', (x, y) => x + y);
b('sub', '$0 - $1', (x, y) => x - y);
b('mul', '$0 * $1', (x, y) => x * y);
b('div', (a, c) => (c.outDtype === 'i32' ? `kiln_fdiv_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fdiv_u(${a[0]}, ${a[1]})` : `(${a[0]} / ${a[1]})`),
  (x, y) => x / y, { float: true, helpers: [H.kiln_fdiv_i!, H.kiln_fdiv_u!] });
b('floordiv', (a, c) => (c.outDtype === 'i32' ? `kiln_fdiv_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fdiv_u(${a[0]}, ${a[1]})` : `floor(${a[0]} / ${a[1]})`),
  (x, y) => floorDivRef(x, y, true), { refWithContext: ([x, y], c) => floorDivRef(x!, y!, isFloat(c.outDtype)), helpers: [H.kiln_fdiv_i!, H.kiln_fdiv_u!] });
b('mod', (a, c) => (c.outDtype === 'i32' ? `kiln_fmod_i(${a[0]}, ${a[1]})` : c.outDtype === 'u32' ? `kiln_fmod_u(${a[0]}, ${a[1]})` : `kiln_fmod_f(${a[0]}, ${a[1]})`),
  (x, y) => floorModRef(x, y, true), { refWithContext: ([x, y], c) => floorModRef(x!, y!, isFloat(c.outDtype)), helpers: [H.kiln_fmod_f!, H.kiln_fmod_i!, H.kiln_fmod_u!] });
b('pow', 'kiln_pow($0, $1)', (x, y) => Math.pow(x, y), { float: true, cost: 10, helpers: H.kiln_pow! });
b('maximum', (a, c) => (isFloat(c.outDtype) ? `select(max(${a[0]}, ${a[1]}), ${NAN}, kiln_isnan(${a[0]}) || kiln_isnan(${a[1]}))` : `max(${a[0]}, ${a[1]})`),
  (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y)));
b('minimum', (a, c) => (isFloat(c.outDtype) ? `select(min(${a[0]}, ${a[1]}), ${NAN}, kiln_isnan(${a[0]}) || kiln_isnan(${a[1]}))` : `min(${a[0]}, ${a[1]})`),
  (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y)));
b('lt', '$0 < $1', (x, y) => +(x < y), { predicate: true });
b('le', '$0 <= $1', (x, y) => +(x <= y), { predicate: true });
b('eq', '$0 == $1', (x, y) => +(x === y), { predicate: true });
b('ne', '$0 != $1', (x, y) => +(x !== y), { predicate: true });
b('logical_and', '$0 && $1', (x, y) => +(!!x && !!y), { inputs: allBool, predicate: true });
b('logical_or', '$0 || $1', (x, y) => +(!!x || !!y), { inputs: allBool, predicate: true });
b('logical_xor', '$0 != $1', (x, y) => +(!!x !== !!y), { inputs: allBool, predicate: true });

/** where(cond, a, b); cond is bool. */
defineElementwise({
  name: 'where',
  arity: 3,
  wgsl: ([c, x, y]) => `select(${y}, ${x}, ${c})`,
  ref: (c, x, y) => (c ? x : y),
  inputs: (ins) => { const p = promote(ins[1]!, ins[2]!); return ['bool', p, p]; },
  dtype: (ins) => ins[1]!,
});

/** Uniform float in [0, 1) from a random u32 word. */
u('uniform_bits', 'kiln_uniform($0)', (w) => (w >>> 8) * 2 ** -24, { inputs: () => ['u32'], dtype: () => 'f32', helpers: PHILOX_WGSL });
/** Standard normal from two random u32 words (Box–Muller). */
b('normal_bits', 'kiln_normal($0, $1)', (w0, w1) => {
  const u0 = 1 - (w0 >>> 8) * 2 ** -24;
  const u1 = (w1 >>> 8) * 2 ** -24;
  return -Math.sqrt(-2 * Math.log(u0)) * Math.cos(2 * Math.PI * (u1 - 0.5));
}, { inputs: () => ['u32', 'u32'], dtype: () => 'f32', cost: 12, helpers: PHILOX_WGSL });

/** Iterates over the registered ops (for codegen helpers of user ops). */
export function allElementwise(): IterableIterator<ElementwiseDef<any>> {
  return registry.values();
}
