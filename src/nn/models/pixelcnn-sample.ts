/**
 * Sampling a gated PixelCNN: size² sequential steps in raster order, all images of the batch at once.
 *
 * The fast sampler uses the structure of the gated layers so that a step costs one row, not one image:
 * the vertical stack at row r depends only on rows ≤ r, so once per row it advances by one row (each
 * layer's convolution over a window of its input's last kh rows, kept from the previous row), giving the
 * links (1×1 of the vertical pre-activations of the row above) of the next row; the horizontal stack and
 * the head are row-local, so each pixel step runs them on the current row only. Both steps are
 * `k.compile`d (the same shapes at every row and pixel; the row and column enter as one-hot tensors), and
 * the result equals sampling from the whole-image forward pass (`method: 'naive'`, kept as the reference).
 *
 * Randomness: binarized pixels are 1 when u < σ(logit) with u ~ U[0, 1) drawn once for every pixel of
 * every image; 8-bit pixels take argmax(logits + Gumbel noise) with 256 uniforms drawn per step — both
 * from a generator of the sampler's own seeded by `seed`, so a seed gives the same images.
 */
import { noGrad } from '../../tensor/index.js';
import { keep, scope } from '../../tensor/memory.js';
import { cat, compile, Generator, rand, tensor, zeros, type Tensor } from '../../tensor/index.js';
import { gate, type PixelCNN } from './pixelcnn.js';

/** Options of `samplePixelCNN`. */
export interface PixelCNNSampleOptions {
  /** Class of each image (required iff the model is class-conditional; its length must be n). */
  labels?: number[];
  /** Seed of the sampler's own generator (default 0). */
  seed?: number;
  /** 'fast' (default): a row step and a pixel step, compiled; 'naive': the whole-image forward at every pixel (the reference). */
  method?: 'fast' | 'naive';
  /** Run the steps as compiled functions (default true; same samples). */
  compile?: boolean;
  /** Called after each finished row (0-based). */
  onRow?: (row: number) => void;
}

type RowStep = (S: Tensor, valid: Tensor, x: Tensor, caches: Tensor[], labels: Tensor | null) => { links: Tensor[]; caches: Tensor[] };
type PixelStep = (xRow: Tensor, links: Tensor[], col: Tensor, noise: Tensor, labels: Tensor | null) => Tensor;

/** The vertical stack advanced by one row: the links of row r (from the pre-activations of row r − 1) and the windows of the next row. */
function rowStep(model: PixelCNN): RowStep {
  return (S, valid, x, caches, labels) => {
    const [n, , H, W] = x.shape as [number, number, number, number];
    const b0 = model.blocks.at(0);
    // the first layer's window: rows r − kh0 … r − 1 of the normalized image (rows above it are zero, as the padding)
    const xw = S.matmul(model.normalize(x).reshape([n, H, W])).reshape([n, 1, b0.kh, W]);
    const links: Tensor[] = [];
    const next: Tensor[] = [];
    let below: Tensor | null = null;
    [...model.blocks].forEach((b, i) => {
      const win = i === 0 ? xw : cat([caches[i - 1]!, below!], 2);
      const pre = b.verticalPre(win, labels, 0).mul(valid);
      links.push(b.v_to_h.forward(pre));
      const row = gate(pre);
      if (i > 0) next.push(b.kh - 1 === 1 ? below! : cat([caches[i - 1]!.slice(2, 1, b.kh - 1), below!], 2));
      below = row;
    });
    return { links, caches: next };
  };
}

/** The horizontal stack and head on the current row, and the pixel at the one-hot column `col` sampled into it. */
function pixelStep(model: PixelCNN): PixelStep {
  return (xRow, links, col, noise, labels) => {
    let h = model.normalize(xRow);
    [...model.blocks].forEach((b, i) => (h = b.horizontal(h, links[i]!, labels)));
    const logits = model.head(h);
    let value: Tensor;
    if (model.config.bits === 1) value = noise.lt(logits.sigmoid()).cast('f32');
    else {
      const n = xRow.shape[0]!;
      value = logits.mul(col).sum(3).add(noise).argmax(1).cast('f32').reshape([n, 1, 1, 1]);
    }
    return xRow.add(col.mul(value.sub(xRow)));
  };
}

/** Each model's compiled steps. */
const compiled = new WeakMap<PixelCNN, { row: RowStep; pixel: PixelStep }>();

function steps(model: PixelCNN, useCompile: boolean): { row: RowStep; pixel: PixelStep } {
  if (!useCompile) return { row: rowStep(model), pixel: pixelStep(model) };
  let c = compiled.get(model);
  if (!c) compiled.set(model, (c = { row: compile(rowStep(model), { name: 'PixelCNN.rowStep' }), pixel: compile(pixelStep(model), { name: 'PixelCNN.pixelStep' }) }));
  return c;
}

/** Gumbel noise −log(−log u) of uniforms u. */
function gumbel(u: Tensor): Tensor {
  return scope(() => u.log().neg().log().neg());
}

/**
 * Samples n images [n, 1, size, size] (0/1, or grey levels 0…255, as floats) from a PixelCNN, one pixel
 * at a time in raster order; the caller disposes them.
 */
export async function samplePixelCNN(model: PixelCNN, n: number, opts: PixelCNNSampleOptions = {}): Promise<Tensor> {
  const c = model.config;
  if (!Number.isInteger(n) || n < 1) throw new Error(`samplePixelCNN: n must be a positive integer, got ${n}`);
  const method = opts.method ?? 'fast';
  if (method !== 'fast' && method !== 'naive') throw new Error(`samplePixelCNN: method must be 'fast' or 'naive', got ${JSON.stringify(method)}`);
  if (c.numClasses > 0) {
    if (!opts.labels || opts.labels.length !== n) throw new Error(`samplePixelCNN: this PixelCNN is class-conditional: pass ${n} labels (one per image), got ${opts.labels ? opts.labels.length : 'none'}`);
    for (const l of opts.labels) if (!Number.isInteger(l) || l < 0 || l >= c.numClasses) throw new Error(`samplePixelCNN: labels must be integers in [0, ${c.numClasses}), got ${l}`);
  } else if (opts.labels) throw new Error('samplePixelCNN: this PixelCNN is unconditional; it takes no labels');
  const H = c.size, W = c.size;
  const generator = new Generator(opts.seed ?? 0);
  const labels = opts.labels ? keep(tensor(Int32Array.from(opts.labels))) : null;
  const uniforms = c.bits === 1 ? keep(rand([n, 1, H, W], { generator })) : null;
  let x = keep(zeros([n, 1, H, W]));
  try {
    return await noGrad(async () => {
      if (method === 'naive') {
        for (let r = 0; r < H; r++) {
          for (let col = 0; col < W; col++) {
            const next = scope(() => {
              const logits = model.forward(x, labels);
              const px = (t: Tensor) => t.slice(2, r, r + 1).slice(3, col, col + 1);
              const value = uniforms
                ? px(uniforms).lt(px(logits).sigmoid()).cast('f32')
                : px(logits).reshape([n, 256, 1]).add(gumbel(rand([n, 256, 1], { generator }))).argmax(1).cast('f32').reshape([n, 1, 1, 1]);
              const at = oneHot2d(H, W, r, col);
              return x.add(at.mul(value.sub(x)));
            });
            await next.data(); // one pixel at a time: keep the graph small
            x.dispose();
            x = keep(next);
          }
          opts.onRow?.(r);
        }
        return x;
      }
      const { row, pixel } = steps(model, opts.compile !== false);
      const b0 = model.blocks.at(0);
      let caches: Tensor[] = [...model.blocks].slice(1).map((b) => keep(zeros([n, c.width, b.kh - 1, W])));
      for (let r = 0; r < H; r++) {
        // S picks rows r − kh0 … r − 1 (none above the image); valid is 0 at r = 0, whose "row above" is the padding
        const S = new Float32Array(b0.kh * H);
        for (let i = 0; i < b0.kh; i++) {
          const src = r - b0.kh + i;
          if (src >= 0) S[i * H + src] = 1;
        }
        const St = keep(tensor(S, { shape: [b0.kh, H] }));
        const valid = keep(tensor(new Float32Array([r === 0 ? 0 : 1])));
        const out = await row(St, valid, x, caches, labels);
        St.dispose();
        valid.dispose();
        caches.forEach((t) => t.dispose());
        caches = out.caches.map((t) => keep(t));
        const links = out.links.map((t) => keep(t));
        let xRow = keep(zeros([n, 1, 1, W]));
        for (let col = 0; col < W; col++) {
          const onehot = new Float32Array(W);
          onehot[col] = 1;
          const colMask = keep(tensor(onehot, { shape: [1, 1, 1, W] }));
          const noise = uniforms ? keep(uniforms.slice(2, r, r + 1).contiguous()) : keep(gumbel(rand([n, 256, 1], { generator })));
          const next = keep(await pixel(xRow, links, colMask, noise, labels));
          colMask.dispose();
          noise.dispose();
          xRow.dispose();
          xRow = next;
        }
        links.forEach((t) => t.dispose());
        const rowMask = new Float32Array(H);
        rowMask[r] = 1;
        const filled = keep(scope(() => {
          const m = tensor(rowMask, { shape: [1, 1, H, 1] });
          return x.mul(m.neg().add(1)).add(xRow.mul(m));
        }));
        await filled.data();
        xRow.dispose();
        x.dispose();
        x = filled;
        opts.onRow?.(r);
      }
      caches.forEach((t) => t.dispose());
      return x;
    });
  } catch (e) {
    x.dispose();
    throw e;
  } finally {
    labels?.dispose();
    uniforms?.dispose();
  }
}

/** A [1, 1, H, W] tensor, 1 at (r, c) and 0 elsewhere. */
function oneHot2d(H: number, W: number, r: number, c: number): Tensor {
  const a = new Float32Array(H * W);
  a[r * W + c] = 1;
  return tensor(a, { shape: [1, 1, H, W] });
}
