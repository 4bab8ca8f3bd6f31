/** Canvas drawing for the demo page: loss curves and 2D scatter plots with axes, image grids, and replaying frames. */
import { gridPixels } from '../src/io/grid.js';
import type { NoiseLevel } from './protocol.js';

export { gridLayout } from '../src/io/grid.js';

/** Colours shared by the plots and the page's legends (style.css uses the same values). */
export const COLORS = { data: 'rgba(110,110,120,0.45)', samples: 'rgba(37,99,235,0.75)', trails: 'rgba(220,60,30,0.9)', loss: '#9db4c8', lossAvg: '#1e3a5f', axis: '#6b7280', grid: '#eceff3', text: '#374151' };

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

/** About `count` round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Short tick labels: 1500 → '1.5k', 0.25 → '0.25'. */
function tickLabel(v: number): string {
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/** The plotting area of a canvas with room for axis labels, and a context scaled to CSS pixels. */
interface Frame {
  ctx: CanvasRenderingContext2D;
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Clears the canvas (sized to its CSS box × devicePixelRatio, so lines stay sharp) and draws the axes' box. */
function frame(canvas: HTMLCanvasElement, margin: { left: number; bottom: number }): Frame {
  const dpr = globalThis.devicePixelRatio || 1;
  const cssW = Number(canvas.dataset.width ?? canvas.width), cssH = Number(canvas.dataset.height ?? canvas.height);
  canvas.dataset.width = String(cssW);
  canvas.dataset.height = String(cssH);
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, cssW, cssH);
  const f = { ctx, left: margin.left, top: 10, width: cssW - margin.left - 12, height: cssH - 10 - margin.bottom };
  ctx.font = '11px system-ui, sans-serif';
  return f;
}

/** Tick marks, grid lines and labels of one axis; `at` maps a value to a pixel along the axis. */
function axis(f: Frame, dir: 'x' | 'y', ticks: number[], at: (v: number) => number, label: (v: number) => string, title: string): void {
  const { ctx } = f;
  ctx.lineWidth = 1;
  for (const v of ticks) {
    const p = Math.round(at(v)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    if (dir === 'x') {
      ctx.moveTo(p, f.top);
      ctx.lineTo(p, f.top + f.height);
    } else {
      ctx.moveTo(f.left, p);
      ctx.lineTo(f.left + f.width, p);
    }
    ctx.stroke();
    ctx.strokeStyle = COLORS.axis;
    ctx.beginPath();
    if (dir === 'x') {
      ctx.moveTo(p, f.top + f.height);
      ctx.lineTo(p, f.top + f.height + 4);
    } else {
      ctx.moveTo(f.left - 4, p);
      ctx.lineTo(f.left, p);
    }
    ctx.stroke();
    ctx.fillStyle = COLORS.text;
    if (dir === 'x') {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      ctx.fillText(label(v), p, f.top + f.height + 6);
    } else {
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      ctx.fillText(label(v), f.left - 6, p);
    }
  }
  ctx.fillStyle = COLORS.axis;
  if (dir === 'x') {
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText(title, f.left + f.width / 2, f.top + f.height + 36);
  } else {
    ctx.save();
    ctx.translate(12, f.top + f.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(title, 0, 0);
    ctx.restore();
  }
}

function box(f: Frame): void {
  f.ctx.strokeStyle = COLORS.axis;
  f.ctx.lineWidth = 1;
  f.ctx.strokeRect(f.left + 0.5, f.top + 0.5, f.width, f.height);
}

/**
 * Plots a loss curve over training steps 0…total: logarithmic y axis with ticks at 1, 2 and 5 × 10^k,
 * the raw losses light and, once there are enough, their moving average dark.
 */
export function drawLoss(canvas: HTMLCanvasElement, losses: number[], total: number): void {
  const f = frame(canvas, { left: 52, bottom: 40 });
  const { ctx } = f;
  const n = Math.max(total, losses.length, 2);
  const X = (i: number) => f.left + (f.width * i) / (n - 1);
  axis(f, 'x', niceTicks(0, n, 5), X, tickLabel, 'training step');
  const finite = losses.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) {
    axis(f, 'y', [], () => 0, tickLabel, 'loss (log scale)');
    box(f);
    return;
  }
  let lo = Math.log10(Math.min(...finite)), hi = Math.log10(Math.max(...finite));
  if (hi - lo < 0.3) {
    const mid = (hi + lo) / 2;
    [lo, hi] = [mid - 0.15, mid + 0.15];
  }
  const pad = (hi - lo) * 0.05;
  [lo, hi] = [lo - pad, hi + pad];
  const Y = (v: number) => f.top + f.height * (1 - (Math.log10(v) - lo) / (hi - lo));
  const ticks: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) for (const m of [1, 2, 5]) {
    const v = m * 10 ** e;
    if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(v);
  }
  axis(f, 'y', ticks, Y, tickLabel, 'loss (log scale)');
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.left, f.top, f.width, f.height);
  ctx.clip();
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
  line(losses, COLORS.loss, 1);
  const win = Math.max(1, Math.floor(losses.length / 25));
  if (win > 1) {
    let sum = 0;
    const avg = losses.map((v, i) => {
      sum += v;
      if (i >= win) sum -= losses[i - win]!;
      return sum / Math.min(i + 1, win);
    });
    line(avg, COLORS.lossAvg, 2);
  }
  ctx.restore();
  box(f);
}

/** A layer of a scatter plot: flat [x0, y0, x1, y1, …] points, and optional trails (polylines). */
export interface ScatterLayer {
  points?: Float32Array;
  trails?: number[][];
  color: string;
  size?: number;
}

/** Draws points and trails over [−range, range]² with ticked axes x₁ and x₂. */
export function drawScatter(canvas: HTMLCanvasElement, layers: ScatterLayer[], range = 4): void {
  const f = frame(canvas, { left: 40, bottom: 40 });
  const { ctx } = f;
  const X = (x: number) => f.left + ((x + range) / (2 * range)) * f.width;
  const Y = (y: number) => f.top + f.height - ((y + range) / (2 * range)) * f.height;
  axis(f, 'x', niceTicks(-range, range, 4), X, tickLabel, 'x₁');
  axis(f, 'y', niceTicks(-range, range, 4), Y, tickLabel, 'x₂');
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.left, f.top, f.width, f.height);
  ctx.clip();
  for (const l of layers) {
    ctx.fillStyle = l.color;
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 1.25;
    const s = l.size ?? 2;
    if (l.points) for (let i = 0; i < l.points.length / 2; i++) ctx.fillRect(X(l.points[2 * i]!) - s / 2, Y(l.points[2 * i + 1]!) - s / 2, s, s);
    for (const t of l.trails ?? []) {
      ctx.beginPath();
      for (let i = 0; i < t.length / 2; i++) {
        if (i === 0) ctx.moveTo(X(t[0]!), Y(t[1]!));
        else ctx.lineTo(X(t[2 * i]!), Y(t[2 * i + 1]!));
      }
      ctx.stroke();
      if (t.length >= 2) {
        ctx.beginPath();
        ctx.arc(X(t[t.length - 2]!), Y(t[t.length - 1]!), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  ctx.restore();
  box(f);
}

/** Plays frames from the first to the last (about 12 per second). */
export function play(frames: () => number, draw: (f: number) => void, handle: { id: number }): void {
  cancelAnimationFrame(handle.id);
  const n = frames();
  const t0 = performance.now();
  const tick = () => {
    const f = Math.min(n - 1, Math.floor(((performance.now() - t0) / 1000) * 12));
    draw(f);
    if (f < n - 1) handle.id = requestAnimationFrame(tick);
  };
  handle.id = requestAnimationFrame(tick);
}

/** 'step 3 / 12 · t = 0.75 · σ = 3.00': where a trajectory frame is on the way from noise to data. */
export function frameLabel(f: number, total: number, level: NoiseLevel | undefined, flow: boolean): string {
  if (!level) return `step ${f} / ${total}`;
  // the last point of a DDPM path is the data itself (timestep −1 in the process's numbering)
  const t = flow ? level.t.toFixed(2) : Math.max(0, level.t).toFixed(0);
  const sigma = Number.isFinite(level.sigma) ? (level.sigma < 10 ? level.sigma.toFixed(2) : level.sigma.toFixed(0)) : '∞';
  return `step ${f} / ${total} · t = ${t} · σ = ${sigma}`;
}
