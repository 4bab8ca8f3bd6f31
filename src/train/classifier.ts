/**
 * Training MNIST classifiers by cross-entropy with AdamW and a cosine schedule, and measuring test
 * accuracy: the MLP of `kiln mnist-mlp` and the LeNet of `kiln lenet` (the feature network of the
 * generative metrics).
 */
import { noGrad } from '../tensor/index.js';
import { batches, loadMnist, type MnistSplit } from '../data/mnist.js';
import { captionedSplit } from '../data/captions.js';
import { crossEntropy } from '../nn/functional.js';
import { Linear, ReLU } from '../nn/layers.js';
import { LeNet, type LeNetConfig } from '../nn/models/lenet.js';
import { Sequential, type Layer } from '../nn/module.js';
import { AdamW, type LRScheduler } from '../nn/optim.js';
import { manualSeed, type Tensor } from '../tensor/index.js';
import { scope } from '../tensor/memory.js';
import { LossTrainer, warmupCosine } from './trainer.js';

/** The `format` tag of classifier checkpoints. */
export const CLASSIFIER_CHECKPOINT_FORMAT = 'kiln-classifier-checkpoint/1';

/** Options of `trainClassifier`. */
export interface ClassifierOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Train on at most this many examples per epoch. */
  limit?: number;
  /**
   * Train and test on captioned digits (`captionedSplit` with every size × stroke combination for every digit,
   * drawn anew each epoch; the test set with the seed `CAPTIONED_TEST_SEED`) instead of MNIST's.
   */
  captions?: boolean;
  /** Called after every step with the trainer (its `losses` end at the previous step's loss) and the epoch. */
  onStep?: (trainer: ClassifierTrainer, epoch: number) => void;
}

/** Builds the MLP 784 → hidden… → 10 with ReLU (input [N, 784]). */
export function mlp(hidden: number[]): Sequential {
  const layers: Layer[] = [];
  let prev = 784;
  for (const h of hidden) {
    layers.push(new Linear(prev, h), new ReLU());
    prev = h;
  }
  layers.push(new Linear(prev, 10));
  return new Sequential(...layers);
}

/** The input layout a network expects: flat [N, 784] (MLP) or images [N, 1, 28, 28]. */
export function layoutOf(net: Layer): 'flat' | 'image' {
  return net instanceof Sequential ? 'flat' : 'image';
}

/** Fraction of a split classified correctly (eval mode, no gradients). */
export async function accuracy(net: Layer, split: MnistSplit): Promise<number> {
  let correct = 0;
  net.eval();
  for (const { x, y } of batches(split, { batchSize: 500, layout: layoutOf(net) })) {
    correct += await noGrad(() => scope(() => net.forward(x).argmax(1).eq(y).sum())).item();
    x.dispose();
    y.dispose();
  }
  net.train();
  return correct / split.count;
}

/** Trains a classifier by cross-entropy, one batch at a time, with AdamW and cosine decay over `totalSteps`; `losses` holds every step's loss. */
export class ClassifierTrainer extends LossTrainer<[x: Tensor, y: Tensor]> {
  readonly opt: AdamW;
  readonly sched: LRScheduler;
  constructor(readonly model: Layer, readonly config: { lr: number; weightDecay: number; totalSteps: number }) {
    super(CLASSIFIER_CHECKPOINT_FORMAT, model, config);
    this.opt = new AdamW(model, { lr: config.lr, weightDecay: config.weightDecay });
    this.sched = warmupCosine(this.opt, config.lr, 0, config.totalSteps);
  }

  /** The cross-entropy of inputs x (in the network's layout) with labels y [N] i32. */
  loss(x: Tensor, y: Tensor): Tensor {
    return crossEntropy(this.model.forward(x), y);
  }
}

/** The seed of the captioned test set of a classifier trained with `captions`. */
export const CAPTIONED_TEST_SEED = 1234;

/** Trains `net` on MNIST for whole epochs (seeded shuffles, the last partial batch dropped); returns its final training loss and test accuracy. */
export async function trainClassifier(net: Layer, o: ClassifierOptions): Promise<{ loss: number; accuracy: number; seconds: number }> {
  const [train, test] = [await loadMnist('train'), await loadMnist('test')];
  const perEpoch = Math.floor(Math.min(train.count, o.limit ?? train.count) / o.batchSize);
  const trainer = new ClassifierTrainer(net, { lr: o.lr, weightDecay: o.weightDecay, totalSteps: perEpoch * o.epochs });
  const layout = layoutOf(net);
  const t0 = performance.now();
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const data = o.captions ? captionedSplit(train, o.seed, epoch, 'all') : train;
    for (const { x, y } of batches(data, { batchSize: o.batchSize, seed: o.seed, epoch, layout, dropLast: true, limit: o.limit })) {
      await trainer.trainStep(x, y);
      x.dispose();
      y.dispose();
      o.onStep?.(trainer, epoch);
    }
  }
  await trainer.flush();
  const acc = await accuracy(net, o.captions ? captionedSplit(test, CAPTIONED_TEST_SEED, 0, 'all') : test);
  return { loss: trainer.losses.at(-1) ?? NaN, accuracy: acc, seconds: (performance.now() - t0) / 1000 };
}

/** Trains the MLP 784 → hidden… → 10 (seeded). */
export async function trainMlp(o: ClassifierOptions & { hidden: number[] }): Promise<{ net: Sequential; loss: number; accuracy: number; seconds: number }> {
  manualSeed(o.seed);
  const net = mlp(o.hidden);
  return { net, ...(await trainClassifier(net, o)) };
}

/** Trains the LeNet of the metrics (seeded). */
export async function trainLeNet(o: ClassifierOptions & { config?: Partial<LeNetConfig> }): Promise<{ net: LeNet; loss: number; accuracy: number; seconds: number }> {
  manualSeed(o.seed);
  const net = new LeNet(o.config);
  return { net, ...(await trainClassifier(net, o)) };
}
