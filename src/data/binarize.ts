/**
 * Binarized and 8-bit MNIST for autoregressive models. Binarization is either dynamic — pixel j of image i
 * is 1 with probability intensity/255, drawn anew each epoch from a Philox stream keyed by (seed, epoch,
 * image, pixel), so it is the same everywhere and a resumed run sees the same bits — or a fixed threshold
 * (intensity ≥ 128). The test set is binarized once with a fixed seed (`TEST_BINARIZATION_SEED`, epoch 0),
 * so its NLL is comparable between runs.
 */
import { philox4x32 } from '../wgsl/rng.js';
import { tensor, type Tensor } from '../tensor/index.js';
import { permutation, type MnistSplit } from './mnist.js';

/** How images become 0/1 pixels: 'dynamic' (Bernoulli(intensity), resampled per epoch) or 'threshold' (intensity ≥ 128). */
export type Binarization = 'dynamic' | 'threshold';

/** What pixels the batches hold: binarized 0/1, or 8-bit grey levels 0…255 (as floats). */
export type PixelFormat = Binarization | 'grey';

/** The seed of the fixed binarization of the test set used for NLL evaluation. */
export const TEST_BINARIZATION_SEED = 1234;

/** Pixels of the images `index` of a split as floats [B·rows·cols]: 0/1 (binarized with `seed` and `epoch`) or 0…255. */
export function pixelsOf(split: MnistSplit, index: ArrayLike<number>, format: PixelFormat, seed = 0, epoch = 0): Float32Array {
  if (format !== 'dynamic' && format !== 'threshold' && format !== 'grey') throw new Error(`pixelsOf: format must be 'dynamic', 'threshold' or 'grey', got ${JSON.stringify(format)}`);
  const px = split.rows * split.cols;
  const out = new Float32Array(index.length * px);
  for (let i = 0; i < index.length; i++) {
    const src = index[i]!;
    const img = split.images.subarray(src * px, (src + 1) * px);
    if (format === 'grey') for (let j = 0; j < px; j++) out[i * px + j] = img[j]!;
    else if (format === 'threshold') for (let j = 0; j < px; j++) out[i * px + j] = img[j]! >= 128 ? 1 : 0;
    else {
      for (let j = 0; j < px; j += 4) {
        const w = philox4x32(src, j >> 2, epoch, 0x62696e, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
        for (let q = 0; q < 4 && j + q < px; q++) {
          // u in [0, 1) with 32 bits; P(u·255 < intensity) = intensity/255
          out[i * px + j + q] = (w[q]! >>> 0) / 2 ** 32 * 255 < img[j + q]! ? 1 : 0;
        }
      }
    }
  }
  return out;
}

/**
 * Training batches of binarized or grey MNIST addressed by step (like `StepBatches`: step s takes slice
 * s mod perEpoch of epoch ⌊s / perEpoch⌋'s seeded permutation; dynamic binarization is drawn per epoch).
 * Images are [B, 1, rows, cols] pixel values, labels i32 [B].
 */
export class PixelBatches {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);
  /** Steps per epoch. */
  readonly perEpoch: number;
  /** `withTargets` (dynamic binarization only): batches also carry `target`, see `at`. */
  constructor(readonly split: MnistSplit, readonly batchSize: number, readonly seed: number, readonly format: PixelFormat, readonly withTargets = false) {
    this.perEpoch = Math.floor(split.count / batchSize);
    if (this.perEpoch < 1) throw new Error(`batch size ${batchSize} is larger than the ${split.count} training images`);
    pixelsOf(split, [], format);
    if (withTargets && format !== 'dynamic') throw new Error(`PixelBatches: targets are the probabilities that dynamic binarization draws from; '${format}' pixels are not drawn`);
  }
  /**
   * The batch of training step `step` (0-based); `target` (null unless made `withTargets`) is the probability
   * that each pixel is 1 (intensity / 255), from which x was drawn.
   */
  at(step: number): { x: Tensor; y: Tensor; target: Tensor | null } {
    const epoch = Math.floor(step / this.perEpoch);
    if (epoch !== this.epoch) [this.epoch, this.order] = [epoch, permutation(this.split.count, this.seed, epoch)];
    const start = (step % this.perEpoch) * this.batchSize;
    const index = this.order.subarray(start, start + this.batchSize);
    const shape = [index.length, 1, this.split.rows, this.split.cols];
    const x = pixelsOf(this.split, index, this.format, this.seed, epoch);
    const target = this.withTargets ? tensor(pixelsOf(this.split, index, 'grey').map((v) => v / 255), { shape }) : null;
    return { x: tensor(x, { shape }), y: tensor(Int32Array.from(index, (i) => this.split.labels[i]!)), target };
  }
}

/**
 * The evaluation batches of a split, in order (the first `limit` images): grey levels, thresholded, or
 * binarized once with `TEST_BINARIZATION_SEED` (for 'dynamic': the fixed binarization of the test set).
 */
export function* evalPixelBatches(split: MnistSplit, format: PixelFormat, batchSize: number, limit = split.count): Generator<{ x: Tensor; y: Tensor }> {
  const n = Math.min(limit, split.count);
  for (let s = 0; s < n; s += batchSize) {
    const index = Int32Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
    const x = pixelsOf(split, index, format, TEST_BINARIZATION_SEED, 0);
    yield { x: tensor(x, { shape: [index.length, 1, split.rows, split.cols] }), y: tensor(Int32Array.from(index, (i) => split.labels[i]!)) };
  }
}
