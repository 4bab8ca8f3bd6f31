/**
 * Trains an MLP classifier on MNIST with AdamW and reports test accuracy (the first real model trained
 * with kiln). `kiln mnist-mlp --hidden 512,512 --epochs 3`.
 */
import * as k from '../index.js';
import { Progress } from './progress.js';

/** Options of `trainMlp`. */
export interface MlpOptions {
  hidden: number[];
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Train on at most this many examples per epoch. */
  limit?: number;
  quiet?: boolean;
}

/** Builds the MLP 784 → hidden… → 10 with ReLU. */
export function mlp(hidden: number[]): k.nn.Sequential {
  const layers: k.nn.Layer[] = [];
  let prev = 784;
  for (const h of hidden) {
    layers.push(new k.nn.Linear(prev, h), new k.nn.ReLU());
    prev = h;
  }
  layers.push(new k.nn.Linear(prev, 10));
  return new k.nn.Sequential(...layers);
}

/** Fraction of test images classified correctly. */
export async function accuracy(net: k.nn.Layer, split: k.data.MnistSplit): Promise<number> {
  let correct = 0;
  net.eval();
  for (const { x, y } of k.data.batches(split, { batchSize: 1000, layout: 'flat' })) {
    correct += await k.noGrad(() => k.scope(() => net.forward(x).argmax(1).eq(y).sum())).item();
    x.dispose();
    y.dispose();
  }
  net.train();
  return correct / split.count;
}

/** Trains and returns the network, its final training loss and test accuracy. */
export async function trainMlp(o: MlpOptions): Promise<{ net: k.nn.Sequential; loss: number; accuracy: number; seconds: number }> {
  k.manualSeed(o.seed);
  const [train, test] = [await k.data.loadMnist('train'), await k.data.loadMnist('test')];
  const net = mlp(o.hidden);
  const opt = new k.optim.AdamW(net, { lr: o.lr, weightDecay: o.weightDecay });
  const perEpoch = Math.floor(Math.min(train.count, o.limit ?? train.count) / o.batchSize);
  const total = perEpoch * o.epochs;
  const sched = new k.optim.LRScheduler(opt, k.optim.cosine(o.lr, total, o.lr * 0.05));
  const bar = o.quiet ? null : new Progress(total, 'mnist-mlp ');
  const t0 = performance.now();
  let step = 0;
  let lastLoss = NaN;
  let pending: Promise<number> | null = null;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    for (const { x, y } of k.data.batches(train, { batchSize: o.batchSize, seed: o.seed, epoch, layout: 'flat', dropLast: true, limit: o.limit })) {
      const loss = opt.minimize(() => k.F.crossEntropy(net.forward(x), y));
      sched.step();
      x.dispose();
      y.dispose();
      step++;
      // read the loss of the previous step while this one runs (no pipeline stall)
      if (pending) lastLoss = await pending;
      pending = loss.item().finally(() => loss.dispose());
      bar?.update(step, { epoch: epoch + 1, loss: lastLoss, lr: opt.lr });
    }
  }
  if (pending) lastLoss = await pending;
  const acc = await accuracy(net, test);
  return { net, loss: lastLoss, accuracy: acc, seconds: (performance.now() - t0) / 1000 };
}
