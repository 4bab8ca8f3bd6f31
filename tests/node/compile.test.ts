/**
 * k.compile / k.perCall: a compiled step (traced, then replayed without running its JavaScript) gives the
 * same bits as the same step run eagerly — trainers (classifier, diffusion with host-drawn times, label
 * dropout, EMA, clipping and schedules), a sampler-like loop with per-call scalars and GPU random draws —
 * follows tensors changed outside it, retraces for new argument shapes, rejects what it could not replay
 * with a message naming the function, keeps memory flat over replays and resumes from checkpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as k from '../../src/index.ts';
import type { Tensor } from '../../src/index.ts';

let dir = '';
beforeAll(async () => {
  await k.init();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-compile-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The compiled update of a trainer (private: reached to check that it really replayed). */
function compiledStats(trainer: k.train.Trainer<unknown>): k.CompileStats {
  const steps = (trainer as unknown as { compiledSteps: k.CompiledFunction<never[], unknown>[] }).compiledSteps;
  expect(steps.length).toBeGreaterThan(0);
  return steps[0]!.stats;
}

/** Frees what a trainer holds on the GPU (this file shares its process with the other test files). */
function release(trainer: k.train.ClassifierTrainer | k.train.DiffusionTrainer): void {
  for (const t of Object.values(trainer.opt.stateDict().tensors)) t.dispose();
  for (const p of trainer.model.parameters()) p.dispose();
  for (const c of (trainer as unknown as { compiledSteps: k.CompiledFunction<never[], unknown>[] }).compiledSteps) c.reset();
}

/** Values of tensors as Float32Arrays (copies). */
async function values(ts: Iterable<Tensor>): Promise<Float32Array[]> {
  return Promise.all([...ts].map(async (t) => Float32Array.from((await t.data()) as Float32Array)));
}

/** The first place two lists of arrays differ bit for bit (Object.is on every value), or null. */
function firstDifference(a: ArrayLike<number>[], b: ArrayLike<number>[], names?: string[]): string | null {
  if (a.length !== b.length) return `${a.length} arrays vs ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.length !== y.length) return `${names?.[i] ?? i}: length ${x.length} vs ${y.length}`;
    for (let j = 0; j < x.length; j++) if (!Object.is(x[j], y[j])) return `${names?.[i] ?? i}[${j}]: ${x[j]} vs ${y[j]}`;
  }
  return null;
}

/** The numbers of a synchronous computation after an error: the device still works. */
async function deviceWorks(): Promise<void> {
  expect(await k.tensor([1, 2, 3]).mul(k.tensor([4, 5, 6])).sum().item()).toBe(32);
}

/** The error a call throws or its promise rejects with (a compiled synchronous function throws at the call). */
async function rejection(call: () => unknown): Promise<Error> {
  try {
    await call();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not reject');
}

describe('compiled training is bit-identical to eager training', () => {
  it('MLP 784-512-512-10 classifier, AdamW + cosine, 50 steps: every loss and parameter equal, and the compiled run replayed', async () => {
    k.manualSeed(100);
    const batches = Array.from({ length: 4 }, () => ({ x: k.randn([128, 784]).keep(), y: k.randint(0, 10, [128]).keep() }));
    await k.realize(...batches.flatMap((b) => [b.x, b.y]));
    const run = async (compiled: boolean) => {
      k.manualSeed(1);
      const net = k.train.mlp([512, 512]);
      const trainer = new k.train.ClassifierTrainer(net, { lr: 1e-3, weightDecay: 0.01, totalSteps: 50 });
      trainer.compile = compiled;
      for (let s = 0; s < 50; s++) await trainer.trainStep(batches[s % 4]!.x, batches[s % 4]!.y);
      await trainer.flush();
      const params = await values(net.parameters());
      const stats = { ...compiledStats(trainer) };
      const rng = k.getRngState();
      release(trainer);
      return { losses: [...trainer.losses], params, stats, rng };
    };
    const eager = await run(false);
    const compiled = await run(true);
    expect(eager.stats).toEqual({ recorded: 0, replayed: 0, traces: 0 });
    expect(compiled.stats.traces).toBe(1);
    expect(compiled.stats.replayed).toBeGreaterThanOrEqual(45);
    expect(compiled.stats.recorded + compiled.stats.replayed).toBe(50);
    expect(compiled.losses.length).toBe(50);
    expect(firstDifference([compiled.losses], [eager.losses], ['losses'])).toBeNull();
    expect(firstDifference(compiled.params, eager.params)).toBeNull();
    expect(compiled.rng).toEqual(eager.rng);
    // not trivially equal: training moved the loss (random labels on 4 fixed batches are memorized)
    expect(eager.losses.every(Number.isFinite)).toBe(true);
    expect(eager.losses.at(-1)!).toBeLessThan(0.5 * eager.losses[0]!);
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
  }, 240_000);

  /** A UNet on 16×16 single-channel images with few channels (4×4 at the lowest level, mid attention). */
  // the tiny UNet and batch of the MNIST diffusion tests: their kernels, so no pipelines of its own to compile
  const unet = () => new k.nn.UNet({ widths: [8, 16], attention: [], midAttention: true, heads: 2, groups: 4, patch: 2 });

  async function diffusionRun(objective: 'flow' | 'eps', steps: number, compiled: boolean, batches: { x: Tensor; y: Tensor }[]) {
    k.manualSeed(7);
    const model = unet();
    const trainer = new k.train.DiffusionTrainer(model, { ...k.train.TRAIN_DEFAULTS, objective, steps, batchSize: 16, lr: 3e-3, warmup: 10, clip: 1, emaDecay: 0.9, labelDropout: 0.3, seed: 7 });
    trainer.compile = compiled;
    for (let s = 0; s < steps; s++) await trainer.trainStep(batches[s % batches.length]!.x, batches[s % batches.length]!.y);
    await trainer.flush();
    const names = [...model.namedParameters()].map(([n]) => n);
    const out = {
      losses: [...trainer.losses],
      params: await values(model.parameters()),
      ema: await values(names.map((n) => trainer.ema.shadow.get(n)!)),
      moments: await values(Object.values(trainer.opt.stateDict().tensors)),
      names,
      stats: { ...compiledStats(trainer) },
      rng: k.getRngState(),
    };
    release(trainer);
    for (const s of trainer.ema.shadow.values()) s.dispose();
    return out;
  }

  it('DiffusionTrainer (small UNet, rectified flow: host-drawn logit-normal times, label dropout, EMA, clipping, warmup + cosine), 30 steps: losses, parameters, EMA and moments equal', async () => {
    k.manualSeed(200);
    const batches = Array.from({ length: 3 }, () => ({ x: k.rand([16, 1, 28, 28]).mul(2).sub(1).keep(), y: k.randint(0, 10, [16]).keep() }));
    await k.realize(...batches.flatMap((b) => [b.x, b.y]));
    const eager = await diffusionRun('flow', 30, false, batches);
    const compiled = await diffusionRun('flow', 30, true, batches);
    expect(compiled.stats.traces).toBe(1);
    expect(compiled.stats.replayed).toBeGreaterThanOrEqual(25);
    expect(firstDifference([compiled.losses], [eager.losses], ['losses'])).toBeNull();
    expect(firstDifference(compiled.params, eager.params, compiled.names)).toBeNull();
    expect(firstDifference(compiled.ema, eager.ema, compiled.names.map((n) => `ema ${n}`))).toBeNull();
    expect(firstDifference(compiled.moments, eager.moments)).toBeNull();
    expect(compiled.rng).toEqual(eager.rng);
    // the host-drawn times and the dropout draws changed from step to step: the losses of one batch differ
    // across its visits, and the EMA differs from the weights
    expect(eager.losses.every(Number.isFinite)).toBe(true);
    expect(new Set(eager.losses.filter((_, i) => i % 3 === 0)).size).toBe(10);
    expect(firstDifference(eager.ema, eager.params)).not.toBeNull();
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
  }, 240_000);

  it('DiffusionTrainer with the eps objective (discrete VP, host-drawn integer timesteps), 10 steps: losses, parameters and EMA equal', async () => {
    k.manualSeed(300);
    const batches = [{ x: k.rand([16, 1, 28, 28]).mul(2).sub(1).keep(), y: k.randint(0, 10, [16]).keep() }];
    await k.realize(batches[0]!.x, batches[0]!.y);
    const eager = await diffusionRun('eps', 10, false, batches);
    const compiled = await diffusionRun('eps', 10, true, batches);
    expect(compiled.stats.replayed).toBeGreaterThanOrEqual(6);
    expect(firstDifference([compiled.losses], [eager.losses], ['losses'])).toBeNull();
    expect(firstDifference(compiled.params, eager.params, compiled.names)).toBeNull();
    expect(firstDifference(compiled.ema, eager.ema, compiled.names)).toBeNull();
    expect(compiled.rng).toEqual(eager.rng);
    expect(new Set(eager.losses).size).toBe(10); // one batch, other timesteps and noise at every step
    batches[0]!.x.dispose();
    batches[0]!.y.dispose();
  }, 120_000);
});

describe('compiled sampling', () => {
  it('generate() with the compiled denoiser gives the eager samples bit for bit (flow Heun and DPM-Solver++ 2M, with guidance), replaying one trace per model', async () => {
    k.manualSeed(11);
    // the UNet of kiln train's cpu preset and its sample grid (10 digits, guidance 3): the kernels of the CLI tests
    const model = new k.nn.UNet({ widths: [16, 32], attention: [], midAttention: false, heads: 2, depth: 1, patch: 2 });
    model.eval();
    for (const [sampler, objective] of [['flow_heun', 'flow'], ['dpmpp_2m', 'eps']] as const) {
      const run = async (compile: boolean) => {
        const x = await k.noGrad(() => k.diffusion.generate(model, { objective, labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 28, 28], sampler, steps: 3, guidance: 3, seed: 5, compile }));
        const v = (await x.data()) as Float32Array;
        x.dispose();
        return v;
      };
      const eager = await run(false);
      const compiled = await run(true);
      expect(eager.every(Number.isFinite)).toBe(true);
      expect(new Set(eager).size).toBeGreaterThan(100); // samples, not a constant
      expect(Array.from(compiled).findIndex((v, i) => !Object.is(v, eager[i]))).toBe(-1);
    }
    const before = k.stats().replays;
    const x = await k.noGrad(() => k.diffusion.generate(model, { objective: 'flow', labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 28, 28], sampler: 'flow_euler', steps: 6, guidance: 3, seed: 5 }));
    x.dispose();
    // the six evaluations of a model traced for this batch (by the flow Heun run) are replays
    expect(k.stats().replays - before).toBe(6);
    model.parameters().forEach((p: Tensor) => p.dispose());
  }, 240_000);
});

describe('per-call values', () => {
  it('a sampler-like loop (per-call schedule scalar, GPU noise) compiled gives the eager loop bit for bit, and the same generator state', async () => {
    const schedule = Array.from({ length: 20 }, (_, i) => Math.cos((i / 20) * Math.PI / 2) * 0.9 + 0.05);
    const makeStep = () => {
      let i = 0;
      return (x: Tensor) => x.mul(k.perCall(() => schedule[i++]!).scalar((v) => v)).add(k.randn(x.shape).mul(0.25));
    };
    const loop = async (step: (x: Tensor) => Tensor | Promise<Tensor>) => {
      k.manualSeed(11);
      let x = k.randn([3, 64]);
      const seen: Float32Array[] = [];
      for (let j = 0; j < 20; j++) {
        const next = await step(x);
        x.dispose();
        x = next;
        seen.push(Float32Array.from((await x.data()) as Float32Array));
      }
      x.dispose();
      return { seen, rng: k.getRngState() };
    };
    const eager = await loop(makeStep());
    const compiledStep = k.compile(makeStep(), { name: 'samplerStep' });
    const compiled = await loop(compiledStep);
    expect(compiledStep.stats.traces).toBe(1);
    expect(compiledStep.stats.replayed).toBeGreaterThanOrEqual(17);
    expect(compiledStep.stats.recorded + compiledStep.stats.replayed).toBe(20);
    expect(firstDifference(compiled.seen, eager.seen)).toBeNull();
    expect(compiled.rng).toEqual(eager.rng);
    // not a constant loop: the noise x_j − s_j·x_{j−1} of consecutive steps differs
    const d = (j: number) => Array.from(eager.seen[j]!, (v, i) => v - schedule[j]! * eager.seen[j - 1]![i]!);
    expect(firstDifference([d(18)], [d(19)])).not.toBeNull();
  });

  it('host random draws inside k.perCall are drawn anew at every replay (same as eager)', async () => {
    const f = (x: Tensor) => x.add(k.perCall(() => k.randomHost('uniform', 4)).tensor((v) => v));
    const x = k.zeros([4]).keep();
    const run = async (g: (x: Tensor) => Tensor | Promise<Tensor>) => {
      k.manualSeed(5);
      const out: number[][] = [];
      for (let j = 0; j < 6; j++) {
        const y = await g(x);
        out.push(Array.from((await y.data()) as Float32Array));
        y.dispose();
      }
      return out;
    };
    const eager = await run(f);
    const c = k.compile(f, { name: 'hostDraw' });
    const compiled = await run(c);
    expect(c.stats.replayed).toBeGreaterThanOrEqual(3);
    expect(compiled).toEqual(eager);
    // float64 reference of the draws, rounded to f32
    k.manualSeed(5);
    const ref = Array.from({ length: 6 }, () => Array.from(k.randomHost('uniform', 4), Math.fround));
    expect(eager).toEqual(ref);
    expect(new Set(eager.map((r) => r[0])).size).toBe(6);
    x.dispose();
  });
});

describe('a synchronous compiled step', () => {
  it('called in a loop that awaits only now and then and drops its results: the same weights as eager, one trace', async () => {
    const run = async (compiled: boolean) => {
      k.manualSeed(5);
      const net = new k.nn.Sequential(new k.nn.Linear(12, 16), new k.nn.ReLU(), new k.nn.Linear(16, 3));
      const opt = new k.optim.Adam(net, { lr: 1e-2 });
      const sched = new k.optim.LRScheduler(opt, k.optim.cosine(1e-2, 30));
      const x = k.randn([8, 12]).keep();
      const y = k.randint(0, 3, [8]).keep();
      const step = k.compile((xb: Tensor, yb: Tensor) => {
        const loss = opt.minimize(() => k.F.crossEntropy(net.forward(xb), yb));
        k.perCall(() => sched.step());
        return loss;
      }, { name: 'syncStep', enabled: compiled });
      for (let i = 0; i < 30; i++) {
        step(x, y).dispose(); // the result is dropped before its work is even planned
        if (i % 5 === 4) await k.synchronize(); // recordings are compared once their kernels are submitted
      }
      const w = await Promise.all(net.parameters().map((p) => p.data()));
      [x, y, ...net.parameters()].forEach((t) => t.dispose());
      return { w, stats: { ...step.stats } };
    };
    const eager = await run(false);
    const compiled = await run(true);
    compiled.w.forEach((v, i) => expect(Array.from(v).every((a, j) => Object.is(a, eager.w[i]![j]))).toBe(true));
    expect(compiled.stats.traces).toBe(1);
    expect(compiled.stats.replayed).toBeGreaterThanOrEqual(15);
    expect(compiled.stats.recorded + compiled.stats.replayed).toBe(30);
    expect(Array.from(eager.w[0]!).some((v) => v !== 0)).toBe(true);
  });
});

describe('signatures and guards', () => {
  it('a new argument shape makes a new trace with correct results; an old shape replays its own trace', async () => {
    const f = k.compile((x: Tensor) => x.mul(3).add(1), { name: 'affine' });
    const check = async (data: number[], shape: number[]) => {
      const y = await f(k.tensor(data, { shape }));
      expect(y.shape).toEqual(shape);
      expect(Array.from((await y.data()) as Float32Array)).toEqual(data.map((v) => Math.fround(v * 3 + 1)));
      y.dispose();
    };
    for (let j = 0; j < 3; j++) await check([j, 1, 2, 3.5], [4]);
    expect(f.stats).toEqual({ recorded: 2, replayed: 1, traces: 1 });
    for (let j = 0; j < 3; j++) await check([1, 2, 3, 4, 5, j], [2, 3]);
    expect(f.stats).toEqual({ recorded: 4, replayed: 2, traces: 2 });
    await check([9, 8, 7, 6], [4]);
    expect(f.stats).toEqual({ recorded: 4, replayed: 3, traces: 2 });
    // non-tensor arguments are part of the signature by value
    const g = k.compile((x: Tensor, s: number) => x.mul(s), { name: 'scaled' });
    for (const s of [2, 2, 2, 5, 5, 5, 2]) {
      const y = await g(k.tensor([1, -2]), s);
      expect(Array.from((await y.data()) as Float32Array)).toEqual([s, -2 * s]);
      y.dispose();
    }
    expect(g.stats).toEqual({ recorded: 4, replayed: 3, traces: 2 });
    f.reset();
    await check([1, 1, 1, 1], [4]);
    expect(f.stats.recorded).toBe(5);
  });

  it('tensors inside arrays and plain objects are arguments: new tensors each call replay one trace with their values; another length retraces', async () => {
    // regression: such a container was keyed by its JSON (tensor ids included), so every call recorded anew
    const f = k.compile((xs: Tensor[], o: { w: Tensor; s: number }) => xs.reduce((a, x) => a.add(x)).mul(o.w).mul(o.s), { name: 'sumScaled' });
    const sumScaled = (xs: number[][], w: number[], s: number) => xs[0]!.map((_, i) => Math.fround(Math.fround(xs.reduce((a, x) => Math.fround(a + x[i]!), 0) * w[i]!) * s));
    const call = async (xs: number[][], w: number[], s: number) => {
      const ts = xs.map((x) => k.tensor(x)), wt = k.tensor(w);
      const y = await f(ts, { w: wt, s });
      expect(Array.from((await y.data()) as Float32Array)).toEqual(sumScaled(xs, w, s));
      [...ts, wt, y].forEach((t) => t.dispose());
    };
    for (let j = 0; j < 4; j++) await call([[j, 1], [2, -j], [0.5, 3]], [1, j + 1], 2);
    expect(f.stats).toEqual({ recorded: 2, replayed: 2, traces: 1 });
    // two tensors instead of three, and another number: other signatures
    for (let j = 0; j < 3; j++) await call([[j, 1], [2, 2]], [3, 1], 2);
    expect(f.stats).toEqual({ recorded: 4, replayed: 3, traces: 2 });
    await call([[1, 1], [1, 1], [1, 1]], [1, 1], 5);
    expect(f.stats.recorded).toBe(5);
    await call([[7, 1], [2, 0], [1, 3]], [2, 2], 2);
    expect(f.stats.replayed).toBe(4);
  });

  it('a constant uploaded inside a scope (freed before the trace is made) stays bound for the replays', async () => {
    // regression: at bba79b7 the third call threw 'kiln: use of a disposed tensor' (retainConstants), which
    // broke every compiled DiffusionTrainer step
    const f = k.compile((x: Tensor) => k.scope(() => x.add(k.tensor([1, 2, 3]))), { name: 'scopedConstant' });
    for (let j = 0; j < 5; j++) {
      const y = await f(k.tensor([j, 1, 1]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual([j + 1, 3, 4]);
      y.dispose();
    }
    expect(f.stats).toEqual({ recorded: 2, replayed: 3, traces: 1 });
    f.reset();
  });

  it('a state tensor reassigned outside the compiled function between calls: replays read its new value', async () => {
    const w = k.tensor([1, 2, 3, 4]).keep();
    const acc = k.zeros([4]).keep();
    // reads w, accumulates into acc (a state tensor it assigns), returns acc·w
    const f = k.compile((x: Tensor) => {
      acc.assign(acc.add(x.mul(w)));
      return acc.mul(2);
    }, { name: 'accumulate' });
    const ref = { w: [1, 2, 3, 4], acc: [0, 0, 0, 0] };
    const call = async (x: number[]) => {
      const y = await f(k.tensor(x));
      ref.acc = ref.acc.map((a, i) => Math.fround(a + Math.fround(x[i]! * ref.w[i]!)));
      expect(Array.from((await y.data()) as Float32Array)).toEqual(ref.acc.map((a) => Math.fround(a * 2)));
      expect(Array.from((await acc.data()) as Float32Array)).toEqual(ref.acc);
      y.dispose();
    };
    for (let j = 0; j < 4; j++) await call([j, 1, 0.5, -1]);
    expect(f.stats.traces).toBe(1);
    const replayed = f.stats.replayed;
    expect(replayed).toBeGreaterThan(0);
    // from outside: new values for what it reads and what it accumulates into
    w.assign(k.tensor([10, 20, 30, 40]));
    ref.w = [10, 20, 30, 40];
    acc.assign(k.zeros([4]));
    ref.acc = [0, 0, 0, 0];
    for (let j = 0; j < 3; j++) await call([1, 2, 3, j]);
    w.assign(k.full([4], 0.5).add(w.mul(0))); // a lazy new value
    ref.w = [0.5, 0.5, 0.5, 0.5];
    await call([4, 4, 4, 4]);
    expect(f.stats.replayed).toBe(replayed + 4);
    w.dispose();
    acc.dispose();
  });

  it('a state tensor disposed and replaced outside: the replay guard fails, the function is traced again and reads the new tensor', async () => {
    const holder = { w: k.tensor([1, 2, 3]).keep() };
    const f = k.compile((x: Tensor) => x.mul(holder.w), { name: 'holder' });
    const call = async (expected: number[]) => {
      const y = await f(k.tensor([1, 1, 2]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual(expected);
      y.dispose();
    };
    for (let j = 0; j < 3; j++) await call([1, 2, 6]);
    expect(f.stats).toEqual({ recorded: 2, replayed: 1, traces: 1 });
    holder.w.dispose();
    holder.w = k.tensor([-1, 5, 7]).keep();
    await call([-1, 5, 14]);
    expect(f.stats.recorded).toBe(3);
    for (let j = 0; j < 3; j++) await call([-1, 5, 14]);
    expect(f.stats.traces).toBe(2);
    expect(f.stats.replayed).toBeGreaterThanOrEqual(2);
    holder.w.dispose();
  });
});

describe('aliasing, arguments it assigns, and how state stood', () => {
  const vals = async (t: Tensor) => Array.from((await t.data()) as Float32Array);

  it('the same tensor passed twice is a signature of its own: f(x, x) then f(x, y) multiplies x by y', async () => {
    const f = k.compile((a: Tensor, b: Tensor) => a.mul(b), { name: 'alias' });
    const x = k.tensor([1, 2, 3]).keep(), y = k.tensor([4, 5, 6]).keep();
    for (let j = 0; j < 4; j++) {
      const r = f(x, x);
      expect(await vals(r)).toEqual([1, 4, 9]);
      r.dispose();
    }
    expect(f.stats.replayed).toBeGreaterThan(0);
    for (let j = 0; j < 4; j++) {
      const r = f(x, y);
      expect(await vals(r)).toEqual([4, 10, 18]);
      r.dispose();
    }
    [x, y].forEach((t) => t.dispose());
  });

  it('an argument the function assigns is the argument of each call: replays update b, not the recorded a', async () => {
    const f = k.compile((p: Tensor) => void p.assign(p.mul(2)), { name: 'double' });
    const a = k.tensor([1, 2]).keep(), b = k.tensor([5, 7]).keep();
    for (let j = 0; j < 4; j++) {
      f(a);
      await k.synchronize(); // recordings are compared once submitted
    }
    expect(await vals(a)).toEqual([16, 32]);
    expect(f.stats.replayed).toBeGreaterThan(0);
    for (let j = 0; j < 2; j++) f(b);
    expect(await vals(b)).toEqual([20, 28]);
    expect(await vals(a)).toEqual([16, 32]);
    [a, b].forEach((t) => t.dispose());
  });

  it('gradients switched off or left accumulated outside the step make it record again (eager results)', async () => {
    k.manualSeed(9);
    const lin = new k.nn.Linear(3, 2);
    const opt = new k.optim.SGD(lin, { lr: 0.1 });
    const x = k.tensor([[1, 2, 3]]).keep();
    const step = k.compile(() => opt.minimize(() => lin.forward(x).sum()), { name: 'freeze' });
    for (let j = 0; j < 4; j++) {
      step().dispose();
      await k.synchronize();
    }
    expect(step.stats.replayed).toBeGreaterThan(0);
    // frozen weight: eager SGD skips it, so must the next call
    const w = await vals(lin.weight);
    lin.weight.requiresGrad = false;
    const recorded = step.stats.recorded;
    step().dispose();
    expect(step.stats.recorded).toBe(recorded + 1);
    expect(await vals(lin.weight)).toEqual(w);
    lin.weight.requiresGrad = true;
    // a gradient accumulated eagerly before the call: the step adds to it, as eager code would
    lin.bias!.grad = k.tensor([10, 10]);
    const b0 = await vals(lin.bias!);
    step().dispose();
    const b1 = await vals(lin.bias!);
    b1.forEach((v, i) => expect(v).toBeCloseTo(b0[i]! - 0.1 * (10 + 1), 5));
    x.dispose();
    lin.parameters().forEach((p) => p.dispose());
  });

  it('reset() right after a replay is queued: the replay still completes with the right values', async () => {
    const w = k.tensor([1, 2, 3]).keep();
    const f = k.compile((x: Tensor) => x.mul(w).add(1), { name: 'resetPending' });
    const x = k.tensor([2, 2, 2]).keep();
    for (let j = 0; j < 3; j++) (await f(x)).dispose();
    await k.synchronize();
    const r = f(x);
    expect(f.stats.replayed).toBe(1);
    f.reset();
    expect(await vals(r)).toEqual([3, 5, 7]);
    [r, x, w].forEach((t) => t.dispose());
  });
});

describe('what a compiled function cannot do is an error at the call, and the device stays usable', () => {
  it('reading values on the host (data, item)', async () => {
    const f = k.compile(async (x: Tensor) => {
      const v = await x.sum().data();
      return x.mul(v[0]!);
    }, { name: 'readsData' });
    const e = await rejection(() => f(k.tensor([1, 2])));
    expect(e.message).toMatch(/^k\.compile\(readsData\): the function reads a tensor's values on the host \(.*\) while it is traced\..*return the tensor and read it after the call, or leave this function uncompiled/s);
    await deviceWorks();
    const g = k.compile(async (x: Tensor) => x.mul(await x.max().item()), { name: 'readsItem' });
    expect((await rejection(() => g(k.tensor([1, 2])))).message).toMatch(/^k\.compile\(readsItem\): the function reads a tensor's values on the host/);
    await deviceWorks();
  });

  it('k.randomHost outside k.perCall', async () => {
    const f = k.compile((x: Tensor) => x.add(k.tensor(Array.from(k.randomHost('normal', 2)))), { name: 'hostRandom' });
    const e = await rejection(() => f(k.tensor([1, 2])));
    expect(e.message).toMatch(/^k\.compile\(hostRandom\): randomHost draws random numbers on the host while the function is traced; .*k\.perCall\(\(\) => …\)/);
    await deviceWorks();
  });

  it('returning a number', async () => {
    const f = k.compile((x: Tensor) => ({ y: x.mul(2), n: 3 }), { name: 'returnsNumber' });
    const e = await rejection(() => f(k.tensor([1, 2])));
    expect(e.message).toMatch(/^k\.compile\(returnsNumber\): the function returned result\.n = 3; a compiled function returns tensors/);
    const g = k.compile(() => 3, { name: 'returnsBare' });
    expect((await rejection(() => g())).message).toMatch(/^k\.compile\(returnsBare\): the function returned 3; /);
    await deviceWorks();
  });

  it('leaving .grad set on a pre-existing tensor', async () => {
    const w = k.tensor([1, 2, 3, 4], { requiresGrad: true }).keep();
    const f = k.compile((x: Tensor) => {
      const l = w.mul(x).sum();
      l.backward();
      return l;
    }, { name: 'leavesGrad' });
    const e = await rejection(() => f(k.tensor([1, 1, 1, 1])));
    expect(e.message).toMatch(/^k\.compile\(leavesGrad\): the function left \.grad set on a tensor of shape \[4\]; .*Clear gradients inside the function/);
    w.grad = null;
    await deviceWorks();
    w.dispose();
  });

  it('disposing a pre-existing tensor that is not an argument: those calls run eagerly (right results) and the 4th throws (disposing an argument is fine)', async () => {
    const holder = { w: k.tensor([1, 2, 3]).keep() };
    const f = k.compile((x: Tensor) => {
      const y = x.add(holder.w);
      holder.w.dispose();
      holder.w = k.tensor([1, 2, 3]).keep();
      return y;
    }, { name: 'disposesState' });
    for (let j = 0; j < 3; j++) {
      const y = f(k.tensor([1, 1, 1]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual([2, 3, 4]);
      y.dispose();
    }
    expect(f.stats.traces).toBe(0);
    const e = await rejection(() => f(k.tensor([1, 1, 1])));
    expect(e.message).toMatch(/^k\.compile\(disposesState\): it disposed a tensor of shape \[3\] that existed before the call \(not an argument\), .*dispose it outside the compiled function/);
    holder.w.dispose();
    await deviceWorks();
    const g = k.compile((x: Tensor) => {
      const y = x.mul(x);
      x.dispose();
      return y;
    }, { name: 'disposesArg' });
    for (let j = 0; j < 4; j++) {
      const x = k.tensor([j, 2, 3]);
      const y = await g(x);
      expect(x.disposed).toBe(true);
      expect(Array.from((await y.data()) as Float32Array)).toEqual([j * j, 4, 9]);
      y.dispose();
    }
    expect(g.stats.replayed).toBe(2);
  });

  it('a host constant that changes at every call: the first calls run eagerly (right results), the 4th throws naming what changed', async () => {
    let counter = 1;
    const f = k.compile((x: Tensor) => x.mul(counter++), { name: 'counter' });
    for (let j = 1; j <= 3; j++) {
      const y = await f(k.tensor([1, 2]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual([j, 2 * j]);
      y.dispose();
    }
    const e = await rejection(() => f(k.tensor([1, 2])));
    expect(e.message).toMatch(/^k\.compile\(counter\): consecutive calls differ at kernel 1 .*uniform words.*, then kernel 1 .*\. Values that change from call to call must be arguments, or computed in k\.perCall\(\(\) => …\)/);
    expect(f.stats.traces).toBe(0);
    await deviceWorks();
  });

  it('data uploaded from a host array that changes at every call: the 4th call throws naming the constant', async () => {
    const host = [0, 0, 0];
    const f = k.compile((x: Tensor) => x.add(k.tensor(host)), { name: 'upload' });
    for (let j = 1; j <= 3; j++) {
      host[0] = j;
      const y = await f(k.tensor([1, 2, 3]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual([1 + j, 2, 3]);
      y.dispose();
    }
    host[0] = 4;
    const e = await rejection(() => f(k.tensor([1, 2, 3])));
    expect(e.message).toMatch(/^k\.compile\(upload\): consecutive calls differ at .*constant .*, then .*constant .*\. Values that change from call to call must be arguments, or computed in k\.perCall/);
    await deviceWorks();
    // the same upload of unchanging data is a constant of the trace: replays are fine
    const g = k.compile((x: Tensor) => x.add(k.tensor([5, 6, 7])), { name: 'fixedUpload' });
    for (let j = 0; j < 4; j++) {
      const y = await g(k.tensor([1, 2, 3]));
      expect(Array.from((await y.data()) as Float32Array)).toEqual([6, 8, 10]);
      y.dispose();
    }
    expect(g.stats.replayed).toBe(2);
  });
});

describe('memory and checkpoints', () => {
  it('30 replays of an Adam step keep the live GPU buffers and bytes flat; reset() and disposing the model give all of it back', async () => {
    await k.synchronize();
    const start = k.memory();
    k.manualSeed(21);
    const model = new k.nn.Sequential(new k.nn.Linear(16, 32), new k.nn.ReLU(), new k.nn.Linear(32, 4));
    const opt = new k.optim.Adam(model, { lr: 1e-2 });
    const x = k.randn([8, 16]).keep();
    const t = k.randn([8, 4]).keep();
    const step = k.compile(() => opt.minimize(() => model.forward(x).sub(t).square().mean()), { name: 'adamStep' });
    const losses: number[] = [];
    let at10: k.MemoryInfo | null = null;
    for (let j = 1; j <= 30; j++) {
      const loss = await step();
      losses.push(await loss.item());
      loss.dispose();
      if (j === 10) at10 = k.memory();
    }
    const at30 = k.memory();
    expect(step.stats.replayed).toBeGreaterThanOrEqual(26);
    expect({ liveBuffers: at30.liveBuffers, liveBytes: at30.liveBytes }).toEqual({ liveBuffers: at10!.liveBuffers, liveBytes: at10!.liveBytes });
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    step.reset();
    for (const p of model.parameters()) p.dispose();
    for (const m of Object.values(opt.stateDict().tensors)) m.dispose();
    x.dispose();
    t.dispose();
    await k.synchronize();
    const end = k.memory();
    expect({ liveBuffers: end.liveBuffers, liveBytes: end.liveBytes }).toEqual({ liveBuffers: start.liveBuffers, liveBytes: start.liveBytes });
  });

  it('a ClassifierTrainer saved after compiled steps and loaded into a fresh trainer (or back into itself) continues bit-identically', async () => {
    k.manualSeed(400);
    const batches = Array.from({ length: 3 }, () => ({ x: k.randn([32, 784]).keep(), y: k.randint(0, 10, [32]).keep() }));
    const make = (seed: number) => {
      k.manualSeed(seed);
      const net = k.train.mlp([64]);
      return { net, trainer: new k.train.ClassifierTrainer(net, { lr: 3e-3, weightDecay: 0.01, totalSteps: 16 }) };
    };
    const run = async (trainer: k.train.ClassifierTrainer, from: number, to: number) => {
      for (let s = from; s < to; s++) await trainer.trainStep(batches[s % 3]!.x, batches[s % 3]!.y);
      await trainer.flush();
    };
    const straight = make(1);
    await run(straight.trainer, 0, 16);
    const straightParams = await values(straight.net.parameters());

    const first = make(1);
    await run(first.trainer, 0, 8);
    expect(compiledStats(first.trainer).replayed).toBeGreaterThan(0);
    const file = path.join(dir, 'classifier.safetensors');
    await first.trainer.save(file);
    const resumed = make(99); // other initial weights: the checkpoint replaces them
    await resumed.trainer.load(file);
    expect(resumed.trainer.step).toBe(8);
    await run(resumed.trainer, 8, 16);
    expect(compiledStats(resumed.trainer).replayed).toBeGreaterThan(0);
    expect(firstDifference([resumed.trainer.losses], [straight.trainer.losses], ['losses'])).toBeNull();
    expect(firstDifference(await values(resumed.net.parameters()), straightParams)).toBeNull();

    // the first trainer goes on past the checkpoint (replaying), then loads it back and repeats steps 9–16
    await run(first.trainer, 8, 12);
    const before = compiledStats(first.trainer).replayed;
    await first.trainer.load(file);
    expect(first.trainer.step).toBe(8);
    await run(first.trainer, 8, 16);
    expect(compiledStats(first.trainer).replayed).toBeGreaterThan(before);
    expect(firstDifference([first.trainer.losses], [straight.trainer.losses], ['losses'])).toBeNull();
    expect(firstDifference(await values(first.net.parameters()), straightParams)).toBeNull();
    expect(straight.trainer.losses.at(-1)!).toBeLessThan(straight.trainer.losses[0]!);
    for (const t of [straight, first, resumed]) release(t.trainer);
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
  }, 120_000);
});
