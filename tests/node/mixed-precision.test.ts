/**
 * Mixed precision: `k.autocast`'s dtype rules (against PyTorch's autocast op lists, with the documented
 * difference for normalization), f16 matmul values against a float64 closed form, gradients of an autocast
 * network against its f32 gradients, `k.optim.GradScaler` (scaling, skipped updates, back-off and growth,
 * eager and compiled, state dicts) and the trainers' `precision: 'f16'`. The values of every autocast op
 * against the float64 reference are in the conformance suite ('autocast/…').
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS, VAE_METRICS, VAE_TRAIN_DEFAULTS, VAETrainer } from '../../src/train/index.ts';

/** One UNet for every test here (they share its pipelines); attention under autocast is in the conformance suite. */
const SMALL_UNET = { widths: [8, 16], depth: 1, attention: [], midAttention: false, heads: 2, groups: 4, numClasses: 10, patch: 1 };
let f16 = false;
const dir = mkdtempSync(join(tmpdir(), 'kiln-amp-'));
beforeAll(async () => {
  const info = await k.init();
  f16 = info.features.includes('shader-f16');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The nearest f16 value (round to nearest even), in float64. */
function toHalf(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const e = Math.max(Math.floor(Math.log2(Math.abs(v))), -14);
  const ulp = 2 ** (e - 10);
  const q = v / ulp, r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r;
  return even * ulp;
}

describe('autocast dtypes', () => {
  it('matmuls, linear, conv and attention give f16; sums, softmax, exp and losses f32; norms keep the input dtype', () => {
    const want = f16 ? 'f16' : 'f32';
    const x = k.randn([2, 3, 6, 6]), w = k.randn([4, 3, 3, 3]), b = k.randn([4]);
    const a = k.randn([5, 8]), lw = k.randn([6, 8]), lb = k.randn([6]);
    k.autocast(() => {
      expect(k.isAutocastEnabled()).toBe(f16);
      const y = k.F.conv2d(x, w, b, { padding: 1 });
      expect(y.dtype).toBe(want);
      const h = k.F.linear(a, lw, lb);
      expect(h.dtype).toBe(want);
      expect(a.matmul(lw.T).dtype).toBe(want);
      expect(k.F.groupNorm(y, 2, k.ones([4]), k.zeros([4])).dtype).toBe(want);
      expect(k.F.layerNorm(h, [6], k.ones([6]), k.zeros([6])).dtype).toBe(want);
      expect(h.silu().dtype).toBe(want);
      expect(k.F.scaledDotProductAttention(h.unsqueeze(0), h.unsqueeze(0), h.unsqueeze(0)).dtype).toBe(want);
      // PyTorch's f32 list: reductions, softmax, exp/log, powers and losses return f32
      for (const t of [h.sum(), h.mean(1), h.softmax(-1), h.logSoftmax(-1), h.exp(), h.log1p(), h.pow(2), k.F.mseLoss(h, k.zeros([5, 6])), k.F.crossEntropy(h, k.tensor([0, 1, 2, 3, 4], { dtype: 'i32' }))]) {
        expect(t.dtype).toBe('f32');
      }
      // elementwise ops follow their inputs; with an f32 operand they promote to f32 (PyTorch's rule)
      expect(h.mul(2).add(1).dtype).toBe(want);
      expect(h.add(k.ones([6])).dtype).toBe('f32');
      k.autocast({ enabled: false }, () => expect(a.matmul(lw.T).dtype).toBe('f32'));
    });
    expect(a.matmul(lw.T).dtype).toBe('f32');
    expect(k.isAutocastEnabled()).toBe(false);
  });

  it('follows async functions and keeps overlapping async calls apart', async () => {
    const want = f16 ? 'f16' : 'f32';
    const a = k.randn([4, 4]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inside = k.autocast(async () => {
      await gate;
      return a.matmul(a).dtype;
    });
    const outside = (async () => {
      await Promise.resolve();
      const dt = a.matmul(a).dtype;
      release();
      return dt;
    })();
    expect(await outside).toBe('f32');
    expect(await inside).toBe(want);
    expect(a.matmul(a).dtype).toBe('f32');
  });

  it('rejects dtypes other than f16 and calls without a function', () => {
    expect(() => k.autocast({ dtype: 'bf16' as 'f16' }, () => 0)).toThrow(/autocast: dtype must be 'f16', got "bf16"/);
    expect(() => (k.autocast as (o: object) => unknown)({ dtype: 'f16' })).toThrow(/autocast: expected a function/);
  });
});

describe('autocast values', () => {
  it('an f16 matmul is the f16 rounding of the exact product of the f16-rounded operands (f32 accumulation)', async () => {
    const M = 9, K = 40, N = 7;
    const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 1.7) * 3);
    const B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.9) * 2);
    const y = k.autocast(() => k.tensor(A, { shape: [M, K] }).matmul(k.tensor(B, { shape: [K, N] })));
    const got = await y.data();
    const a16 = Array.from(A, toHalf), b16 = Array.from(B, toHalf);
    let exactHalf = 0;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0, mag = 0;
      for (let t = 0; t < K; t++) { s += a16[i * K + t]! * b16[t * N + j]!; mag += Math.abs(a16[i * K + t]! * b16[t * N + j]!); }
      const g = got[i * N + j]!;
      if (!f16) { expect(Math.abs(g - s)).toBeLessThan(K * 2 ** -23 * mag + 1e-6); continue; }
      // within one f16 ulp of the exact value (an f32 sum is 1e-5 relative at worst: it can only flip a tie)
      const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(s))), -14) - 10);
      expect(Math.abs(g - s), `y[${i},${j}]`).toBeLessThanOrEqual(ulp);
      expect(toHalf(g)).toBe(g); // stored as f16
      if (g === toHalf(s)) exactHalf++;
    }
    if (f16) expect(exactHalf).toBeGreaterThan(M * N * 0.9);
  });

  it('normalizes an f16 tensor whose group sums exceed f16 range (statistics in f32), fused or not', async () => {
    if (!f16) return;
    // 40,960 elements per group whose first is 2σ below the mean: the sum of x − x₀ is about 80,000 > 65,504
    const [C, H, W, G] = [20, 64, 64, 2];
    const per = (C / G) * H * W;
    let s = 12345;
    const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
    const xs = Float32Array.from({ length: C * H * W }, () => Math.sqrt(-2 * Math.log(rnd() + 1e-9)) * Math.cos(2 * Math.PI * rnd()));
    xs[0] = -2;
    xs[per] = 0.5;
    const x = k.tensor(xs, { shape: [1, C, H, W] }).cast('f16');
    const xr = await x.cast('f32').data();
    for (const fusion of [true, false]) {
      k.setFusion(fusion);
      try {
        const y = await k.nn.groupNorm(x, G).cast('f32').data();
        for (let g = 0; g < G; g++) {
          const seg = Array.from(xr.slice(g * per, (g + 1) * per));
          const m = seg.reduce((a, c) => a + c, 0) / per, v = seg.reduce((a, c) => a + (c - m) ** 2, 0) / per;
          let err = 0;
          seg.forEach((c, i) => { err = Math.max(err, Math.abs(y[g * per + i]! - (c - m) / Math.sqrt(v + 1e-5))); });
          // f16 output: 2⁻¹¹ relative of values up to ~5
          expect(err, `fusion ${fusion}, group ${g}`).toBeLessThan(5e-3);
        }
      } finally {
        k.setFusion(true);
      }
    }
  });

  it("an autocast network's gradients match its f32 gradients to f16 precision, and parameters' gradients are f32", async () => {
    k.manualSeed(3);
    const net = new k.nn.UNet(SMALL_UNET);
    for (const p of net.parameters()) p.assign(k.randn(p.shape).mul(0.1)); // no zero-initialized layer: every gradient is non-zero
    const x = k.randn([8, 1, 28, 28]), t = k.rand([8]), y = k.tensor([1, 2, 3, 4, 5, 6, 7, 8], { dtype: 'i32' });
    const grads = async (amp: boolean) => {
      const loss = amp ? k.autocast(() => net.forward(x, t, y).pow(2).mean()) : net.forward(x, t, y).pow(2).mean();
      expect(loss.dtype).toBe('f32');
      // scaled as a GradScaler would: unscaled, gradients of ~1e-4 spread over thousands of activations are f16 subnormals
      loss.mul(1024).backward();
      const gs = await Promise.all(net.parameters().map(async (p) => { expect(p.grad!.dtype).toBe('f32'); return Array.from(await p.grad!.data()); }));
      net.zeroGrad();
      return { loss: await loss.item(), gs };
    };
    const full = await grads(false), half = await grads(true);
    expect(Math.abs(half.loss - full.loss)).toBeLessThan(2e-3 * Math.abs(full.loss));
    let worst = 0;
    full.gs.forEach((g, i) => {
      const norm = Math.hypot(...g);
      expect(norm, `parameter ${i}`).toBeGreaterThan(0);
      const diff = Math.hypot(...g.map((v, j) => v - half.gs[i]![j]!));
      worst = Math.max(worst, diff / norm);
    });
    // f16 keeps ~3 decimal digits; through a dozen layers the gradients agree to a few 1e-3
    expect(worst).toBeLessThan(f16 ? 1e-2 : 1e-5);
    if (f16) expect(worst).toBeGreaterThan(1e-5); // it did run in f16
  });
});

describe('GradScaler', () => {
  /** One parameter, Adam, and a loss whose gradient is `gscale`·(p − 1). */
  function setup(opts: Partial<k.optim.GradScalerOptions> = {}) {
    const p = k.tensor([0.5, -2, 3], { requiresGrad: true });
    const opt = new k.optim.Adam([p], { lr: 0.1 });
    const scaler = new k.optim.GradScaler(opts);
    const lossOf = (gscale: number) => () => p.sub(1).pow(2).sum().mul(gscale / 2);
    return { p, opt, scaler, lossOf };
  }

  it('scales the loss, unscales the gradients and applies the same update as without scaling', async () => {
    const a = setup({ initScale: 1024 }), b = setup({ enabled: false });
    for (let i = 0; i < 3; i++) {
      a.opt.minimize(a.lossOf(1), { scaler: a.scaler }).dispose();
      b.opt.minimize(b.lossOf(1), { scaler: b.scaler }).dispose();
    }
    const [pa, pb] = [Array.from(await a.p.data()), Array.from(await b.p.data())];
    pa.forEach((v, i) => expect(Math.abs(v - pb[i]!)).toBeLessThan(1e-6));
    expect(pa[0]).not.toBeCloseTo(0.5, 3); // it moved
    expect(await a.scaler.stats()).toEqual({ scale: 1024, skippedSteps: 0, lastSkippedStep: 0 });
  });

  it('skips the update of a step whose gradients overflow (parameters and moments unchanged), halves the scale, then grows it', async () => {
    const s = setup({ initScale: 2 ** 10, growthInterval: 2 });
    s.opt.minimize(s.lossOf(1), { scaler: s.scaler }).dispose();
    const before = [Array.from(await s.p.data()), ...(await Promise.all(Object.values(s.opt.stateDict().tensors).map(async (t) => Array.from(await t.data()))))];
    // 1e36 · 2^10 overflows f32: the step is skipped
    s.opt.minimize(s.lossOf(1e36), { scaler: s.scaler }).dispose();
    const after = [Array.from(await s.p.data()), ...(await Promise.all(Object.values(s.opt.stateDict().tensors).map(async (t) => Array.from(await t.data()))))];
    expect(after).toEqual(before);
    expect(await s.scaler.stats()).toEqual({ scale: 2 ** 9, skippedSteps: 1, lastSkippedStep: 2 });
    // two good steps in a row: the scale doubles, and the parameters move again
    s.opt.minimize(s.lossOf(1), { scaler: s.scaler }).dispose();
    expect((await s.scaler.stats()).scale).toBe(2 ** 9);
    s.opt.minimize(s.lossOf(1), { scaler: s.scaler }).dispose();
    expect(await s.scaler.stats()).toEqual({ scale: 2 ** 10, skippedSteps: 1, lastSkippedStep: 2 });
    expect(Array.from(await s.p.data())).not.toEqual(before[0]);
  });

  it('decides on the GPU inside a compiled step: replays skip and back off as eager steps do', async () => {
    const run = async (compiled: boolean) => {
      const s = setup({ initScale: 2 ** 10, growthInterval: 1000 });
      const fn = (g: k.Tensor) => s.opt.minimize(() => s.p.sub(1).pow(2).sum().mul(g).div(2), { scaler: s.scaler });
      const step = compiled ? k.compile(fn) : fn;
      for (const v of [1, 1, 1, 1e36, 1, 1e36]) {
        const g = k.tensor([v]).reshape([]);
        await k.realize(g);
        (await step(g)).dispose();
      }
      return { p: Array.from(await s.p.data()), stats: await s.scaler.stats(), replayed: (step as k.CompiledFunction<[k.Tensor], k.Tensor>).stats?.replayed };
    };
    const eager = await run(false), compiled = await run(true);
    expect(compiled.replayed).toBeGreaterThanOrEqual(2); // the overflowing last step is a replay
    expect(eager.stats).toEqual({ scale: 2 ** 8, skippedSteps: 2, lastSkippedStep: 6 });
    expect(compiled.stats).toEqual(eager.stats);
    expect(compiled.p).toEqual(eager.p);
  });

  it('leaves a compiled step about as much memory as without it (weight gradients are not moved to the unscaling)', async () => {
    const peak = async (withScaler: boolean) => {
      k.manualSeed(1);
      const net = new k.nn.UNet(SMALL_UNET);
      net.gradientCheckpointing = true;
      const opt = new k.optim.AdamW(net, { lr: 1e-3 });
      const scaler = withScaler ? new k.optim.GradScaler() : null;
      const x = k.rand([8, 1, 28, 28]), t = k.rand([8]), y = k.randint(0, 10, [8]);
      await k.realize(x, t, y);
      const step = k.compile(() => opt.minimize(() => k.autocast(() => net.forward(x, t, y).pow(2).mean()), { scaler }));
      for (let i = 0; i < 3; i++) (await step()).dispose();
      await k.synchronize();
      const before = k.memory().liveBytes;
      k.resetPeakMemory();
      (await step()).dispose();
      await k.synchronize();
      expect(step.stats.replayed).toBe(1); // the trace's plan is what was measured
      return k.memory().peakBytes - before;
    };
    const [plain, scaled] = [await peak(false), await peak(true)];
    expect(scaled).toBeLessThan(plain * 1.15);
  });

  it('checks its options and its call order', () => {
    expect(() => new k.optim.GradScaler({ backoffFactor: 2 })).toThrow(/GradScaler: backoffFactor must be in \(0, 1\), got 2/);
    expect(() => new k.optim.GradScaler({ growthInterval: 0 })).toThrow(/GradScaler: growthInterval must be a positive/);
    const s = setup();
    expect(() => s.scaler.update()).toThrow(/GradScaler.update: no step since the last update/);
    s.scaler.scale(s.lossOf(1)()).backward();
    s.scaler.unscale(s.opt);
    expect(() => s.scaler.unscale(s.opt)).toThrow(/GradScaler.unscale: already called/);
    expect(() => s.opt.step({ skipIf: k.zeros([2]) })).toThrow(/Adam.step: skipIf must be a single value, got shape \[2\]/);
  });
});

describe("trainers' precision 'f16'", () => {
  it('trains a UNet under autocast with loss scaling, checkpoints the scaler and resumes to the same losses', async () => {
    const make = () => {
      k.manualSeed(0);
      const net = new k.nn.UNet(SMALL_UNET);
      return new DiffusionTrainer(net, { ...TRAIN_DEFAULTS, steps: 20, batchSize: 8, warmup: 2, precision: 'f16' });
    };
    const x = k.rand([8, 1, 28, 28]).mul(2).sub(1), y = k.tensor([0, 1, 2, 3, 4, 5, 6, 7], { dtype: 'i32' });
    const a = make();
    for (let i = 0; i < 4; i++) await a.trainStep(x, y);
    const path = join(dir, 'amp.safetensors');
    await a.save(path);
    for (let i = 0; i < 3; i++) await a.trainStep(x, y);
    await a.flush();
    expect(a.losses.every(Number.isFinite)).toBe(true);
    expect((await a.scaler!.stats()).skippedSteps).toBe(0);
    const { tensors } = await k.loadWithMetadata(path);
    expect(Object.keys(tensors).filter((n) => n.startsWith('scaler.')).sort()).toEqual(['scaler.growthTracker', 'scaler.lastSkippedStep', 'scaler.scale', 'scaler.skippedSteps']);
    const b = make();
    await b.load(path);
    for (let i = 0; i < 3; i++) await b.trainStep(x, y);
    await b.flush();
    expect(b.losses.slice(4)).toEqual(a.losses.slice(4));
    expect(() => new DiffusionTrainer(new k.nn.UNet({ widths: [8], numClasses: 10 }), { ...TRAIN_DEFAULTS, precision: 'bf16' as 'f16' })).toThrow(/DiffusionTrainer: precision must be 'f32' or 'f16', got "bf16"/);
  });

  it('trains a VAE and its discriminator under autocast, each with its own scaler, and resumes to the same metrics', async () => {
    k.manualSeed(1);
    const x = k.rand([4, 1, 28, 28]).mul(2).sub(1);
    const make = (precision: 'f32' | 'f16') => {
      k.manualSeed(4);
      const vae = new k.nn.VAE({ widths: [8], patch: 4, groups: 4 });
      return new VAETrainer(vae, { ...VAE_TRAIN_DEFAULTS, steps: 5, batchSize: 4, discStart: 2, precision }, { width: 4, layers: 1, groups: 2 });
    };
    const run = async (tr: VAETrainer, to: number) => {
      while (tr.step < to) await tr.trainStep(x);
      await tr.flush();
    };
    const a = make('f16');
    await run(a, 5);
    const ref = make('f32');
    await run(ref, 5);
    const col = (tr: VAETrainer, name: (typeof VAE_METRICS)[number]) => tr.history.map((r) => r[VAE_METRICS.indexOf(name)]!);
    for (const r of a.history) expect(r.every(Number.isFinite)).toBe(true);
    for (const w of col(a, 'weight').slice(2)) expect(w).toBeGreaterThan(0);
    expect(col(a, 'disc').slice(2).every((d) => d > 0)).toBe(true);
    // f16 activations: the metrics follow the f32 run's (same seeds and data) to f16 precision, not bit for bit
    const [ra, rr] = [col(a, 'rec'), col(ref, 'rec')];
    expect(ra).not.toEqual(rr);
    ra.forEach((v, i) => expect(Math.abs(v - rr[i]!)).toBeLessThan(2e-4 * rr[i]!));
    const [wa, wr] = [col(a, 'weight'), col(ref, 'weight')];
    for (let i = 2; i < 5; i++) expect(Math.abs(wa[i]! - wr[i]!)).toBeLessThan(1e-2 * wr[i]!);
    expect(await a.scaler!.stats()).toEqual({ scale: 2 ** 10, skippedSteps: 0, lastSkippedStep: 0 });
    expect(await a.scalerDisc!.stats()).toEqual({ scale: 2 ** 16, skippedSteps: 0, lastSkippedStep: 0 });
    // save after 3 steps, resume into a fresh trainer: the same metrics as the straight run
    const first = make('f16');
    await run(first, 3);
    const path = join(dir, 'vae-amp.safetensors');
    await first.save(path);
    const { tensors } = await k.loadWithMetadata(path);
    expect(Object.keys(tensors).filter((n) => n.startsWith('scaler')).length).toBe(8);
    const resumed = make('f16');
    await resumed.load(path);
    await run(resumed, 5);
    expect(resumed.history).toEqual(a.history);
    expect(ref.scaler).toBeNull();
  });
});
