/**
 * nn layer: modules (registration, names, modes, state dicts), layers (Linear, Embedding, Dropout,
 * LayerNorm), initializers and the losses of k.F. Every number is checked against a closed form or a
 * float64 re-implementation written here, never against kiln itself.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close, f32, values } from '../shared/util.ts';

beforeAll(async () => {
  await k.init();
});

// ---------------------------------------------------------------------------------------------
// helpers




async function arr(t: k.Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

function moments(xs: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    s += v; s2 += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = s / xs.length;
  return { mean, std: Math.sqrt(s2 / xs.length - mean * mean), min, max };
}

/** float64 log-softmax over the class axis (axis 1) of a row-major [N, C, D] array. */
function logSoftmaxRef(x: number[], N: number, C: number, D = 1): number[] {
  const out = new Array<number>(x.length);
  for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[(n * C + c) * D + d]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[(n * C + c) * D + d]! - m);
    const lse = m + Math.log(s);
    for (let c = 0; c < C; c++) out[(n * C + c) * D + d] = x[(n * C + c) * D + d]! - lse;
  }
  return out;
}

const softplusRef = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

// ---------------------------------------------------------------------------------------------
// Modules

class Stats extends k.nn.Module {
  constructor() {
    super();
    this.registerBuffer('runningMean', k.tensor([0.5, -0.5, 2]));
  }
}

class Encoder extends k.nn.Module {
  layers = new k.nn.ModuleList<k.nn.Linear>([new k.nn.Linear(2, 3), new k.nn.Linear(3, 3)]);
  norm = new k.nn.LayerNorm(3);
  stats = new Stats();
}

class Model extends k.nn.Module {
  scale = new k.nn.Parameter(k.tensor([1.5]));
  encoder = new Encoder();
  head = new k.nn.Linear(3, 1, { bias: false });
  drop = new k.nn.Dropout(0.5);
  forward(x: k.Tensor): k.Tensor {
    let h = x;
    for (const l of this.encoder.layers) h = l.forward(h).tanh();
    return this.drop.forward(this.head.forward(this.encoder.norm.forward(h))).mul(this.scale);
  }
}

describe('Module registration', () => {
  it('Sequential children are named 0, 1, 2 … with PyTorch dotted parameter names', () => {
    const seq = new k.nn.Sequential(new k.nn.Linear(3, 4), new k.nn.ReLU(), new k.nn.Linear(4, 2));
    const named = [...seq.namedParameters()];
    expect(named.map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(named.map(([, p]) => p.shape)).toEqual([[4, 3], [4], [2, 4], [2]]);
    expect(seq.numParameters()).toBe(4 * 3 + 4 + 2 * 4 + 2);
    expect(seq.length).toBe(3);
    expect(seq.at(-1)).toBe(seq.at(2));
    expect(() => seq.at(3)).toThrow(/Sequential.at: index 3 out of range for 3 layers/);
  });

  it('Sequential with more than ten layers keeps numeric order (… 9, 10, 11)', () => {
    const layers = Array.from({ length: 12 }, () => new k.nn.Linear(2, 2, { bias: false }));
    const seq = new k.nn.Sequential(...layers);
    expect([...seq.namedParameters()].map(([n]) => n)).toEqual(Array.from({ length: 12 }, (_, i) => `${i}.weight`));
    expect(seq.parameters()).toEqual(layers.map((l) => l.weight));
  });

  it('nested modules: own parameters first, then children depth first in definition order', () => {
    const m = new Model();
    const names = [...m.namedParameters()].map(([n]) => n);
    expect(names).toEqual([
      'scale',
      'encoder.layers.0.weight', 'encoder.layers.0.bias',
      'encoder.layers.1.weight', 'encoder.layers.1.bias',
      'encoder.norm.weight', 'encoder.norm.bias',
      'head.weight',
    ]);
    // parameters() is the same list, by identity
    const ps = m.parameters();
    expect(ps.length).toBe(8);
    expect(ps[0]).toBe(m.scale);
    expect(ps[1]).toBe(m.encoder.layers.at(0).weight);
    expect(ps[4]).toBe(m.encoder.layers.at(1).bias);
    expect(ps[7]).toBe(m.head.weight);
    expect(ps.every((p) => p instanceof k.nn.Parameter && p.requiresGrad)).toBe(true);
    // modules and buffers
    expect([...m.namedModules()].map(([n]) => n)).toEqual([
      '', 'encoder', 'encoder.layers', 'encoder.layers.0', 'encoder.layers.1', 'encoder.norm', 'encoder.stats', 'head', 'drop',
    ]);
    expect([...m.namedBuffers()].map(([n]) => n)).toEqual(['encoder.stats.runningMean']);
    expect(Object.keys(m.stateDict())).toEqual([...names, 'encoder.stats.runningMean']);
    expect(m.numParameters()).toBe(1 + 6 + 3 + 9 + 3 + 3 + 3 + 3);
  });

  it('a submodule registered under two names (weight tying) contributes its parameters once, as in PyTorch', () => {
    class Tied extends k.nn.Module {
      embed = new k.nn.Linear(2, 3);
      out = this.embed; // the same module, e.g. tied input/output embeddings
    }
    const m = new Tied();
    // torch: list(m.parameters()) has 2 tensors (named_parameters drops duplicates); state_dict keeps both names
    expect(Object.keys(m.stateDict())).toEqual(['embed.weight', 'embed.bias', 'out.weight', 'out.bias']);
    expect(m.parameters()).toEqual([m.embed.weight, m.embed.bias]);
    expect(m.numParameters()).toBe(3 * 2 + 3);
  });

  it('train()/eval() propagate to every submodule and change Dropout', async () => {
    const m = new Model();
    const all = () => [...m.namedModules()].map(([, x]) => x.training);
    expect(all().every((t) => t)).toBe(true);
    expect(m.eval()).toBe(m);
    expect(all().every((t) => !t)).toBe(true);
    expect(m.drop.training).toBe(false);
    m.train();
    expect(all().every((t) => t)).toBe(true);
    m.encoder.train(false);
    expect(m.training).toBe(true);
    expect(m.drop.training).toBe(true);
    expect([...m.encoder.namedModules()].every(([, x]) => !x.training)).toBe(true);
    // eval mode: deterministic output; train mode: half the outputs of a wide batch are dropped
    const x = k.tensor(f32(values(64 * 2, 3)), { shape: [64, 2] });
    m.eval();
    const a = await arr(m.forward(x));
    const b = await arr(m.forward(x));
    expect(a).toEqual(b);
    expect(a.every((v) => v !== 0)).toBe(true);
    m.train();
    const c = await arr(m.forward(x));
    const zeros = c.filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(10);
    expect(zeros).toBeLessThan(54);
    // the kept outputs are the eval outputs times 1/(1 − 0.5)
    c.forEach((v, i) => { if (v !== 0) expect(v).toBeCloseTo(2 * a[i]!, 4); });
  });

  it('apply() visits children first, then the module itself', () => {
    const inner = new k.nn.Sequential(new k.nn.Linear(2, 2), new k.nn.Tanh());
    const seq = new k.nn.Sequential(new k.nn.Linear(3, 2), new k.nn.ReLU(), inner);
    const visited: k.nn.Module[] = [];
    expect(seq.apply((m) => visited.push(m))).toBe(seq);
    expect(visited).toEqual([seq.at(0), seq.at(1), inner.at(0), inner.at(1), inner, seq]);
  });

  it('apply() with an initializer sets every Linear', async () => {
    const seq = new k.nn.Sequential(new k.nn.Linear(3, 2), new k.nn.ReLU(), new k.nn.Linear(2, 4));
    seq.apply((m) => {
      if (m instanceof k.nn.Linear) {
        k.nn.init.constant_(m.weight, 0.25);
        if (m.bias) k.nn.init.zeros_(m.bias);
      }
    });
    expect(await arr((seq.at(0) as k.nn.Linear).weight)).toEqual(new Array(6).fill(0.25));
    expect(await arr((seq.at(2) as k.nn.Linear).weight)).toEqual(new Array(8).fill(0.25));
    expect(await arr((seq.at(2) as k.nn.Linear).bias!)).toEqual([0, 0, 0, 0]);
    // y = relu(x·0.25·1₃)·0.25·1₂ → every output = 0.25·2·0.25·relu(Σx)… exactly 0.125·relu(Σx)
    const y = await arr(seq.forward(k.tensor([[1, 2, 3], [-1, -2, 0.5]])));
    close(y, [...new Array(4).fill(0.125 * 6), ...new Array(4).fill(0)], 1e-6);
  });

  it('zeroGrad() clears every gradient; the next backward is not accumulated', async () => {
    const lin = new k.nn.Linear(2, 1);
    k.nn.init.constant_(lin.weight, 2);
    k.nn.init.constant_(lin.bias!, -1);
    const x = k.tensor([[1, 3], [2, -1]]);
    lin.forward(x).sum().backward();
    lin.forward(x).sum().backward();
    // d/dW Σ(xW + b) = Σ_n x_n ; twice accumulated
    expect(await arr(lin.weight.grad!)).toEqual([6, 4]);
    expect(await arr(lin.bias!.grad!)).toEqual([4]);
    lin.zeroGrad();
    expect(lin.weight.grad).toBeNull();
    expect(lin.bias!.grad).toBeNull();
    lin.forward(x).sum().backward();
    expect(await arr(lin.weight.grad!)).toEqual([3, 2]);
    expect(await arr(lin.bias!.grad!)).toEqual([2]);
  });
});

describe('state dicts', () => {
  it('stateDict → loadStateDict copies every parameter and buffer', async () => {
    k.manualSeed(1);
    const a = new Model();
    a.encoder.stats.registerBuffer('runningMean', k.tensor([7, 8, 9]));
    k.manualSeed(2);
    const b = new Model();
    const want: Record<string, number[]> = {};
    for (const [n, t] of Object.entries(a.stateDict())) want[n] = await arr(t);
    // the two models really differ before loading
    expect(await arr(b.encoder.layers.at(0).weight)).not.toEqual(want['encoder.layers.0.weight']);
    const r = b.loadStateDict(a.stateDict());
    expect(r).toEqual({ missing: [], unexpected: [] });
    for (const [n, t] of Object.entries(b.stateDict())) expect(await arr(t), n).toEqual(want[n]);
    expect(await arr((b.encoder.stats as unknown as { runningMean: k.Tensor }).runningMean)).toEqual([7, 8, 9]);
    // the loaded parameters are still trainable leaves, and independent of the source afterwards
    expect(b.parameters().every((p) => p.requiresGrad && p.isLeaf)).toBe(true);
    k.nn.init.constant_(a.head.weight, 100);
    expect(await arr(b.head.weight)).toEqual(want['head.weight']);
  });

  it('loads across dtypes by casting (i32 state into f32 parameters)', async () => {
    const lin = new k.nn.Linear(2, 2);
    lin.loadStateDict({ weight: k.tensor(Int32Array.from([1, -2, 3, 4]), { shape: [2, 2] }), bias: k.tensor(Int32Array.from([5, 6])) });
    expect(lin.weight.dtype).toBe('f32');
    expect(await arr(lin.weight)).toEqual([1, -2, 3, 4]);
    expect(await arr(lin.forward(k.tensor([[1, 1]])))).toEqual([1 - 2 + 5, 3 + 4 + 6]);
  });

  it('strict mode lists the missing and the unexpected keys', () => {
    const seq = new k.nn.Sequential(new k.nn.Linear(3, 4), new k.nn.ReLU(), new k.nn.Linear(4, 2));
    const sd = { ...seq.stateDict() };
    delete sd['0.bias'];
    delete sd['2.weight'];
    sd['1.weight'] = k.zeros([1]);
    sd.extra = k.zeros([1]);
    let msg = '';
    try { seq.loadStateDict(sd); } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/^loadStateDict: keys do not match; missing: 0\.bias, 2\.weight; unexpected: 1\.weight, extra$/);
    // only missing
    const onlyMissing = { ...seq.stateDict() };
    delete onlyMissing['2.bias'];
    expect(() => seq.loadStateDict(onlyMissing)).toThrow(/keys do not match; missing: 2\.bias$/);
  });

  it('non-strict mode loads what matches and reports the rest', async () => {
    const seq = new k.nn.Sequential(new k.nn.Linear(2, 2), new k.nn.Linear(2, 1));
    const r = seq.loadStateDict({ '0.weight': k.tensor([[1, 2], [3, 4]]), '9.weight': k.zeros([1]) }, { strict: false });
    expect(r.missing).toEqual(['0.bias', '1.weight', '1.bias']);
    expect(r.unexpected).toEqual(['9.weight']);
    expect(await arr((seq.at(0) as k.nn.Linear).weight)).toEqual([1, 2, 3, 4]);
  });

  it('a shape mismatch names the key and both shapes', () => {
    const lin = new k.nn.Linear(3, 4);
    expect(() => lin.loadStateDict({ weight: k.zeros([3, 4]), bias: k.zeros([4]) }))
      .toThrow("loadStateDict: 'weight' has shape [3, 4] in the state dict but [4, 3] in the module");
    expect(() => lin.loadStateDict({ weight: k.zeros([4, 3]), bias: k.zeros([4, 1]) }))
      .toThrow("loadStateDict: 'bias' has shape [4, 1] in the state dict but [4] in the module");
  });
});

// ---------------------------------------------------------------------------------------------
// Layers

describe('Linear', () => {
  it('forward equals x·Wᵀ + b computed in float64 from the weights read back (2-D and 3-D input)', async () => {
    const lin = new k.nn.Linear(5, 3);
    const W = await arr(lin.weight);
    const b = await arr(lin.bias!);
    for (const shape of [[4, 5], [2, 3, 5]]) {
      const n = shape.reduce((p, q) => p * q, 1);
      const xs = f32(values(n, 11 + shape.length));
      const y = lin.forward(k.tensor(xs, { shape }));
      expect(y.shape).toEqual([...shape.slice(0, -1), 3]);
      const rows = n / 5;
      const want: number[] = [];
      for (let r = 0; r < rows; r++) for (let o = 0; o < 3; o++) {
        let s = b[o]!;
        for (let i = 0; i < 5; i++) s += xs[r * 5 + i]! * W[o * 5 + i]!;
        want.push(s);
      }
      close(await arr(y), want, 1e-5, 1e-5, `linear ${shape}`);
    }
  });

  it('without bias; rejects a wrong feature count', async () => {
    const lin = new k.nn.Linear(2, 2, { bias: false });
    expect(lin.bias).toBeNull();
    expect([...lin.namedParameters()].map(([n]) => n)).toEqual(['weight']);
    lin.weight.assign(k.tensor([[1, 2], [3, 4]]));
    expect(await arr(lin.forward(k.tensor([[1, -1]])))).toEqual([-1, -1]);
    expect(() => lin.forward(k.zeros([5, 4]))).toThrow('Linear: input of shape [5, 4] has 4 features, expected 2');
    expect(() => new k.nn.Linear(0, 2)).toThrow(/positive integers, got 0 → 2/);
  });

  it('gradients: dW = gᵀx, db = Σ g, dx = g·W', async () => {
    const lin = new k.nn.Linear(3, 2);
    const W = await arr(lin.weight);
    const xs = f32(values(12, 5));
    const gs = f32(values(8, 6));
    const x = k.tensor(xs, { shape: [4, 3], requiresGrad: true });
    lin.forward(x).mul(k.tensor(gs, { shape: [4, 2] })).sum().backward();
    const dW: number[] = [], db = [0, 0], dx: number[] = [];
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) {
      let s = 0;
      for (let n = 0; n < 4; n++) s += gs[n * 2 + o]! * xs[n * 3 + i]!;
      dW.push(s);
    }
    for (let n = 0; n < 4; n++) for (let o = 0; o < 2; o++) db[o] += gs[n * 2 + o]!;
    for (let n = 0; n < 4; n++) for (let i = 0; i < 3; i++) dx.push(gs[n * 2]! * W[i]! + gs[n * 2 + 1]! * W[3 + i]!);
    close(await arr(lin.weight.grad!), dW, 1e-5, 1e-5, 'dW');
    close(await arr(lin.bias!.grad!), db, 1e-5, 1e-5, 'db');
    close(await arr(x.grad!), dx, 1e-5, 1e-5, 'dx');
  });

  it.each([false, true])('3-D input (a transposed view: %s): float64 forward and gradients, and every matmul unbatched (B·T rows)', async (transposed) => {
    const [B, T, I, O] = [3, 5, 4, 6];
    const lin = new k.nn.Linear(I, O);
    const [W, bias] = [await arr(lin.weight), await arr(lin.bias!)];
    const xs = f32(values(B * T * I, 7)), gs = f32(values(B * T * O, 8));
    // the same values [B, T, I], stored either as they are or as [B, I, T] viewed through a transpose
    const stored = transposed ? f32(Array.from({ length: B * I * T }, (_, j) => xs[Math.floor(j / (I * T)) * T * I + (j % T) * I + (Math.floor(j / T) % I)]!)) : xs;
    const leaf = k.tensor(stored, { shape: transposed ? [B, I, T] : [B, T, I], requiresGrad: true });
    const x = transposed ? leaf.transpose(1, 2) : leaf;
    let y!: k.Tensor;
    const prof = await k.profile(async () => {
      y = lin.forward(x);
      y.mul(k.tensor(gs, { shape: [B, T, O] })).sum().backward();
      await k.realize(y, lin.weight.grad!, leaf.grad!);
    });
    expect(y.shape).toEqual([B, T, O]);
    const want: number[] = [], dW = new Array<number>(O * I).fill(0), dx: number[] = [];
    for (let r = 0; r < B * T; r++) {
      for (let o = 0; o < O; o++) {
        let s = bias[o]!;
        for (let i = 0; i < I; i++) s += xs[r * I + i]! * W[o * I + i]!;
        want.push(s);
        for (let i = 0; i < I; i++) dW[o * I + i] += gs[r * O + o]! * xs[r * I + i]!;
      }
      for (let i = 0; i < I; i++) dx.push(Array.from({ length: O }, (_, o) => gs[r * O + o]! * W[o * I + i]!).reduce((a, b) => a + b));
    }
    close(await arr(y), want, 1e-5, 1e-5, 'y');
    close(await arr(lin.weight.grad!), dW, 1e-5, 1e-5, 'dW');
    expect(dW.some((v) => v !== 0)).toBe(true);
    const gx = await arr(leaf.grad!);
    close(transposed ? Array.from({ length: B * T * I }, (_, j) => gx[Math.floor(j / (T * I)) * I * T + (j % I) * T + (Math.floor(j / I) % T)]!) : gx, dx, 1e-5, 1e-5, 'dx');
    const matmuls = prof.filter((p) => p.label.startsWith('matmul'));
    expect(matmuls.length).toBeGreaterThan(0);
    expect(matmuls.filter((p) => p.label.startsWith('matmul ['))).toEqual([]);
  });

  it('default init: weight and bias within ±1/√in; weight std ≈ (1/√in)/√3', async () => {
    k.manualSeed(42);
    const IN = 400, OUT = 300;
    const lin = new k.nn.Linear(IN, OUT);
    const bound = 1 / Math.sqrt(IN);
    const w = moments(await lin.weight.data());
    expect(w.min).toBeGreaterThanOrEqual(-bound);
    expect(w.max).toBeLessThanOrEqual(bound);
    expect(w.max).toBeGreaterThan(0.99 * bound); // the whole interval is used
    expect(w.min).toBeLessThan(-0.99 * bound);
    expect(Math.abs(w.std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
    expect(Math.abs(w.mean)).toBeLessThan(5 * (bound / Math.sqrt(3)) / Math.sqrt(IN * OUT));
    const b = moments(await lin.bias!.data());
    expect(b.min).toBeGreaterThanOrEqual(-bound);
    expect(b.max).toBeLessThanOrEqual(bound);
    expect(b.max - b.min).toBeGreaterThan(1.5 * bound); // spread over the interval, not constant
  });
});

describe('k.F, the functional API', () => {
  it('has torch.nn.functional\'s ops that kiln implements, the same function objects as k.nn\'s', () => {
    const shared = ['conv1d', 'conv2d', 'convTranspose2d', 'avgPool2d', 'maxPool2d', 'adaptiveAvgPool2d', 'interpolate', 'pixelShuffle', 'pixelUnshuffle', 'groupNorm', 'rmsNorm', 'scaledDotProductAttention'] as const;
    for (const name of shared) {
      expect(typeof k.F[name], name).toBe('function');
      expect(k.F[name], name).toBe(k.nn[name]);
    }
    const own = ['linear', 'embedding', 'batchNorm', 'layerNorm', 'dropout', 'pad', 'relu', 'silu', 'gelu', 'sigmoid', 'tanh', 'logsigmoid', 'leakyRelu', 'softplus', 'softmax', 'logSoftmax', 'normalize', 'oneHot', 'mseLoss', 'l1Loss', 'nllLoss', 'crossEntropy', 'binaryCrossEntropyWithLogits'] as const;
    for (const name of own) expect(typeof k.F[name], name).toBe('function');
  });

  it('pad takes PyTorch\'s amounts, last dim first; negative amounts crop; other modes are refused', async () => {
    const x = k.tensor([[1, 2, 3], [4, 5, 6]]);
    const y = k.F.pad(x, [1, 0, 0, 2], 'constant', 9);
    expect(y.shape).toEqual([4, 4]);
    expect(await arr(y)).toEqual([9, 1, 2, 3, 9, 4, 5, 6, 9, 9, 9, 9, 9, 9, 9, 9]);
    expect(await arr(k.F.pad(x, [0, -1]))).toEqual([1, 2, 4, 5]);
    expect(() => k.F.pad(x, [1, 1, 1])).toThrow(/pad: expected an even number of amounts/);
    expect(() => k.F.pad(x, [1, 1], 'reflect' as 'constant')).toThrow(/pad: only mode 'constant' is implemented, got "reflect"/);
  });

  it('embedding picks rows; logsigmoid is log σ(x) without overflow; batchNorm in training moves the running statistics', async () => {
    const W = f32(values(12, 81));
    const e = await arr(k.F.embedding(k.tensor(Int32Array.from([2, 0])), k.tensor(W, { shape: [4, 3] })));
    close(e, [...W.slice(6, 9), ...W.slice(0, 3)], 0, 0);
    const xs = [-100, -3, 0, 2.5, 100];
    close(await arr(k.F.logsigmoid(k.tensor(xs))), xs.map((x) => (x < 0 ? x - Math.log1p(Math.exp(x)) : -Math.log1p(Math.exp(-x)))), 1e-6, 1e-6);
    const x = f32(values(2 * 3 * 2, 82, -1, 2));
    const rm = k.zeros([3]), rv = k.ones([3]);
    const y = await arr(k.F.batchNorm(k.tensor(x, { shape: [2, 3, 2] }), rm, rv, null, null, true, 0.25));
    for (let c = 0; c < 3; c++) {
      const v = [0, 1].flatMap((n) => [x[(n * 3 + c) * 2]!, x[(n * 3 + c) * 2 + 1]!]);
      const m = v.reduce((a, q) => a + q, 0) / 4, vb = v.reduce((a, q) => a + (q - m) ** 2, 0) / 4;
      expect(y[c * 2]!).toBeCloseTo((x[c * 2]! - m) / Math.sqrt(vb + 1e-5), 4);
      expect((await arr(rm))[c]!).toBeCloseTo(0.25 * m, 6);
      expect((await arr(rv))[c]!).toBeCloseTo(0.75 + 0.25 * vb * 4 / 3, 5);
    }
    expect(() => k.F.batchNorm(k.tensor(x, { shape: [2, 3, 2] }), null, null)).toThrow(/batchNorm: without training=true it normalizes by the running statistics/);
  });
});

describe('Embedding', () => {
  it('looks up rows (any id shape, i32 or u32) and rejects float ids', async () => {
    const emb = new k.nn.Embedding(10, 4);
    expect(emb.weight.shape).toEqual([10, 4]);
    const W = await arr(emb.weight);
    const ids = [1, 3, 3, 9, 0, 3];
    const out = emb.forward(k.tensor(Int32Array.from(ids), { shape: [2, 3] }));
    expect(out.shape).toEqual([2, 3, 4]);
    expect(await arr(out)).toEqual(ids.flatMap((i) => W.slice(i * 4, i * 4 + 4)));
    const outU = emb.forward(k.tensor(Uint32Array.from([9, 2])));
    expect(await arr(outU)).toEqual([...W.slice(36, 40), ...W.slice(8, 12)]);
    expect(() => emb.forward(k.tensor([1, 2]))).toThrow(/embedding: ids must be i32 or u32, got f32/);
  });

  it('init is N(0, 1)', async () => {
    k.manualSeed(5);
    const emb = new k.nn.Embedding(1000, 64);
    const m = moments(await emb.weight.data());
    const se = 1 / Math.sqrt(64000);
    expect(Math.abs(m.mean)).toBeLessThan(5 * se);
    expect(Math.abs(m.std - 1)).toBeLessThan(0.02);
  });

  it('gradient: rows accumulate the upstream gradient of every occurrence (counts of repeated ids)', async () => {
    const emb = new k.nn.Embedding(6, 2);
    const ids = [1, 3, 3, 5, 3, 1];
    const x = k.tensor(Int32Array.from(ids), { shape: [3, 2] });
    emb.forward(x).sum().backward();
    const counts = [0, 2, 0, 3, 0, 1];
    expect(await arr(emb.weight.grad!)).toEqual(counts.flatMap((c) => [c, c]));
    // weighted upstream gradient
    emb.zeroGrad();
    const g = f32(values(12, 77));
    emb.forward(x).mul(k.tensor(g, { shape: [3, 2, 2] })).sum().backward();
    const want = new Array(12).fill(0);
    ids.forEach((id, pos) => { want[id * 2] += g[pos * 2]!; want[id * 2 + 1] += g[pos * 2 + 1]!; });
    close(await arr(emb.weight.grad!), want, 1e-6, 1e-6, 'embedding grad');
  });
});

describe('Dropout', () => {
  it('eval mode is the identity (the same values)', async () => {
    const d = new k.nn.Dropout(0.3).eval();
    const xs = f32(values(1000, 9));
    expect(await arr(d.forward(k.tensor(xs)))).toEqual(xs);
  });

  it('train mode zeroes ≈ p of the elements and scales the rest by 1/(1 − p); gradient is the same mask', async () => {
    const p = 0.3;
    const N = 200_000;
    k.manualSeed(123);
    const x = k.ones([N], { requiresGrad: true });
    const y = new k.nn.Dropout(p).forward(x);
    const ys = await y.data();
    let zeros = 0;
    const scale = Math.fround(1 / (1 - p));
    for (const v of ys) {
      if (v === 0) zeros++;
      else if (Math.abs(v - 1 / (1 - p)) > 1e-6) throw new Error(`kept value ${v}, expected ${1 / (1 - p)}`);
    }
    // binomial: std of the fraction √(p(1−p)/N) ≈ 0.001
    expect(Math.abs(zeros / N - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / N));
    y.sum().backward();
    const g = await x.grad!.data();
    for (let i = 0; i < N; i++) {
      const want = ys[i] === 0 ? 0 : scale;
      if (Math.abs(g[i]! - want) > 1e-6) throw new Error(`grad[${i}] = ${g[i]}, expected ${want}`);
    }
  });

  it('is reproducible under k.manualSeed and differs between draws', async () => {
    const d = new k.nn.Dropout(0.5);
    const x = k.tensor(f32(values(4096, 1, 0.5, 1.5)));
    k.manualSeed(7);
    const a = await arr(d.forward(x));
    const a2 = await arr(d.forward(x));
    k.manualSeed(7);
    const b = await arr(d.forward(x));
    k.manualSeed(8);
    const c = await arr(d.forward(x));
    expect(b).toEqual(a);
    expect(a2).not.toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('p = 0 is the identity, p = 1 zeroes everything; invalid p throws', async () => {
    const x = k.tensor([1, -2, 3]);
    expect(await arr(new k.nn.Dropout(0).forward(x))).toEqual([1, -2, 3]);
    expect((await arr(new k.nn.Dropout(1).forward(x))).map(Math.abs)).toEqual([0, 0, 0]);
    expect(() => new k.nn.Dropout(1.5)).toThrow(/Dropout: p must be in \[0, 1\], got 1.5/);
  });
});

describe('LayerNorm', () => {
  /** float64 layer norm over the trailing `D` elements of each row. */
  function layerNormRef(x: number[], D: number, w: number[] | null, b: number[] | null, eps: number): number[] {
    const out: number[] = [];
    for (let r = 0; r < x.length / D; r++) {
      const row = x.slice(r * D, r * D + D);
      const mean = row.reduce((s, v) => s + v, 0) / D;
      const v = row.reduce((s, q) => s + (q - mean) ** 2, 0) / D;
      row.forEach((q, i) => out.push(((q - mean) / Math.sqrt(v + eps)) * (w ? w[i]! : 1) + (b ? b[i]! : 0)));
    }
    return out;
  }

  it('forward matches a float64 reference (affine, normalized shape of one and of two dims)', async () => {
    const ln = new k.nn.LayerNorm(6);
    expect(await arr(ln.weight!)).toEqual(new Array(6).fill(1));
    expect(await arr(ln.bias!)).toEqual(new Array(6).fill(0));
    const w = f32(values(6, 21, 0.5, 2)), b = f32(values(6, 22));
    ln.weight!.assign(k.tensor(w));
    ln.bias!.assign(k.tensor(b));
    const xs = f32(values(4 * 6, 23, -3, 5));
    close(await arr(ln.forward(k.tensor(xs, { shape: [4, 6] }))), layerNormRef(xs, 6, w, b, 1e-5), 2e-5, 2e-5, 'ln [6]');
    // normalizedShape [2, 3] normalizes over the last two dims together; custom eps
    const ln2 = new k.nn.LayerNorm([2, 3], { eps: 0.1, elementwiseAffine: false });
    expect(ln2.parameters()).toEqual([]);
    const x2 = f32(values(2 * 2 * 3, 24));
    close(await arr(ln2.forward(k.tensor(x2, { shape: [2, 2, 3] }))), layerNormRef(x2, 6, null, null, 0.1), 2e-5, 2e-5, 'ln [2,3]');
    expect(() => ln.forward(k.zeros([2, 5]))).toThrow(/layerNorm: input of shape \[2, 5\] does not end with the normalized shape \[6\]/);
    // bias: false keeps the weight only
    expect([...new k.nn.LayerNorm(4, { bias: false }).namedParameters()].map(([n]) => n)).toEqual(['weight']);
  });

  it('gradcheck of F.layerNorm (x, weight, bias) by float64 finite differences', async () => {
    const r = await k.gradcheck((x, w, b) => k.F.layerNorm(x, [4], w, b), [
      { shape: [3, 4], data: values(12, 31) },
      { shape: [4], data: values(4, 32, 0.5, 1.5) },
      { shape: [4], data: values(4, 33) },
    ], { atol: 1e-6, rtol: 1e-5 });
    if (!r.ok) throw new Error(`worst ${r.worst} at ${JSON.stringify(r.at)}`);
  });

  it('input gradient on the GPU equals the closed form (1/σ)(g − mean g − x̂·mean(g·x̂))', async () => {
    const D = 5, R = 3, eps = 1e-5;
    const xs = f32(values(R * D, 41, -2, 2)), gs = f32(values(R * D, 42));
    const x = k.tensor(xs, { shape: [R, D], requiresGrad: true });
    k.F.layerNorm(x, [D], null, null, eps).mul(k.tensor(gs, { shape: [R, D] })).sum().backward();
    const want: number[] = [];
    for (let r = 0; r < R; r++) {
      const row = xs.slice(r * D, r * D + D), g = gs.slice(r * D, r * D + D);
      const mean = row.reduce((s, v) => s + v, 0) / D;
      const sigma = Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / D + eps);
      const xh = row.map((v) => (v - mean) / sigma);
      const mg = g.reduce((s, v) => s + v, 0) / D;
      const mgx = g.reduce((s, v, i) => s + v * xh[i]!, 0) / D;
      for (let i = 0; i < D; i++) want.push((g[i]! - mg - xh[i]! * mgx) / sigma);
    }
    close(await arr(x.grad!), want, 5e-5, 1e-4, 'layerNorm dx');
  });
});

describe('k.nn.init', () => {
  it('calculateGain follows PyTorch’s table', () => {
    const g = k.nn.init.calculateGain;
    expect(g('linear')).toBe(1);
    expect(g('conv1d')).toBe(1);
    expect(g('conv2d')).toBe(1);
    expect(g('sigmoid')).toBe(1);
    expect(g('tanh')).toBeCloseTo(5 / 3, 14);
    expect(g('relu')).toBeCloseTo(Math.sqrt(2), 14);
    expect(g('leaky_relu', 0.2)).toBeCloseTo(Math.sqrt(2 / 1.04), 14);
    expect(g('leaky_relu')).toBeCloseTo(Math.sqrt(2 / (1 + 0.01 ** 2)), 14); // PyTorch default slope 0.01
    expect(g('leaky_relu', 0)).toBeCloseTo(Math.sqrt(2), 14);
    expect(g('selu')).toBe(0.75);
  });

  it('xavierUniform_ stays within ±g·√(6/(fan_in+fan_out)) and has std bound/√3', async () => {
    k.manualSeed(10);
    const t = k.zeros([200, 300]);
    expect(k.nn.init.xavierUniform_(t, 2)).toBe(t);
    const bound = 2 * Math.sqrt(6 / 500);
    const m = moments(await t.data());
    expect(m.min).toBeGreaterThanOrEqual(-bound);
    expect(m.max).toBeLessThanOrEqual(bound);
    expect(m.max).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(m.std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
  });

  it('xavierNormal_ std is g·√(2/(fan_in+fan_out)); receptive field counts in the fans', async () => {
    k.manualSeed(11);
    const t = k.zeros([64, 32, 3, 3]); // fan_in 288, fan_out 576
    k.nn.init.xavierNormal_(t);
    const m = moments(await t.data());
    expect(Math.abs(m.std / Math.sqrt(2 / (288 + 576)) - 1)).toBeLessThan(0.02);
    expect(k.nn.init.fans(t)).toEqual({ fanIn: 288, fanOut: 576 });
    expect(() => k.nn.init.fans(k.zeros([5]))).toThrow(/at least 2 dimensions, got \[5\]/);
  });

  it('kaimingNormal_ std is gain/√fan (fan_in default, fan_out, relu and leaky_relu(a))', async () => {
    k.manualSeed(12);
    const cases: [k.nn.init.KaimingOptions, number][] = [
      [{}, Math.sqrt(2) / Math.sqrt(512)],
      [{ mode: 'fanOut' }, Math.sqrt(2) / Math.sqrt(256)],
      [{ nonlinearity: 'relu' }, Math.sqrt(2) / Math.sqrt(512)],
      [{ a: 0.2 }, Math.sqrt(2 / 1.04) / Math.sqrt(512)],
      [{ nonlinearity: 'tanh', mode: 'fanOut' }, 5 / 3 / Math.sqrt(256)],
    ];
    for (const [opts, std] of cases) {
      const t = k.zeros([256, 512]);
      k.nn.init.kaimingNormal_(t, opts);
      const m = moments(await t.data());
      expect(Math.abs(m.std / std - 1), JSON.stringify(opts)).toBeLessThan(0.02);
      expect(Math.abs(m.mean), JSON.stringify(opts)).toBeLessThan(5 * std / Math.sqrt(256 * 512));
    }
  });

  it('kaimingUniform_ bound is gain·√(3/fan)', async () => {
    k.manualSeed(13);
    const t = k.zeros([128, 256]);
    k.nn.init.kaimingUniform_(t, { nonlinearity: 'relu' });
    const bound = Math.sqrt(2) * Math.sqrt(3 / 256);
    const m = moments(await t.data());
    expect(m.max).toBeLessThanOrEqual(bound);
    expect(m.min).toBeGreaterThanOrEqual(-bound);
    expect(m.max).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(m.std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
  });

  it('constant_, zeros_, ones_, uniform_(a, b), normal_(mean, std)', async () => {
    const t = k.zeros([3, 4]);
    k.nn.init.constant_(t, -0.375);
    expect(await arr(t)).toEqual(new Array(12).fill(-0.375));
    k.nn.init.ones_(t);
    expect(await arr(t)).toEqual(new Array(12).fill(1));
    k.nn.init.zeros_(t);
    expect(await arr(t)).toEqual(new Array(12).fill(0));
    const ti = k.zeros([4], { dtype: 'i32' });
    k.nn.init.constant_(ti, 7);
    expect(ti.dtype).toBe('i32');
    expect(await arr(ti)).toEqual([7, 7, 7, 7]);
    k.manualSeed(14);
    const u = k.zeros([100_000]);
    k.nn.init.uniform_(u, 2, 5);
    const mu = moments(await u.data());
    expect(mu.min).toBeGreaterThanOrEqual(2);
    expect(mu.max).toBeLessThanOrEqual(5);
    expect(Math.abs(mu.mean - 3.5)).toBeLessThan(5 * (3 / Math.sqrt(12)) / Math.sqrt(1e5));
    const n = k.zeros([100_000]);
    k.nn.init.normal_(n, -1, 0.5);
    const mn = moments(await n.data());
    expect(Math.abs(mn.mean + 1)).toBeLessThan(5 * 0.5 / Math.sqrt(1e5));
    expect(Math.abs(mn.std / 0.5 - 1)).toBeLessThan(0.02);
    // a parameter initialized in place keeps its identity and stays trainable
    const p = new k.nn.Parameter(k.zeros([2]));
    expect(k.nn.init.constant_(p, 3)).toBe(p);
    expect(p.requiresGrad).toBe(true);
  });

  it('truncNormal_ stays in [a, b] with the truncated-normal std', async () => {
    k.manualSeed(15);
    const t = k.zeros([100_000]);
    k.nn.init.truncNormal_(t, 0, 1, -2, 2);
    const m = moments(await t.data());
    expect(m.min).toBeGreaterThanOrEqual(-2);
    expect(m.max).toBeLessThanOrEqual(2);
    // Var of N(0,1) truncated to [−2, 2] = 1 − 2·2φ(2)/(Φ(2) − Φ(−2))
    const phi2 = Math.exp(-2) / Math.sqrt(2 * Math.PI);
    const Z = 0.9544997361036416;
    const std = Math.sqrt(1 - (4 * phi2) / Z);
    expect(Math.abs(m.std / std - 1)).toBeLessThan(0.02);
    expect(Math.abs(m.mean)).toBeLessThan(5 * std / Math.sqrt(1e5));
  });
});

// ---------------------------------------------------------------------------------------------
// Losses

describe('losses: mseLoss and l1Loss', () => {
  const a = f32(values(12, 51)), b = f32(values(12, 52));
  const x = () => k.tensor(a, { shape: [3, 4] });
  const y = () => k.tensor(b, { shape: [3, 4] });
  const sq = a.map((v, i) => (v - b[i]!) ** 2);
  const ab = a.map((v, i) => Math.abs(v - b[i]!));
  const sum = (xs: number[]) => xs.reduce((s, v) => s + v, 0);

  it('mseLoss mean / sum / none', async () => {
    close([await k.F.mseLoss(x(), y()).item()], [sum(sq) / 12], 1e-6, 1e-6);
    close([await k.F.mseLoss(x(), y(), { reduction: 'sum' }).item()], [sum(sq)], 1e-6, 1e-6);
    const none = k.F.mseLoss(x(), y(), { reduction: 'none' });
    expect(none.shape).toEqual([3, 4]);
    close(await arr(none), sq, 1e-6, 1e-6);
  });

  it('l1Loss mean / sum / none', async () => {
    close([await k.F.l1Loss(x(), y()).item()], [sum(ab) / 12], 1e-6, 1e-6);
    close([await k.F.l1Loss(x(), y(), { reduction: 'sum' }).item()], [sum(ab)], 1e-6, 1e-6);
    close(await arr(k.F.l1Loss(x(), y(), { reduction: 'none' })), ab, 1e-6, 1e-6);
  });

  it('gradient of mseLoss is 2(x − y)/N; shape and reduction errors', async () => {
    const xt = k.tensor(a, { shape: [3, 4], requiresGrad: true });
    k.F.mseLoss(xt, y()).backward();
    close(await arr(xt.grad!), a.map((v, i) => (2 * (v - b[i]!)) / 12), 1e-6, 1e-6);
    expect(() => k.F.mseLoss(x(), k.zeros([4, 3]))).toThrow(/mseLoss: input \[3, 4\] and target \[4, 3\] must have the same shape/);
    expect(() => k.F.l1Loss(x(), y(), { reduction: 'avg' as 'mean' })).toThrow(/l1Loss: reduction must be 'mean', 'sum' or 'none', got "avg"/);
  });
});

describe('losses: crossEntropy and nllLoss', () => {
  const N = 5, C = 4;
  const logits = f32(values(N * C, 61, -3, 3));
  const targets = [2, 0, 3, 3, 1];
  const lp = logSoftmaxRef(logits, N, C);
  const nll = targets.map((t, n) => -lp[n * C + t]!);
  const X = () => k.tensor(logits, { shape: [N, C] });
  const T = () => k.tensor(Int32Array.from(targets));
  const sum = (xs: number[]) => xs.reduce((s, v) => s + v, 0);

  it('integer targets: mean / sum / none equal −log softmax picked in float64', async () => {
    close([await k.F.crossEntropy(X(), T()).item()], [sum(nll) / N], 1e-6, 1e-5);
    close([await k.F.crossEntropy(X(), T(), { reduction: 'sum' }).item()], [sum(nll)], 1e-6, 1e-5);
    close(await arr(k.F.crossEntropy(X(), T(), { reduction: 'none' })), nll, 1e-6, 1e-5);
    // u32 targets behave the same
    close([await k.F.crossEntropy(X(), k.tensor(Uint32Array.from(targets))).item()], [sum(nll) / N], 1e-6, 1e-5);
  });

  it('large logits stay finite (log-sum-exp is shifted)', async () => {
    const big = [1000, 0, -1000, 500, 499, 0];
    const l = await arr(k.F.crossEntropy(k.tensor(big, { shape: [2, 3] }), k.tensor(Int32Array.from([1, 1])), { reduction: 'none' }));
    const ref = logSoftmaxRef(big, 2, 3);
    close(l, [-ref[1]!, -ref[4]!], 1e-4, 1e-6);
  });

  it('labelSmoothing 0.1: (1−ε)·nll + ε·mean_c(−log p_c)', async () => {
    const eps = 0.1;
    const per = targets.map((_, n) => {
      let s = 0;
      for (let c = 0; c < C; c++) s -= lp[n * C + c]!;
      return (1 - eps) * nll[n]! + (eps * s) / C;
    });
    close([await k.F.crossEntropy(X(), T(), { labelSmoothing: eps }).item()], [sum(per) / N], 1e-6, 1e-5);
    close([await k.F.crossEntropy(X(), T(), { labelSmoothing: eps, reduction: 'sum' }).item()], [sum(per)], 1e-6, 1e-5);
    close(await arr(k.F.crossEntropy(X(), T(), { labelSmoothing: eps, reduction: 'none' })), per, 1e-6, 1e-5);
    expect(() => k.F.crossEntropy(X(), T(), { labelSmoothing: 1.5 })).toThrow(/labelSmoothing must be in \[0, 1\], got 1.5/);
  });

  it('class weights: weighted mean Σ w_y·l / Σ w_y (also with label smoothing, as PyTorch)', async () => {
    const w = [0.5, 2, 1, 3];
    const W = () => k.tensor(w);
    const num = sum(targets.map((t, n) => w[t]! * nll[n]!));
    const den = sum(targets.map((t) => w[t]!));
    close([await k.F.crossEntropy(X(), T(), { weight: W() }).item()], [num / den], 1e-6, 1e-5);
    close([await k.F.crossEntropy(X(), T(), { weight: W(), reduction: 'sum' }).item()], [num], 1e-6, 1e-5);
    close(await arr(k.F.crossEntropy(X(), T(), { weight: W(), reduction: 'none' })), targets.map((t, n) => w[t]! * nll[n]!), 1e-6, 1e-5);
    // PyTorch: (1−ε)·nll_weighted_mean + ε/C · Σ_n Σ_c −w_c log p_nc / Σ_n w_{y_n}
    const eps = 0.2;
    let smooth = 0;
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) smooth -= w[c]! * lp[n * C + c]!;
    const want = (1 - eps) * (num / den) + (eps / C) * (smooth / den);
    close([await k.F.crossEntropy(X(), T(), { weight: W(), labelSmoothing: eps }).item()], [want], 1e-6, 1e-5);
  });

  it('ignoreIndex: ignored targets contribute neither loss nor count', async () => {
    const tg = [2, -100, 3, -100, 1];
    const valid = [0, 2, 4];
    const mean = sum(valid.map((n) => nll[n]!)) / valid.length;
    const t = () => k.tensor(Int32Array.from(tg));
    close([await k.F.crossEntropy(X(), t(), { ignoreIndex: -100 }).item()], [mean], 1e-6, 1e-5);
    close(await arr(k.F.crossEntropy(X(), t(), { ignoreIndex: -100, reduction: 'none' })), [nll[0]!, 0, nll[2]!, 0, nll[4]!], 1e-6, 1e-5);
    // with smoothing: the smoothing term is also averaged over the valid targets only
    const eps = 0.1;
    const per = valid.map((n) => {
      let s = 0;
      for (let c = 0; c < C; c++) s -= lp[n * C + c]!;
      return (1 - eps) * nll[n]! + (eps * s) / C;
    });
    close([await k.F.crossEntropy(X(), t(), { ignoreIndex: -100, labelSmoothing: eps }).item()], [sum(per) / 3], 1e-6, 1e-5);
    // with class weights
    const w = [0.5, 2, 1, 3];
    const num = sum(valid.map((n) => w[tg[n]!]! * nll[n]!)), den = sum(valid.map((n) => w[tg[n]!]!));
    close([await k.F.crossEntropy(X(), t(), { ignoreIndex: -100, weight: k.tensor(w) }).item()], [num / den], 1e-6, 1e-5);
  });

  it('probability targets: −Σ_c q_c log p_c, averaged over the batch (and with smoothing)', async () => {
    const q = values(N * C, 62, 0.05, 1);
    for (let n = 0; n < N; n++) {
      const s = q.slice(n * C, n * C + C).reduce((a, b) => a + b, 0);
      for (let c = 0; c < C; c++) q[n * C + c] = q[n * C + c]! / s;
    }
    const qf = f32(q);
    const per = Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let c = 0; c < C; c++) s -= qf[n * C + c]! * lp[n * C + c]!;
      return s;
    });
    const Q = () => k.tensor(qf, { shape: [N, C] });
    close([await k.F.crossEntropy(X(), Q()).item()], [sum(per) / N], 1e-6, 1e-5);
    close(await arr(k.F.crossEntropy(X(), Q(), { reduction: 'none' })), per, 1e-6, 1e-5);
    const eps = 0.1;
    const perS = Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let c = 0; c < C; c++) s -= ((1 - eps) * qf[n * C + c]! + eps / C) * lp[n * C + c]!;
      return s;
    });
    close([await k.F.crossEntropy(X(), Q(), { labelSmoothing: eps }).item()], [sum(perS) / N], 1e-6, 1e-5);
    expect(() => k.F.crossEntropy(X(), k.zeros([N, C + 1]))).toThrow(/crossEntropy: input \[5, 4\] and target \[5, 5\] must have the same shape/);
  });

  it('spatial targets [N, d] with logits [N, C, d]', async () => {
    const n = 2, c = 3, d = 4;
    const xs = f32(values(n * c * d, 63, -2, 2));
    const tg = [0, 2, 1, 1, 2, 2, 0, 1];
    const ref = logSoftmaxRef(xs, n, c, d);
    const per = tg.map((t, i) => -ref[(Math.floor(i / d) * c + t) * d + (i % d)]!);
    const out = k.F.crossEntropy(k.tensor(xs, { shape: [n, c, d] }), k.tensor(Int32Array.from(tg), { shape: [n, d] }), { reduction: 'none' });
    expect(out.shape).toEqual([n, d]);
    close(await arr(out), per, 1e-6, 1e-5);
  });

  it('gradient of the mean cross entropy is (softmax − onehot)/N (plain, weighted, smoothed)', async () => {
    const sm = lp.map(Math.exp);
    const onehot = (n: number, c: number) => (targets[n] === c ? 1 : 0);
    const run = async (opts: Parameters<typeof k.F.crossEntropy>[2]) => {
      const x = k.tensor(logits, { shape: [N, C], requiresGrad: true });
      k.F.crossEntropy(x, T(), opts).backward();
      return arr(x.grad!);
    };
    close(await run({}), sm.map((p, i) => (p - onehot(Math.floor(i / C), i % C)) / N), 1e-6, 1e-5, 'plain');
    const w = [0.5, 2, 1, 3];
    const den = sum(targets.map((t) => w[t]!));
    close(await run({ weight: k.tensor(w) }), sm.map((p, i) => {
      const n = Math.floor(i / C);
      return (w[targets[n]!]! * (p - onehot(n, i % C))) / den;
    }), 1e-6, 1e-5, 'weighted');
    const eps = 0.1;
    close(await run({ labelSmoothing: eps }), sm.map((p, i) => (p - ((1 - eps) * onehot(Math.floor(i / C), i % C) + eps / C)) / N), 1e-6, 1e-5, 'smoothed');
  });

  it('nllLoss on log-probabilities: mean, sum, weights, ignoreIndex; target errors', async () => {
    const LP = () => k.tensor(f32(lp), { shape: [N, C] });
    const lpf = f32(lp);
    const picked = targets.map((t, n) => -lpf[n * C + t]!);
    close([await k.F.nllLoss(LP(), T()).item()], [sum(picked) / N], 1e-6, 1e-6);
    close([await k.F.nllLoss(LP(), T(), { reduction: 'sum' }).item()], [sum(picked)], 1e-6, 1e-6);
    const w = [1, 0.25, 4, 2];
    const num = sum(targets.map((t, n) => w[t]! * picked[n]!)), den = sum(targets.map((t) => w[t]!));
    close([await k.F.nllLoss(LP(), T(), { weight: k.tensor(w) }).item()], [num / den], 1e-6, 1e-6);
    // nllLoss does not normalize: arbitrary inputs are simply picked and negated
    const raw = k.tensor([[1, 2, 3], [4, 5, 6]]);
    close([await k.F.nllLoss(raw, k.tensor(Int32Array.from([2, 0]))).item()], [-(3 + 4) / 2], 1e-7);
    close([await k.F.nllLoss(raw, k.tensor(Int32Array.from([2, 7])), { ignoreIndex: 7 }).item()], [-3], 1e-7);
    close([await k.F.nllLoss(raw, k.tensor(Int32Array.from([2, 7])), { ignoreIndex: 7, reduction: 'sum' }).item()], [-3], 1e-7);
    expect(() => k.F.nllLoss(raw, k.tensor([1, 0]))).toThrow(/nllLoss: class targets must be i32 or u32, got f32/);
    expect(() => k.F.nllLoss(raw, k.tensor(Int32Array.from([1, 0, 1])))).toThrow(/nllLoss: target of shape \[3\] does not match input \[2, 3\] \(expected \[2\]\)/);
    expect(() => k.F.nllLoss(k.tensor([1, 2]), k.tensor(Int32Array.from([1])))).toThrow(/nllLoss: input must be \[N, C, …\], got \[2\]/);
  });
});

describe('losses: binaryCrossEntropyWithLogits', () => {
  const xs = [-80, -15, -3, -0.5, 0, 0.5, 3, 15, 80, 80, -80, 2.25];
  const ys = [0, 1, 0.3, 1, 0, 0, 1, 1, 0, 1, 1, 0.75];
  const ref = xs.map((x, i) => softplusRef(x) - x * ys[i]!);
  const X = (g = false) => k.tensor(xs, { requiresGrad: g });
  const Y = () => k.tensor(ys);

  it('is finite and exact at large |logits| (loss(80, 0) = 80, loss(−80, 1) = 80)', async () => {
    const l = await arr(k.F.binaryCrossEntropyWithLogits(X(), Y(), { reduction: 'none' }));
    expect(l.every(Number.isFinite)).toBe(true);
    expect(l[8]).toBeCloseTo(80, 4);
    expect(l[10]).toBeCloseTo(80, 4);
    expect(Math.abs(l[0]!)).toBeLessThan(1e-6);
    expect(Math.abs(l[9]!)).toBeLessThan(1e-6);
    // relative accuracy also for the tiny losses (log1p, no cancellation): 1e-5 relative + 1e-30
    close(l, ref, 1e-30, 1e-5, 'bce none');
    close([await k.F.binaryCrossEntropyWithLogits(X(), Y()).item()], [ref.reduce((a, b) => a + b) / xs.length], 1e-6, 1e-5);
    close([await k.F.binaryCrossEntropyWithLogits(X(), Y(), { reduction: 'sum' }).item()], [ref.reduce((a, b) => a + b)], 1e-5, 1e-5);
  });

  it('gradient is (σ(x) − y)/N, finite at ±80', async () => {
    const x = X(true);
    k.F.binaryCrossEntropyWithLogits(x, Y()).backward();
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    close(await arr(x.grad!), xs.map((v, i) => (sig(v) - ys[i]!) / xs.length), 1e-7, 1e-5, 'bce grad');
  });

  it('posWeight: (1 − y)·x + (1 + (pw − 1)·y)·softplus(−x), scalar and per class', async () => {
    const pw = 3;
    const want = xs.map((x, i) => (1 - ys[i]!) * x + (1 + (pw - 1) * ys[i]!) * softplusRef(-x));
    close(await arr(k.F.binaryCrossEntropyWithLogits(X(), Y(), { posWeight: pw, reduction: 'none' })), want, 1e-5, 1e-5, 'posWeight scalar');
    // [N, C] logits with a per-class posWeight [C] and a per-element weight
    const x2 = k.tensor(xs, { shape: [4, 3] }), y2 = k.tensor(ys, { shape: [4, 3] });
    const pwc = [0.5, 2, 4];
    const wt = values(12, 71, 0.5, 1.5).map(Math.fround);
    const want2 = xs.map((x, i) => wt[i]! * ((1 - ys[i]!) * x + (1 + (pwc[i % 3]! - 1) * ys[i]!) * softplusRef(-x)));
    const got = await k.F.binaryCrossEntropyWithLogits(x2, y2, { posWeight: k.tensor(pwc), weight: k.tensor(wt, { shape: [4, 3] }) }).item();
    close([got], [want2.reduce((a, b) => a + b) / 12], 1e-5, 1e-5, 'posWeight per class');
  });
});

describe('losses: klDivGaussian', () => {
  it('½(μ² + σ² − 1 − log σ²) with batchmean (default), mean, sum, none; gradients in closed form', async () => {
    const mu = f32(values(12, 81)), lv = f32(values(12, 82, -2, 1));
    const per = mu.map((m, i) => 0.5 * (m * m + Math.exp(lv[i]!) - 1 - lv[i]!));
    const total = per.reduce((a, b) => a + b, 0);
    const M = (g = false) => k.tensor(mu, { shape: [3, 4], requiresGrad: g });
    const L = (g = false) => k.tensor(lv, { shape: [3, 4], requiresGrad: g });
    close([await k.F.klDivGaussian(M(), L()).item()], [total / 3], 1e-6, 1e-5, 'batchmean');
    close([await k.F.klDivGaussian(M(), L(), { reduction: 'batchmean' }).item()], [total / 3], 1e-6, 1e-5);
    close([await k.F.klDivGaussian(M(), L(), { reduction: 'mean' }).item()], [total / 12], 1e-6, 1e-5);
    close([await k.F.klDivGaussian(M(), L(), { reduction: 'sum' }).item()], [total], 1e-6, 1e-5);
    close(await arr(k.F.klDivGaussian(M(), L(), { reduction: 'none' })), per, 1e-6, 1e-5);
    // KL of N(0, 1) to itself is 0
    expect(await k.F.klDivGaussian(k.zeros([2, 2]), k.zeros([2, 2])).item()).toBe(0);
    const m = M(true), l = L(true);
    k.F.klDivGaussian(m, l).backward();
    close(await arr(m.grad!), mu.map((v) => v / 3), 1e-7, 1e-5, 'dμ');
    close(await arr(l.grad!), lv.map((v) => 0.5 * (Math.exp(v) - 1) / 3), 1e-7, 1e-5, 'dlogvar');
  });
});
