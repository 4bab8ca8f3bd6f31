/** Datasets and batching (exported as `k.data`). */
export { loadMnist, batches, permutation, parseIdx, clearMnistCache, type MnistSplit, type BatchOptions } from './mnist.js';
