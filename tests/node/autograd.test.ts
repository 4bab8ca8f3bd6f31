import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { values } from '../shared/util.ts';

beforeAll(async () => {
  await k.init();
});

type Fn = (...xs: k.Tensor[]) => k.Tensor;
interface GradCase {
  name: string;
  fn: Fn;
  shapes: number[][];
  range?: [number, number];
  /** integer index inputs (not differentiated): [position, values] */
  ints?: Record<number, number[]>;
  tol?: number;
}

const cases: GradCase[] = [
  { name: 'add (broadcast)', fn: (a, b) => a.add(b), shapes: [[2, 3], [3]] },
  { name: 'sub (broadcast)', fn: (a, b) => a.sub(b), shapes: [[2, 1], [1, 3]] },
  { name: 'mul', fn: (a, b) => a.mul(b), shapes: [[2, 3], [2, 3]] },
  { name: 'div', fn: (a, b) => a.div(b), shapes: [[4], [4]], range: [0.5, 2] },
  { name: 'pow', fn: (a, b) => a.pow(b), shapes: [[4], [4]], range: [0.5, 2] },
  { name: 'pow scalar', fn: (a) => a.pow(3).add(a.pow(2.5)), shapes: [[4]], range: [0.5, 2] },
  { name: 'maximum', fn: (a, b) => a.maximum(b), shapes: [[5], [5]] },
  { name: 'minimum', fn: (a, b) => a.minimum(b), shapes: [[5], [5]] },
  { name: 'neg recip', fn: (a) => a.neg().recip(), shapes: [[4]], range: [0.5, 2] },
  { name: 'sqrt rsqrt', fn: (a) => a.sqrt().add(a.rsqrt()), shapes: [[4]], range: [0.5, 2] },
  { name: 'exp log', fn: (a) => a.exp().add(a.abs().add(0.5).log()), shapes: [[5]] },
  { name: 'log1p expm1', fn: (a) => a.log1p().add(a.expm1()), shapes: [[5]], range: [-0.5, 1] },
  { name: 'sin cos', fn: (a) => a.sin().mul(a.cos().add(2)), shapes: [[5]] },
  { name: 'tanh sigmoid', fn: (a) => a.tanh().add(a.sigmoid()), shapes: [[5]] },
  { name: 'erf', fn: (a) => a.erf(), shapes: [[5]] },
  { name: 'abs', fn: (a) => a.abs(), shapes: [[5]], range: [0.1, 1] },
  { name: 'relu leakyRelu', fn: (a) => a.relu().add(a.leakyRelu(0.1)), shapes: [[6]] },
  { name: 'silu', fn: (a) => a.silu(), shapes: [[6]] },
  { name: 'gelu exact', fn: (a) => a.gelu(), shapes: [[6]] },
  { name: 'gelu tanh', fn: (a) => a.gelu('tanh'), shapes: [[6]] },
  { name: 'softplus', fn: (a) => a.softplus(), shapes: [[6]], range: [-4, 4] },
  { name: 'clamp', fn: (a) => a.clamp(-0.5, 0.7), shapes: [[6]] },
  { name: 'where', fn: (a, b) => k.where(a.gt(0), a.mul(b), b.exp()), shapes: [[6], [6]] },
  { name: 'mod', fn: (a, b) => a.mod(b), shapes: [[4], [4]], range: [0.7, 3] },
  { name: 'reshape permute', fn: (a) => a.reshape([3, 2]).T.mul(a.reshape([2, 3])), shapes: [[6]] },
  { name: 'expand', fn: (a) => a.expand([3, 2, 4]).mul(k.arange(24).reshape([3, 2, 4]).float()), shapes: [[2, 1]] },
  { name: 'slice flip', fn: (a) => a.slice(1, 1, 4, 2).flip(0).mul(a.slice(1, 0, 2)), shapes: [[3, 4]] },
  { name: 'unfold (step, dilation)', fn: (a) => a.unfold(1, 3, 2, 2).mul(a.unfold(1, 3, 2, 2).exp()), shapes: [[2, 9]] },
  { name: 'unfold 2-D windows', fn: (a) => a.unfold(0, 2, 1).unfold(1, 3, 2).sum([2, 3]).mul(a.slice(0, 0, 3).slice(1, 0, 2)), shapes: [[4, 5]] },
  { name: 'pad', fn: (a) => a.pad([[1, 0], [2, -1]], 0.5).mul(2), shapes: [[2, 3]] },
  { name: 'cat stack split', fn: (a, b) => k.cat([a, b], 1).add(k.stack([a, a], 0).sum(0).pad([[0, 0], [0, 2]])).split([2, 2], 1)[1]!, shapes: [[2, 2], [2, 2]] },
  { name: 'sum mean', fn: (a) => a.sum(1).mul(a.mean(0).sum()), shapes: [[3, 4]] },
  { name: 'max (distinct)', fn: (a) => a.max(1), shapes: [[3, 4]] },
  { name: 'min', fn: (a) => a.min(0, { keepDim: true }).mul(a), shapes: [[3, 4]] },
  { name: 'var std', fn: (a) => a.var(1).add(a.std(0).sum()), shapes: [[3, 4]] },
  { name: 'logsumexp', fn: (a) => a.logsumexp(1), shapes: [[3, 4]] },
  { name: 'softmax', fn: (a) => a.softmax(-1), shapes: [[3, 4]] },
  { name: 'logSoftmax', fn: (a) => a.logSoftmax(0), shapes: [[3, 4]] },
  { name: 'cumsum', fn: (a) => a.cumsum(1).mul(a), shapes: [[2, 4]] },
  { name: 'matmul', fn: (a, b) => a.matmul(b), shapes: [[3, 4], [4, 2]] },
  { name: 'matmul batched broadcast', fn: (a, b) => a.matmul(b.mT), shapes: [[2, 1, 3, 4], [3, 2, 4]] },
  { name: 'matmul vector', fn: (a, b) => a.matmul(b), shapes: [[4], [4, 3]] },
  { name: 'gather', fn: (a, i) => a.gather(1, i), shapes: [[3, 4], [3, 2]], ints: { 1: [0, 3, 1, 1, 2, -1] } },
  { name: 'indexSelect', fn: (a, i) => a.indexSelect(0, i).mul(2), shapes: [[3, 2], [4]], ints: { 1: [2, 0, 2, 1] } },
  { name: 'scatterAdd', fn: (a, i, s) => a.scatterAdd(0, i, s).mul(a), shapes: [[3, 2], [2, 2], [2, 2]], ints: { 1: [2, 0, 2, 2] } },
  { name: 'contiguous cast', fn: (a) => a.T.contiguous().cast('f32').mul(3), shapes: [[2, 3]] },
];

describe('gradcheck: float64 finite differences on the CPU reference', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const inputs = c.shapes.map((shape, i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      if (c.ints?.[i]) return { shape, data: c.ints[i]!, constant: true, dtype: 'i32' as const };
      return { shape, data: values(n, 17 + i * 101, ...(c.range ?? [-1.5, 1.5])) };
    });
    const r = await k.gradcheck(c.fn, inputs, { atol: 1e-6, rtol: c.tol ?? 1e-5 });
    if (!r.ok) throw new Error(`${c.name}: worst ratio ${r.worst} at ${JSON.stringify(r.at)}`);
  });
});

describe('WebGPU gradients equal the reference gradients', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const host = c.shapes.map((shape, i) => (c.ints?.[i] ? c.ints[i]! : values(shape.reduce((a, b) => a * b, 1), 17 + i * 101, ...(c.range ?? [-1.5, 1.5]))));
    const run = (device: k.Device) => k.withDevice(device, () => k.scope(async () => {
      const xs = c.shapes.map((shape, i) => (c.ints?.[i] ? k.tensor(Int32Array.from(host[i]!), { shape }) : k.tensor(Float32Array.from(host[i]!), { shape, requiresGrad: true })));
      const out = c.fn(...xs);
      const w = k.tensor(Float32Array.from(values(out.size, 5, 0.5, 1.5)), { shape: out.shape });
      out.mul(w).sum().backward();
      return Promise.all(xs.filter((x) => x.requiresGrad).map(async (x) => Array.from(await x.grad!.data())));
    }));
    const [gpu, ref] = [await run('webgpu'), await run('cpu')];
    gpu.forEach((g, i) => g.forEach((v, j) => {
      const e = ref[i]![j]!;
      if (!(Math.abs(v - e) <= 2e-5 + 2e-4 * Math.abs(e))) throw new Error(`${c.name}: input ${i}[${j}] got ${v}, reference ${e}`);
    }));
  });
});

describe('double backward', () => {
  async function secondOrder(fn: Fn, shapes: number[][], range: [number, number] = [-1.2, 1.2]) {
    // checks d/dx <v, ∇f(x)> against finite differences of <v, ∇f> computed with first-order gradients
    const inputs = shapes.map((shape, i) => ({ shape, data: values(shape.reduce((a, b) => a * b, 1), 91 + i, ...range) }));
    const gradFn: Fn = (...xs) => {
      const out = fn(...xs).sum();
      const gs = k.gradients(out, xs, { createGraph: true });
      return k.cat(gs.map((g) => g.flatten()));
    };
    const r = await k.gradcheck(gradFn, inputs, { atol: 1e-6, rtol: 1e-5 });
    if (!r.ok) throw new Error(`worst ${r.worst} at ${JSON.stringify(r.at)}`);
  }
  it('mul', () => secondOrder((a, b) => a.mul(b).mul(a), [[3], [3]]));
  it('exp', () => secondOrder((a) => a.exp().mul(a), [[4]]));
  it('tanh', () => secondOrder((a) => a.tanh(), [[4]]));
  it('matmul', () => secondOrder((a, b) => a.matmul(b).pow(2), [[2, 3], [3, 2]]));
  it('softplus', () => secondOrder((a) => a.softplus().mul(a), [[5]], [-3, 3]));
  it('sum', () => secondOrder((a) => a.sum(0).pow(2), [[3, 2]]));
  // the norms' first-order gradients come from their saved statistics; second-order ones through the composite
  it('groupNorm', () => secondOrder((x, w, b) => k.nn.groupNorm(x, 2, w, b).pow(3), [[2, 4, 3], [4], [4]]));
  it('layerNorm', () => secondOrder((x, w, b) => k.F.layerNorm(x, [3, 2], w, b).pow(3), [[2, 3, 2], [3, 2], [3, 2]]));
  it('gradient penalty ‖∇x f(x)‖² of a small MLP, by finite differences in float64', async () => {
    const w1 = values(3 * 4, 3), b1 = values(4, 4), w2 = values(4, 5);
    const penalty: Fn = (x, W1, B1, W2) => {
      const f = x.matmul(W1).add(B1).tanh().matmul(W2).sum();
      const [gx] = k.gradients(f, [x], { createGraph: true });
      return gx!.pow(2).sum();
    };
    const r = await k.gradcheck(penalty, [
      { shape: [2, 3], data: values(6, 8) },
      { shape: [3, 4], data: w1 }, { shape: [4], data: b1 }, { shape: [4, 1], data: w2 },
    ], { atol: 1e-6, rtol: 1e-5 });
    if (!r.ok) throw new Error(`worst ${r.worst} at ${JSON.stringify(r.at)}`);
  });
});

describe('backward semantics', () => {
  it('accumulates into .grad across calls until cleared', async () => {
    const x = k.tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward();
    x.mul(3).sum().backward();
    expect(await x.grad!.tolist()).toEqual([5, 7, 9]);
  });

  it('retainGraph allows a second backward; otherwise the error says what to do', async () => {
    const x = k.tensor([2], { requiresGrad: true });
    const y = x.exp().sum();
    y.backward({ retainGraph: true });
    y.backward();
    expect((await x.grad!.item())).toBeCloseTo(2 * Math.exp(2), 4);
    expect(() => y.backward()).toThrow(/graph was already freed.*retainGraph: true/);
  });

  it('errors: non-scalar without a gradient, no requiresGrad', () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    expect(() => x.mul(2).backward()).toThrow(/backward: the output has shape \[2\]; a gradient argument is needed/);
    expect(() => k.tensor([1]).sum().backward()).toThrow(/backward: the tensor does not require grad/);
    expect(() => { k.tensor([1], { dtype: 'i32' }).requiresGrad = true; }).toThrow(/only floating-point tensors/);
  });

  it('noGrad records nothing; detach cuts the graph', async () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    const y = k.noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    const z = x.detach().mul(x).sum();
    z.backward();
    expect(await x.grad!.tolist()).toEqual([1, 2]);
  });

  it('grad and valueAndGrad differentiate chosen arguments', async () => {
    const f = (a: k.Tensor, b: k.Tensor) => a.mul(b).sum().add(b.pow(2).sum());
    const [v, gs] = k.valueAndGrad(f, { argnums: [0, 1] })(k.tensor([1, 2]), k.tensor([3, 4]));
    expect(await v.item()).toBe(11 + 25);
    expect(await (gs as k.Tensor[])[0]!.tolist()).toEqual([3, 4]);
    expect(await (gs as k.Tensor[])[1]!.tolist()).toEqual([7, 10]);
    const g = k.grad((a: k.Tensor) => a.exp().sum())(k.tensor([0]));
    expect(await (g as k.Tensor).item()).toBe(1);
  });

  it('max splits the gradient evenly among ties (documented rule)', async () => {
    const x = k.tensor([1, 3, 3, 2], { requiresGrad: true });
    x.max().backward();
    expect(await x.grad!.tolist()).toEqual([0, 0.5, 0.5, 0]);
  });

  it('keeps memory flat across training-like steps', async () => {
    const w = k.randn([32, 32], { requiresGrad: true });
    const x = k.randn([8, 32]);
    let base = 0;
    for (let i = 0; i < 200; i++) {
      k.scope(() => {
        w.grad?.dispose();
        w.grad = null;
        x.matmul(w).tanh().pow(2).mean().backward();
      });
      if (i % 20 === 19) await w.grad!.data();
      if (i === 39) base = k.memory().liveBytes;
    }
    expect(k.memory().liveBytes).toBeLessThanOrEqual(base);
  });
});
