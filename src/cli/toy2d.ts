/** `kiln toy2d`: trains a toy denoiser and writes a scatter plot of data vs samples with trajectories. */
import { writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { encodePng } from '../io/png.js';
import { trainToy, TOY_TRAIN_DEFAULTS } from '../train/index.js';
import { Args } from './args.js';
import { outputDir } from './common.js';
import { Progress } from './progress.js';

/** Draws points (and optional polylines) into an RGB panel of `size`² pixels covering [−range, range]². */
function panel(size: number, range: number, layers: { points: ArrayLike<number>; color: [number, number, number]; lines?: boolean }[]): Uint8Array {
  const img = new Uint8Array(size * size * 3).fill(255);
  const px = (x: number) => Math.round(((x + range) / (2 * range)) * (size - 1));
  const put = (x: number, y: number, c: [number, number, number]) => {
    const i = px(x), j = size - 1 - px(y);
    for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) {
      const a = i + dx, b = j + dy;
      if (a >= 0 && b >= 0 && a < size && b < size) img.set(c, (b * size + a) * 3);
    }
  };
  for (const l of layers) {
    const p = l.points;
    for (let i = 0; i < p.length / 2; i++) {
      put(p[2 * i]!, p[2 * i + 1]!, l.color);
      if (l.lines && i > 0) {
        for (let s = 1; s < 8; s++) put(p[2 * i - 2]! + ((p[2 * i]! - p[2 * i - 2]!) * s) / 8, p[2 * i - 1]! + ((p[2 * i + 1]! - p[2 * i - 1]!) * s) / 8, l.color);
      }
    }
  }
  return img;
}

/** `kiln toy2d`. */
export async function toy2dCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln toy2d', argv, { options: ['dataset', 'objective', 'steps', 'sample-steps', 'out'] });
  const opts = {
    dataset: a.string<k.data.Toy2D>('dataset', 'moons', ['moons', '8gaussians', 'swissroll', 'checkerboard']),
    objective: a.string('objective', 'flow', ['flow', 'ddpm-eps'] as const),
    steps: a.number('steps', TOY_TRAIN_DEFAULTS.steps, { min: 1, integer: true }),
    sampleSteps: a.number('sample-steps', 50, { min: 1, integer: true }),
    out: a.string('out', 'out'),
  };
  outputDir(opts.out);
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  console.log(`wrote ${await toy2d(opts)}`);
}

/** Runs the toy experiment and writes `${out}/toy2d-<dataset>-<objective>.png`. */
async function toy2d(opts: { dataset: k.data.Toy2D; objective: 'ddpm-eps' | 'flow'; steps: number; sampleSteps: number; out: string }): Promise<string> {
  const bar = new Progress(opts.steps, `toy2d ${opts.dataset} ${opts.objective} `);
  const r = await trainToy({ dataset: opts.dataset, objective: opts.objective, steps: opts.steps, onStep: (i, loss) => bar.update(i + 1, { loss }) });
  bar.update(opts.steps);
  k.manualSeed(1);
  const path = k.diffusion.samplingPath(r.process, { steps: opts.sampleSteps });
  const trails: number[][] = Array.from({ length: 12 }, () => []);
  const { x } = await k.diffusion.sample({
    model: r.net.asModel(), prediction: r.prediction, process: r.process, path, noise: k.randn([1000, 2]),
    sampler: opts.objective === 'flow' ? 'flow_euler' : 'ddim', clip: 5,
    onStep: async ({ x: xi }) => {
      const v = await xi.slice(0, 0, 12).data();
      trails.forEach((tr, i) => tr.push(v[2 * i]!, v[2 * i + 1]!));
    },
  });
  const samples = await x.data();
  const data = k.data.toy2d(opts.dataset, 1000, 123);
  const S = 320;
  const left = panel(S, 4, [{ points: data, color: [60, 60, 60] }]);
  const right = panel(S, 4, [{ points: samples, color: [30, 90, 200] }, ...trails.map((t) => ({ points: t, color: [220, 60, 30] as [number, number, number], lines: true }))]);
  const img = new Uint8Array(2 * S * S * 3);
  for (let row = 0; row < S; row++) {
    img.set(left.subarray(row * S * 3, (row + 1) * S * 3), row * 2 * S * 3);
    img.set(right.subarray(row * S * 3, (row + 1) * S * 3), row * 2 * S * 3 + S * 3);
  }
  const file = `${opts.out}/toy2d-${opts.dataset}-${opts.objective}.png`;
  writeFileSync(file, encodePng(img, 2 * S, S, 3));
  const held = k.data.toy2d(opts.dataset, 1000, 321);
  console.log(`energy distance samples↔data ${k.diffusion.energyDistance(samples, held, 2).toFixed(4)} (data↔data ${k.diffusion.energyDistance(data, held, 2).toFixed(4)})`);
  const pct = (p: ArrayLike<number>) => `${(100 * k.data.toy2dNear(opts.dataset, p)).toFixed(1)}%`;
  console.log(`on the data (k.data.toy2dNear): ${pct(samples)} of the samples (held-out data: ${pct(held)})`);
  return file;
}
