/**
 * Image grids: single-channel images laid out in rows with 2-pixel gaps on a dark grey background, the
 * layout of `kiln sample` PNGs and of the demo page's canvases.
 */
import { encodePng, toBytes } from './png.js';

/** Gap between grid cells, in pixels. */
export const GRID_GAP = 2;
/** The grid's background grey level. */
export const GRID_BACKGROUND = 40;

/** Pixel layout of a grid of `n` images of h×w in `cols` columns (fewer when there are fewer images). */
export function gridLayout(n: number, h: number, w: number, cols: number): { width: number; height: number; rows: number; cols: number } {
  const c = Math.max(1, Math.min(cols, n));
  const rows = Math.ceil(n / c);
  return { width: c * (w + GRID_GAP) + GRID_GAP, height: rows * (h + GRID_GAP) + GRID_GAP, rows, cols: c };
}

/** Grey bytes (row-major, `width`×`height`) of `n` single-channel h×w images with values in [−1, 1], in rows of `cols`. */
export function gridPixels(values: ArrayLike<number>, n: number, h: number, w: number, cols: number): { pixels: Uint8Array; width: number; height: number } {
  if (values.length !== n * h * w) throw new Error(`gridPixels: ${values.length} values for ${n} images of ${h}×${w}`);
  const g = gridLayout(n, h, w, cols);
  const px = toBytes(values, -1, 1);
  const pixels = new Uint8Array(g.width * g.height).fill(GRID_BACKGROUND);
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / g.cols), c = i % g.cols;
    for (let y = 0; y < h; y++) pixels.set(px.subarray((i * h + y) * w, (i * h + y + 1) * w), (GRID_GAP + r * (h + GRID_GAP) + y) * g.width + GRID_GAP + c * (w + GRID_GAP));
  }
  return { pixels, width: g.width, height: g.height };
}

/** A PNG of images [N, 1, H, W] (their values, in [−1, 1]) in rows of `cols`. */
export function imageGrid(values: ArrayLike<number>, shape: readonly number[], cols: number): Uint8Array {
  const [n, ch, h, w] = shape as [number, number, number, number];
  if (shape.length !== 4 || ch !== 1) throw new Error(`imageGrid: expected images [N, 1, H, W], got [${shape.join(', ')}]`);
  const g = gridPixels(values, n, h, w, cols);
  return encodePng(g.pixels, g.width, g.height);
}
