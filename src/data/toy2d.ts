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
