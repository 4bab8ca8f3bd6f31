/** Normalization layers and attention against float64 loops written here; gradients by finite differences. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close, f32, values } from '../shared/util.ts';

beforeAll(async () => {
  await k.init();
});

describe('normalization', () => {
  it('groupNorm equals per-group standardization', async () => {
    const [N, C, H, W, G] = [2, 4, 3, 2, 2];
    // offset 3000 (σ ≈ 1.4): statistics from the plain sums of x and x² would cancel to errors of order 1
    for (const offset of [0, 3000]) {
      const x = f32(values(N * C * H * W, 21, -2, 3).map((v) => v + offset));
      const w = f32(values(C, 22)), b = f32(values(C, 23));
      const got = await k.nn.groupNorm(k.tensor(x, { shape: [N, C, H, W] }), G, k.tensor(w), k.tensor(b)).data();
      const per = (C / G) * H * W;
      const want: number[] = [];
      for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) {
        const seg = x.slice((n * G + g) * per, (n * G + g + 1) * per);
        const m = seg.reduce((a, c) => a + c, 0) / per;
        const v = seg.reduce((a, c) => a + (c - m) ** 2, 0) / per;
        seg.forEach((val, i) => { const c = g * (C / G) + Math.floor(i / (H * W)); want.push(((val - m) / Math.sqrt(v + 1e-5)) * w[c]! + b[c]!); });
      }
      // at 3000, x itself is off by up to 1.2e-4 (f32)
      close(got, want, offset ? 5e-4 : 2e-5, 1e-5);
    }
    const r = await k.gradcheck((t, ww, bb) => k.nn.groupNorm(t, 2, ww, bb), [{ shape: [1, 4, 2, 2], data: values(16, 24) }, { shape: [4], data: values(4, 25) }, { shape: [4], data: values(4, 26) }]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
  });

  it('rmsNorm', async () => {
    const x = f32(values(12, 31));
    const got = await k.nn.rmsNorm(k.tensor(x, { shape: [3, 4] }), [4]).data();
    const want = x.map((v, i) => { const row = x.slice(Math.floor(i / 4) * 4, Math.floor(i / 4) * 4 + 4); return v / Math.sqrt(row.reduce((a, c) => a + c * c, 0) / 4 + 1e-6); });
    close(got, want, 1e-5, 1e-5);
  });

  it('BatchNorm2d: batch statistics in training, running statistics (unbiased, momentum 0.1) in eval', async () => {
    const bn = new k.nn.BatchNorm2d(2);
    const x = f32(values(2 * 2 * 2 * 2, 41, 0, 4));
    const t = k.tensor(x, { shape: [2, 2, 2, 2] });
    const y = await bn.forward(t).data();
    const chan = (c: number) => [0, 1].flatMap((n) => x.slice((n * 2 + c) * 4, (n * 2 + c) * 4 + 4));
    const stats = [0, 1].map((c) => { const v = chan(c); const m = v.reduce((a, b) => a + b, 0) / 8; return { m, v: v.reduce((a, b) => a + (b - m) ** 2, 0) / 8 }; });
    x.forEach((v, i) => { const c = Math.floor(i / 4) % 2; expect(y[i]!).toBeCloseTo((v - stats[c]!.m) / Math.sqrt(stats[c]!.v + 1e-5), 4); });
    const rm = await bn.running_mean.data(), rv = await bn.running_var.data();
    stats.forEach((s, c) => { expect(rm[c]!).toBeCloseTo(0.1 * s.m, 5); expect(rv[c]!).toBeCloseTo(0.9 + 0.1 * s.v * 8 / 7, 5); });
    bn.eval();
    const ye = await bn.forward(t).data();
    x.forEach((v, i) => { const c = Math.floor(i / 4) % 2; expect(ye[i]!).toBeCloseTo((v - rm[c]!) / Math.sqrt(rv[c]! + 1e-5), 4); });
    expect(Object.keys(bn.stateDict()).sort()).toEqual(['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']);
    // one training batch was seen; the eval forward counts none
    expect(bn.num_batches_tracked.dtype).toBe('i32');
    expect(await bn.num_batches_tracked.item()).toBe(1);
  });

  it('BatchNorm2d with momentum null keeps the cumulative average of the batches\' statistics (1/num_batches_tracked)', async () => {
    const bn = new k.nn.BatchNorm2d(2, 1e-5, null);
    const stats: { m: number; v: number }[][] = [];
    for (let b = 0; b < 3; b++) {
      const x = f32(values(2 * 2 * 3, 70 + b, -1 + b, 2 + b));
      await bn.forward(k.tensor(x, { shape: [2, 2, 3, 1] })).data();
      stats.push([0, 1].map((c) => {
        const v = [0, 1].flatMap((n) => x.slice((n * 2 + c) * 3, (n * 2 + c) * 3 + 3));
        const m = v.reduce((a, q) => a + q, 0) / 6;
        return { m, v: v.reduce((a, q) => a + (q - m) ** 2, 0) / 5 };
      }));
    }
    expect(await bn.num_batches_tracked.item()).toBe(3);
    const rm = await bn.running_mean.data(), rv = await bn.running_var.data();
    for (const c of [0, 1]) {
      expect(rm[c]!).toBeCloseTo(stats.reduce((a, s) => a + s[c]!.m, 0) / 3, 5);
      expect(rv[c]!).toBeCloseTo(stats.reduce((a, s) => a + s[c]!.v, 0) / 3, 5);
    }
  });

  it('a PyTorch BatchNorm2d state dict, num_batches_tracked stored as I64, loads strictly and round-trips', async () => {
    // safetensors as PyTorch writes it: F32 parameters and buffers, an int64 scalar
    const f = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
    const parts: [string, string, number[], Uint8Array][] = [
      ['bias', 'F32', [2], f([0.5, -0.5])], ['num_batches_tracked', 'I64', [], new Uint8Array(new BigInt64Array([7n]).buffer)],
      ['running_mean', 'F32', [2], f([1, 2])], ['running_var', 'F32', [2], f([4, 9])], ['weight', 'F32', [2], f([2, 3])],
    ];
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, dtype, shape, bytes] of parts) {
      header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
      offset += bytes.length;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const file = new Uint8Array(8 + json.length + offset);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    let at = 8 + json.length;
    for (const [, , , bytes] of parts) { file.set(bytes, at); at += bytes.length; }
    const bn = new k.nn.BatchNorm2d(2);
    bn.loadStateDict(await k.load(file), { strict: true });
    expect(await bn.num_batches_tracked.item()).toBe(7);
    bn.eval();
    const y = await bn.forward(k.tensor([[[[1]], [[5]]]])).data();
    close(y, [2 * (1 - 1) / Math.sqrt(4 + 1e-5) + 0.5, 3 * (5 - 2) / Math.sqrt(9 + 1e-5) - 0.5], 1e-6, 1e-6);
    const back = await k.load(await k.serialize(bn.stateDict()));
    expect(Object.keys(back).sort()).toEqual(['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']);
    expect(await back.num_batches_tracked!.item()).toBe(7);
  });
});

describe('attention', () => {
  function sdpaRef(q: number[], kk: number[], v: number[], T: number, S: number, d: number, causal: boolean): number[] {
    const out: number[] = [];
    for (let i = 0; i < T; i++) {
      const s = Array.from({ length: S }, (_, j) => (causal && j > i + S - T ? -Infinity : q.slice(i * d, i * d + d).reduce((a, c, t) => a + c * kk[j * d + t]!, 0) / Math.sqrt(d)));
      const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, b) => a + b, 0);
      for (let t = 0; t < d; t++) out.push(e.reduce((a, w, j) => a + (w / z) * v[j * d + t]!, 0));
    }
    return out;
  }
  it.each([false, true])('scaledDotProductAttention (causal %s) equals softmax(qkᵀ/√d)v', async (causal) => {
    const [T, S, d] = [3, 4, 5];
    const q = f32(values(T * d, 51)), kk = f32(values(S * d, 52)), v = f32(values(S * d, 53));
    const got = await k.nn.scaledDotProductAttention(k.tensor(q, { shape: [1, T, d] }), k.tensor(kk, { shape: [1, S, d] }), k.tensor(v, { shape: [1, S, d] }), { causal }).data();
    close(got, sdpaRef(q, kk, v, T, S, d, causal), 1e-5, 1e-5);
  });

  it('attention gradients by finite differences; MultiheadAttention keeps PyTorch names and shapes', async () => {
    const r = await k.gradcheck((q, kk, v) => k.nn.scaledDotProductAttention(q, kk, v, { causal: true }), [
      { shape: [1, 3, 2], data: values(6, 61) }, { shape: [1, 3, 2], data: values(6, 62) }, { shape: [1, 3, 2], data: values(6, 63) },
    ]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
    const mha = new k.nn.MultiheadAttention(8, 2);
    expect([...mha.namedParameters()].map(([n, p]) => `${n}[${p.shape}]`)).toEqual(['in_proj_weight[24,8]', 'in_proj_bias[24]', 'out_proj.weight[8,8]', 'out_proj.bias[8]']);
    expect(mha.forward(k.randn([2, 5, 8])).shape).toEqual([2, 5, 8]);
  });

  it('MultiheadAttention (cross-attention, 2 heads) equals PyTorch\'s definition computed in float64 here', async () => {
    const [N, T, S, E, H] = [2, 3, 5, 8, 2], hd = E / H;
    const mha = new k.nn.MultiheadAttention(E, H);
    // non-zero biases (they start at zero) so that each one is checked
    const P = [mha.in_proj_weight!, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias!];
    P.forEach((p, i) => k.noGrad(() => p.assign(k.tensor(f32(values(p.size, 70 + i)), { shape: p.shape }))));
    const [Win, bin, Wo, bo] = await Promise.all(P.map(async (p) => Array.from(await p.data())));
    const q = f32(values(N * T * E, 75)), kk = f32(values(N * S * E, 76)), v = f32(values(N * S * E, 77));
    // rows r·E … r·E + E − 1 of in_proj hold W_q, W_k, W_v; y = x·Wᵀ + b
    const lin = (x: number[], rows: number, W: number[], b: number[], off: number) => Array.from({ length: rows * E }, (_, i) => {
      const r = Math.floor(i / E), o = i % E;
      let acc = b[off + o]!;
      for (let c = 0; c < E; c++) acc += x[r * E + c]! * W[(off + o) * E + c]!;
      return acc;
    });
    const want: number[] = [];
    for (let n = 0; n < N; n++) {
      const Q = lin(q.slice(n * T * E, (n + 1) * T * E), T, Win, bin, 0);
      const K = lin(kk.slice(n * S * E, (n + 1) * S * E), S, Win, bin, E);
      const V = lin(v.slice(n * S * E, (n + 1) * S * E), S, Win, bin, 2 * E);
      const head = (X: number[], rows: number, h: number) => Array.from({ length: rows * hd }, (_, i) => X[Math.floor(i / hd) * E + h * hd + (i % hd)]!);
      const concat = new Array<number>(T * E);
      for (let h = 0; h < H; h++) sdpaRef(head(Q, T, h), head(K, S, h), head(V, S, h), T, S, hd, false).forEach((x, i) => (concat[Math.floor(i / hd) * E + h * hd + (i % hd)] = x));
      want.push(...lin(concat, T, Wo, bo, 0));
    }
    const got = await mha.forward(k.tensor(q, { shape: [N, T, E] }), k.tensor(kk, { shape: [N, S, E] }), k.tensor(v, { shape: [N, S, E] })).data();
    close(got, want, 1e-5, 1e-5);
  });
});
