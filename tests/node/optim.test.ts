/**
 * Optimizers, gradient clipping, learning-rate schedules and EMA, against the PyTorch update rules
 * re-implemented here in float64.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close as closeAt, f32, values } from '../shared/util.ts';

beforeAll(async () => {
  await k.init();
});

const close = (got: ArrayLike<number>, want: ArrayLike<number>, atol = 1e-6, rtol = 1e-5, what = '') => closeAt(got, want, atol, rtol, what);


const arr = async (t: k.Tensor) => Array.from(await t.data());

// The test objective: L(p) = Σ c·p + ½ Σ d·p², so ∇L = c + d·p (depends on p: momentum and moments matter).
const P0 = f32([0.8, -1.2, 2.5, -0.3, 1.1, -2.0]);
const C = f32([0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
const D = f32([0.2, 0.5, 1.0, 0.1, 0.3, 0.7]);
const gradRef = (p: number[]) => p.map((v, i) => C[i]! + D[i]! * v);

function objective(p: k.Tensor): k.Tensor {
  return p.mul(k.tensor(C)).sum().add(p.mul(p).mul(k.tensor(D)).sum().mul(0.5));
}

/** Runs `steps` optimizer steps on the objective (zeroGrad → backward → step) and returns the parameter values after each. */
async function run(p: k.Tensor, opt: k.optim.Optimizer<{ lr: number }>, steps: number, zeroGrad = true): Promise<number[][]> {
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    k.scope(() => {
      if (zeroGrad) opt.zeroGrad();
      objective(p).backward();
    });
    await opt.step();
    out.push(await arr(p));
  }
  return out;
}

interface SgdRef { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }

/** torch.optim.SGD, float64, on the objective. With `accumulate`, gradients are not cleared between steps. */
function sgdRef(o: SgdRef, steps: number, accumulate = false): number[][] {
  let p = [...P0];
  let buf: number[] | null = null;
  let acc = p.map(() => 0);
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    const g0 = gradRef(p);
    acc = accumulate ? acc.map((a, i) => a + g0[i]!) : g0;
    let d = acc.map((g, i) => g + (o.weightDecay ?? 0) * p[i]!);
    if (o.momentum) {
      buf = buf === null ? [...d] : buf.map((b, i) => o.momentum! * b + (1 - (o.dampening ?? 0)) * d[i]!);
      d = o.nesterov ? d.map((g, i) => g + o.momentum! * buf![i]!) : [...buf];
    }
    p = p.map((v, i) => v - o.lr * d[i]!);
    out.push(p);
  }
  return out;
}

interface AdamRef { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number; decoupled?: boolean }

/** torch.optim.Adam / AdamW, float64, on the objective, starting from `p0` and (optionally) saved moments. */
function adamRef(o: AdamRef, steps: number, p0 = P0): number[][] {
  const [b1, b2] = o.betas ?? [0.9, 0.999];
  const eps = o.eps ?? 1e-8;
  const wd = o.weightDecay ?? 0;
  let p = [...p0];
  let m = p.map(() => 0), v = p.map(() => 0);
  const out: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    let g = gradRef(p);
    if (wd && !o.decoupled) g = g.map((x, i) => x + wd * p[i]!);
    if (wd && o.decoupled) p = p.map((x) => x * (1 - o.lr * wd));
    m = m.map((x, i) => b1 * x + (1 - b1) * g[i]!);
    v = v.map((x, i) => b2 * x + (1 - b2) * g[i]! * g[i]!);
    const mh = m.map((x) => x / (1 - b1 ** t));
    const vh = v.map((x) => x / (1 - b2 ** t));
    p = p.map((x, i) => x - (o.lr * mh[i]!) / (Math.sqrt(vh[i]!) + eps));
    out.push(p);
  }
  return out;
}

describe('SGD', () => {
  const cases: [string, SgdRef, number][] = [
    ['plain, one step', { lr: 0.1 }, 1],
    ['plain, three steps', { lr: 0.1 }, 3],
    ['momentum 0.9, two steps', { lr: 0.1, momentum: 0.9 }, 2],
    ['momentum 0.9, four steps', { lr: 0.05, momentum: 0.9 }, 4],
    ['momentum with dampening 0.5 (not applied on the first step)', { lr: 0.1, momentum: 0.8, dampening: 0.5 }, 3],
    ['nesterov', { lr: 0.1, momentum: 0.9, nesterov: true }, 3],
    ['weight decay (L2 added to the gradient)', { lr: 0.1, weightDecay: 0.3 }, 2],
    ['weight decay + nesterov momentum', { lr: 0.05, momentum: 0.7, nesterov: true, weightDecay: 0.1 }, 3],
  ];
  it.each(cases)('%s matches torch.optim.SGD', async (_n, o, steps) => {
    const p = k.tensor(P0, { requiresGrad: true });
    const got = await run(p, new k.optim.SGD([p], o), steps);
    const want = sgdRef(o, steps);
    got.forEach((g, s) => close(g, want[s]!, 1e-6, 1e-5, `step ${s + 1}`));
  });

  it('one step by hand: p − lr·(c + d·p)', async () => {
    const p = k.tensor(P0, { requiresGrad: true });
    await run(p, new k.optim.SGD([p], { lr: 0.5 }), 1);
    close(await arr(p), P0.map((v, i) => v - 0.5 * (C[i]! + D[i]! * v)), 1e-6, 1e-6);
  });

  it('momentum when gradients are accumulated across steps (no zeroGrad)', async () => {
    const o = { lr: 0.05, momentum: 0.9 };
    const p = k.tensor(P0, { requiresGrad: true });
    const got = await run(p, new k.optim.SGD([p], o), 3, false);
    const want = sgdRef(o, 3, true);
    got.forEach((g, s) => close(g, want[s]!, 1e-6, 1e-5, `step ${s + 1}`));
  });

  it('parameters without a gradient are left alone; groups have their own options', async () => {
    const a = k.tensor([1, 2], { requiresGrad: true });
    const b = k.tensor([3, 4], { requiresGrad: true });
    const c = k.tensor([5], { requiresGrad: true });
    const opt = new k.optim.SGD([{ params: [a] }, { params: [b, c], options: { lr: 0.5 } }], { lr: 0.1 });
    expect(opt.lr).toBe(0.1);
    // loss = Σ a·[1, −1] + Σ b·[2, 2]; c gets no gradient
    a.mul(k.tensor([1, -1])).sum().add(b.mul(2).sum()).backward();
    await opt.step();
    close(await arr(a), [1 - 0.1, 2 + 0.1], 1e-7);
    close(await arr(b), [3 - 0.5 * 2, 4 - 0.5 * 2], 1e-7);
    expect(await arr(c)).toEqual([5]);
    opt.lr = 1;
    expect(opt.paramGroups.map((g) => g.options.lr)).toEqual([1, 1]);
  });

  it('a module with tied weights: the shared weight is stepped once per step', async () => {
    class Tied extends k.nn.Module {
      a = new k.nn.Linear(2, 1, { bias: false });
      b = this.a;
    }
    const m = new Tied();
    m.a.weight.assign(k.tensor([[1, 2]]));
    const opt = new k.optim.SGD(m, { lr: 0.1 });
    // loss = a(x) + b(x) with x = [3, 4]: the weight's gradient is 2·x = [6, 8]
    const x = k.tensor([[3, 4]]);
    m.a.forward(x).add(m.b.forward(x)).sum().backward();
    await opt.step();
    close(await arr(m.a.weight), [1 - 0.1 * 6, 2 - 0.1 * 8], 1e-6, 1e-6, 'tied weight after one SGD step');
  });

  it('rejects parameters without requiresGrad, negative lr and invalid Nesterov settings', () => {
    expect(() => new k.optim.SGD([k.zeros([2, 3])])).toThrow(/SGD: parameter of shape \[2, 3\] does not require grad/);
    const p = k.zeros([1], { requiresGrad: true });
    expect(() => new k.optim.SGD([p], { lr: -1 })).toThrow(/SGD: lr must be a non-negative finite number, got -1/);
    expect(() => new k.optim.SGD([p], { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(() => new k.optim.SGD([p], { lr: 0.1, nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow(/Nesterov/);
  });
});

describe('Adam and AdamW', () => {
  it('Adam: two steps on a constant gradient (loss = Σ c·p): each step moves by lr·c/(|c| + ε)', async () => {
    const c = [0.5, -2, 1e-3, 4];
    const p0 = [1, 1, 1, 1];
    const lr = 0.01, eps = 1e-3; // a large ε makes its placement visible
    const p = k.tensor(p0, { requiresGrad: true });
    const opt = new k.optim.Adam([p], { lr, eps });
    for (let s = 1; s <= 2; s++) {
      opt.zeroGrad();
      p.mul(k.tensor(c)).sum().backward();
      await opt.step();
      // with bias correction m̂ = c and v̂ = c² exactly, at every step
      close(await arr(p), p0.map((v, i) => v - (s * lr * c[i]!) / (Math.abs(c[i]!) + eps)), 1e-7, 1e-6, `step ${s}`);
    }
    expect(opt.stepCount).toBe(2);
  });

  const cases: [string, AdamRef, number][] = [
    ['Adam, defaults (lr 1e-3)', { lr: 1e-3 }, 2],
    ['Adam, lr 0.1, betas (0.8, 0.99), three steps', { lr: 0.1, betas: [0.8, 0.99] }, 3],
    ['Adam, L2 weight decay added to the gradient', { lr: 0.05, weightDecay: 0.2 }, 3],
    ['Adam, eps 0.1', { lr: 0.05, eps: 0.1 }, 2],
    ['AdamW, decoupled decay p·(1 − lr·wd)', { lr: 0.05, weightDecay: 0.2, decoupled: true }, 3],
    ['AdamW, default weight decay 0.01', { lr: 0.1, weightDecay: 0.01, decoupled: true }, 2],
  ];
  it.each(cases)('%s matches the exact Adam formulas', async (name, o, steps) => {
    const p = k.tensor(P0, { requiresGrad: true });
    const opts: Partial<k.optim.AdamOptions> = { lr: o.lr };
    if (o.betas) opts.betas = o.betas;
    if (o.eps) opts.eps = o.eps;
    if (o.weightDecay && !name.includes('default')) opts.weightDecay = o.weightDecay;
    const opt = o.decoupled ? new k.optim.AdamW([p], opts) : new k.optim.Adam([p], opts);
    const got = await run(p, opt, steps);
    const want = adamRef(o, steps);
    got.forEach((g, s) => close(g, want[s]!, 1e-6, 1e-5, `step ${s + 1}`));
  });

  it('Adam and AdamW with the same weight decay differ (the decay is decoupled in AdamW only)', async () => {
    const a = k.tensor(P0, { requiresGrad: true });
    const b = k.tensor(P0, { requiresGrad: true });
    const ga = await run(a, new k.optim.Adam([a], { lr: 0.1, weightDecay: 0.5 }), 2);
    const gb = await run(b, new k.optim.AdamW([b], { lr: 0.1, weightDecay: 0.5 }), 2);
    close(ga[1]!, adamRef({ lr: 0.1, weightDecay: 0.5 }, 2)[1]!, 1e-6, 1e-5, 'adam');
    close(gb[1]!, adamRef({ lr: 0.1, weightDecay: 0.5, decoupled: true }, 2)[1]!, 1e-6, 1e-5, 'adamw');
    expect(ga[1]).not.toEqual(gb[1]);
  });

  it('a parameter that first gets a gradient at step 2 is bias-corrected from its own first update (per-parameter step, as torch)', async () => {
    // torch.optim.Adam keeps state['step'] per parameter: b's first update uses t = 1, so m̂ = g, v̂ = g²
    // and b moves by lr·g/(|g| + ε) = lr·sign(g).
    const a = k.tensor([1], { requiresGrad: true });
    const b = k.tensor([1], { requiresGrad: true });
    const opt = new k.optim.Adam([a, b], { lr: 0.1 });
    a.mul(2).sum().backward(); // b gets no gradient at step 1
    await opt.step();
    expect(await b.item()).toBe(1);
    opt.zeroGrad();
    a.mul(2).add(b.mul(3)).sum().backward();
    await opt.step();
    close([await a.item()], [1 - 0.2], 1e-6, 1e-6, 'a (two updates)');
    close([await b.item()], [1 - (0.1 * 3) / (3 + 1e-8)], 1e-6, 1e-6, 'b (its first update)');
  });

  // The design (src/nn/optim.ts header): "the scheduler fuses each parameter's update and its moment
  // updates into one kernel".
  // the first step also fills the moment buffers with zeros (Adam's two; SGD's first step sets its
  // momentum buffer to the gradient without reading it), so that it runs the update kernel of later steps
  const fused: [string, (p: k.Tensor[]) => k.optim.Optimizer<{ lr: number }>, number][] = [
    ['Adam', (p) => new k.optim.Adam(p, { lr: 0.01 }), 3],
    ['AdamW', (p) => new k.optim.AdamW(p, { lr: 0.01 }), 3],
    ['SGD with momentum', (p) => new k.optim.SGD(p, { lr: 0.01, momentum: 0.9 }), 1],
    ['SGD', (p) => new k.optim.SGD(p, { lr: 0.01 }), 1],
  ];
  it.each(fused)('%s: each step of one parameter dispatches exactly one update kernel', async (_n, make, first) => {
    const p = k.tensor(f32(values(1024, 3)), { requiresGrad: true });
    const c = k.tensor(f32(values(1024, 4)));
    const opt = make([p]);
    const perStep: number[] = [];
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      p.mul(c).sum().backward();
      await k.realize(p.grad!);
      const before = k.stats().kernels;
      await opt.step();
      perStep.push(k.stats().kernels - before);
    }
    expect(perStep).toEqual([first, 1, 1]);
  });
});

describe('clipGradNorm', () => {
  async function withGrads(): Promise<{ ps: k.Tensor[]; g: number[][] }> {
    const a = k.tensor([1, 2, 3], { requiresGrad: true });
    const b = k.tensor([[1, 1], [1, 1]], { requiresGrad: true });
    const ca = [3, -4, 12], cb = [[1, -2], [2, 4]];
    a.mul(k.tensor(ca)).sum().add(b.mul(k.tensor(cb)).sum()).backward();
    return { ps: [a, b], g: [ca, cb.flat()] };
  }

  it('returns √Σg² over all parameters and scales the gradients to maxNorm', async () => {
    const { ps, g } = await withGrads();
    const norm = Math.sqrt([...g[0]!, ...g[1]!].reduce((s, v) => s + v * v, 0)); // √(169 + 25) = √194
    const n = k.optim.clipGradNorm(ps, 2);
    close([await n.item()], [norm], 1e-6, 1e-6, 'norm');
    const coef = 2 / (norm + 1e-6);
    close(await arr(ps[0]!.grad!), g[0]!.map((v) => v * coef), 1e-6, 1e-6, 'a');
    close(await arr(ps[1]!.grad!), g[1]!.map((v) => v * coef), 1e-6, 1e-6, 'b');
    // the clipped global norm is maxNorm
    const after = [...(await arr(ps[0]!.grad!)), ...(await arr(ps[1]!.grad!))];
    expect(Math.sqrt(after.reduce((s, v) => s + v * v, 0))).toBeCloseTo(2, 5);
  });

  it('over many tensors of mixed sizes: the float64 norm, in a few reductions rather than one per tensor', async () => {
    // 40 small tensors (grouped several to a reduction) and two large ones (a reduction each)
    const sizes = [...Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 300)), 20000, 17001];
    const ps = sizes.map((n, i) => k.tensor(f32(values(n, 200 + i)), { requiresGrad: true }));
    const cs = sizes.map((n, i) => f32(values(n, 300 + i)));
    ps.map((p, i) => p.mul(k.tensor(cs[i]!)).sum()).reduce((x, y) => x.add(y)).backward();
    await k.realize(...ps.map((p) => p.grad!));
    const want = Math.sqrt(cs.reduce((sum, c) => sum + c.reduce((a, v) => a + v * v, 0), 0));
    const before = k.stats().kernels;
    const norm = k.optim.clipGradNorm(ps, 1);
    const got = await norm.item();
    const kernels = k.stats().kernels - before;
    close([got], [want], 1e-6, 1e-5, 'norm');
    expect(kernels).toBeGreaterThan(2);
    expect(kernels).toBeLessThanOrEqual(12);
    // and the gradients were scaled by it
    close(await arr(ps[3]!.grad!), Array.from(cs[3]!, (v) => v / (want + 1e-6)), 1e-6, 1e-5, 'a clipped gradient');
  });

  it('leaves gradients below maxNorm unchanged; inf norm; a module argument', async () => {
    const { ps, g } = await withGrads();
    close([await k.optim.clipGradNorm(ps, 100).item()], [Math.sqrt(194)], 1e-6, 1e-6);
    expect(await arr(ps[0]!.grad!)).toEqual(g[0]);
    expect(await arr(ps[1]!.grad!)).toEqual(g[1]);
    // inf norm: max |g| = 12 → scale 6/12
    close([await k.optim.clipGradNorm(ps, 6, 'inf').item()], [12], 1e-6);
    close(await arr(ps[0]!.grad!), g[0]!.map((v) => (v * 6) / (12 + 1e-6)), 1e-6, 1e-6);
    // a module: gradients of its parameters
    const lin = new k.nn.Linear(2, 1);
    k.nn.init.constant_(lin.weight, 0);
    lin.forward(k.tensor([[3, 4]])).sum().backward(); // dW = [3, 4], db = [1]
    close([await k.optim.clipGradNorm(lin, 1).item()], [Math.sqrt(26)], 1e-6);
    close(await arr(lin.weight.grad!), [3 / Math.sqrt(26), 4 / Math.sqrt(26)], 1e-6, 1e-5);
  });

  it('with no gradients the norm is 0', async () => {
    const p = k.tensor([1, 2], { requiresGrad: true });
    expect(await k.optim.clipGradNorm([p], 1).item()).toBe(0);
  });

  it('an empty parameter list gives a norm of 0 (torch.nn.utils.clip_grad_norm_([]) returns tensor(0.))', async () => {
    expect(await k.optim.clipGradNorm([], 1).item()).toBe(0);
  });
});

describe('learning-rate schedules', () => {
  it('warmup: lr·(s+1)/steps during warmup, then the following schedule', () => {
    const w = k.optim.warmup(0.1, 4);
    const want = [0.025, 0.05, 0.075, 0.1, 0.1, 0.1];
    want.forEach((v, s) => expect(w(s), `step ${s}`).toBeCloseTo(v, 15));
    const wc = k.optim.warmup(0.1, 4, k.optim.cosine(0.1, 10));
    expect(wc(3)).toBeCloseTo(0.1, 15);
    expect(wc(4)).toBeCloseTo(0.1, 15); // cosine(0)
    expect(wc(9)).toBeCloseTo(0.05, 15); // cosine(5) = halfway
    expect(wc(14)).toBe(0);
    expect(wc(100)).toBe(0);
  });

  it('cosine: minLr + ½(lr − minLr)(1 + cos(πs/T)), then minLr', () => {
    const c = k.optim.cosine(1, 100, 0.1);
    expect(c(0)).toBeCloseTo(1, 15);
    expect(c(25)).toBeCloseTo(0.1 + 0.45 * (1 + Math.SQRT1_2), 14);
    expect(c(50)).toBeCloseTo(0.55, 14);
    expect(c(75)).toBeCloseTo(0.1 + 0.45 * (1 - Math.SQRT1_2), 14);
    expect(c(100)).toBe(0.1);
    expect(c(150)).toBe(0.1);
  });

  it('stepDecay: lr·γ^⌊s/every⌋', () => {
    const d = k.optim.stepDecay(1, 10, 0.5);
    expect([0, 9, 10, 19, 20, 25, 30].map(d)).toEqual([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]);
    expect(k.optim.stepDecay(0.3, 2)(4)).toBeCloseTo(0.003, 15); // default γ = 0.1
  });

  it('LRScheduler sets the optimizer rate at each step, and the updates use it', async () => {
    // constant gradient c: after the steps, p = p0 − c·Σ lr_s
    const p = k.tensor([1, -1], { requiresGrad: true });
    const c = [2, -0.5];
    const opt = new k.optim.SGD([p], { lr: 123 });
    const sched = new k.optim.LRScheduler(opt, k.optim.stepDecay(0.1, 2, 0.5));
    expect(opt.lr).toBe(0.1); // schedule(0) applied at construction
    const rates: number[] = [];
    for (let s = 0; s < 5; s++) {
      rates.push(opt.lr);
      opt.zeroGrad();
      p.mul(k.tensor(c)).sum().backward();
      await opt.step();
      sched.step();
    }
    expect(rates).toEqual([0.1, 0.1, 0.05, 0.05, 0.025]);
    expect(sched.stepCount).toBe(5);
    expect(sched.lr).toBe(0.025);
    const total = 0.1 + 0.1 + 0.05 + 0.05 + 0.025;
    close(await arr(p), [1 - 2 * total, -1 + 0.5 * total], 1e-6, 1e-6);
    // restoring a step count re-applies the schedule
    sched.stepCount = 1;
    expect(opt.lr).toBe(0.1);
    sched.stepCount = 6;
    expect(opt.lr).toBe(0.0125);
  });
});

describe('EMA', () => {
  class Tiny extends k.nn.Module {
    w = new k.nn.Parameter(k.tensor([1, -2, 4]));
    inner = new k.nn.Linear(1, 1);
  }

  it('after n updates with the parameters held at q: dⁿ·p₀ + (1 − dⁿ)·q', async () => {
    const m = new Tiny();
    m.inner.weight.assign(k.tensor([[0.5]]));
    m.inner.bias!.assign(k.tensor([-0.5]));
    const d = 0.9;
    const ema = new k.optim.EMA(m, d);
    expect([...ema.shadow.keys()]).toEqual(['w', 'inner.weight', 'inner.bias']);
    m.w.assign(k.tensor([3, 3, 3]));
    m.inner.weight.assign(k.tensor([[2]]));
    m.inner.bias!.assign(k.tensor([0]));
    const n = 5;
    for (let i = 0; i < n; i++) await ema.update();
    const dn = d ** n;
    close(await arr(ema.shadow.get('w')!), [1, -2, 4].map((p) => dn * p + (1 - dn) * 3), 1e-6, 1e-5, 'w');
    close(await arr(ema.shadow.get('inner.weight')!), [dn * 0.5 + (1 - dn) * 2], 1e-6, 1e-5, 'inner.weight');
    close(await arr(ema.shadow.get('inner.bias')!), [dn * -0.5], 1e-6, 1e-5, 'inner.bias');
    // the model itself is untouched by update()
    expect(await arr(m.w)).toEqual([3, 3, 3]);
  });

  it('follows the recurrence s ← d·s + (1 − d)·p for changing parameters; copyTo and state dicts', async () => {
    const m = new Tiny();
    const d = 0.75;
    const ema = new k.optim.EMA(m, d);
    let s = [1, -2, 4];
    for (let i = 0; i < 4; i++) {
      const q = f32(values(3, 90 + i));
      m.w.assign(k.tensor(q));
      await ema.update();
      s = s.map((v, j) => d * v + (1 - d) * q[j]!);
    }
    close(await arr(ema.shadow.get('w')!), s, 1e-6, 1e-5);
    const other = new Tiny();
    ema.copyTo(other);
    close(await arr(other.w), s, 1e-6, 1e-5);
    expect(other.w.requiresGrad).toBe(true);
    // state dict round trip into a fresh EMA
    const ema2 = new k.optim.EMA(new Tiny(), d);
    ema2.loadStateDict(ema.stateDict());
    close(await arr(ema2.shadow.get('w')!), s, 1e-6, 1e-5);
    expect(() => ema2.loadStateDict({})).toThrow(/EMA.loadStateDict: missing 'w'/);
    expect(() => new k.optim.EMA(m, 1.5)).toThrow(/EMA: decay must be in \[0, 1\], got 1.5/);
  });

  it("staged alongside an optimizer step, the averages follow the new weights and share the update's kernels", async () => {
    // three parameters of three sizes: the average of each is computed in its parameter's update kernel
    class Three extends k.nn.Module {
      a = new k.nn.Parameter(k.tensor(f32(values(5, 1))));
      b = new k.nn.Parameter(k.tensor(f32(values(7, 2))));
      c = new k.nn.Parameter(k.tensor(f32(values(3, 3))));
    }
    const m = new Three();
    const ps = [m.a, m.b, m.c];
    const opt = new k.optim.AdamW(m, { lr: 0.05 });
    const d = 0.8;
    const ema = new k.optim.EMA(m, d);
    let s = await Promise.all(ps.map(arr));
    const perStep: number[] = [];
    for (let step = 0; step < 3; step++) {
      opt.zeroGrad();
      ps.map((p, i) => p.mul(p).mul(i + 1).sum()).reduce((x, y) => x.add(y)).backward();
      await k.realize(...ps.map((p) => p.grad!));
      const before = k.stats().kernels;
      await opt.step({ alongside: () => ema.stage() });
      perStep.push(k.stats().kernels - before);
      const now = await Promise.all(ps.map(arr));
      s = s.map((v, i) => v.map((x, j) => d * x + (1 - d) * now[i]![j]!));
      for (const [i, name] of ['a', 'b', 'c'].entries()) close(await arr(ema.shadow.get(name)!), s[i]!, 1e-6, 1e-5, `${name} at step ${step}`);
    }
    // one kernel per parameter (the first step also stores Adam's two zero moments of each)
    expect(perStep).toEqual([9, 3, 3]);
  });
});

describe('optimizer state dicts', () => {
  it('Adam: restoring stateDict() into a fresh optimizer gives the identical next step', async () => {
    const o: AdamRef = { lr: 0.05, betas: [0.8, 0.95] };
    const a = k.tensor(P0, { requiresGrad: true });
    const optA = new k.optim.Adam([a], { lr: o.lr, betas: o.betas });
    await run(a, optA, 2);
    const sd = optA.stateDict();
    expect(sd.step).toBe(2);
    expect(Object.keys(sd.tensors).sort()).toEqual(['0.expAvg', '0.expAvgSq']);
    expect(sd.groups[0]!.lr).toBe(0.05);
    // a fresh parameter with the same values and a fresh optimizer with other hyper-parameters
    const b = k.tensor(await arr(a), { requiresGrad: true });
    const optB = new k.optim.Adam([b], { lr: 1, betas: [0.5, 0.5] });
    optB.loadStateDict(sd);
    expect(optB.stepCount).toBe(2);
    expect(optB.lr).toBe(0.05);
    const [nextA] = await run(a, optA, 1);
    const [nextB] = await run(b, optB, 1);
    expect(nextB).toEqual(nextA);
    close(nextB!, adamRef(o, 3)[2]!, 1e-6, 1e-5, 'step 3');
    // one more step of B alone still follows the reference (its state is its own)
    const [again] = await run(b, optB, 1);
    close(again!, adamRef(o, 4)[3]!, 1e-6, 1e-5, 'step 4');
  });

  it('SGD momentum buffer survives the round trip', async () => {
    const o: SgdRef = { lr: 0.05, momentum: 0.9 };
    const a = k.tensor(P0, { requiresGrad: true });
    const optA = new k.optim.SGD([a], o);
    await run(a, optA, 2);
    const b = k.tensor(await arr(a), { requiresGrad: true });
    const optB = new k.optim.SGD([b], { lr: 0.05, momentum: 0.9 });
    optB.loadStateDict(optA.stateDict());
    const [next] = await run(b, optB, 1);
    close(next!, sgdRef(o, 3)[2]!, 1e-6, 1e-5);
  });

  it('rejects a state of another shape or group count', () => {
    const a = k.zeros([3], { requiresGrad: true });
    const opt = new k.optim.Adam([a]);
    expect(() => opt.loadStateDict({ step: 1, groups: [], tensors: {} })).toThrow(/loadStateDict: 0 parameter groups in the state, 1 in the optimizer/);
    expect(() => opt.loadStateDict({ step: 1, groups: [{ lr: 1, betas: [0.9, 0.9], eps: 1e-8, weightDecay: 0 }], tensors: { '0.expAvg': k.zeros([4]) } }))
      .toThrow(/loadStateDict: state '0.expAvg' has shape \[4\], parameter 0 has \[3\]/);
  });
});

describe('convergence', () => {
  it('Adam fits a linear regression y = X·w* to loss < 1e-4 and recovers w*', async () => {
    k.manualSeed(2024);
    const N = 64, F = 8;
    const X = k.randn([N, F]);
    const wStar = [0.5, -1, 2, 0.1, -0.7, 1.3, 0, 0.9];
    const xs = await X.data();
    const ys = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      let s = 0;
      for (let j = 0; j < F; j++) s += xs[i * F + j]! * wStar[j]!;
      ys[i] = s;
    }
    const y = k.tensor(ys, { shape: [N, 1] });
    const w = k.zeros([F, 1], { requiresGrad: true });
    const opt = new k.optim.Adam([w], { lr: 0.05 });
    let loss = Infinity;
    for (let it = 0; it < 400 && !(loss < 1e-4); it++) {
      k.scope(() => {
        opt.zeroGrad();
        k.F.mseLoss(X.matmul(w), y).backward();
      });
      await opt.step();
      if (it % 25 === 24) {
        // the loss evaluated in float64 from the weights read back
        const wv = await w.data();
        let s = 0;
        for (let i = 0; i < N; i++) {
          let pred = 0;
          for (let j = 0; j < F; j++) pred += xs[i * F + j]! * wv[j]!;
          s += (pred - ys[i]!) ** 2;
        }
        loss = s / N;
      }
    }
    expect(loss).toBeLessThan(1e-4);
    close(await arr(w), wStar, 1e-2, 0, 'w*');
  });
});
