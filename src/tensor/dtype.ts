/** Host-side dtype rules: promotion, coercion of JS numbers, half-precision encoding. */
import { type DType, DTYPES } from '../wgsl/dtype.js';

export { type DType, DTYPES, byteSize, wgslType, wgslStorageType } from '../wgsl/dtype.js';

/** Any typed array kiln hands back from `data()`. */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array;

/** True for floating-point dtypes. */
export function isFloat(dt: DType): boolean {
  return dt === 'f32' || dt === 'f16';
}

const RANK: Record<DType, number> = { bool: 0, u32: 1, i32: 2, f16: 3, f32: 4 };

/** Result dtype of a binary arithmetic op (PyTorch-like: float beats int, wider float wins). */
export function promote(a: DType, b: DType): DType {
  if (a === b) return a;
  if ((a === 'u32' && b === 'i32') || (a === 'i32' && b === 'u32')) return 'i32';
  return RANK[a] >= RANK[b] ? a : b;
}

/** Checks a user-supplied dtype name and returns it typed. */
export function checkDType(dt: unknown, op: string): DType {
  if (typeof dt === 'string' && (DTYPES as readonly string[]).includes(dt)) return dt as DType;
  throw new TypeError(`${op}: unknown dtype ${JSON.stringify(dt)}; expected one of ${DTYPES.join(', ')}`);
}

/** Converts a JS number to the value a tensor of `dt` holds (rounding to f32, truncating ints). */
export function coerce(v: number, dt: DType): number {
  switch (dt) {
    case 'f32': return Math.fround(v);
    case 'f16': return f16Round(v);
    case 'i32': return Number.isFinite(v) ? Math.trunc(v) | 0 : 0;
    case 'u32': return Number.isFinite(v) ? Math.trunc(v) >>> 0 : 0;
    case 'bool': return v || Number.isNaN(v) ? 1 : 0; // NaN is truthy, like PyTorch
  }
}

/** Typed array for reading back `n` values of `dt` (f16 reads back as f32, bool as 0/1 bytes). */
export function allocHostArray(dt: DType, n: number): Float32Array | Int32Array | Uint32Array | Uint8Array {
  switch (dt) {
    case 'f32': case 'f16': return new Float32Array(n);
    case 'i32': return new Int32Array(n);
    case 'u32': return new Uint32Array(n);
    case 'bool': return new Uint8Array(n);
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Rounds a number to the nearest IEEE half (round-to-nearest-even), returned as a JS number. */
export function f16Round(v: number): number {
  return halfToFloat(floatToHalf(v));
}

/** Encodes a number as IEEE binary16 bits (round to nearest even). */
export function floatToHalf(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** Decodes IEEE binary16 bits to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
