/**
 * The training stack in Chromium: autograd + AdamW fit a tiny regression, and safetensors round-trip
 * through bytes and a Blob (the browser's save/load path, no file system).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';

beforeAll(async () => {
  await k.init();
});

describe('training in the browser', () => {
  it('reports a browser platform', () => {
    expect(k.deviceInfo().platform).toBe('browser');
  });

  it('AdamW fits y = 3x − 1 (closed-form answer)', async () => {
    k.manualSeed(0);
    const lin = new k.nn.Linear(1, 1);
    const opt = new k.optim.AdamW(lin, { lr: 0.1, weightDecay: 0 });
    const xs = Float32Array.from({ length: 32 }, (_, i) => i / 16 - 1);
    const x = k.tensor(xs, { shape: [32, 1] });
    const y = k.tensor(xs.map((v) => 3 * v - 1), { shape: [32, 1] });
    let loss = Infinity;
    for (let i = 0; i < 300; i++) {
      const l = opt.minimize(() => k.F.mseLoss(lin.forward(x), y));
      if (i % 50 === 49) loss = await l.item();
      l.dispose();
    }
    expect(loss).toBeLessThan(1e-4);
    expect(await lin.weight.item()).toBeCloseTo(3, 2);
    expect(await lin.bias!.item()).toBeCloseTo(-1, 2);
  });

  it('saves a state dict to bytes and loads it back from a Blob', async () => {
    const sd = { 'a.weight': k.tensor([[1.5, -2], [0.25, 8]]), 'a.steps': k.tensor([7, -3], { dtype: 'i32' }), mask: k.tensor([true, false, true]) };
    const bytes = await k.save(sd, undefined, { metadata: { format: 'pt' } });
    const { tensors, metadata } = await k.loadWithMetadata(new Blob([bytes]));
    expect(metadata).toEqual({ format: 'pt' });
    expect(await tensors['a.weight']!.tolist()).toEqual([[1.5, -2], [0.25, 8]]);
    expect(tensors['a.steps']!.dtype).toBe('i32');
    expect(await tensors['a.steps']!.tolist()).toEqual([7, -3]);
    expect(await tensors.mask!.tolist()).toEqual([true, false, true]);
    await expect(k.load(bytes.slice(0, bytes.length - 3))).rejects.toThrow(/truncated/);
  });
});
