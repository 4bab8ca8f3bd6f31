/** 2D toy distributions for diffusion experiments, drawn on the host from a seeded Philox stream. */
import { philox4x32 } from '../wgsl/rng.js';

/** The toy datasets. */
export type Toy2D = 'moons' | '8gaussians' | 'swissroll' | 'checkerboard';

/** n points (flat [x0, y0, x1, y1, …]) of a toy distribution, roughly within [−4, 4]², seeded. */
export function toy2d(name: Toy2D, n: number, seed = 0): Float32Array {
  let ctr = 0;
  const u = () => (philox4x32(ctr++, 0x70792d32, 0, 0, seed >>> 0, 0x746f79)[0] >>> 8) * 2 ** -24;
  const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    let x: number, y: number;
    switch (name) {
      case 'moons': {
        const upper = u() < 0.5, a = Math.PI * u();
        [x, y] = upper ? [Math.cos(a), Math.sin(a)] : [1 - Math.cos(a), 0.5 - Math.sin(a)];
        x = (x - 0.5) * 2 + 0.1 * normal();
        y = (y - 0.25) * 2 + 0.1 * normal();
        break;
      }
      case '8gaussians': {
        const k = Math.floor(u() * 8), a = (k * Math.PI) / 4;
        x = 2 * Math.cos(a) + 0.1 * normal();
        y = 2 * Math.sin(a) + 0.1 * normal();
        break;
      }
      case 'swissroll': {
        const t = 1.5 * Math.PI * (1 + 2 * u());
        x = (t * Math.cos(t)) / 5 + 0.1 * normal();
        y = (t * Math.sin(t)) / 5 + 0.1 * normal();
        break;
      }
      case 'checkerboard': {
        x = u() * 4 - 2;
        // FFJORD's checkerboard: squares where ⌊x⌋ + ⌊y⌋ is even
        const y0 = u() - 2 * Math.floor(u() * 2);
        y = y0 + (((Math.floor(x) % 2) + 2) % 2);
        x *= 1.5;
        y *= 1.5;
        break;
      }
      default:
        throw new Error(`toy2d: unknown dataset ${JSON.stringify(name)} (moons, 8gaussians, swissroll, checkerboard)`);
    }
    out[2 * i] = x;
    out[2 * i + 1] = y;
  }
  return out;
}

/** Distance from a point to the region of a segment [a, b] (0 inside). */
const outside = (v: number, a: number, b: number) => Math.max(a - v, 0, v - b);

/**
 * Distance from (x, y) to the set a toy distribution is drawn around, before its noise: the two moons' arcs,
 * the 8 modes, the swiss roll's spiral, the checkerboard's filled squares (0 inside). Samples of a good
 * model lie within a few noise σ (0.1) of it; a blob does not.
 */
export function toy2dDistance(name: Toy2D, x: number, y: number): number {
  switch (name) {
    case 'moons': {
      // half circles of radius 2 centred at (−1, −0.5) (upper) and (1, 0.5) (lower)
      const arc = (cx: number, cy: number, upper: boolean) =>
        (upper ? y >= cy : y <= cy) ? Math.abs(Math.hypot(x - cx, y - cy) - 2) : Math.min(Math.hypot(x - cx - 2, y - cy), Math.hypot(x - cx + 2, y - cy));
      return Math.min(arc(-1, -0.5, true), arc(1, 0.5, false));
    }
    case '8gaussians': {
      let d = Infinity;
      for (let k = 0; k < 8; k++) d = Math.min(d, Math.hypot(x - 2 * Math.cos((k * Math.PI) / 4), y - 2 * Math.sin((k * Math.PI) / 4)));
      return d;
    }
    case 'swissroll': {
      // the spiral (t cos t, t sin t) / 5 for t in [1.5π, 4.5π], sampled densely
      let d = Infinity;
      for (let i = 0; i <= 2000; i++) {
        const t = 1.5 * Math.PI * (1 + (2 * i) / 2000);
        d = Math.min(d, Math.hypot(x - (t * Math.cos(t)) / 5, y - (t * Math.sin(t)) / 5));
      }
      return d;
    }
    case 'checkerboard': {
      // squares of side 1.5 on [−3, 3]²: columns c = −2…1 (x ∈ [1.5c, 1.5c + 1.5]) hold rows with c + r even
      let d = Infinity;
      for (let c = -2; c < 2; c++) for (let r = -2; r < 2; r++) {
        if ((((c + r) % 2) + 2) % 2 !== 0) continue;
        d = Math.min(d, Math.hypot(outside(x, 1.5 * c, 1.5 * c + 1.5), outside(y, 1.5 * r, 1.5 * r + 1.5)));
      }
      return d;
    }
    default:
      throw new Error(`toy2dDistance: unknown dataset ${JSON.stringify(name)} (moons, 8gaussians, swissroll, checkerboard)`);
  }
}

/**
 * Share of points (flat [x0, y0, x1, y1, …]) within `tol` of a toy distribution's set (`toy2dDistance`):
 * by default 3σ of the data's noise (0.3), and inside the squares for the (noise-free) checkerboard.
 */
export function toy2dNear(name: Toy2D, points: ArrayLike<number>, tol = name === 'checkerboard' ? 0 : 0.3): number {
  let n = 0;
  for (let i = 0; i + 1 < points.length; i += 2) if (toy2dDistance(name, points[i]!, points[i + 1]!) <= tol) n++;
  return n / Math.max(1, Math.floor(points.length / 2));
}
