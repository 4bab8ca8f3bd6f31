/**
 * Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
 * The same algorithm is implemented here in TypeScript (the CPU reference) and in WGSL (PHILOX_WGSL), so a
 * (key, counter) pair gives the same four u32 words on the CPU, in Node and in the browser.
 *
 * kiln's streams: element i of the n-th random call after `manualSeed(seed)` uses
 *   key = (seed mod 2^32, floor(seed / 2^32)), counter = (i, n, 0, 0).
 * Uniform floats are `(w0 >> 8) · 2^-24` (exact in f32, so bit-identical everywhere).
 * Normals use Box–Muller on (w0, w1): sqrt(-2 ln(1-u0)) · cos(2π u1) — these go through the driver's
 * log/sqrt/cos and agree across drivers only to their rounding.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 values. */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of counter (c0..c3) under key (k0, k1); returns four u32 words. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  c0 >>>= 0; c1 >>>= 0; c2 >>>= 0; c3 >>>= 0; k0 >>>= 0; k1 >>>= 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + W0) >>> 0; k1 = (k1 + W1) >>> 0; }
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0, n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** Splits a seed (a non-negative integer below 2^53) into the two key words. */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed: seed must be a non-negative safe integer, got ${seed}`);
  return [seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

/** The uniform float in [0, 1) made from a random word, exactly as the WGSL kernels make it. */
export function uniformFromBits(w: number): number {
  return (w >>> 8) * 2 ** -24;
}

/** A standard normal from two words (Box–Muller), in float64, mirroring the WGSL formula. */
export function normalFromBits(w0: number, w1: number): number {
  const u0 = 1 - uniformFromBits(w0);
  const u1 = uniformFromBits(w1);
  return -Math.sqrt(-2 * Math.log(u0)) * Math.cos(2 * Math.PI * (u1 - 0.5));
}

/** WGSL helpers: `kiln_philox(ctr, key) -> vec4<u32>`, uniform and normal conversions. */
export const PHILOX_WGSL = /* wgsl */ `
fn kiln_mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let lh = al * bh; let hl = ah * bl; let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}
fn kiln_philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = ctr; var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u); }
    let hi0 = kiln_mulhi(0xd2511f53u, c.x); let lo0 = 0xd2511f53u * c.x;
    let hi1 = kiln_mulhi(0xcd9e8d57u, c.z); let lo1 = 0xcd9e8d57u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}
fn kiln_uniform(w: u32) -> f32 { return f32(w >> 8u) * 5.9604644775390625e-8; }
fn kiln_normal(w0: u32, w1: u32) -> f32 {
  let u0 = 1.0 - kiln_uniform(w0);
  let u1 = kiln_uniform(w1);
  return -sqrt(-2.0 * log(u0)) * cos(6.283185307179586 * (u1 - 0.5));
}
`;
