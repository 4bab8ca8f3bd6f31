/** What several commands share: PNG grids of images, the repository's metrics classifier, and the features of real digits. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as k from '../index.js';
import { imageGrid } from '../io/grid.js';

/** Writes images [N, 1, H, W] in [−1, 1] as a PNG grid in rows of `cols`. */
export async function writeGrid(file: string, x: k.Tensor, cols: number): Promise<void> {
  writeFileSync(file, imageGrid(await x.data(), x.shape, cols));
}

/** Where `kiln lenet` saves the metrics classifier and where the metrics load it from. */
export const LENET_PATH = fileURLToPath(new URL('../../models/lenet-mnist.safetensors', import.meta.url));

/** Loads the metrics classifier saved by `kiln lenet` (eval mode), or says how to make it. */
export async function loadMetricsNet(path = LENET_PATH): Promise<k.nn.LeNet> {
  return k.nn.loadLeNet(path).catch((e: Error) => {
    throw new Error(`${e.message}\n(the metrics classifier is made by \`npm run lenet\`)`);
  });
}

/** LeNet features of the first `count` real digits of an MNIST split. */
export async function realFeatures(net: k.nn.LeNet, split: 'train' | 'test', count: number): Promise<k.diffusion.FeatureSet> {
  return k.diffusion.featureSet(net, k.data.batches(await k.data.loadMnist(split), { batchSize: 500, limit: count }));
}
