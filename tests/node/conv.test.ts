/** Convolution and pooling against direct float64 loops written here, and gradients by finite differences. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close, f32, values } from '../shared/util.ts';

beforeAll(async () => {
  await k.init();
});

/** Direct conv2d in float64 (PyTorch semantics). */
function convRef(x: number[], xs: number[], w: number[], ws: number[], b: number[] | null, s: number[], p: number[], d: number[], g: number): { out: number[]; shape: number[] } {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, kh, kw] = ws as [number, number, number, number];
  const Ho = Math.floor((H + 2 * p[0]! - d[0]! * (kh - 1) - 1) / s[0]!) + 1;
  const Wo = Math.floor((W + 2 * p[1]! - d[1]! * (kw - 1) - 1) / s[1]!) + 1;
  const out: number[] = [];
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    const grp = Math.floor(o / (O / g));
    let acc = b ? b[o]! : 0;
    for (let c = 0; c < Cg; c++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const y = i * s[0]! - p[0]! + u * d[0]!, xx = j * s[1]! - p[1]! + v * d[1]!;
      if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
      acc += x[((n * C + grp * Cg + c) * H + y) * W + xx]! * w[((o * Cg + c) * kh + u) * kw + v]!;
    }
    out.push(acc);
  }
  return { out, shape: [N, O, Ho, Wo] };
}

/** Direct transposed conv: every input element scatters weight·x into the output. */
function convTRef(x: number[], xs: number[], w: number[], ws: number[], s: number, p: number, op: number, g: number): { out: number[]; shape: number[] } {
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [, Og, kh, kw] = ws as [number, number, number, number];
  const O = Og * g;
  const Ho = (H - 1) * s - 2 * p + kh + op, Wo = (W - 1) * s - 2 * p + kw + op;
  const out = new Array(N * O * Ho * Wo).fill(0);
  for (let n = 0; n < N; n++) for (let c = 0; c < Cin; c++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    const grp = Math.floor(c / (Cin / g));
    for (let oc = 0; oc < Og; oc++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const y = i * s - p + u, xx = j * s - p + v;
      if (y < 0 || y >= Ho || xx < 0 || xx >= Wo) continue;
      out[((n * O + grp * Og + oc) * Ho + y) * Wo + xx] += x[((n * Cin + c) * H + i) * W + j]! * w[((c * Og + oc) * kh + u) * kw + v]!;
    }
  }
  return { out, shape: [N, O, Ho, Wo] };
}

describe('conv2d', () => {
  it.each([
    { name: '3x3 same', xs: [2, 3, 6, 5], ws: [4, 3, 3, 3], s: [1, 1], p: [1, 1], d: [1, 1], g: 1 },
    { name: 'stride 2, pad 1', xs: [1, 2, 7, 7], ws: [3, 2, 3, 3], s: [2, 2], p: [1, 1], d: [1, 1], g: 1 },
    { name: 'dilation 2', xs: [1, 2, 8, 6], ws: [2, 2, 3, 2], s: [1, 1], p: [2, 1], d: [2, 1], g: 1 },
    { name: 'groups 2', xs: [2, 4, 5, 5], ws: [6, 2, 3, 3], s: [1, 2], p: [0, 1], d: [1, 1], g: 2 },
    { name: '1x1', xs: [2, 3, 4, 4], ws: [5, 3, 1, 1], s: [1, 1], p: [0, 0], d: [1, 1], g: 1 },
  ])('$name matches the direct loop', async ({ xs, ws, s, p, d, g }) => {
    const x = f32(values(xs.reduce((a, b) => a * b), 1)), w = f32(values(ws.reduce((a, b) => a * b), 2)), b = f32(values(ws[0]!, 3));
    const ref = convRef(x, xs, w, ws, b, s, p, d, g);
    const y = k.nn.conv2d(k.tensor(x, { shape: xs }), k.tensor(w, { shape: ws }), k.tensor(b), { stride: s as [number, number], padding: p as [number, number], dilation: d as [number, number], groups: g });
    expect(y.shape).toEqual(ref.shape);
    close(await y.data(), ref.out, 2e-5, 1e-5);
  });

  it.each([
    { ws: [3, 2, 3, 5], d: [1, 1] },
    { ws: [3, 2, 2, 4], d: [1, 1] },
    { ws: [3, 2, 2, 3], d: [2, 3] },
  ])("padding 'same' keeps the size and equals the direct loop on the input padded as PyTorch does (kernel $ws, dilation $d)", async ({ ws, d }) => {
    // PyTorch: total padding d·(k − 1) per axis, ⌊total/2⌋ before and the rest after (asymmetric for even spans)
    const [N, C, H, W] = [1, 2, 9, 7];
    const x = f32(values(N * C * H * W, 4)), w = f32(values(ws.reduce((a, b) => a * b), 5)), b = f32(values(ws[0]!, 6));
    const tot = [0, 1].map((a) => d[a]! * (ws[2 + a]! - 1)), lo = tot.map((t) => Math.floor(t / 2));
    const Hp = H + tot[0]!, Wp = W + tot[1]!;
    const xp = new Array<number>(N * C * Hp * Wp).fill(0);
    for (let c = 0; c < C; c++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) xp[(c * Hp + i + lo[0]!) * Wp + j + lo[1]!] = x[(c * H + i) * W + j]!;
    const ref = convRef(xp, [N, C, Hp, Wp], w, ws, b, [1, 1], [0, 0], d, 1);
    expect(ref.shape).toEqual([1, 3, 9, 7]);
    const y = k.nn.conv2d(k.tensor(x, { shape: [N, C, H, W] }), k.tensor(w, { shape: ws }), k.tensor(b), { padding: 'same', dilation: d as [number, number] });
    expect(y.shape).toEqual([1, 3, 9, 7]);
    close(await y.data(), ref.out, 2e-5, 1e-5);
  });

  it('errors name the problem', () => {
    expect(() => k.nn.conv2d(k.zeros([1, 3, 5, 5]), k.zeros([2, 4, 3, 3]))).toThrow(/conv2d: input has 3 channels but weight \[2, 4, 3, 3\] expects 4/);
    expect(() => k.nn.conv2d(k.zeros([1, 4, 5, 5]), k.zeros([3, 2, 3, 3]), null, { groups: 2 })).toThrow(/conv2d: groups 2 must divide/);
    expect(() => k.nn.conv2d(k.zeros([1, 1, 2, 2]), k.zeros([1, 1, 3, 3]))).toThrow(/conv2d: kernel 3 \(dilation 1\) is larger than the padded input 2/);
  });

  it('reads the windows in place: a padded copy, one matmul with the bias fused, and the consumer', async () => {
    const x = k.randn([2, 8, 12, 12]), w = k.randn([16, 8, 3, 3]), b = k.randn([16]);
    await k.realize(x, w, b);
    const ref = convRef(Array.from(await x.data()), x.shape, Array.from(await w.data()), w.shape, Array.from(await b.data()), [1, 1], [1, 1], [1, 1], 1);
    const before = k.stats();
    const y = k.nn.conv2d(x, w, b, { padding: 1 }).relu();
    await k.realize(y);
    const after = k.stats();
    expect(after.kernels - before.kernels).toBe(3);
    close(await y.data(), ref.out.map((v) => Math.max(v, 0)), 1e-4, 1e-4);
    y.dispose();
  });

  it('gradients match float64 finite differences', async () => {
    const r = await k.gradcheck((x, w, b) => k.nn.conv2d(x, w, b, { stride: 2, padding: 1 }), [
      { shape: [1, 2, 5, 5], data: values(50, 4) }, { shape: [3, 2, 3, 3], data: values(54, 5) }, { shape: [3], data: values(3, 6) },
    ]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
  });
});

describe('conv2d input gradient of a stride-1 convolution', () => {
  /** dL/dx and dL/dw in float64 of L = Σ r·conv2d(x, w), stride 1, pads [top, bottom, left, right], dilation d, groups g. */
  function gradRef(x: Float32Array, xs: number[], w: Float32Array, ws: number[], r: Float32Array, pads: number[], d: number[], g: number) {
    const [N, C, H, W] = xs as [number, number, number, number];
    const [O, Cg, kh, kw] = ws as [number, number, number, number];
    const Ho = H + pads[0]! + pads[1]! - d[0]! * (kh - 1), Wo = W + pads[2]! + pads[3]! - d[1]! * (kw - 1);
    const gx = new Float64Array(x.length), gw = new Float64Array(w.length);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      const rv = r[((n * O + o) * Ho + i) * Wo + j]!, c0 = Math.floor(o / (O / g)) * Cg;
      for (let c = 0; c < Cg; c++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
        const y = i - pads[0]! + u * d[0]!, xx = j - pads[2]! + v * d[1]!;
        if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
        const xi = ((n * C + c0 + c) * H + y) * W + xx, wi = ((o * Cg + c) * kh + u) * kw + v;
        gx[xi] += rv * w[wi]!;
        gw[wi] += rv * x[xi]!;
      }
    }
    return { gx, gw, shape: [N, O, Ho, Wo] };
  }

  it.each([
    { name: '3×3, padding 1, groups 2', xs: [2, 4, 7, 6], ws: [6, 2, 3, 3], padding: 1 as k.nn.Conv2dOptions['padding'], pads: [1, 1, 1, 1], d: [1, 1], g: 2 },
    { name: "2×4 'same' (uneven padding)", xs: [3, 3, 6, 7], ws: [5, 3, 2, 4], padding: 'same' as const, pads: [0, 1, 1, 2], d: [1, 1], g: 1 },
    { name: 'padding beyond the kernel (the gradient is cropped)', xs: [2, 3, 5, 5], ws: [4, 3, 3, 3], padding: [3, 2] as [number, number], pads: [3, 3, 2, 2], d: [1, 1], g: 1 },
    { name: 'dilation 2 × 1, 1×1 kernel', xs: [2, 5, 9, 6], ws: [3, 5, 3, 1], padding: [2, 0] as [number, number], pads: [2, 2, 0, 0], d: [2, 1], g: 1 },
  ])('$name: dx and dw match float64, and no matmul forms the windows\' gradient', async ({ xs, ws, padding, pads, d, g }) => {
    const n = (sh: number[]) => sh.reduce((a, b) => a * b, 1);
    const rnd = (m: number, seed: number) => Float32Array.from({ length: m }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
    const xv = rnd(n(xs), 1), wv = rnd(n(ws), 2);
    const x = k.tensor(xv, { shape: xs, requiresGrad: true }), w = k.tensor(wv, { shape: ws, requiresGrad: true });
    const y = k.F.conv2d(x, w, null, { padding, dilation: d as [number, number], groups: g });
    const ref = gradRef(xv, xs, wv, ws, new Float32Array(0), pads, d, g);
    expect(y.shape).toEqual(ref.shape);
    expect((y as unknown as { gradFn: { def: { name: string } } }).gradFn.def.name).toBe('conv2d');
    const rv = rnd(y.size, 4);
    const prof = await k.profile(async () => {
      y.mul(k.tensor(rv, { shape: y.shape })).sum().backward();
      await k.realize(x.grad!, w.grad!);
    });
    const { gx, gw } = gradRef(xv, xs, wv, ws, rv, pads, d, g);
    expect(gx.some((v) => v !== 0) && gw.some((v) => v !== 0)).toBe(true);
    close(await x.grad!.data(), Array.from(gx), 1e-5, 1e-4, 'dx');
    close(await w.grad!.data(), Array.from(gw), 1e-4, 1e-4, 'dw');
    // the windows' gradient would be a matmul with (C/g)·kh·kw rows
    const rows = prof.filter((p) => p.label.startsWith('matmul')).map((p) => Number(/(\d+)×\d+×\d+$/.exec(p.label)![1]));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).not.toContain(ws[1]! * ws[2]! * ws[3]!);
  });

  it('gradients match float64 finite differences (groups, dilation, uneven padding)', async () => {
    const r = await k.gradcheck((x, w, b) => k.nn.conv2d(x, w, b, { padding: 'same', dilation: [1, 2], groups: 2 }), [
      { shape: [2, 4, 5, 6], data: values(240, 14) }, { shape: [2, 2, 2, 3], data: values(24, 15) }, { shape: [2], data: values(2, 16) },
    ]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
  });
});

describe('conv2d input gradient of a strided convolution', () => {
  /** dL/dx and dL/dw of L = Σ r·conv2d(x, w) in float64 (stride [sh, sw], padding [ph, pw], dilation [dh, dw], groups g). */
  function gradRef(x: Float32Array, xs: number[], w: Float32Array, ws: number[], r: Float32Array, s: number[], p: number[], d: number[], g: number) {
    const [N, C, H, W] = xs as [number, number, number, number];
    const [O, Cg, kh, kw] = ws as [number, number, number, number];
    const Ho = Math.floor((H + 2 * p[0]! - d[0]! * (kh - 1) - 1) / s[0]!) + 1, Wo = Math.floor((W + 2 * p[1]! - d[1]! * (kw - 1) - 1) / s[1]!) + 1;
    const gx = new Float64Array(x.length), gw = new Float64Array(w.length);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      const rv = r[((n * O + o) * Ho + i) * Wo + j]!, c0 = Math.floor(o / (O / g)) * Cg;
      for (let c = 0; c < Cg; c++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
        const y = i * s[0]! - p[0]! + u * d[0]!, xx = j * s[1]! - p[1]! + v * d[1]!;
        if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
        const xi = ((n * C + c0 + c) * H + y) * W + xx, wi = ((o * Cg + c) * kh + u) * kw + v;
        gx[xi] += rv * w[wi]!;
        gw[wi] += rv * x[xi]!;
      }
    }
    return { gx, gw, Ho, Wo };
  }
  const n = (sh: number[]) => sh.reduce((a, b) => a * b, 1);
  const rnd = (m: number, seed: number) => Float32Array.from({ length: m }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);

  afterAll(() => k.nn.setConvGradientChunkBytes(8 * 2 ** 20));

  it.each([
    { name: '3×3 stride 2, padding 1 (a kernel not a multiple of the stride)', xs: [2, 3, 9, 8], ws: [4, 3, 3, 3], s: [2, 2], p: [1, 1], g: 1 },
    { name: '4×4 stride 2, padding 1 (PatchGAN), groups 2', xs: [2, 4, 10, 11], ws: [6, 2, 4, 4], s: [2, 2], p: [1, 1], g: 2 },
    { name: '1×2 stride [2, 3] (inputs no tap reaches)', xs: [1, 3, 7, 8], ws: [2, 3, 1, 2], s: [2, 3], p: [0, 0], g: 1 },
    { name: '2×3 stride [3, 2], padding [2, 0] (padding beyond the taps of a phase)', xs: [2, 2, 11, 9], ws: [3, 2, 2, 3], s: [3, 2], p: [2, 0], g: 1 },
    { name: '5×5 stride 2, padding 2 (padding beyond a phase)', xs: [1, 2, 12, 10], ws: [3, 2, 5, 5], s: [2, 2], p: [2, 2], g: 1 },
    { name: '4×4 stride 2, rows and columns past the last window', xs: [2, 2, 11, 9], ws: [3, 2, 4, 4], s: [2, 2], p: [0, 0], g: 1 },
    { name: '3×3 stride [1, 2] (a 1-D strided convolution\'s shape)', xs: [2, 3, 5, 9], ws: [4, 3, 3, 3], s: [1, 2], p: [1, 1], g: 1 },
  ])('$name: dx and dw match float64, and no matmul forms the windows\' gradient', async ({ xs, ws, s, p, g }) => {
    const xv = rnd(n(xs), 1), wv = rnd(n(ws), 2);
    const x = k.tensor(xv, { shape: xs, requiresGrad: true }), w = k.tensor(wv, { shape: ws, requiresGrad: true });
    const y = k.F.conv2d(x, w, null, { stride: s as [number, number], padding: p as [number, number], groups: g });
    expect((y as unknown as { gradFn: { def: { name: string } } }).gradFn.def.name).toBe('conv2d');
    const rv = rnd(y.size, 4);
    const prof = await k.profile(async () => {
      y.mul(k.tensor(rv, { shape: y.shape })).sum().backward();
      await k.realize(x.grad!, w.grad!);
    });
    const ref = gradRef(xv, xs, wv, ws, rv, s, p, [1, 1], g);
    expect(y.shape).toEqual([xs[0], ws[0], ref.Ho, ref.Wo]);
    expect(ref.gx.some((v) => v !== 0) && ref.gw.some((v) => v !== 0)).toBe(true);
    close(await x.grad!.data(), Array.from(ref.gx), 1e-5, 1e-4, 'dx');
    close(await w.grad!.data(), Array.from(ref.gw), 1e-4, 1e-4, 'dw');
    // the windows' gradient would be a matmul with (C/g)·kh·kw rows
    const rows = prof.filter((q) => q.label.startsWith('matmul')).map((q) => Number(/(\d+)×\d+×\d+$/.exec(q.label)![1]));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).not.toContain(ws[1]! * ws[2]! * ws[3]!);
  });

  it('4×4 stride 4 (16 phases, over the per-phase limit): dx matches float64 through the windows\' gradient', async () => {
    const xs = [2, 3, 13, 10], ws = [4, 3, 4, 4];
    const xv = rnd(n(xs), 5), wv = rnd(n(ws), 6);
    const x = k.tensor(xv, { shape: xs, requiresGrad: true }), w = k.tensor(wv, { shape: ws, requiresGrad: true });
    const y = k.F.conv2d(x, w, null, { stride: 4, padding: 1 });
    const rv = rnd(y.size, 7);
    const prof = await k.profile(async () => {
      y.mul(k.tensor(rv, { shape: y.shape })).sum().backward();
      await k.realize(x.grad!, w.grad!);
    });
    const ref = gradRef(xv, xs, wv, ws, rv, [4, 4], [1, 1], [1, 1], 1);
    expect(ref.gx.some((v) => v !== 0)).toBe(true);
    close(await x.grad!.data(), Array.from(ref.gx), 1e-5, 1e-4, 'dx');
    close(await w.grad!.data(), Array.from(ref.gw), 1e-4, 1e-4, 'dw');
    const rows = prof.filter((q) => q.label.startsWith('matmul')).map((q) => Number(/(\d+)×\d+×\d+$/.exec(q.label)![1]));
    expect(rows).toContain(ws[1]! * ws[2]! * ws[3]!);
  });

  for (const [name, xs, ws, s, p, g] of [
    ['stride 2, dilation 2, padding 1, uneven chunks [2, 2, 1]', [5, 6, 10, 10], [4, 6, 3, 3], 2, 1, 1],
    ['stride 2, dilation 2, groups 2', [4, 8, 11, 11], [6, 4, 3, 3], 2, 1, 2],
  ] as [string, number[], number[], number, number, number][]) {
    it(`${name}: the windows' gradient is taken per chunk, and every gradient matches float64`, async () => {
      const xv = rnd(n(xs), 1), wv = rnd(n(ws), 2), bv = rnd(ws[0]!, 3);
      // windows' gradient of 2 images per chunk
      const Ho = Math.floor((xs[2]! + 2 * p - 2 * 2 - 1) / s) + 1;
      k.nn.setConvGradientChunkBytes(2 * xs[1]! * 9 * Ho * Ho * 4);
      const x = k.tensor(xv, { shape: xs, requiresGrad: true }), w = k.tensor(wv, { shape: ws, requiresGrad: true }), b = k.tensor(bv, { requiresGrad: true });
      const y = k.F.conv2d(x, w, b, { stride: s, padding: p, dilation: 2, groups: g });
      expect((y as unknown as { gradFn: { def: { name: string } } }).gradFn.def.name).toBe('conv2d'); // the chunked step
      const rv = rnd(y.size, 4);
      const prof = await k.profile(async () => {
        y.mul(k.tensor(rv, { shape: y.shape })).sum().backward();
        await k.realize(x.grad!, w.grad!, b.grad!);
      });
      const ref = gradRef(xv, xs, wv, ws, rv, [s, s], [p, p], [2, 2], g);
      expect(ref.Ho).toBe(Ho);
      expect(ref.gx.some((v) => v !== 0) && ref.gw.some((v) => v !== 0)).toBe(true);
      close(await x.grad!.data(), Array.from(ref.gx), 1e-5, 1e-4, 'dx');
      close(await w.grad!.data(), Array.from(ref.gw), 1e-4, 1e-4, 'dw');
      close(await b.grad!.data(), Array.from({ length: ws[0]! }, (_, o) => rv.filter((_, i) => Math.floor(i / (Ho * Ho)) % ws[0]! === o).reduce((a, v) => a + v, 0)), 1e-4, 1e-4, 'db');
      // a dilated strided convolution still forms the windows' gradient, a matmul with (C/g)·kh·kw rows: one per chunk of 2 images
      const chunks = prof.filter((q) => q.label.startsWith('matmul') && Number(/(\d+)×\d+×\d+$/.exec(q.label)![1]) === ws[1]! * 9);
      expect(chunks.reduce((a, q) => a + q.count, 0)).toBe(Math.ceil(xs[0]! / 2));
    });
  }

  it('second-order gradients go through the whole composite: the same as without chunks', async () => {
    const run = async (chunkBytes: number) => {
      k.nn.setConvGradientChunkBytes(chunkBytes);
      const x = k.tensor(Float32Array.from({ length: 4 * 6 * 9 * 9 }, (_, i) => Math.cos(i * 0.37) * 0.5), { shape: [4, 6, 9, 9], requiresGrad: true });
      const w = k.tensor(Float32Array.from({ length: 5 * 6 * 9 }, (_, i) => Math.sin(i * 0.11) * 0.2), { shape: [5, 6, 3, 3], requiresGrad: true });
      const [gx] = k.gradients(k.F.conv2d(x, w, null, { stride: 2, padding: 1, dilation: 2 }).pow(2).sum(), [x], { createGraph: true }) as k.Tensor[];
      gx!.pow(2).sum().backward();
      return Array.from(await w.grad!.data());
    };
    const [chunked, whole] = [await run(1024), await run(Infinity)];
    expect(chunked.some((v) => v !== 0)).toBe(true);
    close(chunked, whole, 1e-5, 1e-5, 'second-order dw');
  });
});

describe('conv1d', () => {
  it('matches a direct loop (stride 2, padding 1, dilation 2, groups 2, bias)', async () => {
    const [N, C, L, O, K] = [2, 4, 11, 6, 3];
    const xv = f32(values(N * C * L, 21)), wv = f32(values(O * (C / 2) * K, 22)), bv = f32(values(O, 23));
    const y = k.nn.conv1d(k.tensor(xv, { shape: [N, C, L] }), k.tensor(wv, { shape: [O, C / 2, K] }), k.tensor(bv), { stride: 2, padding: 1, dilation: 2, groups: 2 });
    const Lo = Math.floor((L + 2 - 2 * (K - 1) - 1) / 2) + 1;
    expect(y.shape).toEqual([N, O, Lo]);
    const ref: number[] = [];
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Lo; i++) {
      let acc = bv[o]!;
      const g = Math.floor(o / (O / 2));
      for (let c = 0; c < C / 2; c++) for (let j = 0; j < K; j++) {
        const at = i * 2 - 1 + j * 2;
        if (at >= 0 && at < L) acc += xv[(n * C + g * (C / 2) + c) * L + at]! * wv[(o * (C / 2) + c) * K + j]!;
      }
      ref.push(acc);
    }
    close(await y.data(), ref, 1e-5, 1e-5);
    expect(() => k.nn.conv1d(k.zeros([2, 3]), k.zeros([1, 3, 2]))).toThrow(/conv1d: input must be \[N, C, L\], got \[2, 3\]/);
  });
});

describe('convTranspose2d', () => {
  it.each([
    { name: 'stride 2', xs: [1, 3, 4, 4], ws: [3, 2, 3, 3], s: 2, p: 1, op: 1, g: 1 },
    { name: 'stride 1 pad 0', xs: [2, 2, 3, 5], ws: [2, 4, 2, 2], s: 1, p: 0, op: 0, g: 1 },
    { name: 'groups 2 stride 3', xs: [1, 4, 3, 3], ws: [4, 1, 3, 3], s: 3, p: 1, op: 2, g: 2 },
  ])('$name matches the direct scatter', async ({ xs, ws, s, p, op, g }) => {
    const x = f32(values(xs.reduce((a, b) => a * b), 7)), w = f32(values(ws.reduce((a, b) => a * b), 8));
    const ref = convTRef(x, xs, w, ws, s, p, op, g);
    const y = k.nn.convTranspose2d(k.tensor(x, { shape: xs }), k.tensor(w, { shape: ws }), null, { stride: s, padding: p, outputPadding: op, groups: g });
    expect(y.shape).toEqual(ref.shape);
    close(await y.data(), ref.out, 2e-5, 1e-5);
  });
});

describe('pooling and pixel shuffle', () => {
  const xs = [1, 2, 5, 6];
  const x = f32(values(60, 9));
  const at = (c: number, i: number, j: number) => x[(c * 5 + i) * 6 + j]!;
  it('maxPool2d 2x2 (stride 2) and avgPool2d 3x3 stride 1 pad 1', async () => {
    const t = k.tensor(x, { shape: xs });
    const mp = await k.nn.maxPool2d(t, 2).data();
    const want: number[] = [];
    for (let c = 0; c < 2; c++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) want.push(Math.max(at(c, 2 * i, 2 * j), at(c, 2 * i + 1, 2 * j), at(c, 2 * i, 2 * j + 1), at(c, 2 * i + 1, 2 * j + 1)));
    close(mp, want, 0, 0);
    const ap = await k.nn.avgPool2d(t, 3, { stride: 1, padding: 1 }).data();
    const wantA: number[] = [];
    for (let c = 0; c < 2; c++) for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) {
      let s = 0;
      for (let u = -1; u <= 1; u++) for (let v = -1; v <= 1; v++) if (i + u >= 0 && i + u < 5 && j + v >= 0 && j + v < 6) s += at(c, i + u, j + v);
      wantA.push(s / 9);
    }
    close(ap, wantA, 1e-6, 1e-5);
  });

  it('pixelShuffle and pixelUnshuffle are inverse and place channels like PyTorch', async () => {
    const t = k.arange(2 * 8 * 2 * 3).reshape([2, 8, 2, 3]).float();
    const up = k.nn.pixelShuffle(t, 2);
    expect(up.shape).toEqual([2, 2, 4, 6]);
    // out[n, c, h·r + i, w·r + j] = in[n, c·r² + i·r + j, h, w]
    const v = await up.data();
    expect(v[((1 * 2 + 1) * 4 + 3) * 6 + 4]).toBe(((1 * 8 + (1 * 4 + 1 * 2 + 0)) * 2 + 1) * 3 + 2);
    expect(await k.nn.pixelUnshuffle(up, 2).tolist()).toEqual(await t.tolist());
  });
});

describe('resampling', () => {
  const [H, W] = [3, 4];
  const x = f32(values(H * W, 71));
  const at = (i: number, j: number) => x[i * W + j]!;
  function bilinearRef(oh: number, ow: number, align: boolean): number[] {
    const src = (i: number, n: number, o: number) => Math.min(align ? (o > 1 ? (i * (n - 1)) / (o - 1) : 0) : Math.max(((i + 0.5) * n) / o - 0.5, 0), n - 1);
    const out: number[] = [];
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      const y = src(i, H, oh), xx = src(j, W, ow);
      const y0 = Math.floor(y), x0 = Math.floor(xx), y1 = Math.min(y0 + 1, H - 1), x1 = Math.min(x0 + 1, W - 1), fy = y - y0, fx = xx - x0;
      out.push((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)));
    }
    return out;
  }
  it.each([false, true])('bilinear (alignCorners %s) matches the PyTorch formula', async (align) => {
    const got = await k.nn.interpolate(k.tensor(x, { shape: [1, 1, H, W] }), { size: [5, 7], mode: 'bilinear', alignCorners: align }).data();
    close(got, bilinearRef(5, 7, align), 1e-5, 1e-5);
  });
  it('nearest ×2 repeats pixels; adaptiveAvgPool2d averages PyTorch bins', async () => {
    const got = await k.nn.interpolate(k.tensor(x, { shape: [1, 1, H, W] }), { scaleFactor: 2 }).data();
    close(got, Array.from({ length: 4 * H * W }, (_, p) => at(Math.floor(Math.floor(p / (2 * W)) / 2), Math.floor((p % (2 * W)) / 2))), 0, 0);
    const ap = await k.nn.adaptiveAvgPool2d(k.tensor(x, { shape: [1, 1, H, W] }), [2, 3]).data();
    const bins = (n: number, o: number) => Array.from({ length: o }, (_, i) => [Math.floor((i * n) / o), Math.ceil(((i + 1) * n) / o)]);
    const want: number[] = [];
    for (const [a, b] of bins(H, 2)) for (const [c, d] of bins(W, 3)) {
      let s = 0;
      for (let i = a!; i < b!; i++) for (let j = c!; j < d!; j++) s += at(i, j);
      want.push(s / ((b! - a!) * (d! - c!)));
    }
    close(ap, want, 1e-6, 1e-5);
  });
});
