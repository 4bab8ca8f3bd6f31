/** Helpers shared by the Node test files (independent of kiln's own generator and tolerances). */
import { expect } from 'vitest';

/** Deterministic values in [lo, hi) from an LCG (independent of kiln's generator). */
export function values(n: number, seed: number, lo = -1.5, hi = 1.5): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((s >>> 8) / 2 ** 24) * (hi - lo);
  });
}

/** Rounds to float32, so inputs given to kiln and to the references are the same numbers. */
export const f32 = (xs: number[]): number[] => Array.from(Float32Array.from(xs));

/** Asserts |got − want| ≤ atol + rtol·|want| elementwise, naming the first failing index. */
export function close(got: ArrayLike<number>, want: ArrayLike<number>, atol = 1e-5, rtol = 1e-5, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = atol + rtol * Math.abs(want[i]!);
    if (!(Math.abs(got[i]! - want[i]!) <= tol)) throw new Error(`${what}[${i}]: got ${got[i]}, expected ${want[i]} (tol ${tol})`);
  }
}
