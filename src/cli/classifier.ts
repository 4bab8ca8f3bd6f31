/**
 * Trains MNIST classifiers with AdamW and a cosine schedule, and reports test accuracy: the MLP of
 * `kiln mnist-mlp` and the LeNet of `kiln lenet` (the feature network of the generative metrics).
 */
import { fileURLToPath } from 'node:url';
import * as k from '../index.js';
import { Progress } from './progress.js';

/** Where `kiln lenet` saves the metrics classifier and where the metrics load it from. */
export const LENET_PATH = fileURLToPath(new URL('../../models/lenet-mnist.safetensors', import.meta.url));

/** Loads the metrics classifier saved by `kiln lenet` (eval mode). */
export async function loadLeNet(path = LENET_PATH): Promise<k.nn.LeNet> {
  const { tensors, metadata } = await k.loadWithMetadata(path).catch((e: Error) => {
    throw new Error(`${e.message}\n(the metrics classifier is made by \`npm run lenet\`)`);
  });
  const net = new k.nn.LeNet(metadata.config ? JSON.parse(metadata.config) : {});
  net.loadStateDict(tensors);
  for (const t of Object.values(tensors)) t.dispose();
  net.eval();
  return net;
}

/** Options of `trainClassifier`. */
export interface ClassifierOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Train on at most this many examples per epoch. */
  limit?: number;
  quiet?: boolean;
}

/** Builds the MLP 784 → hidden… → 10 with ReLU (input [N, 784]). */
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

/** The input layout a network expects: flat [N, 784] (MLP) or images [N, 1, 28, 28]. */
export function layoutOf(net: k.nn.Layer): 'flat' | 'image' {
  return net instanceof k.nn.Sequential ? 'flat' : 'image';
}

/** Fraction of a split classified correctly (eval mode, no gradients). */
export async function accuracy(net: k.nn.Layer, split: k.data.MnistSplit): Promise<number> {
  let correct = 0;
  net.eval();
  for (const { x, y } of k.data.batches(split, { batchSize: 500, layout: layoutOf(net) })) {
    correct += await k.noGrad(() => k.scope(() => net.forward(x).argmax(1).eq(y).sum())).item();
    x.dispose();
    y.dispose();
  }
  net.train();
  return correct / split.count;
}

/** Trains `net` by cross-entropy on MNIST; returns its final training loss and test accuracy. */
export async function trainClassifier(net: k.nn.Layer, o: ClassifierOptions, label = 'mnist'): Promise<{ loss: number; accuracy: number; seconds: number }> {
  const [train, test] = [await k.data.loadMnist('train'), await k.data.loadMnist('test')];
  const opt = new k.optim.AdamW(net, { lr: o.lr, weightDecay: o.weightDecay });
  const perEpoch = Math.floor(Math.min(train.count, o.limit ?? train.count) / o.batchSize);
  const total = perEpoch * o.epochs;
  const sched = new k.optim.LRScheduler(opt, k.optim.cosine(o.lr, total, o.lr * 0.05));
  const bar = o.quiet ? null : new Progress(total, `${label} `);
  const layout = layoutOf(net);
  const t0 = performance.now();
  let step = 0;
  let lastLoss = NaN;
  let pending: Promise<number> | null = null;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    for (const { x, y } of k.data.batches(train, { batchSize: o.batchSize, seed: o.seed, epoch, layout, dropLast: true, limit: o.limit })) {
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
  return { loss: lastLoss, accuracy: acc, seconds: (performance.now() - t0) / 1000 };
}

/** Trains the MLP 784 → hidden… → 10 (seeded). */
export async function trainMlp(o: ClassifierOptions & { hidden: number[] }): Promise<{ net: k.nn.Sequential; loss: number; accuracy: number; seconds: number }> {
  k.manualSeed(o.seed);
  const net = mlp(o.hidden);
  return { net, ...(await trainClassifier(net, o, 'mnist-mlp')) };
}

/** Trains the LeNet of the metrics (seeded). */
export async function trainLeNet(o: ClassifierOptions & { config?: Partial<k.nn.LeNetConfig> }): Promise<{ net: k.nn.LeNet; loss: number; accuracy: number; seconds: number }> {
  k.manualSeed(o.seed);
  const net = new k.nn.LeNet(o.config);
  return { net, ...(await trainClassifier(net, o, 'lenet')) };
}
