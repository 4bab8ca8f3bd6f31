/** Canvas drawing for the demo page: loss curves, 2D scatter plots with trajectories, and image grids. */
import { gridPixels } from '../src/io/grid.js';

export { gridLayout } from '../src/io/grid.js';

/**
 * Draws single-channel images (values about [−1, 1], layout [n, 1, h, w]) as a grid at one canvas pixel
 * per image pixel, shown `scale`× larger with nearest-neighbour scaling. Returns the grey bytes drawn.
 */
export function drawImageGrid(canvas: HTMLCanvasElement, values: Float32Array, n: number, h: number, w: number, cols: number, scale = 3): Uint8Array {
  const g = gridPixels(values, n, h, w, cols);
  const grey = g.pixels;
  canvas.width = g.width;
  canvas.height = g.height;
  canvas.style.width = `${g.width * scale}px`;
  canvas.style.height = `${g.height * scale}px`;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(g.width, g.height);
  for (let i = 0; i < grey.length; i++) {
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = grey[i]!;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return grey;
}

/** Plots a loss curve with a logarithmic y axis (and a moving average when long). */
export function drawLoss(canvas: HTMLCanvasElement, losses: number[], total: number): void {
  const ctx = canvas.getContext('2d')!;
  const W = canvas.width, H = canvas.height, pad = 34;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad, 8, W - pad - 8, H - pad);
  const finite = losses.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return;
  const lo = Math.log10(Math.min(...finite)), hi = Math.log10(Math.max(...finite));
  const span = Math.max(hi - lo, 1e-3);
  const n = Math.max(total, losses.length, 2);
  const X = (i: number) => pad + ((W - pad - 8) * i) / (n - 1);
  const Y = (v: number) => 8 + (H - pad) * (1 - (Math.log10(v) - lo) / span);
  const line = (vals: number[], color: string, width: number) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    let started = false;
    vals.forEach((v, i) => {
      if (!(v > 0) || !Number.isFinite(v)) return;
      if (started) ctx.lineTo(X(i), Y(v));
      else ctx.moveTo(X(i), Y(v));
      started = true;
    });
    ctx.stroke();
  };
  line(losses, '#9ab', 1);
  const win = Math.max(1, Math.floor(losses.length / 25));
  if (win > 1) {
    const avg = losses.map((_, i) => {
      const s = losses.slice(Math.max(0, i - win + 1), i + 1);
      return s.reduce((a, b) => a + b, 0) / s.length;
    });
    line(avg, '#135', 2);
  }
  ctx.lineWidth = 1;
  ctx.fillStyle = '#333';
  ctx.font = '11px sans-serif';
  ctx.fillText(Math.pow(10, hi).toPrecision(3), 2, 16);
  ctx.fillText(Math.pow(10, lo).toPrecision(3), 2, H - pad + 8);
  ctx.fillText(`step ${losses.length} / ${total}`, pad + 4, H - 10);
}

/** A layer of a scatter plot: flat [x0, y0, x1, y1, …] points, and optional trails (polylines). */
export interface ScatterLayer {
  points?: Float32Array;
  trails?: number[][];
  color: string;
  size?: number;
}

/** Draws points and trails on a canvas covering [−range, range]². */
export function drawScatter(canvas: HTMLCanvasElement, layers: ScatterLayer[], range = 4): void {
  const ctx = canvas.getContext('2d')!;
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  const X = (x: number) => ((x + range) / (2 * range)) * W;
  const Y = (y: number) => H - ((y + range) / (2 * range)) * H;
  for (const l of layers) {
    ctx.fillStyle = l.color;
    ctx.strokeStyle = l.color;
    const s = l.size ?? 2;
    if (l.points) for (let i = 0; i < l.points.length / 2; i++) ctx.fillRect(X(l.points[2 * i]!) - s / 2, Y(l.points[2 * i + 1]!) - s / 2, s, s);
    for (const t of l.trails ?? []) {
      ctx.beginPath();
      for (let i = 0; i < t.length / 2; i++) {
        if (i === 0) ctx.moveTo(X(t[0]!), Y(t[1]!));
        else ctx.lineTo(X(t[2 * i]!), Y(t[2 * i + 1]!));
      }
      ctx.stroke();
      if (t.length >= 2) ctx.fillRect(X(t[t.length - 2]!) - 2.5, Y(t[t.length - 1]!) - 2.5, 5, 5);
    }
  }
}
