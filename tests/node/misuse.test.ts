/**
 * Misuse of the API fails at the call site with a message naming the op and the offending value:
 * out-of-range indices (checked on the host when the values are there, else by a device-side check
 * reported at the next readback), values an integer dtype cannot hold, invalid convolution and pooling
 * sizes, optimizer hyper-parameters, disposed tensors; and the mean of no elements is NaN.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { CHECK_BATCH, pendingChecks } from '../../src/tensor/checks.ts';

beforeAll(async () => {
  await k.init();
});

const i32 = (xs: number[], shape?: number[]) => k.tensor(Int32Array.from(xs), shape ? { shape } : {});
/** An i32 tensor computed on the device (its values are not known on the host). */
const onDevice = (xs: number[]) => k.tensor(xs).int();

/** The message of what `fn` throws or rejects with (sync or async), or '' when it succeeds. */
async function message(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('out-of-range indices are rejected on the host, at the call', () => {
  const x3 = () => k.tensor([10, 20, 30]);
  it.each([
    ['Embedding id above', () => new k.nn.Embedding(10, 4).forward(i32([1, 12])), 'embedding: id 12 is out of range for 10 embeddings (valid: 0 to 9)'],
    ['Embedding id −1', () => new k.nn.Embedding(10, 4).forward(i32([-1, 3], [1, 2])), 'embedding: id -1 is out of range for 10 embeddings (valid: 0 to 9)'],
    ['gather above', () => x3().gather(0, i32([0, 7])), 'gather: index 7 is out of range for axis 0 of size 3 (valid: -3 to 2)'],
    ['gather below', () => x3().gather(0, i32([-4])), 'gather: index -4 is out of range for axis 0 of size 3 (valid: -3 to 2)'],
    ['gather u32', () => x3().gather(0, k.tensor(Uint32Array.from([4294967295]))), 'gather: index 4294967295 is out of range for axis 0 of size 3 (valid: -3 to 2)'],
    ['gather axis 1', () => k.zeros([2, 4]).gather(1, i32([0, 4], [1, 2])), 'gather: index 4 is out of range for axis 1 of size 4 (valid: -4 to 3)'],
    ['indexSelect', () => k.zeros([5, 2]).indexSelect(0, i32([4, 5])), 'indexSelect: index 5 is out of range for axis 0 of size 5 (valid: -5 to 4)'],
    ['scatterAdd', () => k.zeros([3]).scatterAdd(0, i32([3]), k.ones([1])), 'scatterAdd: index 3 is out of range for axis 0 of size 3 (valid: -3 to 2)'],
    ['oneHot above', () => i32([5]).oneHot(3), 'oneHot: class 5 is out of range for 3 classes (valid: 0 to 2)'],
    ['oneHot −1', () => i32([-1]).oneHot(3), 'oneHot: class -1 is out of range for 3 classes (valid: 0 to 2)'],
    ['crossEntropy above', () => k.F.crossEntropy(k.zeros([2, 3]), i32([0, 5])), 'crossEntropy: target 5 is out of range for 3 classes (valid: 0 to 2)'],
    ['crossEntropy −3', () => k.F.crossEntropy(k.zeros([1, 3]), i32([-3])), 'crossEntropy: target -3 is out of range for 3 classes (valid: 0 to 2)'],
    ['crossEntropy smoothing', () => k.F.crossEntropy(k.zeros([1, 3]), i32([3]), { labelSmoothing: 0.1 }), 'crossEntropy: target 3 is out of range for 3 classes (valid: 0 to 2)'],
    ['crossEntropy ignoreIndex', () => k.F.crossEntropy(k.zeros([2, 3]), i32([-100, -1]), { ignoreIndex: -100 }), 'crossEntropy: target -1 is out of range for 3 classes (valid: 0 to 2, or the ignoreIndex -100)'],
    ['nllLoss', () => k.F.nllLoss(k.zeros([2, 3]), i32([2, 3])), 'nllLoss: target 3 is out of range for 3 classes (valid: 0 to 2)'],
    ['nllLoss 3-D', () => k.F.nllLoss(k.zeros([1, 3, 2]), i32([0, 9], [1, 2])), 'nllLoss: target 9 is out of range for 3 classes (valid: 0 to 2)'],
  ])('%s', async (_name, fn, msg) => {
    expect(await message(() => k.scope(fn))).toBe(msg);
  });

  it('valid indices, negative indices where they count from the end, and ignored targets still work', async () => {
    expect(Array.from(await k.tensor([10, 20, 30]).gather(0, i32([2, -1, -3, 0])).data())).toEqual([30, 30, 10, 10]);
    expect(Array.from(await k.zeros([3]).scatterAdd(0, i32([-1, 2, 0]), k.ones([3])).data())).toEqual([1, 0, 2]);
    const logits = k.tensor([[1, 2, 3], [0, 0, 5]]);
    const withIgnored = await k.F.crossEntropy(logits, i32([2, -100]), { ignoreIndex: -100 }).item();
    const firstOnly = await k.F.crossEntropy(logits.slice(0, 0, 1), i32([2])).item();
    expect(withIgnored).toBeCloseTo(firstOnly, 6);
  });

  it('indices known on the host add no device work; computed ones add one pending check, reused per tensor', async () => {
    await k.tensor([0]).data(); // settles whatever earlier tests left pending
    const x = k.tensor([10, 20, 30]);
    const host = i32([2, 0]);
    const a = x.gather(0, host), b = x.indexSelect(0, host), c = host.reshape([2, 1]).oneHot(3);
    expect(pendingChecks('webgpu')).toBe(0);
    const dev = onDevice([2, 0]);
    const d = x.gather(0, dev), e = x.gather(0, dev); // the same tensor against the same range: checked once
    expect(pendingChecks('webgpu')).toBe(1);
    expect(Array.from(await d.data())).toEqual([30, 10]);
    expect(pendingChecks('webgpu')).toBe(0);
    for (const t of [a, b, c, e]) t.dispose();
  });

  it('the host copy follows reshapes but not other ops, and is dropped with the tensor', async () => {
    const ids = i32([0, 1, 2, 3], [2, 2]);
    expect(await message(() => ids.reshape([4]).oneHot(3))).toBe('oneHot: class 3 is out of range for 3 classes (valid: 0 to 2)');
    // a slice leaves out the bad value: not known on the host, so checked on the device and accepted
    expect(Array.from(await ids.reshape([4]).slice(0, 0, 3).oneHot(3).sum(0).data())).toEqual([1, 1, 1]);
  });
});

describe('out-of-range indices computed on the device are reported at the next readback', () => {
  it('the op returns; the readback of its result rejects with the op, the value and the range', async () => {
    const emb = new k.nn.Embedding(10, 4);
    const out = emb.forward(onDevice([1, 12, 3]));
    expect(out.shape).toEqual([3, 4]);
    expect(await message(() => out.data())).toBe('embedding: id 12 is out of range for 10 embeddings (valid: 0 to 9); found by the device-side index check, reported at this readback');
    // the failure is reported once; the engine goes on
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
  });

  it('reports the smallest index when one is below the range', async () => {
    const msg = await message(() => k.tensor([1, 2, 3]).gather(0, onDevice([-5, 1, 9])).data());
    expect(msg).toBe('gather: index -5 is out of range for axis 0 of size 3 (valid: -3 to 2); found by the device-side index check, reported at this readback');
  });

  it.each([
    ['oneHot', () => onDevice([0, 3]).oneHot(3), 'oneHot: class 3 is out of range for 3 classes (valid: 0 to 2)'],
    ['indexSelect', () => k.zeros([2, 2]).indexSelect(1, onDevice([2])), 'indexSelect: index 2 is out of range for axis 1 of size 2 (valid: -2 to 1)'],
    ['scatterAdd', () => k.zeros([2]).scatterAdd(0, onDevice([0, -3]), k.ones([2])), 'scatterAdd: index -3 is out of range for axis 0 of size 2 (valid: -2 to 1)'],
    ['crossEntropy', () => k.F.crossEntropy(k.zeros([2, 3]), onDevice([-100, 4]), { ignoreIndex: -100 }), 'crossEntropy: target 4 is out of range for 3 classes (valid: 0 to 2, or the ignoreIndex -100)'],
  ])('%s', async (_name, fn, msg) => {
    const t = k.scope(fn);
    expect(await message(() => t.data())).toBe(`${msg}; found by the device-side index check, reported at this readback`);
  });

  it('valid device indices (and ignored targets) pass, and the check adds no submit and no readback', async () => {
    const logits = k.tensor([[1, 2, 3], [0, 0, 5]]);
    const target = onDevice([2, -100]);
    await k.realize(logits, target);
    const before = k.stats();
    const loss = await k.F.crossEntropy(logits, target, { ignoreIndex: -100 }).item();
    const after = k.stats();
    expect(after.submits - before.submits).toBe(1);
    expect(after.readbacks - before.readbacks).toBe(1);
    const want = await k.F.crossEntropy(logits.slice(0, 0, 1), i32([2])).item();
    expect(loss).toBeCloseTo(want, 6);
  });

  it('a check computed by a realization without readback is reported by the next readback of anything', async () => {
    const bad = k.tensor([5, 6, 7]).gather(0, onDevice([3]));
    await k.realize(bad);
    expect(await message(() => k.tensor([1]).data())).toMatch(/^gather: index 3 is out of range for axis 0 of size 3 \(valid: -3 to 2\); found by the device-side index check/);
    expect(await message(() => k.tensor([1]).data())).toBe('');
  });

  it('a loop that never reads back keeps few checks pending, and its failure is reported at the first readback', async () => {
    const emb = new k.nn.Embedding(4, 2);
    const before = k.memory().liveBuffers;
    for (let i = 0; i < 200; i++) {
      await k.scope(async () => {
        await k.realize(emb.forward(onDevice([i === 10 ? 9 : 1])));
      });
      if (i % 10 === 9) await k.synchronize(); // a loop that waits for the GPU now and then, but never reads
    }
    // computed checks hold a small buffer each until read: once CHECK_BATCH are pending they are read in the
    // background, so at most one batch is held (plus the few buffers of the model and the pool's timing);
    // without the batching all 200 would be
    const growth = k.memory().liveBuffers - before;
    const msg = await message(() => k.tensor([1]).data());
    expect(growth).toBeLessThanOrEqual(CHECK_BATCH + 16);
    expect(msg).toMatch(/^embedding: id 9 is out of range for 4 embeddings \(valid: 0 to 3\); found by/);
  });

  it('on the cpu reference device the check runs when the values are computed', async () => {
    await k.withDevice('cpu', async () => {
      const t = k.tensor([1, 2, 3]).gather(0, k.tensor([0, 3]).int());
      expect(await message(() => t.data())).toMatch(/^gather: index 3 is out of range for axis 0 of size 3 \(valid: -3 to 2\); found by/);
      expect(await message(() => k.tensor([1, 2, 3]).gather(0, k.tensor([0, -4]).int().contiguous()).data())).toMatch(/^gather: index -4 /);
    });
  });
});

describe('other misuse is an error naming the op', () => {
  it.each([
    ['i32 overflow', () => k.tensor([1, 3e9], { dtype: 'i32' }), 'tensor: value 3000000000 cannot be held by i32 without overflow (range -2147483648 to 2147483647)'],
    ['u32 negative', () => k.tensor([-1], { dtype: 'u32' }), 'tensor: value -1 cannot be held by u32 without overflow (range 0 to 4294967295)'],
    ['i32 NaN', () => k.tensor([NaN], { dtype: 'i32' }), 'tensor: value NaN cannot be held by i32 without overflow (range -2147483648 to 2147483647)'],
    ['full i32 overflow', () => k.full([2], 2 ** 31, { dtype: 'i32' }), 'full: value 2147483648 cannot be held by i32 without overflow (range -2147483648 to 2147483647)'],
    ['conv2d padding −1', () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { padding: -1 }), 'conv2d: padding must be a non-negative integer or a pair of them, got -1'],
    ['conv2d stride 0', () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { stride: 0 }), 'conv2d: stride must be a positive integer or a pair of them, got 0'],
    ['conv2d dilation [1, 0]', () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { dilation: [1, 0] }), 'conv2d: dilation must be a positive integer or a pair of them, got [1,0]'],
    ['conv1d stride 0', () => k.nn.conv1d(k.zeros([1, 1, 4]), k.zeros([1, 1, 3]), null, { stride: 0 }), 'conv1d: stride must be a positive integer, got 0'],
    ['convTranspose2d padding −1', () => k.nn.convTranspose2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { padding: -1 }), 'convTranspose2d: padding must be a non-negative integer or a pair of them, got -1'],
    ['maxPool2d stride 0', () => k.nn.maxPool2d(k.zeros([1, 1, 4, 4]), 2, { stride: 0 }), 'maxPool2d: stride must be a positive integer or a pair of them, got 0'],
    ['avgPool2d padding', () => k.nn.avgPool2d(k.zeros([1, 1, 4, 4]), 2, { padding: 2 }), 'avgPool2d: padding 2 must be at most half the kernel size 2'],
    ['eye(−2)', () => k.eye(-2), 'eye: n must be a non-negative integer, got -2'],
    ['chunk(0)', () => k.zeros([4]).chunk(0), 'chunk: chunks must be a positive integer, got 0'],
    ['split(0)', () => k.zeros([4]).split(0), 'split: split size must be a positive integer, got 0'],
  ])('%s', async (_name, fn, msg) => {
    expect(await message(() => k.scope(fn as () => unknown))).toBe(msg);
  });

  it('values that fit, fractions (truncated, as in PyTorch) and typed arrays are accepted', async () => {
    expect(Array.from(await k.tensor([-2147483648, 2147483647, 2.7, -2.7], { dtype: 'i32' }).data())).toEqual([-2147483648, 2147483647, 2, -2]);
    expect(Array.from(await k.tensor([4294967295], { dtype: 'u32' }).data())).toEqual([4294967295]);
  });

  it('the mean of no elements is NaN (PyTorch), the sum 0', async () => {
    expect(await k.zeros([0]).mean().item()).toBeNaN();
    expect(Array.from(await k.zeros([2, 0]).mean(1).data())).toEqual([NaN, NaN]);
    expect(await k.zeros([0]).sum().item()).toBe(0);
    expect(k.zeros([0, 3]).mean(0).shape).toEqual([3]);
  });
});

describe('optimizer hyper-parameters follow PyTorch’s rules', () => {
  const p = () => [k.zeros([2], { requiresGrad: true })];
  it.each([
    ['SGD momentum −1', () => new k.optim.SGD(p(), { lr: 0.1, momentum: -1 }), 'SGD: momentum must be a non-negative finite number, got -1'],
    ['SGD lr −1', () => new k.optim.SGD(p(), { lr: -1 }), 'SGD: lr must be a non-negative finite number, got -1'],
    ['SGD lr NaN', () => new k.optim.SGD(p(), { lr: NaN }), 'SGD: lr must be a non-negative finite number, got NaN'],
    ['SGD weightDecay', () => new k.optim.SGD(p(), { weightDecay: -0.1 }), 'SGD: weightDecay must be a non-negative finite number, got -0.1'],
    ['SGD nesterov', () => new k.optim.SGD(p(), { nesterov: true }), 'SGD: Nesterov momentum needs momentum > 0 and dampening 0'],
    ['Adam beta1 = 1', () => new k.optim.Adam(p(), { betas: [1, 0.999] }), 'Adam: betas[0] must be in [0, 1), got 1'],
    ['Adam beta2 < 0', () => new k.optim.Adam(p(), { betas: [0.9, -0.5] }), 'Adam: betas[1] must be in [0, 1), got -0.5'],
    ['AdamW eps', () => new k.optim.AdamW(p(), { eps: -1e-8 }), 'AdamW: eps must be a non-negative finite number, got -1e-8'],
    ['AdamW lr Infinity', () => new k.optim.AdamW(p(), { lr: Infinity }), 'AdamW: lr must be a non-negative finite number, got Infinity'],
    ['AdamW([])', () => new k.optim.AdamW([]), 'AdamW: optimizer got an empty parameter list'],
    ['SGD(empty module)', () => new k.optim.SGD(new k.nn.ReLU()), 'SGD: optimizer got an empty parameter list'],
    ['group option', () => new k.optim.Adam([{ params: p(), options: { lr: -0.5 } }]), 'Adam: lr must be a non-negative finite number, got -0.5'],
    ['lr setter', () => { new k.optim.SGD(p()).lr = -1; }, 'SGD: lr must be a non-negative finite number, got -1'],
    ['clipGradNorm', () => k.optim.clipGradNorm(p(), -1), 'clipGradNorm: maxNorm must be a non-negative finite number, got -1'],
  ])('%s', async (_name, fn, msg) => {
    expect(await message(fn)).toBe(msg);
  });

  it('boundary values PyTorch accepts are accepted (lr 0, momentum 0, beta 0, eps 0)', () => {
    expect(() => new k.optim.SGD(p(), { lr: 0, momentum: 0 })).not.toThrow();
    expect(() => new k.optim.Adam(p(), { lr: 0, betas: [0, 0], eps: 0 })).not.toThrow();
  });
});

describe('a disposed tensor is an error at the call site naming the op', () => {
  const dead = () => {
    const t = k.tensor([[1, 2], [3, 4]]);
    t.dispose();
    return t;
  };
  const live = () => k.tensor([[1, 0], [0, 1]]);
  it.each([
    ['add (argument)', () => live().add(dead()), 'add: the tensor was disposed'],
    ['add (receiver)', () => dead().add(1), 'add: the tensor was disposed'],
    ['matmul (argument)', () => live().matmul(dead()), 'matmul: the tensor was disposed'],
    ['matmul (receiver)', () => dead().matmul(live()), 'matmul: the tensor was disposed'],
    ['sum', () => dead().sum(), 'sum: the tensor was disposed'],
    ['reshape', () => dead().reshape([4]), 'reshape: the tensor was disposed'],
    ['T', () => dead().T, 'permute: the tensor was disposed'],
    ['item', () => dead().item(), 'item: the tensor was disposed'],
    ['data', () => dead().data(), 'data: the tensor was disposed'],
    ['gather index', () => live().gather(0, (() => { const i = i32([0, 1], [1, 2]); i.dispose(); return i; })()), 'gather: the tensor was disposed'],
    ['where', () => k.where(live().gt(0), dead(), 0), 'where: the tensor was disposed'],
    ['cat', () => k.cat([live(), dead()]), 'cat: the tensor was disposed'],
    ['stack', () => k.stack([dead(), live()]), 'stack: the tensor was disposed'],
    ['assign', () => live().assign(dead()), 'assign: the tensor was disposed'],
    ['conv2d input', () => k.nn.conv2d((() => { const x = k.zeros([1, 1, 2, 2]); x.dispose(); return x; })(), k.zeros([1, 1, 1, 1])), 'conv2d: the tensor was disposed'],
    ['crossEntropy', () => k.F.crossEntropy(dead(), i32([0, 1])), 'crossEntropy: the tensor was disposed'],
    ['Linear', () => new k.nn.Linear(2, 2).forward(dead()), 'linear: the tensor was disposed'],
    ['Embedding', () => new k.nn.Embedding(3, 2).forward((() => { const i = i32([0]); i.dispose(); return i; })()), 'embedding: the tensor was disposed'],
  ])('%s', async (_name, fn, msg) => {
    expect(await message(() => k.scope(fn as () => unknown))).toBe(msg);
  });

  it('the engine is unaffected afterwards', async () => {
    expect(await message(() => live().add(dead()))).toBe('add: the tensor was disposed');
    expect(Array.from(await k.tensor([1, 2]).add(1).data())).toEqual([2, 3]);
  });
});
