/**
 * The PixelCNN against independent references: causality and the absence of a blind spot read off
 * kiln's own input gradients (exact zeros where the raster order forbids a dependence), the NLL against
 * float64 closed forms, the fast sampler against whole-image sampling and against the model's
 * conditionals (a network built by hand to copy the previous pixel, and u < σ(logit) recomputed here),
 * training that lowers the test NLL, the average of the weights against its closed form, an exact resume
 * (average included), and the errors for bad input. The commands are tested in pixelcnn-cli.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { PixelCNNTrainer, PIXELCNN_TRAIN_DEFAULTS, evaluateNll } from '../../src/train/index.ts';
import { trainPixelcnnCommand } from '../../src/cli/pixelcnn.ts';
import { close, values } from '../shared/util.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-pixelcnn-'));

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Random 0/1 images [N, 1, S, S] from an LCG (not kiln's generator). */
function binaryImages(n: number, size: number, seed: number): k.Tensor {
  return k.tensor(values(n * size * size, seed, 0, 1).map((v) => (v < 0.5 ? 0 : 1)), { shape: [n, 1, size, size] });
}

/** The gradient of Σ over channels of `f(x)` at pixel (r, c) of image 0 with respect to every input pixel of image 0, row-major. */
async function pixelGradient(f: (x: k.Tensor) => k.Tensor, x0: k.Tensor, r: number, c: number): Promise<Float32Array> {
  const x = x0.detach();
  x.requiresGrad = true;
  const S = x.shape[3]!;
  k.scope(() => f(x).slice(0, 0, 1).slice(2, r, r + 1).slice(3, c, c + 1).sum().backward());
  const g = (await x.grad!.data()) as Float32Array;
  x.dispose();
  return g.slice(0, x0.shape[2]! * S);
}

/** Randomizes the per-class biases (zero at initialization) so conditioning takes part in the checks. */
function randomizeEmbeddings(m: k.nn.PixelCNN): void {
  for (const b of m.blocks) for (const e of [b.v_embed, b.h_embed]) if (e) e.weight.assign(k.randn(e.weight.shape));
}

describe('masks', () => {
  it('convMask: A excludes the centre, B includes it, nothing after it in raster order', () => {
    expect(Array.from(k.nn.convMask('A', 3, 3))).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(k.nn.convMask('B', 3, 3))).toEqual([1, 1, 1, 1, 1, 0, 0, 0, 0]);
  });

  it('MaskedConv2d: output i depends on no input after i (mask A: nor on i), and on some before it', async () => {
    k.manualSeed(3);
    const S = 6;
    const x = binaryImages(1, S, 11);
    for (const type of ['A', 'B'] as const) {
      const conv = new k.nn.MaskedConv2d(type, 1, 3, 5);
      for (const [r, c] of [[0, 0], [0, 5], [2, 3], [5, 0], [5, 5]] as const) {
        const g = await pixelGradient((t) => conv.forward(t), x, r, c);
        const i = r * S + c;
        for (let j = i + 1; j < S * S; j++) expect(g[j], `${type}: d out(${r},${c}) / d in ${j}`).toBe(0);
        if (type === 'A') expect(g[i]).toBe(0);
        else expect(g[i]).not.toBe(0);
        if (i > 0) expect(Array.from(g.slice(0, i)).some((v) => v !== 0), `${type} at (${r},${c}) depends on something before it`).toBe(true);
      }
    }
  });
});

describe('gated PixelCNN', () => {
  it('is causal: the logits of pixel i have exactly zero gradient for every input j ≥ i (vertical + horizontal stacks, conditional, 1- and 8-bit)', async () => {
    const S = 9;
    for (const bits of [1, 8] as const) {
      k.manualSeed(bits);
      const m = new k.nn.PixelCNN({ size: S, width: 6, layers: 4, kernel: 3, firstKernel: 5, head: 8, bits, numClasses: 3 });
      randomizeEmbeddings(m);
      const labels = k.tensor(Int32Array.from([2, 0]));
      const x = bits === 1 ? binaryImages(2, S, 7) : k.tensor(values(2 * S * S, 8, 0, 255).map(Math.floor), { shape: [2, 1, S, S] });
      for (const [r, c] of [[0, 0], [0, 1], [0, S - 1], [1, 0], [4, 4], [4, S - 1], [S - 1, 0], [S - 1, S - 1]] as const) {
        const g = await pixelGradient((t) => m.forward(t, labels), x, r, c);
        const i = r * S + c;
        const late = Array.from(g.slice(i)).flatMap((v, j) => (v !== 0 ? [i + j] : []));
        expect(late, `bits ${bits}: pixel (${r},${c}) depends on inputs at or after it`).toEqual([]);
        if (i > 0) expect(Array.from(g.slice(0, i)).some((v) => v !== 0), `bits ${bits}: pixel (${r},${c}) depends on something before it`).toBe(true);
      }
    }
  });

  it('has no blind spot: a middle pixel depends on every earlier pixel within reach, where a plain masked-conv stack misses some', async () => {
    const S = 13, r = 7, c = 6;
    k.manualSeed(5);
    const m = new k.nn.PixelCNN({ size: S, width: 8, layers: 5, kernel: 3, firstKernel: 3, head: 8 });
    const x = binaryImages(1, S, 9);
    const g = await pixelGradient((t) => m.forward(t), x, r, c);
    // the window: three rows above (columns c − 3 … c + 3) and three pixels to the left
    const window: [number, number][] = [];
    for (let rr = r - 3; rr < r; rr++) for (let cc = c - 3; cc <= c + 3; cc++) window.push([rr, cc]);
    for (let cc = c - 3; cc < c; cc++) window.push([r, cc]);
    const missed = window.filter(([rr, cc]) => g[rr * S + cc] === 0);
    expect(missed, 'earlier pixels the gated network does not see').toEqual([]);
    // the plain PixelCNN (mask A, then mask B, 3×3) of the same depth has a blind spot up and to the right
    const plain = new k.nn.Sequential(new k.nn.MaskedConv2d('A', 1, 8, 3), new k.nn.ReLU(), ...Array.from({ length: 4 }, () => [new k.nn.MaskedConv2d('B', 8, 8, 3), new k.nn.ReLU()]).flat());
    const gp = await pixelGradient((t) => plain.forward(t.mul(2).sub(1)), x, r, c);
    expect(window.filter(([rr, cc]) => gp[rr * S + cc] === 0).length).toBeGreaterThan(0);
  });

  it('the NLL is the closed form: BCE of random logits, and constant logits b (zero weights) give Σ softplus(b) − x·b; 8-bit gives Σ logsumexp(b) − b[x]', async () => {
    // pixelNll against float64 BCE with logits
    const N = 2, S = 5;
    const ls = values(N * S * S, 21, -6, 6), xs = values(N * S * S, 22, 0, 1).map((v) => (v < 0.4 ? 0 : 1));
    const got = await k.nn.pixelNll(k.tensor(ls, { shape: [N, 1, S, S] }), k.tensor(xs, { shape: [N, 1, S, S] }), 1).data();
    const f = (v: number) => Math.fround(v);
    const want = [0, 1].map((n) => {
      let s = 0;
      for (let i = 0; i < S * S; i++) {
        const l = f(ls[n * S * S + i]!), y = xs[n * S * S + i]!;
        s += Math.log1p(Math.exp(-Math.abs(l))) + Math.max(l, 0) - l * y;
      }
      return s;
    });
    close(got, want, 1e-4, 1e-5, 'pixelNll');
    // a PixelCNN whose weights are zero: logits = the head's bias everywhere
    k.manualSeed(0);
    const b = 0.7;
    const m = new k.nn.PixelCNN({ size: 28, width: 4, layers: 2, head: 4 });
    for (const p of m.parameters()) p.assign(k.zerosLike(p));
    m.out2.bias!.assign(k.full([1], b));
    const x = binaryImages(3, 28, 4);
    const ones = Array.from({ length: 3 }, (_, n) => values(3 * 784, 4, 0, 1).slice(n * 784, (n + 1) * 784).filter((v) => v >= 0.5).length);
    const closed = ones.map((s) => 784 * Math.log1p(Math.exp(b)) - s * b);
    close(await m.nll(x).data(), closed, 2e-3, 1e-5, 'constant-logit NLL');
    // against probabilities p, whatever bits x were drawn: Σ softplus(b) − p·b, the mean of the NLL over the draws
    const p = values(3 * 784, 5, 0, 1);
    const expected = [0, 1, 2].map((n) => p.slice(n * 784, (n + 1) * 784).reduce((s, v) => s + Math.log1p(Math.exp(b)) - v * b, 0));
    close(await m.nll(x, null, k.tensor(p, { shape: [3, 1, 28, 28] })).data(), expected, 2e-3, 1e-5, 'constant-logit NLL against probabilities');
    // 8-bit: logits = a bias vector over the 256 levels
    const m8 = new k.nn.PixelCNN({ size: 6, width: 4, layers: 2, head: 4, bits: 8 });
    for (const p of m8.parameters()) p.assign(k.zerosLike(p));
    const bias = values(256, 31, -2, 2).map(f);
    m8.out2.bias!.assign(k.tensor(bias));
    const grey = values(36, 32, 0, 256).map(Math.floor);
    const lse = Math.log(bias.reduce((s, v) => s + Math.exp(v), 0));
    const nll8 = grey.reduce((s, v) => s + lse - bias[v]!, 0);
    close(await m8.nll(k.tensor(grey, { shape: [1, 1, 6, 6] })).data(), [nll8], 2e-3, 1e-5, '8-bit NLL');
    const r = await evaluateNll(m8, [{ x: k.tensor(grey, { shape: [1, 1, 6, 6] }), y: k.tensor(Int32Array.from([0])) }]);
    expect(r.bitsPerDim).toBeCloseTo(nll8 / 36 / Math.LN2, 4);
  });
});

describe('training data', () => {
  it('dynamic batches made withTargets carry the probabilities their bits were drawn from (intensity / 255)', async () => {
    const train = await k.data.loadMnist('train');
    const { x, y, target } = new k.data.PixelBatches({ ...train, count: 64 }, 4, 0, 'dynamic', true).at(3);
    const [bits, probs] = [await x.data(), await target!.data()];
    y.dispose();
    // step 3 of epoch 0 holds images 12…15 of the seeded order
    const index = k.data.permutation(64, 0, 0).subarray(12, 16);
    expect(target!.shape).toEqual(x.shape);
    close(probs, Array.from(k.data.pixelsOf(train, index, 'grey'), (v) => v / 255), 1e-7, 0, 'target');
    expect(probs.some((v) => v > 0 && v < 1)).toBe(true);
    // a pixel drawn from probability 0 is 0, from 1 is 1; overall the bits follow the probabilities
    for (let i = 0; i < bits.length; i++) {
      if (probs[i] === 0) expect(bits[i]).toBe(0);
      if (probs[i] === 1) expect(bits[i]).toBe(1);
    }
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(bits) - mean(probs))).toBeLessThan(0.02);
    expect(new k.data.PixelBatches({ ...train, count: 64 }, 4, 0, 'dynamic').at(0).target).toBeNull();
    expect(() => new k.data.PixelBatches({ ...train, count: 64 }, 4, 0, 'threshold', true)).toThrow(/PixelBatches: targets are the probabilities that dynamic binarization draws from; 'threshold' pixels are not drawn/);
  });
});

describe('sampling', () => {
  it('the row-incremental sampler draws exactly what whole-image sampling draws (1- and 8-bit, conditional), reproducibly per seed', async () => {
    for (const bits of [1, 8] as const) {
      k.manualSeed(10 + bits);
      const m = new k.nn.PixelCNN({ size: 7, width: 4, layers: 3, kernel: 3, firstKernel: 5, head: 8, bits, numClasses: 3 }).eval();
      randomizeEmbeddings(m);
      const labels = [0, 1, 2];
      const naive = await (await k.nn.samplePixelCNN(m, 3, { labels, seed: 5, method: 'naive' })).data();
      const fast = await (await k.nn.samplePixelCNN(m, 3, { labels, seed: 5 })).data();
      const again = await (await k.nn.samplePixelCNN(m, 3, { labels, seed: 5 })).data();
      const other = await (await k.nn.samplePixelCNN(m, 3, { labels, seed: 6 })).data();
      expect(Array.from(fast), `bits ${bits}`).toEqual(Array.from(naive));
      expect(Array.from(again)).toEqual(Array.from(fast));
      expect(Array.from(other)).not.toEqual(Array.from(fast));
      if (bits === 1) {
        // each pixel is 1 exactly when u < σ(logit) for the uniforms of the seed and the final image's (causal) logits
        const u = await k.rand([3, 1, 7, 7], { generator: new k.Generator(5) }).data();
        const logits = await m.forward(k.tensor(fast, { shape: [3, 1, 7, 7] }), k.tensor(Int32Array.from(labels))).data();
        const want = Array.from(logits, (l, i) => (u[i]! < 1 / (1 + Math.exp(-l)) ? 1 : 0));
        const disagree = want.filter((v, i) => v !== fast[i] && Math.abs(u[i]! - 1 / (1 + Math.exp(-logits[i]!))) > 1e-6);
        expect(disagree).toEqual([]);
      } else expect(Array.from(fast).every((v) => Number.isInteger(v) && v >= 0 && v <= 255)).toBe(true);
    }
  });

  it('a network built to copy the previous pixel samples rows that copy their first pixel', async () => {
    const m = new k.nn.PixelCNN({ size: 8, width: 1, layers: 1, firstKernel: 3, head: 2 }).eval();
    for (const p of m.parameters()) p.assign(k.zerosLike(p));
    const b = m.blocks.at(0);
    // h_conv (2 out channels: a, b; 1×2 over columns c − 2, c − 1): a = 5·x̂(c − 1), b = 10 (σ ≈ 1)
    b.h_conv.weight.assign(k.tensor([0, 5, 0, 0], { shape: [2, 1, 1, 2] }));
    b.h_conv.bias!.assign(k.tensor([0, 10]));
    // h_out: h + 1 ≈ 2 after a 1, 0 after a 0, and 1 in the first column (whose left neighbour is the zero padding)
    b.h_out.weight.assign(k.ones([1, 1, 1, 1]));
    b.h_out.bias!.assign(k.ones([1]));
    // head: 20·relu(relu(h + 1)) − 20: logit ≈ +20 after a 1, −20 after a 0, 0 (a fair coin) in the first column
    m.out1.weight.assign(k.tensor([1, 0], { shape: [2, 1, 1, 1] }));
    m.out2.weight.assign(k.tensor([20, 0], { shape: [1, 2, 1, 1] }));
    m.out2.bias!.assign(k.tensor([-20]));
    const x = await (await k.nn.samplePixelCNN(m, 6, { seed: 3 })).data();
    for (let n = 0; n < 6; n++) for (let r = 0; r < 8; r++) {
      const row = Array.from(x.slice(n * 64 + r * 8, n * 64 + r * 8 + 8));
      expect(row, `image ${n} row ${r}`).toEqual(Array(8).fill(row[0]));
    }
    // the first pixels are fair coins (logit 0): not all the same over 48 rows
    const firsts = Array.from({ length: 48 }, (_, i) => x[i * 8]!);
    expect(new Set(firsts).size).toBe(2);
  });
});

describe('training', () => {
  const TINY = { size: 28, width: 8, layers: 3, head: 16 } as const;

  it('a short run lowers the test NLL, and a resumed run continues exactly', async () => {
    const train = await k.data.loadMnist('train');
    const test = await k.data.loadMnist('test');
    const config = { ...PIXELCNN_TRAIN_DEFAULTS, steps: 12, batchSize: 8, warmup: 1, lr: 1e-2 };
    const batches = new k.data.PixelBatches({ ...train, count: 400 }, 8, 0, 'dynamic', true);
    const run = async (from: string | null, upTo: number, save?: string) => {
      k.manualSeed(0);
      const m = new k.nn.PixelCNN(TINY);
      const t = new PixelCNNTrainer(m, config);
      if (from) await t.load(from);
      while (t.step < upTo) {
        // against the pixels' probabilities, as kiln train-pixelcnn trains by default
        const { x, y, target } = batches.at(t.step);
        await t.trainStep(x, null, target!);
        [x, y, target!].forEach((v) => v.dispose());
      }
      if (save) await t.save(save);
      await t.flush();
      return { m, t };
    };
    k.manualSeed(0);
    const before = await evaluateNll(new k.nn.PixelCNN(TINY), k.data.evalPixelBatches(test, 'dynamic', 50, 100));
    const full = await run(null, 12);
    const after = await evaluateNll(full.m, k.data.evalPixelBatches(test, 'dynamic', 50, 100));
    expect(after.natsPerImage).toBeLessThan(before.natsPerImage - 100);
    const ckpt = join(dir, 'half.safetensors');
    await run(null, 6, ckpt);
    const resumed = await run(ckpt, 12);
    expect(resumed.t.losses).toEqual(full.t.losses);
    expect(full.t.ema).not.toBeNull();
    const [a, b] = [full.m.stateDict(), resumed.m.stateDict()];
    for (const name of Object.keys(a)) expect(Array.from(await b[name]!.data()), name).toEqual(Array.from(await a[name]!.data()));
    const [ea, eb] = [full.t.ema!.stateDict(), resumed.t.ema!.stateDict()];
    for (const name of Object.keys(ea)) expect(Array.from(await eb[name]!.data()), `ema ${name}`).toEqual(Array.from(await ea[name]!.data()));
  });

  it('the average of the weights after n steps is d^n·w_0 + Σ_i (1 − d)·d^(n−i)·w_i over the weights w_i after each step', async () => {
    const train = await k.data.loadMnist('train');
    const d = 0.6, n = 4;
    const batches = new k.data.PixelBatches({ ...train, count: 64 }, 4, 0, 'dynamic');
    k.manualSeed(3);
    const m = new k.nn.PixelCNN({ size: 28, width: 4, layers: 2, head: 8 });
    const t = new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, steps: n, batchSize: 4, warmup: 0, lr: 5e-2, emaDecay: d, softTargets: false });
    const names = [...m.namedParameters()].map(([name]) => name);
    const snapshot = async () => Object.fromEntries(await Promise.all([...m.namedParameters()].map(async ([name, p]) => [name, Float64Array.from(await p.data())] as const)));
    const ws = [await snapshot()];
    while (t.step < n) {
      const { x, y } = batches.at(t.step);
      await t.trainStep(x);
      [x, y].forEach((v) => v.dispose());
      ws.push(await snapshot());
    }
    await t.flush();
    const shadow = t.ema!.stateDict();
    for (const name of names) {
      const want = ws[0]![name]!.map((v, j) => d ** n * v + ws.slice(1).reduce((acc, w, i) => acc + (1 - d) * d ** (n - 1 - i) * w[name]![j]!, 0));
      // the weights moved: the average is neither the first nor the last weights
      if (name === 'out2.bias') expect(Math.abs(want[0]! - ws[n]![name]![0]!)).toBeGreaterThan(1e-3);
      close(await shadow[name]!.data(), Array.from(want), 1e-5, 1e-5, `ema ${name}`);
    }
    // a decay of 0 keeps no average
    expect(new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, emaDecay: 0 }).ema).toBeNull();
  });
});

describe('bad input', () => {
  it('is refused with a message naming the option, the shape or the value expected', async () => {
    const m = new k.nn.PixelCNN({ size: 8, width: 4, layers: 2, head: 4 });
    const mc = new k.nn.PixelCNN({ size: 8, width: 4, layers: 2, head: 4, numClasses: 10 });
    expect(() => m.forward(k.zeros([2, 1, 7, 8]))).toThrow(/PixelCNN\.forward: expected images \[N, 1, 8, 8\], got \[2, 1, 7, 8\]/);
    expect(() => m.forward(k.zeros([2, 3, 8, 8]))).toThrow(/expected images \[N, 1, 8, 8\], got \[2, 3, 8, 8\]/);
    expect(() => mc.forward(k.zeros([2, 1, 8, 8]))).toThrow(/class-conditional \(10 classes\): pass labels \[N\]/);
    expect(() => m.forward(k.zeros([2, 1, 8, 8]), k.tensor(Int32Array.from([1, 2])))).toThrow(/unconditional; it takes no labels/);
    expect(() => mc.forward(k.zeros([2, 1, 8, 8]), k.tensor(Int32Array.from([1])))).toThrow(/labels must be i32 \[2\], got i32 \[1\]/);
    expect(() => new k.nn.PixelCNN({ bits: 4 as 1 })).toThrow(/PixelCNN: bits must be 1 \(binarized\) or 8 \(grey levels\), got 4/);
    expect(() => new k.nn.PixelCNN({ kernel: 4 })).toThrow(/PixelCNN: kernel must be an odd integer ≥ 3, got 4/);
    expect(() => new k.nn.MaskedConv2d('C' as 'A', 1, 1, 3)).toThrow(/mask type must be 'A' or 'B', got "C"/);
    expect(() => new k.nn.MaskedConv2d('A', 1, 1, 4)).toThrow(/MaskedConv2d: kernel size must be an odd integer, got 4/);
    expect(() => m.nll(k.zeros([2, 1, 8, 8]), null, k.zeros([2, 1, 8, 7]))).toThrow(/PixelCNN\.nll: target must have the shape of the images \[2, 1, 8, 8\], got \[2, 1, 8, 7\]/);
    expect(() => new k.nn.PixelCNN({ size: 8, width: 4, layers: 2, head: 4, bits: 8 }).nll(k.zeros([1, 1, 8, 8]), null, k.zeros([1, 1, 8, 8]))).toThrow(/probability targets apply to binarized images \(bits 1\) only/);
    await expect(trainPixelcnnCommand(['--binarize', 'threshold', '--targets', 'soft'])).rejects.toThrow(/--targets applies to --binarize dynamic only/);
    expect(() => k.nn.pixelNll(k.zeros([2, 1, 8, 8]), k.zeros([2, 1, 8, 8]), 8)).toThrow(/pixelNll: expected logits \[2, 256, 8, 8\] for 8-bit images \[2, 1, 8, 8\], got \[2, 1, 8, 8\]/);
    await expect(k.nn.samplePixelCNN(m, 0)).rejects.toThrow(/samplePixelCNN: n must be a positive integer, got 0/);
    await expect(k.nn.samplePixelCNN(mc, 2, { labels: [1] })).rejects.toThrow(/pass 2 labels \(one per image\), got 1/);
    await expect(k.nn.samplePixelCNN(mc, 1, { labels: [10] })).rejects.toThrow(/labels must be integers in \[0, 10\), got 10/);
    expect(() => new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, data: 'threshold' })).toThrow(/softTargets needs data 'dynamic' .*got 'threshold'/);
    const x8 = k.zeros([2, 1, 8, 8]);
    await expect(new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS }).trainStep(x8)).rejects.toThrow(/softTargets is on: pass each batch's target/);
    await expect(new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, softTargets: false }).trainStep(x8, null, x8)).rejects.toThrow(/softTargets is off: a batch takes no target/);
    expect(() => new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, data: 'grey' })).toThrow(/data 'grey' does not fit a 1-bit PixelCNN/);
    await expect(trainPixelcnnCommand(['--bits', '8', '--binarize', 'threshold'])).rejects.toThrow(/--binarize applies to --bits 1 only/);
    await expect(trainPixelcnnCommand(['--kernel', '4'])).rejects.toThrow(/--kernel expects an odd integer ≥ 3, got '4'/);
    await expect(trainPixelcnnCommand(['--bits', '2'])).rejects.toThrow(/--bits must be one of 1, 8, got '2'/);
    await expect(trainPixelcnnCommand(['--bogus', '1'])).rejects.toThrow(/unknown option --bogus \(see kiln train-pixelcnn --help\)/);
    await expect(trainPixelcnnCommand(['--ema', '1'])).rejects.toThrow(/--ema expects a decay in \[0, 1\) .*got '1'/);
    expect(() => new PixelCNNTrainer(m, { ...PIXELCNN_TRAIN_DEFAULTS, emaDecay: -0.5 })).toThrow(/PixelCNNTrainer: emaDecay must be in \[0, 1\) \(0: no average\), got -0.5/);
  });
});
