/**
 * Concurrency and a device that survives (issue 17, items 1 and 2): overlapping async scopes and noGrad
 * calls stay apart (AsyncLocalStorage), seeded samplers running at once match sequential runs bit for bit,
 * sizes beyond u32 indexing or the adapter's bindings are clear errors before any GPU work, a kernel that
 * fails to compile is reported once and leaves the device usable, and a lost device is recovered by init().
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { gpu } from '../../src/wgsl/device.ts';

const D = k.diffusion;

beforeAll(async () => {
  await k.init();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('async scopes under concurrency', () => {
  it('two async scopes under Promise.all keep their results (5 trials, either finishing first)', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const job = (v: number, delays: number[]) => k.scope(async () => {
        let x = k.tensor([v, v + 1]);
        for (const d of delays) {
          await sleep(d);
          x = x.mul(2).add(1); // intermediates: freed by this scope, never by the other
        }
        const junk = x.mul(3);
        await junk.data();
        return x;
      });
      const [a, b] = await Promise.all([job(1, trial % 2 ? [1, 6, 1] : [4, 1, 4]), job(10, trial % 2 ? [3, 1, 3] : [1, 5, 1])]);
      expect(a.disposed).toBe(false);
      expect(b.disposed).toBe(false);
      expect(Array.from(await a.data())).toEqual([15, 23]);
      expect(Array.from(await b.data())).toEqual([87, 95]);
      a.dispose();
      b.dispose();
    }
  });

  it('a tensor created outside while an async scope is pending survives the scope', async () => {
    const pending = k.scope(async () => {
      const t = k.tensor([1, 2, 3]).mul(2);
      await sleep(5);
      const u = t.add(1);
      await u.data();
      return (await u.sum().item()) as number;
    });
    const outside = k.tensor([7, 8]);
    await sleep(1);
    const alsoOutside = outside.add(1);
    expect(await pending).toBe(15);
    expect(outside.disposed).toBe(false);
    expect(alsoOutside.disposed).toBe(false);
    expect(Array.from(await alsoOutside.data())).toEqual([8, 9]);
    outside.dispose();
    alsoOutside.dispose();
  });

  it('overlapping async scopes free all their intermediates (live buffers return to the baseline)', async () => {
    await k.synchronize();
    const before = k.memory().liveBuffers;
    const job = (seed: number) => k.scope(async () => {
      let x = k.randn([64], { generator: new k.Generator(seed) });
      for (let i = 0; i < 5; i++) {
        x = x.tanh().mul(1.5);
        await x.data();
        await sleep(seed % 3);
      }
      return (await x.sum().item()) as number;
    });
    await Promise.all([job(1), job(2), job(3), job(4)]);
    expect(k.memory().liveBuffers).toBe(before);
  });

  it('nested async scopes inside overlapping ones hand results to their own parent', async () => {
    const job = (v: number) => k.scope(async () => {
      const inner = await k.scope(async () => {
        await sleep(v);
        return k.tensor([v]).mul(10);
      });
      await sleep(3 - v);
      return inner.add(1);
    });
    const [a, b] = await Promise.all([job(1), job(2)]);
    expect(Array.from(await a.data())).toEqual([11]);
    expect(Array.from(await b.data())).toEqual([21]);
    a.dispose();
    b.dispose();
  });
});

describe('grad mode under concurrency', () => {
  it('two overlapping async noGrad calls leave recording on, and a concurrent caller keeps its own mode', async () => {
    const seen: boolean[] = [];
    const off = (ms: number) => k.noGrad(async () => {
      seen.push(k.isGradEnabled());
      await sleep(ms);
      seen.push(k.isGradEnabled());
    });
    const on = async () => {
      await sleep(2);
      // recording is on here although two noGrad calls are pending around this await
      const w = k.tensor([1, 2, 3], { requiresGrad: true });
      const loss = w.mul(w).sum();
      loss.backward();
      const g = Array.from(await w.grad!.data());
      w.dispose();
      loss.dispose();
      return g;
    };
    const [, , grad] = await Promise.all([off(5), off(1), on()]);
    expect(seen).toEqual([false, false, false, false]);
    expect(grad).toEqual([2, 4, 6]);
    expect(k.isGradEnabled()).toBe(true);
    const w = k.tensor([3], { requiresGrad: true });
    const y = w.mul(w).sum();
    y.backward();
    expect(Array.from(await w.grad!.data())).toEqual([6]);
    w.dispose();
    y.dispose();
  });

  it('a noGrad that throws restores the mode', () => {
    expect(() => k.noGrad(() => { throw new Error('boom'); })).toThrow('boom');
    expect(k.isGradEnabled()).toBe(true);
  });
});

describe('generators', () => {
  it('a Generator gives the global stream of the same seed, without moving the global generator', async () => {
    k.manualSeed(5);
    const ref = await k.randn([8]).data();
    const refInt = await k.randint(0, 100, [8]).data();
    k.manualSeed(123);
    const before = k.getRngState();
    const g = new k.Generator(5);
    expect(Array.from(await k.randn([8], { generator: g }).data())).toEqual(Array.from(ref));
    expect(Array.from(await k.randint(0, 100, [8], { generator: g }).data())).toEqual(Array.from(refInt));
    expect(g.getState()).toEqual({ seed: 5, counter: 2 });
    expect(k.getRngState()).toEqual(before);
    const h = k.randomHost('uniform', 4, [0, 1], new k.Generator(5));
    k.manualSeed(5);
    expect(Array.from(await k.rand([4]).data())).toEqual(Array.from(h).map(Math.fround));
  });

  it('two euler_ancestral samplers at once with seeds give the sequential samples, bit for bit', async () => {
    const process = new D.DiscreteVP();
    const mix = new D.GaussianMixture([0.3, 0.7], [[-1], [2]], [0.5, 0.3]);
    const path = D.samplingPath(process, { steps: 12 });
    const run = (seed: number, jitter: number) => k.scope(async () => {
      const noise = k.randn([16, 1], { generator: new k.Generator(seed + 1000) });
      const model = mix.model(process);
      const slow: k.diffusion.Model = (x, t) => model(x, t);
      const { x } = await D.sample({
        model: slow, prediction: 'x0', process, path, noise, sampler: 'euler_ancestral', seed,
        onStep: async () => { await sleep(jitter); },
      });
      const v = Array.from(await x.data());
      x.dispose();
      return v;
    });
    const a = await run(1, 0);
    const b = await run(2, 0);
    k.manualSeed(0);
    const [a2, b2] = await Promise.all([run(1, 2), run(2, 1)]);
    expect(a2).toEqual(a);
    expect(b2).toEqual(b);
    expect(a).not.toEqual(b);
    expect(a.every(Number.isFinite)).toBe(true);
    // the samplers did not draw from the global generator
    expect(k.getRngState()).toEqual({ seed: 0, counter: 0 });
  });
});

describe('kernels that cannot be invalid', () => {
  it('a tensor beyond u32 indexing is a clear error at the call site, and the device keeps working', async () => {
    expect(() => k.zeros([1e6, 1e4]).sum()).toThrow(/10000000000 elements.*4294967295/);
    expect(() => k.ones([1e5, 1]).mul(k.ones([1, 1e5]))).toThrow(/10000000000 elements/);
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
  });

  it('a result larger than the adapter\'s storage binding fails at realization, naming the op, before any GPU work', async () => {
    const limit = k.deviceInfo().limits.maxStorageBufferBindingSize;
    const n = Math.min(2 ** 32 - 1, Math.floor(limit / 4) + 1024);
    const big = k.zeros([n]).add(1);
    await expect(big.data()).rejects.toThrow(/add: .*maxStorageBufferBindingSize/);
    big.dispose();
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
  });

  it('a kernel that fails to compile is reported once, naming its op, and does not poison later work', async () => {
    const bad = k.defineOp({ name: 'broken_op_for_test', arity: 1, float: true, wgsl: '($0 + undefined_identifier)', ref: (x) => x });
    const y = bad(k.tensor([1, 2, 3]));
    const err = await y.data().then(() => null, (e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/broken_op_for_test.*failed to compile/s);
    // a result that depended on the failed kernel says so instead of reading garbage
    await expect(y.add(1).data()).rejects.toThrow(/failed/);
    // everything else works, in the same process, without init()
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
    const z = k.tensor([[1, 2], [3, 4]]).matmul(k.tensor([[1], [1]]));
    expect(Array.from(await z.data())).toEqual([3, 7]);
  });
});

describe('a lost device', () => {
  it('is reported as lost, and init() recovers without a restart', async () => {
    const t = k.tensor([1, 2, 3]);
    await t.data();
    const dev = gpu().device;
    dev.destroy(); // as if the driver had reset
    await dev.lost;
    expect(() => k.tensor([1, 2])).toThrow(/device was lost.*k\.init\(\)/s);
    await expect(t.add(1).data()).rejects.toThrow(/device was lost/);
    await k.init();
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
    t.dispose(); // a tensor of the lost device is dropped without touching the new one
    const live = k.memory().liveBuffers;
    const u = k.scope(() => k.tensor([4, 5]).mul(2));
    expect(Array.from(await u.data())).toEqual([8, 10]);
    u.dispose();
    expect(k.memory().liveBuffers).toBe(live);
  });
});
