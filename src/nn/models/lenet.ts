/**
 * A LeNet-style convolutional MNIST classifier. Besides classifying, it is the feature network of the
 * generative metrics (classifier accuracy of conditional samples, classifier-FID, Inception-style
 * score), so the penultimate activations are exposed by `features`.
 */
import { Layer } from '../module.js';
import { Linear } from '../layers.js';
import { Conv2d } from '../norm-attention.js';
import { maxPool2d } from '../conv.js';
import { loadWithMetadata } from '../safetensors.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/index.js';

/** Sizes of a LeNet. */
export interface LeNetConfig {
  /** Channels of the two 5×5 convolutions. */
  channels: [number, number];
  /** Width of the penultimate (feature) layer. */
  hidden: number;
  classes: number;
}

/** conv5(pad 2)–ReLU–pool2 → conv5–ReLU–pool2 → linear–ReLU (features) → linear (logits), on [N, 1, 28, 28]. */
export class LeNet extends Layer {
  readonly config: LeNetConfig;
  conv1: Conv2d;
  conv2: Conv2d;
  fc1: Linear;
  fc2: Linear;
  constructor(config: Partial<LeNetConfig> = {}) {
    super();
    this.config = { channels: [16, 32], hidden: 128, classes: 10, ...config };
    const [c1, c2] = this.config.channels;
    this.conv1 = new Conv2d(1, c1, 5, { padding: 2 });
    this.conv2 = new Conv2d(c1, c2, 5);
    this.fc1 = new Linear(c2 * 5 * 5, this.config.hidden);
    this.fc2 = new Linear(this.config.hidden, this.config.classes);
  }
  /** The penultimate activations [N, hidden]. */
  features(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== 1 || x.shape[2] !== 28 || x.shape[3] !== 28) throw new Error(`LeNet: expected images [N, 1, 28, 28], got ${fmt(x.shape)}`);
    let h = maxPool2d(this.conv1.forward(x).relu(), 2);
    h = maxPool2d(this.conv2.forward(h).relu(), 2);
    return this.fc1.forward(h.flatten(1)).relu();
  }
  /** Class logits [N, classes]. */
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.features(x));
  }
}

/** Loads a LeNet saved with its config in the metadata key `config` (as `kiln lenet` saves it; a path in Node, or its bytes), in eval mode. */
export async function loadLeNet(src: string | Uint8Array | ArrayBuffer | Blob): Promise<LeNet> {
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const net = new LeNet(metadata.config ? JSON.parse(metadata.config) : {});
    net.loadStateDict(tensors);
    return net.eval();
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
