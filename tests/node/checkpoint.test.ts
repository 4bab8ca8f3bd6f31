/**
 * Gradient checkpointing (k.checkpoint, the models' gradientCheckpointing) and the peak-memory counter:
 * gradients equal those of the plain functions (random draws repeat exactly in the recomputation), eager and
 * compiled, and a checkpointed compiled step needs measurably fewer live bytes at its widest point.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS } from '../../src/train/index.ts';
import { planArena } from '../../src/tensor/arena.ts';

beforeAll(async () => {
  await k.init();
});

/** Largest |a − b| over the largest |b|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, s = 0;
  b.forEach((v, i) => {
    d = Math.max(d, Math.abs(a[i]! - v));
    s = Math.max(s, Math.abs(v));
  });
  return d / s;
}

describe('k.checkpoint', () => {
  k.manualSeed(1);
  const l1 = new k.nn.Linear(16, 32), l2 = new k.nn.Linear(32, 16);
  /** A residual block with dropout: its recomputation must draw the same mask. */
  const block = (h: k.Tensor, p: number) => k.F.dropout(l2.forward(l1.forward(h).gelu()), p).add(h);

  async function run(checkpointed: boolean, p = 0.3): Promise<Float32Array[]> {
    k.manualSeed(5);
    const x = k.randn([8, 16]);
    x.requiresGrad = true;
    let h = x;
    for (let i = 0; i < 3; i++) h = checkpointed ? k.checkpoint(block, h, p) : block(h, p);
    const loss = h.mul(h).sum();
    loss.backward();
    const out = await Promise.all([loss, x.grad!, l1.weight.grad!, l1.bias!.grad!, l2.weight.grad!].map((t) => t.data() as Promise<Float32Array>));
    l1.zeroGrad();
    l2.zeroGrad();
    return out;
  }

  it('gives the gradients of the plain function to its inputs and the parameters it reads, dropout draws repeated', async () => {
    const plain = await run(false), ck = await run(true);
    // dropout acts (the loss without it differs), so a recomputation with other draws would differ too
    expect((await run(false, 0))[0]![0]).not.toBeCloseTo(plain[0]![0]!, 2);
    for (let i = 0; i < plain.length; i++) {
      expect(plain[i]!.some((v) => v !== 0)).toBe(true);
      expect(relDiff(ck[i]!, plain[i]!), `result ${i}`).toBeLessThan(1e-6);
    }
  });

  it('returns several outputs, passes non-tensor arguments through, and needs no gradient under noGrad', async () => {
    const w = k.randn([4, 4], { requiresGrad: true });
    const x = k.randn([3, 4], { requiresGrad: true });
    const [a, b] = k.checkpoint((t: k.Tensor, s: number) => [t.matmul(w).mul(s), t.exp()], x, 2);
    a!.sum().add(b!.mul(3).sum()).backward();
    const gx = (await x.grad!.data()) as Float32Array, gw = (await w.grad!.data()) as Float32Array;
    // d/dx Σ(2·xW) + 3Σe^x = 2·Σ_j W[i, j] (row sums) + 3e^x; d/dW = 2·Σ_rows x
    const X = (await x.data()) as Float32Array, W = (await w.data()) as Float32Array;
    gx.forEach((v, n) => expect(v).toBeCloseTo(2 * [0, 1, 2, 3].reduce((s, j) => s + W[(n % 4) * 4 + j]!, 0) + 3 * Math.exp(X[n]!), 4));
    gw.forEach((v, n) => expect(v).toBeCloseTo(2 * [0, 1, 2].reduce((s, r) => s + X[r * 4 + Math.floor(n / 4)]!, 0), 4));
    const y = k.noGrad(() => k.checkpoint((t: k.Tensor) => t.matmul(w), x));
    expect(y.requiresGrad).toBe(false);
  });

  it('refuses what it cannot differentiate, with a clear message', () => {
    const w = k.randn([2, 2], { requiresGrad: true });
    const computed = w.mul(2);
    expect(() => k.checkpoint((t: k.Tensor) => t.add(computed), k.ones([2, 2]))).toThrow(/checkpoint: the function reads a tensor of shape \[2, 2\] that requires grad and was computed outside it; pass it as one of the inputs/);
    expect(() => k.checkpoint((() => Promise.resolve(w)) as unknown as () => k.Tensor)).toThrow(/checkpoint: the function must return a tensor or a non-empty array of tensors, got a promise/);
    expect(() => k.checkpoint(() => w.gt(0))).toThrow(/checkpoint: the function's outputs must be float tensors, got bool/);
    const y = k.checkpoint((t: k.Tensor) => t.mul(w).sum(), k.ones([2, 2]));
    expect(() => k.gradients(y, [w], { createGraph: true })).toThrow(/checkpoint: second-order gradients \(createGraph\) through a checkpoint are not supported/);
  });
});

describe('gradient checkpointing in the models', () => {
  /**
   * Compiled trainer steps of a small UNet: the losses, the weights after them, and the peak of the
   * live bytes over those steps beyond what was live before the model was made.
   */
  async function train(checkpointed: boolean): Promise<{ losses: number[]; weights: Float32Array; peak: number }> {
    await k.synchronize();
    const base = k.memory().liveBytes;
    k.manualSeed(7);
    const net = new k.nn.UNet({ widths: [16, 32], attention: [1], midAttention: true, heads: 2, patch: 2 });
    net.gradientCheckpointing = checkpointed;
    const tr = new DiffusionTrainer(net, { ...TRAIN_DEFAULTS, steps: 100, batchSize: 8 });
    const x = k.rand([8, 1, 28, 28]).mul(2).sub(1).keep(), y = k.randint(0, 10, [8]).keep();
    for (let i = 0; i < 4; i++) await tr.trainStep(x, y);
    await tr.flush();
    await k.synchronize();
    k.resetPeakMemory();
    const before = k.memory().peakBytes;
    for (let i = 0; i < 2; i++) await tr.trainStep(x, y);
    await tr.flush();
    await k.synchronize();
    const peak = k.memory().peakBytes - base;
    expect(peak + base).toBeGreaterThan(before);
    const weights = (await net.conv_in.weight.data()) as Float32Array;
    const losses = tr.history.map((r) => r as number);
    x.dispose();
    y.dispose();
    return { losses, weights, peak };
  }

  it('a UNet trained with checkpointed blocks (compiled steps) takes the same steps, with a lower memory peak', async () => {
    const plain = await train(false);
    const ck = await train(true);
    expect(ck.losses.length).toBe(6);
    ck.losses.forEach((l, i) => expect(Math.abs(l - plain.losses[i]!)).toBeLessThanOrEqual(1e-6 * Math.abs(plain.losses[i]!)));
    expect(relDiff(ck.weights, plain.weights)).toBeLessThan(1e-5);
    // the live bytes at the widest point of the step (weights, optimizer state and the step's buffers)
    expect(ck.peak).toBeLessThan(0.9 * plain.peak);
  }, 240_000);
});

describe('k.memory().peakBytes', () => {
  it('is the high-water mark of live bytes, measured again from the live bytes by resetPeakMemory()', async () => {
    await k.synchronize();
    k.resetPeakMemory();
    const start = k.memory();
    expect(start.peakBytes).toBe(start.liveBytes);
    const big = k.zeros([1 << 20]).add(1);
    await k.realize(big);
    const during = k.memory();
    expect(during.peakBytes).toBeGreaterThanOrEqual(start.liveBytes + 4 * (1 << 20));
    big.dispose();
    await k.synchronize();
    const after = k.memory();
    expect(after.liveBytes).toBeLessThan(during.peakBytes);
    expect(after.peakBytes).toBe(during.peakBytes);
    k.resetPeakMemory();
    expect(k.memory().peakBytes).toBe(k.memory().liveBytes);
  });
});

describe('memory planning of a compiled step (planArena)', () => {
  it('a chain reuses every other buffer; temporaries of one buffer never overlap in time, and it holds the largest', () => {
    // slot i is written by kernel i and read by kernel i + 1
    const chain = Array.from({ length: 6 }, (_, j) => ({ inputs: j ? [j - 1] : [], outs: [j] }));
    const { groupOf, sizes } = planArena(chain, Array.from({ length: 6 }, (_, slot) => ({ slot, bytes: 64 })));
    expect(sizes.length).toBe(2);
    expect([0, 1, 2, 3, 4, 5].map((s) => groupOf.get(s))).toEqual([0, 1, 0, 1, 0, 1]);
    // a kernel's scratch buffer is live during that kernel only: never the buffer of what it reads or writes
    const withScratch = planArena(chain.map((l, j) => (j === 2 ? { ...l, scratchBytes: 64 } : l)), Array.from({ length: 6 }, (_, slot) => ({ slot, bytes: 64 })));
    expect(withScratch.sizes.length).toBe(3);
    expect([withScratch.groupOf.get(1), withScratch.groupOf.get(2)]).not.toContain(withScratch.scratchOf.get(2));
    // random programs: check the invariants against the lifetimes computed here
    let seed = 3;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let trial = 0; trial < 50; trial++) {
      const n = 5 + rnd(40);
      const launches = Array.from({ length: n }, (_, j) => ({ inputs: Array.from({ length: j ? 1 + rnd(3) : 0 }, () => rnd(j)), outs: [j] }));
      const temps = Array.from({ length: n }, (_, slot) => ({ slot, bytes: 16 * (1 + rnd(8)) }));
      const { groupOf: g, sizes: sz } = planArena(launches, temps);
      const life = temps.map(({ slot }) => {
        const reads = launches.flatMap((l, j) => (l.inputs.includes(slot) ? [j] : []));
        return [slot, Math.max(slot, ...reads)];
      });
      for (const a of temps) {
        expect(sz[g.get(a.slot)!]!).toBeGreaterThanOrEqual(a.bytes);
        for (const b of temps) {
          if (a.slot >= b.slot || g.get(a.slot) !== g.get(b.slot)) continue;
          const [a0, a1] = life[a.slot]!, [b0, b1] = life[b.slot]!;
          expect(a1 < b0 || b1 < a0, `slots ${a.slot} and ${b.slot} share a buffer while both live`).toBe(true);
        }
      }
      // never more than one buffer per temporary, and never less than the widest point needs
      const widest = Math.max(...launches.map((_, j) => temps.filter(({ slot }) => life[slot]![0]! <= j && j <= life[slot]![1]!).reduce((s, t) => s + t.bytes, 0)));
      expect(sz.reduce((s, b) => s + b, 0)).toBeGreaterThanOrEqual(widest);
      expect(sz.length).toBeLessThanOrEqual(n);
    }
  });
});
