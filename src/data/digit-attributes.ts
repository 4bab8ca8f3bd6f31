/**
 * Measurable attributes of a digit image, and the transforms that set them: size (rescaling the digit inside
 * its frame) and stroke (grayscale erosion or dilation). Images are single-channel float arrays in [0, 1],
 * row-major side×side. Everything runs on the host (a 28×28 image is a few thousand operations): the caption
 * dataset transforms each example with its own attributes when it builds a batch, and the evaluation measures
 * generated images after reading them back, in Node and in a browser alike.
 */

/** A digit's bounding box: the rows and columns holding a pixel ≥ the threshold (all −1 for an empty image). */
export interface BoundingBox {
  top: number;
  left: number;
  bottom: number;
  right: number;
  height: number;
  width: number;
  /** max(height, width): MNIST scales every digit to 20 pixels along its longer side. */
  size: number;
}

/** Default ink threshold of the measurements (a pixel counts as ink from this intensity on). */
export const INK_THRESHOLD = 0.3;

function checkImage(op: string, img: ArrayLike<number>, side: number): void {
  if (!Number.isInteger(side) || side < 1) throw new Error(`${op}: side must be a positive integer, got ${side}`);
  if (img.length !== side * side) throw new Error(`${op}: expected a ${side}×${side} image (${side * side} values), got ${img.length} values`);
}

/** The bounding box of the pixels ≥ `threshold` of a side×side image. */
export function boundingBox(img: ArrayLike<number>, side: number, threshold = INK_THRESHOLD): BoundingBox {
  checkImage('boundingBox', img, side);
  let top = side, left = side, bottom = -1, right = -1;
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      if (img[i * side + j]! < threshold) continue;
      top = Math.min(top, i);
      bottom = Math.max(bottom, i);
      left = Math.min(left, j);
      right = Math.max(right, j);
    }
  }
  if (bottom < 0) return { top: -1, left: -1, bottom: -1, right: -1, height: 0, width: 0, size: 0 };
  const height = bottom - top + 1, width = right - left + 1;
  return { top, left, bottom, right, height, width, size: Math.max(height, width) };
}

/**
 * The 1-D resampling matrix [side, side] of an axis that maps output pixel i to source coordinate
 * centre + (i − c)/factor: each output pixel averages `S` bilinear samples spread over its width.
 */
function resampleAxis(side: number, centre: number, factor: number, S = 4): Float64Array {
  const m = new Float64Array(side * side), c = (side - 1) / 2;
  for (let i = 0; i < side; i++) {
    for (let a = 0; a < S; a++) {
      const y = centre + (i - 0.5 + (a + 0.5) / S - c) / factor;
      const y0 = Math.floor(y), f = y - y0;
      if (y0 >= 0 && y0 < side) m[i * side + y0] += (1 - f) / S;
      if (y0 + 1 >= 0 && y0 + 1 < side) m[i * side + y0 + 1] += f / S;
    }
  }
  return m;
}

/**
 * Rescales the digit by `factor` about the centre of its bounding box, which lands on the image centre (so a
 * 20-pixel MNIST digit scaled by up to 1.35 stays inside 28×28). Each output pixel averages 4×4 bilinear
 * samples (computed separably, rows then columns), which approximates area resampling when shrinking and is
 * bilinear when enlarging.
 */
export function rescaleDigit(img: ArrayLike<number>, side: number, factor: number, threshold = INK_THRESHOLD): Float32Array {
  checkImage('rescaleDigit', img, side);
  if (!(factor > 0 && Number.isFinite(factor))) throw new Error(`rescaleDigit: factor must be a positive number, got ${factor}`);
  const box = boundingBox(img, side, threshold);
  const out = new Float32Array(side * side);
  if (box.size === 0) return out;
  const Ry = resampleAxis(side, (box.top + box.bottom) / 2, factor), Rx = resampleAxis(side, (box.left + box.right) / 2, factor);
  // tmp = Ry · img, out = tmp · Rxᵀ
  const tmp = new Float64Array(side * side);
  for (let i = 0; i < side; i++) {
    for (let y = 0; y < side; y++) {
      const w = Ry[i * side + y]!;
      if (w) for (let j = 0; j < side; j++) tmp[i * side + j] += w * img[y * side + j]!;
    }
  }
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      let acc = 0;
      for (let x = 0; x < side; x++) acc += tmp[i * side + x]! * Rx[j * side + x]!;
      out[i * side + j] = Math.min(1, Math.max(0, acc));
    }
  }
  return out;
}

/** Structuring element of `erode`/`dilate`: the 3×3 square or the 5-pixel plus. */
export type Footprint = 'square' | 'plus';

function morph(op: string, img: ArrayLike<number>, side: number, footprint: Footprint, pick: (a: number, b: number) => number, outside: number): Float32Array {
  checkImage(op, img, side);
  if (footprint !== 'square' && footprint !== 'plus') throw new Error(`${op}: footprint must be 'square' or 'plus', got ${JSON.stringify(footprint)}`);
  const out = new Float32Array(side * side);
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      let v = img[i * side + j]!;
      for (let di = -1; di <= 1; di++) {
        for (let dj = -1; dj <= 1; dj++) {
          if ((di === 0 && dj === 0) || (footprint === 'plus' && di !== 0 && dj !== 0)) continue;
          const y = i + di, x = j + dj;
          v = pick(v, y >= 0 && y < side && x >= 0 && x < side ? img[y * side + x]! : outside);
        }
      }
      out[i * side + j] = v;
    }
  }
  return out;
}

/** Grayscale erosion: each pixel becomes the minimum over the footprint around it (−maxpool(−x) with stride 1). */
export function erode(img: ArrayLike<number>, side: number, footprint: Footprint = 'plus'): Float32Array {
  return morph('erode', img, side, footprint, Math.min, 0);
}

/** Grayscale dilation: each pixel becomes the maximum over the footprint around it (a 3×3 max pool with stride 1). */
export function dilate(img: ArrayLike<number>, side: number, footprint: Footprint = 'square'): Float32Array {
  return morph('dilate', img, side, footprint, Math.max, 0);
}

/**
 * Zhang–Suen thinning of a binary image (non-zero = ink) to a one-pixel-wide, connected skeleton; returns a
 * new 0/1 array.
 */
export function skeletonize(bin: ArrayLike<number>, side: number): Uint8Array {
  checkImage('skeletonize', bin, side);
  const W = side + 2; // a zero border, so neighbours need no bounds checks
  const s = new Uint8Array(W * W);
  for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) s[(i + 1) * W + j + 1] = bin[i * side + j] ? 1 : 0;
  const del: number[] = [];
  for (let changed = true; changed;) {
    changed = false;
    for (let pass = 0; pass < 2; pass++) {
      del.length = 0;
      for (let i = 1; i <= side; i++) {
        for (let j = 1; j <= side; j++) {
          const o = i * W + j;
          if (!s[o]) continue;
          // neighbours p2…p9 clockwise from north
          const p2 = s[o - W]!, p3 = s[o - W + 1]!, p4 = s[o + 1]!, p5 = s[o + W + 1]!, p6 = s[o + W]!, p7 = s[o + W - 1]!, p8 = s[o - 1]!, p9 = s[o - W - 1]!;
          const b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9;
          if (b < 2 || b > 6) continue;
          const a = +(!p2 && !!p3) + +(!p3 && !!p4) + +(!p4 && !!p5) + +(!p5 && !!p6) + +(!p6 && !!p7) + +(!p7 && !!p8) + +(!p8 && !!p9) + +(!p9 && !!p2);
          if (a !== 1) continue;
          if (pass === 0 ? p2 * p4 * p6 || p4 * p6 * p8 : p2 * p4 * p8 || p2 * p6 * p8) continue;
          del.push(o);
        }
      }
      for (const d of del) s[d] = 0;
      if (del.length) changed = true;
    }
  }
  const out = new Uint8Array(side * side);
  for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) out[i * side + j] = s[(i + 1) * W + j + 1]!;
  return out;
}

/**
 * Mean stroke width in pixels: the ink (sum of intensities) divided by the stroke length (pixels of the
 * skeleton of the image thresholded at `threshold`); 0 for an empty image.
 */
export function strokeWidth(img: ArrayLike<number>, side: number, threshold = INK_THRESHOLD): number {
  checkImage('strokeWidth', img, side);
  return pen(img, side, threshold).width;
}

/** The skeleton of the image thresholded at `threshold`, and ink per skeleton pixel. */
function pen(img: ArrayLike<number>, side: number, threshold: number): { skel: Uint8Array; width: number } {
  let ink = 0;
  for (let i = 0; i < img.length; i++) ink += img[i]!;
  const skel = skeletonize(Array.from(img, (v) => (v >= threshold ? 1 : 0)), side);
  const length = skel.reduce((a, v) => a + v, 0);
  return { skel, width: length ? ink / length : 0 };
}

/** `pen` with the width made relative to the digit's size (see `relativeStrokeWidth`). */
function relativePen(img: ArrayLike<number>, side: number, threshold: number): { skel: Uint8Array; width: number } {
  const size = boundingBox(img, side, threshold).size;
  const p = pen(img, side, threshold);
  return { skel: p.skel, width: size ? (p.width * MNIST_DIGIT_SIZE) / size : 0 };
}

/** MNIST's digit size: each digit is scaled to 20 pixels along its longer side. */
export const MNIST_DIGIT_SIZE = 20;

/**
 * The stroke width as if the digit were MNIST-sized: `strokeWidth` · 20 / bounding-box size, so that the pen
 * of a small digit and of a large one compare (0 for an empty image).
 */
export function relativeStrokeWidth(img: ArrayLike<number>, side: number, threshold = INK_THRESHOLD): number {
  checkImage('relativeStrokeWidth', img, side);
  return relativePen(img, side, threshold).width;
}

/** Options of `thinStroke` and `boldStroke`. */
export interface StrokeOptions {
  /** Stop once `relativeStrokeWidth` is at most (thin) or at least (bold) this (defaults 1.6 and 4). */
  target?: number;
  /** At most this many erosions or dilations (default 3). */
  maxSteps?: number;
  threshold?: number;
}

/**
 * A thinner pen: plus-shaped erosions, each keeping the skeleton of the stroke at its intensity (so no part of
 * the digit vanishes), until `relativeStrokeWidth` is at most `target` or `maxSteps` erosions were done.
 */
export function thinStroke(img: ArrayLike<number>, side: number, opts: StrokeOptions = {}): Float32Array {
  checkImage('thinStroke', img, side);
  const target = opts.target ?? 1.6, th = opts.threshold ?? INK_THRESHOLD;
  let x: Float32Array = Float32Array.from(img);
  for (let step = 0; step < (opts.maxSteps ?? 3); step++) {
    const { skel, width } = relativePen(x, side, th);
    if (width <= target) break;
    const e = erode(x, side, 'plus');
    for (let i = 0; i < e.length; i++) if (skel[i]) e[i] = Math.max(e[i]!, x[i]!);
    x = e;
  }
  return x;
}

/**
 * A bolder pen: dilations (plus-shaped first, then 3×3 squares) until `relativeStrokeWidth` is at least
 * `target` or `maxSteps` dilations were done.
 */
export function boldStroke(img: ArrayLike<number>, side: number, opts: StrokeOptions = {}): Float32Array {
  checkImage('boldStroke', img, side);
  const target = opts.target ?? 4, th = opts.threshold ?? INK_THRESHOLD;
  let x: Float32Array = Float32Array.from(img);
  for (let step = 0; step < (opts.maxSteps ?? 3) && relativePen(x, side, th).width < target; step++) x = dilate(x, side, step === 0 ? 'plus' : 'square');
  return x;
}

/**
 * Binary attribute decisions on a measured image, for prompts that name the attribute: size 'small' below
 * `SIZE_SPLIT` pixels of bounding box (transformed MNIST digits measure ≤ 16 small and ≥ 20 large), stroke
 * 'thin' below `STROKE_SPLIT` of relative stroke width (thin ≤ 2.1, bold ≥ 4 on transformed digits).
 */
export const SIZE_SPLIT = 17;
/** See `SIZE_SPLIT`. */
export const STROKE_SPLIT = 2.9;

/** The measurements of an image and the binary size and stroke decisions the evaluation makes from them. */
export function measureDigit(img: ArrayLike<number>, side: number, threshold = INK_THRESHOLD): { size: number; strokeWidth: number; relativeStrokeWidth: number; sizeClass: 'small' | 'large'; strokeClass: 'thin' | 'bold' } {
  checkImage('measureDigit', img, side);
  const size = boundingBox(img, side, threshold).size;
  const w = strokeWidth(img, side, threshold);
  const rel = size ? (w * MNIST_DIGIT_SIZE) / size : 0;
  return { size, strokeWidth: w, relativeStrokeWidth: rel, sizeClass: size < SIZE_SPLIT ? 'small' : 'large', strokeClass: rel < STROKE_SPLIT ? 'thin' : 'bold' };
}
