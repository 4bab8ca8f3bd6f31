/** Datasets and batching (exported as `k.data`). */
export { loadMnist, batches, StepBatches, permutation, parseIdx, clearMnistCache, type MnistSplit, type BatchOptions } from './mnist.js';
export { toy2d, toy2dDistance, toy2dNear, type Toy2D } from './toy2d.js';
export { pixelsOf, PixelBatches, evalPixelBatches, TEST_BINARIZATION_SEED, type Binarization, type PixelFormat } from './binarize.js';
