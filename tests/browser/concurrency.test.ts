/**
 * Concurrency in Chromium, which has no async context: async scopes that run one after the other or are
 * nested (awaited) are exact; two async scopes pending at once are detected and end with a clear error
 * that frees nothing (never each other's results); overlapping noGrad calls leave recording on; seeded
 * samplers running at once match sequential runs bit for bit; a size beyond u32 indexing is a clear error
 * and the device keeps working.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';

const D = k.diffusion;

beforeAll(async () => {
  await k.init();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('async scopes without async context', () => {
  it('async scopes one after the other, and nested ones after an await, free their intermediates', async () => {
    await k.synchronize();
    const before = k.memory().liveBuffers;
    const results: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await k.scope(async () => {
        let x = k.tensor([i, i + 1]);
        await sleep(1);
        const inner = await k.scope(async () => {
          await sleep(1);
          return x.mul(2).add(1);
        });
        x = inner.add(x);
        await x.data();
        return x;
      });
      results.push(...Array.from(await r.data()));
      r.dispose();
    }
    expect(results).toEqual([1, 4, 4, 7, 7, 10]);
    expect(k.memory().liveBuffers).toBe(before);
  });

  it('a tensor created outside, in the turn that started an async scope, survives it', async () => {
    const pending = k.scope(async () => {
      await sleep(2);
      const t = k.tensor([1, 2, 3]).mul(2);
      return (await t.sum().item()) as number;
    });
    const outside = k.tensor([7, 8]);
    expect(await pending).toBe(12);
    expect(outside.disposed).toBe(false);
    expect(Array.from(await outside.data())).toEqual([7, 8]);
    outside.dispose();
  });

  it('two async scopes under Promise.all are detected: a clear error, and neither frees the other\'s tensors', async () => {
    const job = (v: number) => k.scope(async () => {
      const x = k.tensor([v]);
      await sleep(2);
      const y = x.add(1);
      await y.data();
      return y;
    });
    const settled = await Promise.allSettled([job(1), job(2)]);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect(String((s as PromiseRejectedResult).reason)).toMatch(/interleaved.*await each async scope before starting the next/s);
    }
    // the device and later scopes work
    const r = await k.scope(async () => k.tensor([1, 2]).add(1));
    expect(Array.from(await r.data())).toEqual([2, 3]);
    r.dispose();
  });

  it('two overlapping async noGrad calls leave recording on', async () => {
    const seen: boolean[] = [];
    const off = (ms: number) => k.noGrad(async () => {
      seen.push(k.isGradEnabled());
      await sleep(ms);
      seen.push(k.isGradEnabled());
    });
    await Promise.all([off(4), off(1)]);
    expect(seen).toEqual([false, false, false, false]);
    expect(k.isGradEnabled()).toBe(true);
    const w = k.tensor([3], { requiresGrad: true });
    const y = w.mul(w).sum();
    y.backward();
    expect(Array.from(await w.grad!.data())).toEqual([6]);
  });

  it('two euler_ancestral samplers at once with seeds give the sequential samples, bit for bit', async () => {
    const process = new D.DiscreteVP();
    const mix = new D.GaussianMixture([0.3, 0.7], [[-1], [2]], [0.5, 0.3]);
    const path = D.samplingPath(process, { steps: 8 });
    const run = async (seed: number, jitter: number) => {
      const noise = k.randn([8, 1], { generator: new k.Generator(seed + 1000) });
      const { x } = await D.sample({ model: mix.model(process), prediction: 'x0', process, path, noise, sampler: 'euler_ancestral', seed, onStep: async () => { await sleep(jitter); } });
      const v = Array.from(await x.data());
      x.dispose();
      noise.dispose();
      return v;
    };
    const a = await run(1, 0);
    const b = await run(2, 0);
    const [a2, b2] = await Promise.all([run(1, 2), run(2, 1)]);
    expect(a2).toEqual(a);
    expect(b2).toEqual(b);
  });
});

describe('a device that survives', () => {
  it('a tensor beyond u32 indexing is a clear error, and the next op works', async () => {
    expect(() => k.zeros([1e6, 1e4]).sum()).toThrow(/4294967295/);
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
  });
});
