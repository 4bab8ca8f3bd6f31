/**
 * A small scalar expression IR for kernel bodies. Index math and elementwise work are both expressed
 * here; `Emitter` prints it as WGSL with common-subexpression elimination and constant folding.
 */

/** Value types inside kernels (`vec4u` only for raw Philox output). */
export type VT = 'f32' | 'i32' | 'u32' | 'bool' | 'vec4u';

/** An IR expression. */
export type Expr =
  | { k: 'lit'; v: number | boolean; t: VT }
  | { k: 'param'; slot: number; t: VT }
  | { k: 'var'; name: string; t: VT; bound?: number }
  | { k: 'load'; slot: number; idx: Expr; t: VT; half: boolean; bool: boolean }
  | { k: 'call'; key: string; f: (args: string[]) => string; args: Expr[]; t: VT };

/** A literal. */
export function lit(v: number | boolean, t: VT): Expr {
  return { k: 'lit', v, t };
}
/** An index literal (index math is u32: cheaper division, and negative steps wrap harmlessly). */
export function int(v: number): Expr {
  return { k: 'lit', v, t: 'u32' };
}
/** A named variable (function parameter or loop counter); `bound`: an index variable's values are below it. */
export function v(name: string, t: VT = 'u32', bound?: number): Expr {
  return bound === undefined ? { k: 'var', name, t } : { k: 'var', name, t, bound };
}
/** A call of a WGSL fragment; `key` must identify the fragment for CSE. */
export function call(key: string, f: (args: string[]) => string, args: Expr[], t: VT): Expr {
  return { k: 'call', key, f, args, t };
}

function isLit(e: Expr, val?: number): e is { k: 'lit'; v: number; t: VT } {
  return e.k === 'lit' && (val === undefined || e.v === val);
}

/** Index addition (u32, wrapping) with folding. */
export function add(a: Expr, b: Expr): Expr {
  if (isLit(a) && isLit(b)) return int((a.v as number) + (b.v as number));
  if (isLit(a, 0)) return b;
  if (isLit(b, 0)) return a;
  return call('+', (x) => `(${x[0]} + ${x[1]})`, [a, b], 'u32');
}
/** Index multiplication with folding. */
export function mul(a: Expr, b: Expr): Expr {
  if (isLit(a) && isLit(b)) return int((a.v as number) * (b.v as number));
  if (isLit(a, 0) || isLit(b, 0)) return int(0);
  if (isLit(a, 1)) return b;
  if (isLit(b, 1)) return a;
  return call('*', (x) => `(${x[0]} * ${x[1]})`, [a, b], 'u32');
}
/** Index subtraction (wraps below zero; callers test the result against the size). */
export function sub(a: Expr, b: Expr): Expr {
  if (isLit(a) && isLit(b) && (a.v as number) >= (b.v as number)) return int((a.v as number) - (b.v as number));
  if (isLit(b, 0)) return a;
  return call('-', (x) => `(${x[0]} - ${x[1]})`, [a, b], 'u32');
}
const bounds = new WeakMap<Expr, number>();

/**
 * An upper bound (exclusive) of an index expression's value, from the bounds of its variables; Infinity
 * when unknown (loaded values, subtractions, which may wrap, and anything not index arithmetic).
 */
export function boundOf(e: Expr): number {
  let b = bounds.get(e);
  if (b !== undefined) return b;
  if (e.k === 'lit') b = typeof e.v === 'number' && e.t === 'u32' ? e.v + 1 : Infinity;
  else if (e.k === 'var') b = e.bound ?? Infinity;
  else if (e.k !== 'call') b = Infinity;
  else {
    const [x, y] = e.args;
    switch (e.key) {
      case '+': b = boundOf(x!) + boundOf(y!) - 1; break;
      case '*': b = (boundOf(x!) - 1) * (boundOf(y!) - 1) + 1; break;
      case '/': b = Math.floor((boundOf(x!) - 1) / ((y as { v: number }).v)) + 1; break;
      case '%': b = Math.min(boundOf(x!), (y as { v: number }).v); break;
      case 'min': b = Math.min(boundOf(x!), boundOf(y!)); break;
      case 'select': b = Math.max(boundOf(x!), boundOf(y!)); break;
      default: b = Infinity;
    }
    if (Number.isNaN(b)) b = Infinity;
  }
  bounds.set(e, b);
  return b;
}

/** Largest value u32 index arithmetic holds: below it, an expression's u32 value is its integer value. */
const U32_END = 2 ** 32;

/** An index sum as terms factor × coefficient (factor null: the constant term). */
function termsOf(e: Expr, coef: number, out: [Expr | null, number][]): void {
  if (isLit(e)) out.push([null, (e.v as number) * coef]);
  else if (e.k === 'call' && e.key === '+') e.args.forEach((a) => termsOf(a, coef, out));
  else if (e.k === 'call' && e.key === '*' && isLit(e.args[1]!)) termsOf(e.args[0]!, coef * (e.args[1].v as number), out);
  else if (e.k === 'call' && e.key === '*' && isLit(e.args[0]!)) termsOf(e.args[1]!, coef * (e.args[0].v as number), out);
  else out.push([e, coef]);
}

/** The sum of terms. */
function sumOf(terms: [Expr | null, number][]): Expr {
  return terms.reduce<Expr>((acc, [f, c]) => add(acc, f ? mul(f, int(c)) : int(c)), int(0));
}

/**
 * Splits an index sum x (known not to wrap) into d·q + r, q and r sums of its terms: the terms whose
 * coefficients d divides go to q, the rest (and the constant's remainder) to r. Null when nothing moves.
 */
function splitBy(x: Expr, d: number): { q: Expr; r: Expr } | null {
  if (boundOf(x) > U32_END) return null;
  const terms: [Expr | null, number][] = [];
  termsOf(x, 1, terms);
  const q: [Expr | null, number][] = [], r: [Expr | null, number][] = [];
  for (const [f, c] of terms) {
    if (c === 0) continue;
    if (c % d === 0) q.push([f, c / d]);
    else if (f === null && c > d) {
      q.push([null, Math.floor(c / d)]);
      r.push([null, c % d]);
    } else r.push([f, c]);
  }
  return q.length ? { q: sumOf(q), r: sumOf(r) } : null;
}

/**
 * Index division by a positive constant. Simplified exactly for non-wrapping sums: floor((d·q + r) / d) =
 * q + floor(r / d), a value below d divides to 0, and floor(floor(x / a) / b) = floor(x / (a·b)) — so the
 * flat index of a reshaped or permuted view splits back into its coordinates without dividing.
 */
export function div(a: Expr, d: number): Expr {
  if (d === 1) return a;
  if (isLit(a)) return int(Math.floor((a.v as number) / d));
  if (boundOf(a) <= d) return int(0);
  if (a.k === 'call' && a.key === '/' && isLit(a.args[1]!) && (a.args[1].v as number) * d < U32_END) return div(a.args[0]!, (a.args[1].v as number) * d);
  const split = splitBy(a, d);
  if (split) return add(split.q, div(split.r, d));
  return call('/', (x) => `(${x[0]} / ${x[1]})`, [a, int(d)], 'u32');
}
/** Index remainder by a positive constant (simplified like `div`: (d·q + r) mod d = r mod d, x mod d = x below d). */
export function mod(a: Expr, d: number): Expr {
  if (d === 1) return int(0);
  if (isLit(a)) return int((a.v as number) % d);
  if (boundOf(a) <= d) return a;
  const split = splitBy(a, d);
  if (split) return mod(split.r, d);
  return call('%', (x) => `(${x[0]} % ${x[1]})`, [a, int(d)], 'u32');
}
/** Index comparison `a < b` (bool). */
export function lt(a: Expr, b: Expr): Expr {
  if (isLit(a) && isLit(b)) return lit((a.v as number) < (b.v as number), 'bool');
  return call('<', (x) => `(${x[0]} < ${x[1]})`, [a, b], 'bool');
}
/** bool conjunction with folding. */
export function and(a: Expr, b: Expr): Expr {
  if (a.k === 'lit' && a.v === true) return b;
  if (b.k === 'lit' && b.v === true) return a;
  return call('&&', (x) => `(${x[0]} && ${x[1]})`, [a, b], 'bool');
}
/** `select(f, t, c)` with folding. */
export function select(f: Expr, t: Expr, c: Expr): Expr {
  if (c.k === 'lit') return c.v ? t : f;
  return call('select', (x) => `select(${x[0]}, ${x[1]}, ${x[2]})`, [f, t, c], t.t);
}
/** Clamps an index into [0, n-1] (a wrapped negative index becomes n-1; callers mask it). */
export function clampIdx(a: Expr, n: number): Expr {
  if (isLit(a)) return int(Math.min(Math.max(a.v as number, 0), Math.max(n - 1, 0)));
  // a size-1 axis has the one index 0, and an index known to be below n needs no clamp: without these
  // folds equal indices reached along different paths print differently and defeat CSE
  if (n <= 1) return int(0);
  if (boundOf(a) <= n) return a;
  return call('min', (x) => `min(${x[0]}, ${x[1]})`, [a, int(Math.max(n - 1, 0))], 'u32');
}

/** WGSL text of a literal of type t. */
export function litText(value: number | boolean, t: VT): string {
  if (t === 'bool') return value ? 'true' : 'false';
  const n = Number(value);
  if (t === 'i32') return `${n | 0}`;
  if (t === 'u32') return `${n >>> 0}u`;
  if (Number.isNaN(n)) return 'kiln_nan()';
  if (n === Infinity) return 'kiln_inf()';
  if (n === -Infinity) return '(-kiln_inf())';
  const f = Math.fround(n);
  if (Object.is(f, -0)) return '-0.0';
  let s = f.toString();
  if (!/[.e]/.test(s)) s += '.0';
  return s.startsWith('-') ? `(${s})` : s;
}

/**
 * A short structural key of an expression: equal keys mean equal values. Children are referred to by
 * their interned ids, so keys stay short however deep the expression is.
 */
function keyOf(e: Expr, memo: Map<Expr, string>, intern: Map<string, string>): string {
  const cached = memo.get(e);
  if (cached) return cached;
  let k: string;
  switch (e.k) {
    case 'lit': k = `${e.t}:${String(e.v)}`; break;
    case 'param': k = `p${e.slot}`; break;
    case 'var': k = `$${e.name}`; break;
    case 'load': k = `L${e.slot}${e.half ? 'h' : ''}${e.bool ? 'b' : ''}[${keyOf(e.idx, memo, intern)}]`; break;
    case 'call': k = `${e.key}(${e.args.map((a) => keyOf(a, memo, intern)).join(',')})`; break;
  }
  let id = intern.get(k);
  if (id === undefined) intern.set(k, (id = `#${intern.size}`));
  memo.set(e, id);
  return id;
}

/** WGSL spelling of a value type. */
export function vtText(t: VT): string {
  return t === 'vec4u' ? 'vec4<u32>' : t;
}

const f32w = new Float32Array(1);
const u32w = new Uint32Array(f32w.buffer);

/**
 * The index constants of one kernel (sizes, strides, offsets, divisors). Lifted, they are read from the
 * kernel's uniforms instead of being baked into its source, so kernels that differ only in sizes share one
 * pipeline. A division by a lifted divisor multiplies by its float reciprocal: while every dividend is below
 * FAST_DIV_LIMIT the reciprocal is rounded up by two ulps and the truncated product is the quotient; below
 * LIFT_LIMIT the quotient is corrected by one each way (`kiln_udiv`); kernels that index more elements
 * bake their constants.
 */
export class IndexConstants {
  /** The uniform words of the lifted constants, after the kernel's own run-time scalars. */
  readonly words: number[] = [];

  /** `bound`: every dividend of the kernel is below it. */
  constructor(readonly base: number, readonly lift: boolean, readonly bound = LIFT_LIMIT) {}

  private word(bits: number): string {
    const i = this.base + this.words.length;
    this.words.push(bits >>> 0);
    return `p.v[${i >> 2}].${'xyzw'[i & 3]}`;
  }

  /** Words already given to a named constant (a name is structural, never a value) and the value it holds. */
  private readonly named = new Map<string, { text: string; value: number }>();

  private once(name: string | undefined, value: number, make: () => string): string {
    if (name === undefined) return make();
    const known = this.named.get(name);
    if (!known) return this.named.set(name, { text: make(), value }).get(name)!.text;
    if (known.value !== value) throw new Error(`kiln internal error: index constant '${name}' is ${known.value} and ${value}`);
    return known.text;
  }

  /** An index constant (one word per name when named). */
  u32(n: number, name?: string): string {
    return this.lift ? this.once(name, n, () => this.word(n)) : `${n >>> 0}u`;
  }

  /** `x / d` for a positive constant d. */
  div(x: string, d: number, name?: string): string {
    if (!this.lift) return `(${x} / ${d >>> 0}u)`;
    const fast = this.bound <= FAST_DIV_LIMIT;
    const dw = fast ? '' : this.u32(d, name);
    const rw = this.once(name === undefined ? undefined : `${name}/r`, d, () => {
      f32w[0] = 1 / d;
      if (fast) u32w[0]! += 2;
      return `bitcast<f32>(${this.word(u32w[0]!)})`;
    });
    return fast ? `u32(f32(${x}) * ${rw})` : `kiln_udiv(${x}, ${dw}, ${rw})`;
  }

  /** `x % d` for a positive constant d (`x` appears twice in the text when lifted: pass a name or a cheap expression). */
  mod(x: string, d: number, name?: string): string {
    if (!this.lift) return `(${x} % ${d >>> 0}u)`;
    return `(${x} - ${this.div(x, d, name)} * ${this.u32(d, name)})`;
  }

  /** The helper a kernel's source needs for its lifted divisions. */
  helperFor(code: string): string {
    return code.includes('kiln_udiv(') ? UDIV_HELPER : '';
  }
}

/** Division by a lifted divisor d with reciprocal r = f32(1/d): exact for n < 2^24 (see IndexConstants). */
export const UDIV_HELPER = `fn kiln_udiv(n: u32, d: u32, r: f32) -> u32 {
  var q = u32(i32(f32(i32(n)) * r));
  let m = i32(n - q * d);
  q = select(q, q - 1u, m < 0);
  return select(q, q + 1u, m >= i32(d));
}`;

/** Dividends below this are exact in `kiln_udiv`. */
export const LIFT_LIMIT = 2 ** 24;
/**
 * Dividends below this are exact as the truncated product with the reciprocal rounded up by two ulps (the
 * product then exceeds n/d by less than 1/d; tested exhaustively for small divisors in tests/node).
 */
export const FAST_DIV_LIMIT = 2 ** 21;

/**
 * Prints expressions as WGSL `let` statements with CSE. Child emitters (loop bodies) see the names
 * of their parent but add statements to their own block.
 */
export class Emitter {
  readonly lines: string[] = [];
  private names: Map<string, string>;
  private keys: Map<Expr, string>;
  private intern: Map<string, string>;

  constructor(
    private readonly consts = new IndexConstants(0, false),
    private readonly counter = { n: 0 },
    parent?: Emitter,
    private readonly indent = '  ',
  ) {
    this.names = new Map(parent?.names ?? []);
    this.keys = parent?.keys ?? new Map();
    this.intern = parent?.intern ?? new Map();
  }

  /** A nested block (e.g. a loop body) sharing this block's names. */
  child(indent = this.indent + '  '): Emitter {
    return new Emitter(this.consts, this.counter, this, indent);
  }

  /** Emits `e` and returns WGSL text naming its value. */
  emit(e: Expr): string {
    switch (e.k) {
      case 'lit': return e.t === 'u32' ? this.consts.u32(Number(e.v)) : litText(e.v, e.t);
      case 'var': return e.name;
      case 'param': {
        const word = `p.v[${e.slot >> 2}].${'xyzw'[e.slot & 3]}`;
        return e.t === 'u32' ? word : e.t === 'bool' ? `(${word} != 0u)` : `bitcast<${e.t}>(${word})`;
      }
      default: break;
    }
    const key = keyOf(e, this.keys, this.intern);
    const known = this.names.get(key);
    if (known) return known;
    let text: string;
    if (e.k === 'load') {
      const raw = `B${e.slot}[${this.emit(e.idx)}]`;
      text = e.half ? `f32(${raw})` : e.bool ? `(${raw} != 0u)` : raw;
    } else if ((e.key === '/' || e.key === '%') && isLit(e.args[1]!)) {
      // index division by a constant: through the constants, so a lifted divisor stays exact
      const x = this.emit(e.args[0]!), d = e.args[1].v as number;
      text = e.key === '/' ? this.consts.div(x, d)
        : this.consts.lift ? `(${x} - ${this.emit(div(e.args[0]!, d))} * ${this.consts.u32(d)})`
        : `(${x} % ${d >>> 0}u)`;
    } else {
      text = e.f(e.args.map((a) => this.emit(a)));
    }
    const name = `v${this.counter.n++}`;
    this.lines.push(`${this.indent}let ${name}: ${vtText(e.t)} = ${text};`);
    this.names.set(key, name);
    return name;
  }

  /** Adds a raw statement. */
  stmt(s: string): void {
    this.lines.push(this.indent + s);
  }
}

/** `e` with the loads of the `slots` replaced by the arguments x<slot>. */
export function loadsAsArguments(e: Expr, slots: Set<number>, memo: Map<Expr, Expr>): Expr {
  let r = memo.get(e);
  if (r) return r;
  if (e.k === 'load' && slots.has(e.slot)) r = v(`x${e.slot}`, 'f32');
  else if (e.k === 'call') {
    const args = e.args.map((a) => loadsAsArguments(a, slots, memo));
    r = args.every((a, i) => a === e.args[i]) ? e : { ...e, args };
  } else r = e;
  memo.set(e, r);
  return r;
}

/** Whether `e` is a literal multiple of 4. */
export const litMultipleOf4 = (e: Expr): boolean => e.k === 'lit' && typeof e.v === 'number' && e.v % 4 === 0;

/**
 * Whether `e` has the same value at v, v+1, v+2 and v+3 (v the index variable `name`) for every v that is a
 * multiple of 4: it does not use v, or only as v / D with D a multiple of 4.
 */
export function fixedOverFour(e: Expr, name: string): boolean {
  if (e.k === 'var') return e.name !== name;
  if (e.k === 'load') return fixedOverFour(e.idx, name);
  if (e.k !== 'call') return true;
  const [x, d] = e.args;
  if (e.key === '/' && x?.k === 'var' && x.name === name && d !== undefined && litMultipleOf4(d)) return true;
  return e.args.every((a) => fixedOverFour(a, name));
}

/** The input slots loaded in `roots` whose every load satisfies `ok` (each load node is tested once). */
export function slotsWhereEveryLoad(roots: Expr[], ok: (load: Extract<Expr, { k: 'load' }>) => boolean): Set<number> {
  const every = new Map<number, boolean>();
  const seen = new Set<Expr>();
  const walk = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    if (e.k === 'load') {
      every.set(e.slot, (every.get(e.slot) ?? true) && ok(e));
      walk(e.idx);
    } else if (e.k === 'call') e.args.forEach(walk);
  };
  roots.forEach(walk);
  return new Set([...every].filter(([, all]) => all).map(([slot]) => slot));
}
