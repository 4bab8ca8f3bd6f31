/**
 * Index math simplification (src/wgsl/ir.ts): chains of views split flat indices into coordinates and
 * join them again; `div` and `mod` cancel what they can. Checked against plain integer arithmetic on the
 * same chains, evaluating the simplified expressions with u32 semantics (no GPU needed).
 */
import { describe, expect, it } from 'vitest';
import * as ir from '../../src/wgsl/ir.ts';
import type { Expr } from '../../src/wgsl/ir.ts';

/** Evaluates an index expression as WGSL would (u32 wrapping arithmetic). */
function evaluate(e: Expr, env: Record<string, number>): number {
  switch (e.k) {
    case 'lit': return Number(e.v) >>> 0;
    case 'var': return env[e.name]!;
    case 'call': {
      const [a, b] = e.args.map((x) => evaluate(x, env)) as [number, number];
      switch (e.key) {
        case '+': return (a + b) >>> 0;
        case '-': return (a - b) >>> 0;
        case '*': return Math.imul(a, b) >>> 0;
        case '/': return Math.floor(a / b);
        case '%': return a % b;
        case 'min': return Math.min(a, b);
        default: throw new Error(`unexpected ${e.key}`);
      }
    }
    default: throw new Error(`unexpected ${e.k}`);
  }
}

/** Counts the divisions and remainders left in an expression. */
function divisions(e: Expr): number {
  return e.k === 'call' ? (e.key === '/' || e.key === '%' ? 1 : 0) + e.args.reduce((n, a) => n + divisions(a), 0) : 0;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A random shape with product n (n's factors grouped at random). */
function shapeOf(n: number, rand: () => number): number[] {
  const f: number[] = [];
  for (let p = 2, m = n; m > 1; ) if (m % p === 0) (f.push(p), (m /= p)); else p++;
  const shape: number[] = [];
  for (const p of f) if (shape.length && rand() < 0.5) shape[shape.length - 1]! *= p; else shape.push(p);
  return shape.sort(() => rand() - 0.5);
}

/** Division and remainder as they were before simplification: always a division. */
const raw = {
  div: (a: Expr, d: number) => (d === 1 ? a : ir.call('/', (x) => `(${x[0]} / ${x[1]})`, [a, ir.int(d)], 'u32')),
  mod: (a: Expr, d: number) => ir.call('%', (x) => `(${x[0]} % ${x[1]})`, [a, ir.int(d)], 'u32'),
};

/** Coordinates of a flat index in a shape (expressions and numbers side by side). */
function split(flat: Expr, x: number, shape: number[], ops: { div: typeof ir.div; mod: typeof ir.mod } = ir): [Expr, number][] {
  let inner = shape.reduce((a, b) => a * b, 1);
  return shape.map((d, i) => {
    inner /= d;
    const q = ops.div(flat, inner);
    return [i === 0 ? q : ops.mod(q, d), Math.floor(x / inner) % d];
  });
}

/** The flat index of coordinates, permuted, in the permuted shape. */
function join(coords: [Expr, number][], shape: number[], perm: number[]): [Expr, number] {
  let e: Expr = ir.int(0), x = 0;
  for (const i of perm) {
    e = ir.add(ir.mul(e, ir.int(shape[i]!)), coords[i]![0]);
    x = x * shape[i]! + coords[i]![1];
  }
  return [e, x];
}

describe('index math', () => {
  it('reshape and permute chains keep their values, with fewer divisions', () => {
    const rand = lcg(7);
    let before = 0, after = 0;
    for (let trial = 0; trial < 300; trial++) {
      const n = [12, 60, 210, 1024, 3 * 5 * 7 * 8, 2 * 9 * 25][trial % 6]!;
      const gid = ir.v('gid', 'u32', n);
      const shapes = [shapeOf(n, rand), shapeOf(n, rand), shapeOf(n, rand)];
      const perms = shapes.map((s) => s.map((_, i) => i).sort(() => rand() - 0.5));
      for (let x = 0; x < n; x += Math.max(1, Math.floor(n / 97))) {
        let flat: [Expr, number] = [gid, x];
        for (let s = 0; s < shapes.length; s++) {
          const coords = split(flat[0], flat[1], shapes[s]!);
          const joined = join(coords, shapes[s]!, perms[s]!);
          expect(evaluate(joined[0], { gid: x })).toBe(joined[1]);
          flat = joined;
        }
      }
      // the divisions left, against the same chain built without simplification
      let flat: Expr = gid, plain: Expr = gid;
      for (let s = 0; s < shapes.length; s++) {
        flat = join(split(flat, 0, shapes[s]!), shapes[s]!, perms[s]!)[0];
        plain = join(split(plain, 0, shapes[s]!, raw), shapes[s]!, perms[s]!)[0];
      }
      after += divisions(flat);
      before += divisions(plain);
    }
    expect(after).toBeLessThan(before * 0.5);
  });

  it('splitting a joined index returns the coordinates without dividing', () => {
    const [a, b, c] = [ir.v('a', 'u32', 7), ir.v('b', 'u32', 5), ir.v('c', 'u32', 3)];
    const flat = ir.add(ir.add(ir.mul(a, ir.int(15)), ir.mul(b, ir.int(3))), c);
    expect(ir.div(flat, 15)).toBe(a);
    expect(ir.mod(ir.div(flat, 3), 5)).toBe(b);
    expect(ir.mod(flat, 3)).toBe(c);
    const x = ir.v('x', 'u32', 1000), q = ir.div(ir.div(x, 4), 5);
    expect(q.k === 'call' && q.key === '/' && q.args[0] === x && q.args[1]!.k === 'lit' && q.args[1]!.v === 20).toBe(true);
  });

  it('leaves alone what may wrap or is unbounded', () => {
    const x = ir.v('x');
    expect(divisions(ir.div(ir.add(ir.mul(x, ir.int(6)), ir.int(1)), 3))).toBe(1);
    // a subtraction may wrap below zero: (y − 1) · 4 / 4 is not y − 1 when y = 0
    const y = ir.v('y', 'u32', 10);
    const e = ir.div(ir.mul(ir.sub(y, ir.int(1)), ir.int(4)), 4);
    expect(evaluate(e, { y: 0 })).toBe(Math.floor(((0 - 1) >>> 0) * 4 % 2 ** 32 / 4));
  });
});
