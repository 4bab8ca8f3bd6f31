import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close } from '../shared/util.ts';
import { classify } from '../../src/wgsl/device.ts';
import { tuningFor, type Tuning } from '../../src/wgsl/tuning.ts';
import { sharedLayout } from '../../src/wgsl/matmul.ts';
import { kernelConfig } from '../../src/wgsl/runtime.ts';
import { Scheduler } from '../../src/tensor/plan.ts';
import { render } from '../../src/wgsl/kernels.ts';
import { programConfig, programStats } from '../../src/tensor/program.ts';
import { indexLifting } from '../../src/wgsl/kernels.ts';

beforeAll(async () => {
  await k.init();
});

/** Kernels dispatched while realizing `fn()`'s result. */
async function kernelsFor(fn: () => k.Tensor): Promise<{ kernels: number; values: Float32Array }> {
  return k.scope(async () => {
    const before = k.stats().kernels;
    const out = fn();
    const values = (await out.data()) as Float32Array;
    return { kernels: k.stats().kernels - before, values };
  });
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/**
 * Plans the outputs of f over a tensor of x0 and tells whether the node `s` of f is written, after checking
 * those outputs against the float64 CPU reference; returns the plan's kernel and output counts too.
 */
async function planShared(x0: number[], shape: number[], f: (x: k.Tensor) => { s: k.Tensor; outs: k.Tensor[] }) {
  const x = k.tensor(x0, { shape });
  await k.realize(x);
  const plan = k.scope(() => {
    const { s, outs } = f(x);
    const planned = new Scheduler(outs.map((o) => o.node)).planned;
    return { kernels: planned.length, writesS: planned.some((p) => p.outs.includes(s.node)), outs: planned.flatMap((p) => p.outs).length };
  });
  const gpu = await k.scope(() => Promise.all(f(x).outs.map((o) => o.data())));
  const cpu = await k.withDevice('cpu', () => k.scope(() => Promise.all(f(k.tensor(x0, { shape })).outs.map((o) => o.data()))));
  gpu.forEach((g, i) => close(Array.from(g), Array.from(cpu[i]!), 1e-5, 1e-5));
  x.dispose();
  return { ...plan, cpu };
}

describe('device', () => {
  it('reports the adapter it runs on', () => {
    const info = k.deviceInfo();
    expect(info.platform).toBe('node');
    expect(['hardware', 'lavapipe', 'swiftshader', 'software']).toContain(info.driver);
    expect(info.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
  });
});

describe('fusion', () => {
  it('runs relu(x*a+b)*sigmoid(x) as one kernel with the right values', async () => {
    const r = lcg(1);
    const n = 1000;
    const xs = Float32Array.from({ length: n }, r), as = Float32Array.from({ length: n }, r), bs = Float32Array.from({ length: n }, r);
    const x = k.tensor(xs), a = k.tensor(as), b = k.tensor(bs);
    await k.realize(x, a, b);
    const { kernels, values } = await kernelsFor(() => x.mul(a).add(b).relu().mul(x.sigmoid()));
    expect(kernels).toBe(1);
    const expected = Array.from(xs, (xi, i) => Math.max(xi * as[i]! + bs[i]!, 0) / (1 + Math.exp(-xi)));
    close(values, expected, 1e-6, 1e-5);
    [x, a, b].forEach((t) => t.dispose());
  });

  it('fuses reductions of the same sizes over a common input into one kernel, one pass or split, on both tunings', async () => {
    const auto = k.deviceInfo().tuning;
    try {
      for (const tuning of ['auto', 'hardware'] as const) {
        await k.init({ tuning });
        // [48, 50]: one pass; [3, 40000]: partials per output, then their sums (a tree on 'hardware')
        for (const [O, R] of [[48, 50], [3, 40000]] as const) {
          const r = lcg(O + R);
          const xs = Float32Array.from({ length: O * R }, r), ws = Float32Array.from({ length: O * R }, r);
          const x = k.tensor(xs, { shape: [O, R] }), w = k.tensor(ws, { shape: [O, R] });
          await k.realize(x, w);
          const before = k.stats().kernels;
          // y is made and stored between the sums, so the second reads a tensor made after the first: they
          // merge where the second runs
          const first = x.sum(1);
          const y = x.mul(w).exp();
          const outs = [first, y.mul(x).sum(1).mul(2), x.max(1), x.mul(w).neg().max(1), y];
          await k.realize(...outs);
          expect(k.stats().kernels - before).toBe(3);
          const got = await Promise.all(outs.slice(0, 4).map((t) => t.data()));
          const want = [new Float64Array(O), new Float64Array(O), new Float64Array(O).fill(-Infinity), new Float64Array(O).fill(-Infinity)];
          for (let o = 0; o < O; o++) for (let j = 0; j < R; j++) {
            const xv = xs[o * R + j]!, wv = ws[o * R + j]!;
            want[0]![o] += xv;
            want[1]![o] += 2 * Math.exp(xv * wv) * xv;
            want[2]![o] = Math.max(want[2]![o]!, xv);
            want[3]![o] = Math.max(want[3]![o]!, -xv * wv);
          }
          got.forEach((g, i) => close(g as Float32Array, Array.from(want[i]!), 1e-5 * R, 1e-5));
          [x, w, ...outs].forEach((t) => t.dispose());
        }
      }
    } finally {
      await k.init({ tuning: 'auto' });
    }
    expect(k.deviceInfo().tuning).toBe(auto);
  });

  it('fuses a reduction whose result is combined with an earlier one (a variance from both moments) into one kernel', async () => {
    const f16 = k.deviceInfo().features.includes('shader-f16');
    try {
      for (const tuning of ['auto', 'hardware'] as const) {
        await k.init({ tuning });
        for (const [O, R] of [[48, 50], [3, 40000]] as const) {
          const r = lcg(O * 7 + R);
          const xs = Float32Array.from({ length: O * R }, r);
          const x = k.tensor(xs, { shape: [O, R] });
          await k.realize(x);
          // the second sum's epilogue reads the first's output; merged, it takes that value in the kernel (an
          // f16 output rounded as stored)
          for (const dtype of f16 ? ['f32', 'f16'] as const : ['f32'] as const) {
            const before = k.stats().kernels;
            // (an f16 tensor's mean is f16, rounded only where it is stored)
            const m = dtype === 'f16' ? x.cast('f16').mean(1) : x.mean(1);
            expect(m.dtype).toBe(dtype);
            const mf = m.cast('f32');
            const v = x.mul(x).mean(1).sub(mf.mul(mf)).mul(1000);
            await k.realize(m, v);
            expect(k.stats().kernels - before).toBe(1);
            const [gm, gv] = [await m.cast('f32').data(), await v.data()];
            for (let o = 0; o < O; o++) {
              let s1 = 0, s2 = 0;
              for (let j = 0; j < R; j++) { const xv = xs[o * R + j]!; s1 += xv; s2 += xv * xv; }
              // the variance uses the mean as stored (f16: rounded, 2⁻¹¹ relative)
              expect(Math.abs(gm[o]! - s1 / R)).toBeLessThan(dtype === 'f16' ? 5e-4 : 1e-6);
              const mean = gm[o]!;
              // f16: the kernel rounds the mean it reuses as it was stored, which a driver may fold away (lavapipe
              // does), so the variance may use the mean before rounding: up to 2·mean·2⁻¹² off
              const slack = dtype === 'f16' ? 2 * Math.abs(mean) * 2 ** -12 : 0;
              expect(Math.abs(gv[o]! - 1000 * (s2 / R - mean * mean))).toBeLessThan(1000 * (1e-4 * s2 / R + slack));
            }
            [m, mf, v].forEach((t) => t.dispose());
          }
          x.dispose();
        }
      }
    } finally {
      await k.init({ tuning: 'auto' });
    }
  });

  it('a merged reduction merged again keeps its epilogues reading their own earlier outputs', async () => {
    // the sum of y reads a tensor made after the mean, so the two merge where it runs; that kernel is then
    // merged into the one before it, whose outputs come first
    const [O, R] = [48, 50];
    const r = lcg(5);
    const xs = Float32Array.from({ length: O * R }, r), ws = Float32Array.from({ length: O * R }, r);
    const x = k.tensor(xs, { shape: [O, R] }), w = k.tensor(ws, { shape: [O, R] });
    await k.realize(x, w);
    const m = x.mean(1);
    const y = x.mul(w).exp();
    const s = y.sum(1);
    const v = x.mul(y).sum(1).sub(m.mul(1000));
    await k.realize(m, y, s, v);
    const [gs, gv] = [await s.data(), await v.data()];
    for (let o = 0; o < O; o++) {
      let sm = 0, sxy = 0, sy = 0;
      for (let j = 0; j < R; j++) { const xv = xs[o * R + j]!, yv = Math.exp(xv * ws[o * R + j]!); sm += xv; sxy += xv * yv; sy += yv; }
      expect(gs[o]!).toBeCloseTo(sy, 3);
      expect(gv[o]!).toBeCloseTo(sxy - 1000 * sm / R, 2);
    }
    [x, w, m, y, s, v].forEach((t) => t.dispose());
  });

  it('long reductions read as vec4 stop at the end of each row, whatever the row length leaves over', async () => {
    // rows of 65,540 and 65,548 of a wider tensor: the elements just past a row are real data, so reading one
    // of them changes the result
    for (const R of [65540, 65548]) {
      const r = lcg(R);
      const W = R + 24;
      const xs = Float32Array.from({ length: 3 * W }, () => r() + 0.25);
      const x = k.tensor(xs, { shape: [3, W] });
      const row = x.slice(1, 0, R);
      const outs = [row.sum(1), row.mul(-1).max(1), row.mul(row).sum(1)];
      const got = await Promise.all(outs.map((t) => t.data()));
      for (let o = 0; o < 3; o++) {
        let s = 0, m = -Infinity, q = 0;
        for (let j = 0; j < R; j++) {
          const v = xs[o * W + j]!;
          s += v;
          m = Math.max(m, -v);
          q += v * v;
        }
        close([got[0]![o]!, got[1]![o]!, got[2]![o]!], [s, m, q], 1e-6 * R, 1e-5);
      }
      [x, ...outs].forEach((t) => t.dispose());
    }
  });

  it('runs matmul + bias + gelu as one kernel', async () => {
    const r = lcg(2);
    const [M, K, N] = [5, 7, 3];
    const xs = Float64Array.from({ length: M * K }, r), ws = Float64Array.from({ length: K * N }, r), bs = Float64Array.from({ length: N }, r);
    const x = k.tensor(xs, { shape: [M, K] }), w = k.tensor(ws, { shape: [K, N] }), bias = k.tensor(bs);
    await k.realize(x, w, bias);
    const { kernels, values } = await kernelsFor(() => x.matmul(w).add(bias).gelu());
    expect(kernels).toBe(1);
    const erf = (z: number) => { // Abramowitz-Stegun 7.1.26 is too coarse; use a series (|z| small here)
      let term = z, sum = z;
      for (let n = 1; n < 60; n++) { term *= (-z * z) / n; sum += term / (2 * n + 1); }
      return (2 / Math.sqrt(Math.PI)) * sum;
    };
    const expected: number[] = [];
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = bs[j]!;
      for (let q = 0; q < K; q++) s += Math.fround(xs[i * K + q]!) * Math.fround(ws[q * N + j]!);
      expected.push(0.5 * s * (1 + erf(s / Math.SQRT2)));
    }
    close(values, expected, 1e-5, 1e-5);
    [x, w, bias].forEach((t) => t.dispose());
  });

  it('folds transposed operands of matmul into index math (no copy kernel)', async () => {
    const a = k.randn([6, 4]), b = k.randn([5, 6]);
    await k.realize(a, b);
    const { kernels } = await kernelsFor(() => a.T.matmul(b.T));
    expect(kernels).toBe(1);
    a.dispose(); b.dispose();
  });

  it('fuses a reduction with its elementwise input and output', async () => {
    const x = k.tensor([[1, 2, 3], [4, 5, 6]]);
    await k.realize(x);
    const { kernels, values } = await kernelsFor(() => x.mul(x).sum(1).sqrt());
    expect(kernels).toBe(1);
    close(values, [Math.sqrt(14), Math.sqrt(77)]);
    x.dispose();
  });

  it("a sampler's chain of steps that read and rewrite columns plans kernels whose WGSL grows linearly with the steps, with the float64 reference's values", async () => {
    // Heun steps of a 2-D field: each evaluation slices the columns of x and concatenates new ones, so a
    // fused kernel reads earlier values at several indices. Unfolded clamps of size-1 axes used to make
    // equal indices print differently (no CSE: the WGSL of 2 steps was 17× that of 1), and the roots
    // stored by the depth bound recomputed each other's work
    const x0 = Array.from({ length: 64 * 2 }, lcg(5)).map((v) => 2 * v - 1);
    const f = (x: k.Tensor, t: number) => {
      const [c0, c1] = [x.slice(1, 0, 1), x.slice(1, 1, 2)];
      const g0 = c0.square().add(c1.square()).mul(-0.5 * t).exp(), g1 = c0.sub(c1).tanh();
      const z = g0.add(g1.exp());
      return k.cat([c1.mul(g0).div(z), c0.mul(g1).div(z).neg()], 1);
    };
    const sampler = (x: k.Tensor, steps: number) => {
      for (let i = 0; i < steps; i++) {
        const h = 1 / steps, d1 = f(x, i * h), x1 = x.add(d1.mul(h)), d2 = f(x1, (i + 1) * h);
        x = x.add(d1.add(d2).mul(h / 2));
      }
      return x;
    };
    const x = k.tensor(x0, { shape: [64, 2] });
    await k.realize(x);
    const wgslChars = (steps: number) => k.scope(() => {
      const s = new Scheduler([sampler(x, steps).node]);
      return s.planned.reduce((a, p) => a + render(p.kernel, kernelConfig()).reduce((b, q) => b + q.code.length, 0), 0);
    });
    const [one, two, twelve] = [wgslChars(1), wgslChars(2), wgslChars(12)];
    expect(two).toBeLessThan(2.5 * one);
    expect(twelve).toBeLessThan(12 * 4 * one);
    const gpu = await k.scope(() => sampler(x, 6).data());
    const cpu = await k.withDevice('cpu', () => k.scope(() => sampler(k.tensor(x0, { shape: [64, 2] }), 6).data()));
    close(Array.from(gpu), Array.from(cpu), 1e-5, 1e-5);
    expect(Math.max(...Array.from(cpu, Math.abs))).toBeGreaterThan(0.1);
    x.dispose();
  });

  it('stores a costly node that one kernel would read through many views, rather than repeat it at each', async () => {
    // y = sin(exp(x)·2 + 1) placed at 4 shifts along W, summed, and that sum placed at 4 shifts along H,
    // summed (as the gradient of a 4×4 convolution's windows does): fused, the kernel would evaluate y at
    // all 16 positions, exp and sin 16 times (in a second-order gradient of a strided convolution, 256
    // positions in one kernel of ~100 KB of WGSL)
    const [N, C, H, W] = [2, 3, 6, 5];
    const x0 = Array.from({ length: N * C * H * W }, lcg(11)).map((v) => 2 * v - 1);
    const x = k.tensor(x0, { shape: [N, C, H, W] });
    await k.realize(x);
    const shifts = (t: k.Tensor, axis: number) => [0, 1, 2, 3].map((j) => t.pad(t.shape.map((_, a) => (a === axis ? [j, 3 - j] : [0, 0]) as [number, number]))).reduce((a, b) => a.add(b));
    const f = (x: k.Tensor) => shifts(shifts(x.exp().mul(2).add(1).sin(), 3), 2);
    const codes = k.scope(() => new Scheduler([f(x).node]).planned.flatMap((p) => render(p.kernel, kernelConfig()).map((q) => q.code)));
    const count = (re: RegExp) => codes.reduce((a, c) => a + (c.match(re)?.length ?? 0), 0);
    expect(count(/\bexp\(/g)).toBe(1);
    expect(count(/\bsin\(/g)).toBe(1);
    // two positions stay fused: y read beside its neighbour is computed twice in one kernel
    const two = k.scope(() => new Scheduler([k.scope(() => { const y = x.exp().mul(2).add(1).sin(); return y.narrow(3, 0, W - 1).add(y.narrow(3, 1, W - 1)); }).node]).planned);
    expect(two).toHaveLength(1);
    const gpu = await k.scope(() => f(x).data());
    const cpu = await k.withDevice('cpu', () => k.scope(() => f(k.tensor(x0, { shape: [N, C, H, W] })).data()));
    expect(gpu.length).toBe(N * C * (H + 3) * (W + 3));
    close(Array.from(gpu), Array.from(cpu), 1e-5, 1e-5);
    expect(Math.max(...Array.from(cpu, Math.abs))).toBeGreaterThan(1);
    x.dispose();
  });

  it('recomputes an activation\'s sigmoid in both kernels that read it rather than keep another tensor', async () => {
    // σ(x·2 + 1 − 0.5) costs about 9 (a sigmoid and three ops on a load), read by an exp kernel and a column sum,
    // as a normalized activation's sigmoid is read by the forward pass and by the SiLU backward: stored, it stayed
    // live from one to the other (the default UNet's training step kept one more activation per block)
    const x0 = Array.from({ length: 6 * 10 }, lcg(31)).map((v) => 4 * v - 2);
    const plan = await planShared(x0, [6, 10], (x) => {
      const s = x.mul(2).add(1).sub(0.5).sigmoid();
      return { s, outs: [s.exp(), s.mul(s).sum(0)] };
    });
    expect(plan.writesS).toBe(false);
  });

  it('does not store a shared node once the kernels reading it are merged into one', async () => {
    // s is costly and read by two kernels of its size, so the planner stores it; horizontal fusion then makes
    // s and both readers one kernel, which has s in registers: writing s too took a tensor's memory for nothing
    // (two 5 MiB activations at the widest point of the default UNet's training step at batch 128)
    const x0 = Array.from({ length: 64 }, lcg(29)).map((v) => 2 * v - 1);
    const plan = await planShared(x0, [8, 8], (x) => {
      const s = x.sin().mul(3).exp().add(x.cos()).tanh().mul(x).sigmoid().add(0.5).sqrt().log();
      return { s, outs: [s.mul(2), s.add(x).exp()] };
    });
    expect({ kernels: plan.kernels, writesS: plan.writesS, outs: plan.outs }).toEqual({ kernels: 1, writesS: false, outs: 2 });
  });

  it('recomputes a cheap node over stored statistics instead of storing it for two kernels', async () => {
    // s = (x − mean)·rstd·2 + 1 over broadcast row statistics, read by an exp kernel and a column sum: once the
    // statistics are stored, s is four cheap ops on loads, so both kernels compute it (storing it took another
    // tensor of x's size, live from the forward pass to the backward in a norm → activation → conv block)
    const x0 = Array.from({ length: 6 * 10 }, lcg(13)).map((v) => 4 * v - 1);
    const plan = await planShared(x0, [6, 10], (x) => {
      const m = x.mean(1, { keepDim: true }), d = x.sub(m);
      const s = d.mul(d.square().mean(1, { keepDim: true }).add(1e-5).rsqrt()).mul(2).add(1);
      return { s, outs: [s.exp(), s.mul(s).sum(0)] };
    });
    expect(plan.writesS).toBe(false);
    expect(Math.max(...Array.from(plan.cpu[0]!))).toBeGreaterThan(2);
  });

  it('stores a matmul\'s f16 output rather than the wider f32 chain two kernels read above it', async () => {
    // h = x·w + b in f16, s = (h in f32)·2 + 1 read by an exp kernel and a column sum: s would run the matmul
    // in both kernels, so something is stored. Storing h (2 bytes an element) keeps s, three cheap ops, fused
    // in both; storing s took an f32 tensor (an f32 normalization of an f16 activation kept its input twice
    // as wide)
    const dtype = k.deviceInfo().features.includes('shader-f16') ? 'f16' as const : 'f32' as const;
    const [M, K, N] = [12, 16, 10];
    const xv = Array.from({ length: M * K }, lcg(17)).map((v) => v - 0.5), wv = Array.from({ length: K * N }, lcg(19)).map((v) => v - 0.5), bv = Array.from({ length: N }, lcg(23));
    const mk = () => [k.tensor(xv, { shape: [M, K], dtype }), k.tensor(wv, { shape: [K, N], dtype }), k.tensor(bv, { shape: [N], dtype })] as const;
    const f = (x: k.Tensor, w: k.Tensor, b: k.Tensor) => {
      const h = x.matmul(w).add(b), s = h.cast('f32').mul(2).add(1);
      return { h, s, outs: [s.exp(), s.mul(s).sum(0)] };
    };
    const [x, w, b] = mk();
    await k.realize(x, w, b);
    const stores = k.scope(() => {
      const { h, s, outs } = f(x, w, b);
      const planned = new Scheduler(outs.map((o) => o.node)).planned;
      return { h: planned.some((p) => p.outs.includes(h.node)), s: planned.some((p) => p.outs.includes(s.node)), kernels: planned.length };
    });
    expect(stores).toEqual({ h: true, s: false, kernels: 3 });
    const gpu = await k.scope(() => Promise.all(f(x, w, b).outs.map((o) => o.data())));
    // reference: h on the CPU device (in the same dtype), the rest in float64
    const hv = await k.withDevice('cpu', () => k.scope(() => f(...mk()).h.cast('f32').data()));
    const sv = Array.from(hv, (v) => v * 2 + 1);
    // (h rounded once on the GPU, where the bias is added in the matmul's epilogue, twice on the CPU device)
    const tol = dtype === 'f16' ? 1e-2 : 1e-5;
    close(Array.from(gpu[0]!), sv.map(Math.exp), tol, tol);
    close(Array.from(gpu[1]!), Array.from({ length: N }, (_, j) => sv.filter((_, i) => i % N === j).reduce((a, v) => a + v * v, 0)), tol, tol);
    expect(sv.some((v) => Math.abs(v - 1) > 0.5)).toBe(true);
    [x, w, b].forEach((t) => t.dispose());
  });

  it('gives the same numbers with fusion off', async () => {
    k.manualSeed(7);
    const x = k.randn([33, 17]);
    const w = k.randn([17, 9]);
    await k.realize(x, w);
    const f = () => x.matmul(w).tanh().softmax(-1).mul(x.sum(1, { keepDim: true }).sigmoid()).logsumexp(0);
    const fused = await kernelsFor(f);
    k.setFusion(false);
    let unfused;
    try {
      unfused = await kernelsFor(f);
    } finally {
      k.setFusion(true);
    }
    expect(unfused.kernels).toBeGreaterThan(fused.kernels);
    close(fused.values, unfused.values, 1e-5, 1e-5);
    x.dispose(); w.dispose();
  });

  it('reads and writes 4 elements at a time where an operand is read at the element itself, and agrees with float64', async () => {
    const sources = (f: () => k.Tensor, cfg = kernelConfig()) => k.scope(() => new Scheduler([f().node]).planned.map((p) => render(p.kernel, cfg).map((q) => q.code).join('\n')));
    for (const [rows, cols] of [[64, 256], [63, 257]] as const) {
      const xs = Array.from({ length: rows * cols }, lcg(rows)).map((v) => 4 * v - 2);
      const ys = Array.from({ length: rows * cols }, lcg(cols)).map((v) => 2 * v - 1);
      const bs = Array.from({ length: cols }, lcg(3)).map((v) => v - 0.5);
      // y is read only at the element (vec4 when the size allows); b is broadcast along rows and x is read at
      // the element and at an offset (x[:, 1:]): both scalar
      const f = (x: k.Tensor, y: k.Tensor, b: k.Tensor) => x.mul(y).add(b).tanh().add(x.slice(1, 1, cols).pad([[0, 0], [0, 1]]).sigmoid());
      const args = (dev: typeof k) => [dev.tensor(xs, { shape: [rows, cols] }), dev.tensor(ys, { shape: [rows, cols] }), dev.tensor(bs, { shape: [cols] })] as const;
      const [x, y, b] = args(k);
      await k.realize(x, y, b);
      const [code] = sources(() => f(x, y, b));
      expect(code!.match(/array<vec4<f32>>/g)?.length ?? 0).toBe(cols % 4 === 0 ? 2 : 0); // y and the output
      expect(sources(() => f(x, y, b), { ...kernelConfig(), vectorWidth: 1 })[0]).not.toMatch(/vec4<f32>/);
      const gpu = await k.scope(() => f(x, y, b).data());
      const cpu = await k.withDevice('cpu', () => k.scope(() => f(...args(k)).data()));
      close(Array.from(gpu), Array.from(cpu), 1e-5, 1e-5);
      // the gradients: kernels of several outputs, some vectorized
      for (const t of [x, y, b]) t.requiresGrad = true;
      const grads = await k.scope(async () => {
        const loss = f(x, y, b).square().sum();
        loss.backward();
        return Promise.all([x, y, b].map((t) => t.grad!.data()));
      });
      const ref = await k.withDevice('cpu', () => k.scope(async () => {
        const ts = args(k).map((t) => Object.assign(t, { requiresGrad: true }));
        f(ts[0]!, ts[1]!, ts[2]!).square().sum().backward();
        return Promise.all(ts.map((t) => t.grad!.data()));
      }));
      grads.forEach((g, i) => {
        close(Array.from(g), Array.from(ref[i]!), 1e-4, 1e-4);
        expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(0.1);
      });
      for (const t of [x, y, b]) t.dispose();
    }
  });

  it('a matmul reads B 4 columns at a time where they are contiguous from a multiple of 4, and agrees with float64', async () => {
    const vec4B = (f: () => k.Tensor) => k.scope(() => new Scheduler([f().node]).planned.some((p) => p.kernel.kind === 'matmul' && render(p.kernel, kernelConfig()).some((q) => /var<storage, read> B\d: array<vec4<f32>>/.test(q.code))));
    const host = (n: number, seed: number) => Array.from({ length: n }, lcg(seed)).map((v) => 2 * v - 1);
    const [as, bs, cs, ds] = [host(2 * 40 * 300, 1), host(2 * 300 * 44, 2), host(3000 * 8, 3), host(2 * 44 * 300, 4)];
    const es = host(3000 * 8, 5);
    const cases: [string, (a: k.Tensor, b: k.Tensor, c: k.Tensor, d: k.Tensor, e: k.Tensor) => k.Tensor, boolean][] = [
      ['N = 44 (the last tile half full), batched, + relu', (a, b) => a.matmul(b).relu(), true],
      ['B from column 4', (a, b) => a.matmul(b.slice(2, 4, 44)), true],
      ['B from column 2', (a, b) => a.matmul(b.slice(2, 2, 42)), false],
      ['B transposed', (a, _b, _c, d) => a.matmul(d.transpose(1, 2)), false],
      ['split along k (K = 3000, 8 columns)', (_a, _b, c, _d, e) => c.transpose(0, 1).matmul(e), true],
      ['A = B', (_a, _b, c) => c.slice(0, 0, 8).matmul(c.slice(0, 0, 8)), false],
      ['B read again by the fused epilogue', (a, b) => a.matmul(b).add(b.slice(1, 0, 40)), false],
    ];
    const make = () => [k.tensor(as, { shape: [2, 40, 300] }), k.tensor(bs, { shape: [2, 300, 44] }), k.tensor(cs, { shape: [3000, 8] }), k.tensor(ds, { shape: [2, 44, 300] }), k.tensor(es, { shape: [3000, 8] })] as const;
    const [a, b, c, d, e] = make();
    await k.realize(a, b, c, d, e);
    for (const [name, f, vectorized] of cases) {
      expect(vec4B(() => f(a, b, c, d, e)), name).toBe(vectorized);
      const gpu = await k.scope(() => f(a, b, c, d, e).data());
      const cpu = await k.withDevice('cpu', () => k.scope(() => f(...make()).data()));
      close(Array.from(gpu), Array.from(cpu), 1e-4, 1e-4);
      expect(Math.max(...Array.from(cpu, Math.abs)), name).toBeGreaterThan(1);
    }
    for (const t of [a, b, c, d, e]) t.dispose();
  });

  it('register-tile matmuls share the loads of A within subgroups where the device has them, and agree with float64 either way', async () => {
    // (tests/shared/suite.ts checks the layout measured at init: subgroups of consecutive invocations)
    const { subgroupSize } = k.deviceInfo();
    const shares = (f: () => k.Tensor) => k.scope(() => new Scheduler([f().node]).planned.some((p) => p.kernel.kind === 'matmul' && render(p.kernel, kernelConfig()).some((q) => q.code.includes('subgroupBroadcast('))));
    const host = (n: number, seed: number) => Array.from({ length: n }, lcg(seed)).map((v) => 2 * v - 1);
    const [as, bs, cs] = [host(2 * 70 * 33, 11), host(2 * 33 * 300, 12), host(1200 * 45, 13)];
    const make = () => [k.tensor(as, { shape: [2, 70, 33] }), k.tensor(bs, { shape: [2, 33, 300] }), k.tensor(cs, { shape: [1200, 45] })] as const;
    const cases: [string, (a: k.Tensor, b: k.Tensor, c: k.Tensor) => k.Tensor][] = [
      // M = 70: the last row of tiles is part full and whole subgroups are past it; N = 300: the last column of tiles part full
      ['batched [2, 70, 33] × [2, 33, 300], + relu', (a, b) => a.matmul(b).relu()],
      ['one row (M = 1)', (a, b) => a.slice(1, 3, 4).matmul(b)],
      ['B read element by element (N = 45), A transposed', (a, _b, c) => a.slice(0, 0, 1).reshape([70, 33]).transpose(0, 1).matmul(c.slice(0, 0, 70))],
      ['split along k (K = 1200, 45 columns)', (_a, _b, c) => c.transpose(0, 1).matmul(c.slice(1, 0, 16))],
    ];
    const [a, b, c] = make();
    await k.realize(a, b, c);
    const cpu = await k.withDevice('cpu', () => Promise.all(cases.map(([, f]) => k.scope(() => f(...make()).data()))));
    try {
      // the row's tiles (lavapipe: 16 rows, two per invocation of a subgroup of 8), tiles of 8, 4 and 2 rows (one row
      // per invocation, and fewer rows than a subgroup has invocations), 2 steps of k per iteration, rows not shared
      const variants: Partial<Tuning>[] = [{}, { matmulTile: [8, 8] }, { matmulTile: [4, 8] }, { matmulTile: [2, 4] }, { matmulUnrollK: 2 }, { matmulShareRows: false }];
      const results: ArrayLike<number>[][] = [];
      for (const knobs of variants) {
        await k.init({ tuning: { matmulKernel: 'registers', matmulShareRows: true, ...knobs } });
        const got: ArrayLike<number>[] = [];
        for (const [i, [name, f]] of cases.entries()) {
          expect(shares(() => f(a, b, c)), `${name} ${JSON.stringify(knobs)}`).toBe(subgroupSize > 0 && !('matmulShareRows' in knobs));
          got.push(await k.scope(() => f(a, b, c).data()));
          close(Array.from(got[i]!), Array.from(cpu[i]!), 1e-4, 1e-4);
          expect(Math.max(...Array.from(cpu[i]!, Math.abs)), name).toBeGreaterThan(1);
        }
        results.push(got);
      }
      // a broadcast value is the loaded one and each accumulator takes the same products in the same order:
      // shared and unshared tiles of the row give the same bits
      for (const [i, [name]] of cases.entries()) expect(results[0]![i], name).toEqual(results[variants.length - 1]![i]);
    } finally {
      await k.init({ tuning: 'auto' });
    }
    for (const t of [a, b, c]) t.dispose();
  });

  it('sums 4 elements at a time where a long row is read from a multiple of 4, and agrees with float64', async () => {
    const sources = (f: () => k.Tensor) => k.scope(() => new Scheduler([f().node]).planned.map((p) => render(p.kernel, kernelConfig()).map((q) => q.code).join('\n')).join('\n'));
    const xs = Array.from({ length: 4 * 65540 }, lcg(9)).map((v) => 2 * v - 1);
    const x = k.tensor(xs, { shape: [4, 65540] });
    await k.realize(x);
    const cases: [string, (x: k.Tensor) => k.Tensor, boolean][] = [
      ['rows from column 4', (x) => x.slice(1, 4, 65540).sum(1), true],
      ['rows from column 2', (x) => x.slice(1, 2, 65538).sum(1), false], // 65540·o + 2 + r is not a multiple of 4
      ['rows of 65539', (x) => x.slice(1, 0, 65539).exp().sum(1), false],
      ['all of a strided view, squared', (x) => x.slice(1, 4, 65540).square().sum(), true],
      ['columns', (x) => x.sum(0), false],
    ];
    for (const [name, f, vectorized] of cases) {
      expect(/var<storage, read> B0: array<vec4<f32>>/.test(sources(() => f(x))), name).toBe(vectorized);
      const gpu = await k.scope(() => f(x).data());
      const cpu = await k.withDevice('cpu', () => k.scope(() => f(k.tensor(xs, { shape: [4, 65540] })).data()));
      close(Array.from(gpu), Array.from(cpu), 1e-4, 1e-4);
    }
    x.dispose();
  });
});

describe('memory', () => {
  it('keeps live memory flat over 1,000 iterations of a small loop', async () => {
    let w = k.randn([64, 64]).keep();
    const x = k.randn([16, 64]).keep();
    await k.realize(w, x);
    let baseline = 0;
    for (let i = 0; i < 1000; i++) {
      const next = k.scope(() => w.sub(x.matmul(w).tanh().mean(0).mul(0.001)).keep());
      w.dispose();
      w = next;
      if (i % 50 === 49) await k.realize(w);
      if (i === 99) baseline = k.memory().liveBytes;
    }
    await w.data();
    const live = k.memory().liveBytes;
    expect(live).toBeLessThanOrEqual(baseline);
    w.dispose(); x.dispose();
  });

  it('async scopes dispose what they created across awaits', async () => {
    const before = k.memory().liveBuffers;
    const kept = await k.scope(async () => {
      const a = k.tensor([1, 2, 3]);
      await a.data();
      const b = a.mul(2);
      await b.data();
      return b;
    });
    expect(await kept.tolist()).toEqual([2, 4, 6]);
    expect(k.memory().liveBuffers).toBe(before + 1);
    kept.dispose();
    expect(k.memory().liveBuffers).toBe(before);
  });

  it('supports `using` via Symbol.dispose and refuses disposed tensors', async () => {
    const t = k.tensor([1]);
    t[Symbol.dispose]();
    expect(t.disposed).toBe(true);
    await expect(t.data()).rejects.toThrow(/disposed/);
  });

  it('a pending consumer keeps its disposed input alive', async () => {
    const a = k.tensor([1, 2]);
    const b = a.add(1);
    a.dispose();
    expect(await b.tolist()).toEqual([2, 3]);
    b.dispose();
  });
});

describe('readback', () => {
  it('batches reads requested together into one submit', async () => {
    const a = k.tensor([1, 2]), b = k.tensor([3]);
    await k.realize(a, b);
    const before = k.stats().submits;
    const [x, y, z] = await Promise.all([a.add(1).data(), b.mul(2).data(), a.sum().item()]);
    expect(k.stats().submits - before).toBe(1);
    expect(Array.from(x)).toEqual([2, 3]);
    expect(Array.from(y)).toEqual([6]);
    expect(z).toBe(3);
    a.dispose(); b.dispose();
  });

  it('returns typed arrays per dtype and nested lists', async () => {
    expect(await k.tensor([[true, false]]).tolist()).toEqual([[true, false]]);
    expect((await k.arange(3).data()) instanceof Int32Array).toBe(true);
    expect(await k.tensor([1.5, -2]).cast('i32').tolist()).toEqual([1, -2]);
    expect(await k.tensor(5).item()).toBe(5);
  });
});

describe('waiting for the GPU (Node)', () => {
  it('polls Dawn about once per millisecond during a long wait instead of in a busy loop, and leaves setImmediate working', async () => {
    // Dawn for Node re-queues an unnamed native callback with setImmediate while work is pending: count them
    const g = globalThis as unknown as { setImmediate: (fn: (...a: unknown[]) => void, ...args: unknown[]) => unknown };
    const inner = g.setImmediate;
    let ticks = 0;
    g.setImmediate = function (this: unknown, fn: (...a: unknown[]) => void, ...args: unknown[]) {
      if (typeof fn === 'function' && fn.name === '' && Function.prototype.toString.call(fn).endsWith('{ [native code] }')) ticks++;
      return inner.call(this, fn, ...args);
    };
    try {
      const a = k.randn([768, 768]);
      await k.realize(a);
      await k.synchronize();
      // a few hundred ms of kernels on a software adapter
      const t0 = performance.now();
      const y = a.matmul(a).matmul(a).matmul(a).sum();
      await y.item();
      const ms = performance.now() - t0;
      console.log(`waiting: ${ticks} polls of Dawn's events in ${ms.toFixed(0)} ms`);
      // measured: 787 polls in 260 ms; with Dawn's own busy loop 31,165 in 454 ms (69 per ms)
      expect(ticks).toBeLessThanOrEqual(10 * ms + 500);
      a.dispose();
    } finally {
      g.setImmediate = inner;
    }
    // other callers are passed through: an immediate still runs before a 1 ms timer
    const order: string[] = [];
    await new Promise<void>((done) => {
      setTimeout(() => {
        order.push('timer');
        done();
      }, 1);
      setImmediate(() => order.push('immediate'));
    });
    expect(order).toEqual(['immediate', 'timer']);
    const { promisify } = await import('node:util');
    await expect(promisify(setImmediate)('value')).resolves.toBe('value');
  });
});

describe('random', () => {
  it('gives the same uniform bits on the GPU and the CPU reference', async () => {
    k.manualSeed(123);
    const g = await k.rand([1000]).data();
    k.manualSeed(123);
    const c = await k.withDevice('cpu', () => k.rand([1000])).data();
    expect(Array.from(g)).toEqual(Array.from(c));
    // and equals the Philox stream by hand: element i of call 0 → word 0 of philox(i, 0, 0, 0; key)
    const [w0] = k.philox4x32(5, 0, 0, 0, 123, 0);
    expect(g[5]).toBe((w0! >>> 8) * 2 ** -24);
  });

  it('host draws equal the device stream (uniforms bit for bit, normals to rounding)', async () => {
    k.manualSeed(21);
    const dev = await k.rand([300]).data();
    const devN = await k.randn([300]).data();
    k.manualSeed(21);
    const host = k.randomHost('uniform', 300), hostN = k.randomHost('normal', 300);
    expect(Array.from(dev)).toEqual(Array.from(host));
    close(devN, hostN, 1e-5, 1e-5);
  });

  it('continues the stream from a saved state', async () => {
    k.manualSeed(9);
    await k.rand([4]).data();
    const st = k.getRngState();
    const a = await k.randn([8]).data();
    k.setRngState(st);
    const b = await k.randn([8]).data();
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('defineOp', () => {
  it('registers a user op that fuses and matches its reference', async () => {
    const softsign = k.defineOp({ name: 'test_softsign', arity: 1, float: true, wgsl: '$0 / (1.0 + abs($0))', ref: (x) => x / (1 + Math.abs(x)) });
    const x = k.tensor([-3, -0.5, 0, 2]);
    await k.realize(x);
    const { kernels, values } = await kernelsFor(() => softsign(x.mul(2)).add(1));
    expect(kernels).toBe(1);
    close(values, [-3, -0.5, 0, 2].map((v) => (2 * v) / (1 + Math.abs(2 * v)) + 1));
    const ref = await k.withDevice('cpu', () => softsign(k.tensor([-3, -0.5, 0, 2]).mul(2)).add(1)).data();
    close(values, ref);
    expect(() => k.defineOp({ name: 'test_softsign', arity: 1, wgsl: '$0', ref: (v) => v })).toThrow(/already registered/);
  });
});

describe('profile', () => {
  it('reports the GPU time of each kind of kernel: labels and counts of the kernels run, more time for more work', async () => {
    // Dawn's lavapipe and GPU adapters have timestamp queries; an adapter without them must say so clearly
    if (!k.deviceInfo().features.includes('timestamp-query')) {
      await expect(k.profile(async () => undefined)).rejects.toThrow("profile: this adapter has no 'timestamp-query' feature");
      return;
    }
    const a = k.randn([8, 16]), b = k.randn([16, 4]);
    const big = k.randn([512, 512]), big2 = k.randn([512, 512]);
    await k.realize(a, b, big, big2);
    const work = async (n: number) => {
      await k.realize(a.matmul(b).relu());
      await k.realize(a.exp());
      for (let i = 0; i < n; i++) await k.realize(big.matmul(big2));
    };
    // software drivers compile a pipeline at its first dispatch, inside the timestamps: run each kernel once first
    await work(1);
    await k.synchronize();
    // three 512³ matmuls do 400M multiply-adds against 128 exps or 512 multiply-adds: far longer even with
    // launch overhead and lavapipe's coarse timestamps (0.5 ms steps). A CPU busy with other test files can
    // still stretch one small kernel past them (27 ms once), so the times are compared in up to three profiles
    let timesOk = false;
    for (let attempt = 0; attempt < 3 && !timesOk; attempt++) {
      const prof = await k.profile(() => work(3));
      // exactly the kernels run: one small matmul (relu fused), one elementwise exp of 128, three large matmuls
      expect(Object.fromEntries(prof.map((p) => [p.label, p.count]))).toEqual({ 'matmul 8×16×4': 1, 'elementwise 128': 1, 'matmul 512×512×512': 3 });
      // a kernel shorter than the timestamps' resolution (WebGPU lets them be quantized) measures 0, never less
      for (const p of prof) expect(Number.isFinite(p.ms) && p.ms >= 0).toBe(true);
      const ms = (label: string) => prof.find((p) => p.label === label)!.ms;
      expect(ms('matmul 512×512×512')).toBeGreaterThan(0);
      // sorted by total time
      timesOk = ms('matmul 512×512×512') > 5 * ms('elementwise 128') && ms('matmul 512×512×512') > 5 * ms('matmul 8×16×4') && prof[0]!.label === 'matmul 512×512×512';
    }
    expect(timesOk).toBe(true);
    for (const t of [a, b, big, big2]) t.dispose();
  });
});

describe('errors name the op, the shapes and what was expected', () => {
  const a = () => k.zeros([2, 3]);
  it.each([
    ['add', () => a().add(k.zeros([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/],
    ['matmul', () => a().matmul(k.zeros([4, 5])), /matmul: shapes \[2, 3\] and \[4, 5\] are not aligned \(inner dimensions 3 and 4\)/],
    ['reshape', () => a().reshape([4, 2]), /reshape: cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/],
    ['sum axis', () => a().sum(2), /sum: axis 2 is out of range for a tensor of rank 2/],
    ['permute', () => a().permute([0, 0]), /permute: \[0,0\] is not a permutation/],
    ['expand', () => a().expand([4, 3]), /expand: cannot expand \[2, 3\] to \[4, 3\]/],
    ['cat', () => k.cat([a(), k.zeros([2, 4])], 0), /cat: shapes \[2, 3\], \[2, 4\] must match except along axis 0/],
    ['gather dtype', () => a().gather(0, k.zeros([2, 3])), /gather: index must be i32 or u32, got f32/],
    ['squeeze', () => a().squeeze(0), /squeeze: axis 0 of shape \[2, 3\] has size 2, not 1/],
    ['item', () => a().item(), /item: tensor of shape \[2, 3\] has 6 elements/],
    ['tensor ragged', () => k.tensor([[1, 2], [3]]), /tensor: ragged nested array/],
    ['unknown dtype', () => a().cast('f64' as k.DType), /cast: unknown dtype "f64"/],
    ['device mix', () => a().add(k.withDevice('cpu', () => k.zeros([2, 3]))), /add: tensors are on different devices/],
    ['unfold window', () => a().unfold(1, 2, 1, 3), /unfold: window of size 2 \(dilation 3, span 4\) is larger than axis 1 of size 3 in shape \[2, 3\]/],
    ['unfold step', () => a().unfold(0, 1, 0), /unfold: step must be a positive integer, got 0/],
    ['non-tensor', () => a().add([1, 2] as unknown as number), /add: expected tensors or numbers, got an array/],
    ['groupNorm weight', () => k.nn.groupNorm(k.zeros([2, 4, 3, 3]), 2, k.ones([3])), /groupNorm: weight of shape \[3\] does not fit input \[2, 4, 3, 3\]; expected 4 elements, to broadcast as \[1, 4, 1, 1\]/],
    ['layerNorm bias', () => k.F.layerNorm(k.zeros([2, 5]), [5], null, k.ones([2, 5])), /layerNorm: bias of shape \[2, 5\] does not fit input \[2, 5\]; expected 5 elements, to broadcast as \[5\]/],
  ])('%s', async (_name, fn, msg) => {
    let err: unknown;
    try {
      await k.scope(fn as () => unknown);
    } catch (e) {
      err = e;
    }
    expect(String(err)).toMatch(msg);
  });
});

describe('pipeline reuse', () => {
  // Elementwise kernels take their size as a run-time parameter, and scalars get kernel slots by where
  // they come from, not by their value: parameters of new sizes and hyper-parameters that change (or
  // happen to coincide) from one step to the next must not compile new pipelines.
  it('AdamW steps compile nothing new for other sizes or other scalar values, and match float64 Adam', async () => {
    const betas: [number, number] = [0.5, 0.5];
    const wd = 0.1, eps = 1e-8;
    const r = lcg(7);
    /** Parameters of the given sizes with fixed gradients, and a float64 AdamW replaying the same steps. */
    const setup = (sizes: number[]) => {
      const init = sizes.map((n) => Array.from({ length: n }, r));
      const grads = sizes.map((n) => Array.from({ length: n }, r));
      const ps = init.map((v) => k.tensor(v, { requiresGrad: true }).keep());
      const state = init.map((v) => ({ p: [...v], m: v.map(() => 0), s: v.map(() => 0) }));
      const opt = new k.optim.AdamW(ps, { lr: 0.1, betas, eps, weightDecay: wd });
      const step = async (lr: number, t: number) => {
        opt.lr = lr;
        ps.forEach((p, i) => (p.grad = k.tensor(grads[i]!).keep()));
        await opt.step();
        opt.zeroGrad();
        state.forEach((st, i) => st.p.forEach((x, j) => {
          const g = grads[i]![j]!;
          st.m[j] = betas[0] * st.m[j]! + (1 - betas[0]) * g;
          st.s[j] = betas[1] * st.s[j]! + (1 - betas[1]) * g * g;
          const denom = Math.sqrt(st.s[j]! / (1 - betas[1] ** t)) + eps;
          st.p[j] = x * (1 - lr * wd) - (lr / (1 - betas[0] ** t)) * (st.m[j]! / denom);
        }));
      };
      return { ps, state, step };
    };
    const compiled = async (f: () => Promise<void>) => {
      const before = k.stats().pipelinesCompiled;
      await f();
      return k.stats().pipelinesCompiled - before;
    };

    const a = setup([15, 7, 5000]);
    await a.step(0.1, 1);
    await a.step(0.1, 2);
    // step 3 with lr / (1 − β1³) = 0.5: the step size equals β1, β2, 1 − β1 and 1 − β2 in this step only
    expect(await compiled(() => a.step(0.4375, 3))).toBe(0);
    // parameters of sizes never seen before reuse the update kernels of the first optimizer
    const b = setup([11, 100, 4099]);
    expect(await compiled(async () => {
      await b.step(0.1, 1);
      await b.step(0.2, 2);
    })).toBe(0);
    for (const { ps, state } of [a, b]) {
      for (let i = 0; i < ps.length; i++) close((await ps[i]!.data()) as Float32Array, state[i]!.p, 1e-5, 1e-5);
      ps.forEach((p) => p.dispose());
    }
  });
});

describe('index constants in uniforms', () => {
  /** kiln_udiv's arithmetic (see src/wgsl/ir.ts): float reciprocal, truncation, one correction each way. */
  const udiv = (n: number, d: number) => {
    let q = Math.trunc(Math.fround(n * Math.fround(1 / d)));
    const m = (n - q * d) | 0;
    if (m < 0) q -= 1;
    else if (m >= d) q += 1;
    return q;
  };

  it('division by a lifted divisor is exact for every dividend below 2^24', () => {
    for (const d of [3, 7, 196, 4095, 4097, 2 ** 23 + 1, 2 ** 24 - 1]) {
      let wrong = 0;
      for (let n = 0; n < 2 ** 24; n += d > 4096 ? 1 : 3) if (udiv(n, d) !== Math.floor(n / d)) wrong++;
      expect(wrong, `divisor ${d}`).toBe(0);
    }
    // without the correction the truncated product is off by one for some dividends (the test can fail)
    expect(Array.from({ length: 1 << 16 }, (_, i) => (1 << 24) - 1 - i).some((n) => Math.trunc(Math.fround(n * Math.fround(1 / 4095))) !== Math.floor(n / 4095))).toBe(true);
  });

  /** The fast division of kernels indexing fewer than 2^21 elements: f32(1/d) raised by two ulps, product truncated. */
  const fastDiv = (d: number) => {
    const f = new Float32Array([1 / d]);
    new Uint32Array(f.buffer)[0]! += 2;
    const r = f[0]!;
    return (n: number) => Math.trunc(Math.fround(n * r));
  };

  it('division by a lifted divisor without a correction step is exact for every dividend below 2^21', () => {
    const LIMIT = 2 ** 21;
    let wrong = 0, checked = 0;
    // every quotient of every divisor up to 4096, at both ends of each quotient's range of dividends
    for (let d = 1; d <= 4096; d++) {
      const div = fastDiv(d);
      for (let q = 0; q * d < LIMIT; q++) {
        for (const n of [q * d, Math.min(q * d + d - 1, LIMIT - 1)]) {
          checked++;
          if (div(n) !== Math.floor(n / d)) wrong++;
        }
      }
    }
    // and every dividend for a few larger divisors
    for (const d of [4097, 65535, 65537, 2 ** 20 + 1, LIMIT - 1]) {
      const div = fastDiv(d);
      for (let n = 0; n < LIMIT; n++) if (div(n) !== Math.floor(n / d)) wrong++;
    }
    expect(checked).toBeGreaterThan(3e7);
    expect(wrong).toBe(0);
    // beyond the limit it goes wrong (the limit is needed): the quotient by 1 of some dividend below 2^22 is off
    const byOne = fastDiv(1);
    expect(Array.from({ length: 2 ** 20 }, (_, i) => 3 * 2 ** 20 + i).some((n) => byOne(n) !== n)).toBe(true);
  });

  it('a transpose of just under 2^21 elements, the most a kernel indexes with the fast division, lands every element', async () => {
    // the output's rows have 1011 elements: f32(1/1011) lies below 1/1011, so without the raise by two ulps
    // 1,406 of the quotients (exact multiples of 1011) would come out one too small
    const [R, Cn] = [1011, 2074];
    expect(R * Cn).toBeLessThan(2 ** 21);
    const y = (await k.arange(0, R * Cn).reshape([R, Cn]).transpose(0, 1).mul(1).data()) as Float32Array;
    let wrong = 0;
    for (let c = 0; c < Cn; c++) for (let r = 0; r < R; r++) if (y[c * R + r] !== r * Cn + c) wrong++;
    expect(wrong).toBe(0);
  });

  it('a transpose of 2^24 − 1 elements, the most a kernel indexes with lifted constants, lands every element', async () => {
    const [R, Cn] = [4095, 4097];
    const y = (await k.arange(0, R * Cn).reshape([R, Cn]).transpose(0, 1).mul(1).data()) as Float32Array;
    let wrong = 0;
    for (let c = 0; c < Cn; c++) for (let r = 0; r < R; r++) if (y[c * R + r] !== r * Cn + c) wrong++;
    expect(wrong).toBe(0);
  });

  /** A transposed view, reductions and a batched matmul with an epilogue, and their gradients, for sizes. */
  const views = (n: number, h: number, c: number) => k.scope(async () => {
    const v = k.randn([n, h, c], { requiresGrad: true }), u = k.randn([c, 5], { requiresGrad: true });
    const z = v.matmul(u).relu();
    const s = z.sum([0, 1]).mul(v.sum([0, 2]).mean()).add(u.transpose(0, 1).mul(3).sum(1));
    s.sum().backward();
    return Promise.all([s, v.grad!, u.grad!].map((t) => t.data() as Promise<Float32Array>));
  });

  it('kernels that differ only in sizes share pipelines, and kernels with baked constants give the same bits', async () => {
    k.manualSeed(11);
    // every size odd: scalar kernels; then every size a multiple of 4: vectorized kernels (vec4 loads)
    const first = await views(3, 5, 7);
    for (const g of first.slice(1)) expect(g.some((x) => x !== 0)).toBe(true);
    const p0 = k.stats().pipelinesCompiled;
    k.manualSeed(12);
    const lifted = await views(3, 9, 11);
    expect(k.stats().pipelinesCompiled - p0).toBe(0);
    await views(4, 8, 12);
    const p4 = k.stats().pipelinesCompiled;
    await views(8, 4, 16);
    expect(k.stats().pipelinesCompiled - p4).toBe(0);
    const p1 = k.stats().pipelinesCompiled, limit = indexLifting.limit;
    indexLifting.limit = 0;
    programConfig.cache = false;
    try {
      k.manualSeed(12);
      const baked = await views(3, 9, 11);
      expect(k.stats().pipelinesCompiled - p1).toBeGreaterThan(0);
      baked.forEach((b, i) => expect(Array.from(b)).toEqual(Array.from(lifted[i]!)));
    } finally {
      indexLifting.limit = limit;
      programConfig.cache = true;
    }
  });
});

describe('adapter classification and kernel tuning', () => {
  it('an adapter that describes nothing is a GPU unless it says it is a fallback adapter', () => {
    expect(classify({ vendor: '', architecture: '', device: '', description: '' }, false)).toBe('hardware');
    expect(classify(undefined, false)).toBe('hardware');
    expect(classify({ vendor: '', architecture: '', device: '', description: '' }, true)).toBe('software');
    expect(classify({ vendor: 'mesa', architecture: '', device: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }, false)).toBe('lavapipe');
    expect(classify({ vendor: 'google', architecture: '', device: 'swiftshader device', description: '' }, false)).toBe('swiftshader');
    expect(classify({ vendor: 'nvidia', architecture: 'ampere', device: '', description: 'NVIDIA GeForce RTX 3080' }, false)).toBe('hardware');
  });

  it('picks the tuning row by adapter, or by name when forced, and rejects unknown names', () => {
    const info = { ...k.deviceInfo() };
    expect(tuningFor({ ...info, driver: 'lavapipe' }).name).toBe('software');
    expect(tuningFor({ ...info, driver: 'swiftshader' }).name).toBe('swiftshader');
    expect(tuningFor({ ...info, driver: 'hardware' }).name).toBe('hardware');
    expect(tuningFor({ ...info, driver: 'lavapipe' }, 'hardware').name).toBe('hardware');
    expect(() => tuningFor(info, 'fast')).toThrow(/unknown tuning "fast"; expected 'auto' or one of 'swiftshader', 'software', 'hardware'/);
    // knobs change the adapter's row
    const custom = tuningFor({ ...info, driver: 'lavapipe' }, { matmulKernel: 'shared', matmulTile: [4, 8] });
    expect(custom.name).toBe('software+custom');
    expect(custom.config).toEqual({ ...tuningFor({ ...info, driver: 'lavapipe' }).config, matmulKernel: 'shared', matmulTile: [4, 8] });
    expect(() => tuningFor(info, { matmulTiles: [4, 4] } as never)).toThrow(/unknown tuning knob "matmulTiles"; expected 'reducePartials', .*'vectorWidth'/);
    expect(() => tuningFor(info, { vectorWidth: 2 } as never)).toThrow(/tuning knob 'vectorWidth' cannot be 2/);
  });

  it('the workgroup-tiled matmul picks the thread grid that pads M and N least (the conformance cases cover each)', () => {
    // the shapes of tests/shared/conformance.ts 'blocks and k tiles', 'small M, wide blocks', 'small N, tall blocks'
    expect(sharedLayout(130, 129, 4, 4)).toEqual({ TY: 16, TX: 16 });
    expect(sharedLayout(12, 300, 4, 4)).toEqual({ TY: 4, TX: 64 });
    expect(sharedLayout(300, 10, 4, 4)).toEqual({ TY: 64, TX: 4 });
    // square on ties; a convolution of 48 channels over 1,568 pixels gets 16×256 blocks
    expect(sharedLayout(1024, 1024, 4, 4)).toEqual({ TY: 16, TX: 16 });
    expect(sharedLayout(48, 1568, 4, 4)).toEqual({ TY: 4, TX: 64 });
  });

  it('init({ tuning }) switches the kernels of a live device, by row or by knobs, and back', async () => {
    const auto = k.deviceInfo().tuning;
    try {
      for (const [tuning, name, knobs] of [
        ['hardware', 'hardware', { matmulKernel: 'shared', matmulTile: [4, 4] }],
        [{ matmulKernel: 'shared', matmulTile: [8, 2] }, `${auto}+custom`, { matmulKernel: 'shared', matmulTile: [8, 2] }],
        // register tiles taking 2 or 4 steps of k per iteration (the SwiftShader row), odd lengths left over
        ['swiftshader', 'swiftshader', { matmulKernel: 'registers', matmulUnrollK: 2 }],
        [{ matmulUnrollK: 4 }, `${auto}+custom`, { matmulKernel: 'registers', matmulUnrollK: 4 }],
      ] as const) {
        expect((await k.init({ tuning: tuning as never })).tuning).toBe(name);
        expect(kernelConfig()).toMatchObject(knobs);
        // [70, 33] × [33, 45] (B read element by element); [70, 33] × [33, 48] (as vec4, as the unrolled k loop
        // needs); [16, 1001] × [1001, 8]: few tiles, so k is split into slices (of odd length)
        for (const [M, K, N] of [[70, 33, 45], [70, 33, 48], [16, 1001, 8]] as const) {
          const a = k.randn([M, K]), b = k.randn([K, N]);
          const [got, x, y] = await Promise.all([a.matmul(b).data(), a.data(), b.data()]);
          let worst = 0;
          for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
            let s = 0;
            for (let t = 0; t < K; t++) s += x[i * K + t]! * y[t * N + j]!;
            worst = Math.max(worst, Math.abs(got[i * N + j]! - s));
          }
          expect(worst).toBeLessThan(1e-4 * Math.sqrt(K));
        }
      }
    } finally {
      await k.init({ tuning: 'auto' });
    }
    expect(k.deviceInfo().tuning).toBe(auto);
  });
});

describe('synchronize', () => {
  it('resolves after the work submitted before it, in order with realize', async () => {
    const order: string[] = [];
    const x = k.randn([256, 256]);
    const y = x.matmul(x).relu().sum();
    const r = k.realize(y).then(() => order.push('realize'));
    await k.synchronize().then(() => order.push('synchronize'));
    await r;
    expect(order).toEqual(['realize', 'synchronize']);
    expect(Number.isFinite(await y.item())).toBe(true);
    [x, y].forEach((t) => t.dispose());
  });
});

describe('program cache', () => {
  /** 6 AdamW steps of a small MLP; returns the losses and the final weights. */
  async function train(): Promise<{ losses: number[]; weights: Float32Array[] }> {
    k.manualSeed(3);
    const net = new k.nn.Sequential(new k.nn.Linear(12, 16), new k.nn.GELU(), new k.nn.Dropout(0.25), new k.nn.Linear(16, 3));
    const opt = new k.optim.AdamW(net, { lr: 3e-2 });
    const x = k.randn([20, 12]).keep();
    const y = k.randint(0, 3, [20]).keep();
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const loss = opt.minimize(() => k.F.crossEntropy(net.forward(x), y));
      losses.push(await loss.item());
      loss.dispose();
    }
    const weights = await Promise.all(net.parameters().map((p) => p.data() as Promise<Float32Array>));
    [x, y].forEach((t) => t.dispose());
    return { losses, weights };
  }

  it('a step of the same structure reuses its program and gives the bits of planning anew', async () => {
    programConfig.cache = false;
    const fresh = await train();
    programConfig.cache = true;
    const h0 = programStats.hits, p0 = k.stats().pipelinesCompiled;
    const cached = await train();
    expect(programStats.hits - h0).toBeGreaterThanOrEqual(5); // steps 2..6 (dropout draws new numbers each step)
    expect(k.stats().pipelinesCompiled - p0).toBe(0);
    expect(cached.losses).toEqual(fresh.losses);
    expect(cached.losses[5]!).toBeLessThan(cached.losses[0]! * 0.9);
    cached.weights.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(fresh.weights[i]!)));
  });

  it('a replayed step binds the buffers it bound before with the bind groups it made then', async () => {
    k.manualSeed(4);
    const net = new k.nn.Sequential(new k.nn.Linear(12, 16), new k.nn.SiLU(), new k.nn.Linear(16, 3));
    const opt = new k.optim.AdamW(net, { lr: 1e-2 });
    const x = k.randn([20, 12]).keep();
    const y = k.randint(0, 3, [20]).keep();
    const step = async () => {
      const loss = opt.minimize(() => k.F.crossEntropy(net.forward(x), y));
      await loss.item();
      loss.dispose();
    };
    for (let i = 0; i < 3; i++) await step();
    const g0 = k.stats().bindGroups, d0 = k.stats().dispatches;
    for (let i = 0; i < 4; i++) await step();
    const dispatches = k.stats().dispatches - d0;
    expect(dispatches).toBeGreaterThan(40);
    expect(k.stats().bindGroups - g0).toBeLessThan(dispatches / 4);
    [x, y].forEach((t) => t.dispose());
  });

  it('graphs that differ in structure do not share a program', async () => {
    const x = k.tensor([1, 2, 3]);
    const pad = (v: number) => x.pad([[1, 1]], v).mul(2);
    const m0 = programStats.misses;
    expect(await pad(-Infinity).tolist()).toEqual([-Infinity, 2, 4, 6, -Infinity]);
    const m1 = programStats.misses;
    expect(await pad(NaN).tolist()).toEqual([NaN, 2, 4, 6, NaN]);
    expect(await pad(-Infinity).tolist()).toEqual([-Infinity, 2, 4, 6, -Infinity]);
    expect(programStats.misses - m1).toBe(1); // the NaN pad is a program of its own, the second −∞ pad is a hit
    expect(m1 - m0).toBe(1);
    // a constant's value is a run-time scalar: the same program serves every value
    const m2 = programStats.misses;
    expect(await x.add(0.5).tolist()).toEqual([1.5, 2.5, 3.5]);
    expect(await x.add(7).tolist()).toEqual([8, 9, 10]);
    expect(programStats.misses - m2).toBeLessThanOrEqual(1);
    x.dispose();
  });
});
