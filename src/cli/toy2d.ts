/** `kiln toy2d`: trains a toy denoiser and writes a scatter plot of data vs samples with trajectories. */
import { writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { encodePng } from '../io/png.js';
import { trainToy, TOY_TRAIN_DEFAULTS } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { outputDir } from './common.js';
import { optionsCommand, type Command, type Defaults } from './help.js';
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

/** The toy data sets. */
const DATASETS: readonly k.data.Toy2D[] = ['moons', '8gaussians', 'swissroll', 'checkerboard'];

/** The sampler of the plotted samples for each objective. */
const TOY_SAMPLER = { flow: 'flow_euler', 'ddpm-eps': 'ddim' } as const satisfies Record<'flow' | 'ddpm-eps', k.diffusion.SamplerName>;

/** What `kiln toy2d` does, in one line. */
const TOY2D_SUMMARY = 'train a 2D diffusion model, plot data vs samples and trajectories';

/** The options of `kiln toy2d`: the parser accepts these, and its help lists them. */
export const TOY2D_OPTIONS: readonly OptionSpec[] = [
  { name: 'dataset', choices: DATASETS, help: 'the 2D distribution to learn' },
  { name: 'objective', choices: ['flow', 'ddpm-eps'], help: `rectified flow (sampled with ${TOY_SAMPLER.flow}) or DDPM ε-prediction (sampled with ${TOY_SAMPLER['ddpm-eps']})` },
  { name: 'steps', value: 'N', help: 'training steps' },
  { name: 'sample-steps', value: 'N', help: 'sampler steps of the plotted samples' },
  { name: 'out', value: 'DIR', help: 'where toy2d-<dataset>-<objective>.png goes' },
];

/** The defaults of `kiln toy2d`'s options (by option name). */
export function toy2dDefaults() {
  return { dataset: DATASETS[0]!, objective: 'flow' as 'flow' | 'ddpm-eps', steps: TOY_TRAIN_DEFAULTS.steps, 'sample-steps': 50, out: 'out' } satisfies Defaults;
}

/** `kiln toy2d` as the command line lists and runs it. */
export const TOY2D: Command = optionsCommand({ name: 'toy2d', summary: TOY2D_SUMMARY, options: TOY2D_OPTIONS, defaults: toy2dDefaults, main: (argv) => toy2dCommand(argv) });

/** `kiln toy2d`. */
export async function toy2dCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln toy2d', argv, TOY2D_OPTIONS);
  const d = toy2dDefaults();
  const opts = {
    dataset: a.string('dataset', d.dataset),
    objective: a.string('objective', d.objective),
    steps: a.number('steps', d.steps, { min: 1, integer: true }),
    sampleSteps: a.number('sample-steps', d['sample-steps'], { min: 1, integer: true }),
    out: a.string('out', d.out),
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
    sampler: TOY_SAMPLER[opts.objective], clip: 5,
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
