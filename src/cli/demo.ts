/**
 * `kiln demo`: renders the Mandelbrot set with fused tensor ops (a picture written to <out>/mandelbrot.png)
 * and times a matmul, reporting the adapter used.
 */
import { writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { encodePng, toBytes } from '../io/png.js';
import { Args, type OptionSpec } from './args.js';
import { outputDir } from './common.js';
import { optionsCommand, type Command, type Defaults } from './help.js';

/** What `kiln demo` does, in one line. */
const DEMO_SUMMARY = 'render the Mandelbrot set with fused kernels and time a matmul';

/** The options of `kiln demo`: the parser accepts these, and its help lists them. */
export const DEMO_OPTIONS: readonly OptionSpec[] = [
  { name: 'size', value: 'N', help: 'width and height of the picture in pixels' },
  { name: 'iters', value: 'N', help: 'iterations of z ← z² + c' },
  { name: 'out', value: 'DIR', help: 'where mandelbrot.png goes' },
];

/** The defaults of `kiln demo`'s options (by option name). */
export function demoDefaults() {
  return { size: 512, iters: 64, out: 'out' } satisfies Defaults;
}

/** `kiln demo` as the command line lists and runs it. */
export const DEMO: Command = optionsCommand({ name: 'demo', summary: DEMO_SUMMARY, options: DEMO_OPTIONS, defaults: demoDefaults, main: (argv) => demoCommand(argv) });

/** `kiln demo`. */
export async function demoCommand(argv: string[]): Promise<void> {
  const opts = new Args('kiln demo', argv, DEMO_OPTIONS);
  const d = demoDefaults();
  const size = opts.number('size', d.size, { min: 1, integer: true });
  const iters = opts.number('iters', d.iters, { min: 1, integer: true });
  const outDir = outputDir(opts.string('out', d.out));
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const t0 = performance.now();
  // z ← z² + c over a grid of c, counting the steps each point stays bounded
  const img = await k.scope(async () => {
    const xs = k.linspace(-2.2, 0.8, size).reshape([1, size]).expand([size, size]);
    const ys = k.linspace(-1.5, 1.5, size).reshape([size, 1]).expand([size, size]);
    let zr = k.zeros([size, size]);
    let zi = k.zeros([size, size]);
    let count = k.zeros([size, size]);
    for (let i = 0; i < iters; i++) {
      const next = k.scope(() => {
        const r2 = zr.mul(zr), i2 = zi.mul(zi);
        const inside = r2.add(i2).le(4);
        const nzr = k.where(inside, r2.sub(i2).add(xs), zr);
        const nzi = k.where(inside, zr.mul(zi).mul(2).add(ys), zi);
        return [nzr, nzi, count.add(inside.cast('f32'))];
      });
      [zr, zi, count].forEach((t) => t.dispose());
      [zr, zi, count] = next as [k.Tensor, k.Tensor, k.Tensor];
      if (i % 16 === 15) await k.realize(zr, zi, count);
    }
    return count.div(iters).sqrt().data();
  });
  const ms = performance.now() - t0;
  const file = `${outDir}/mandelbrot.png`;
  writeFileSync(file, encodePng(toBytes(img), size, size));
  console.log(`mandelbrot ${size}×${size}, ${iters} iterations: ${ms.toFixed(0)} ms → ${file}`);

  const n = 512;
  const a = k.randn([n, n]), b = k.randn([n, n]);
  await k.realize(a, b);
  await a.matmul(b).sum().item();
  const t1 = performance.now();
  const reps = 5;
  const outs = Array.from({ length: reps }, () => a.matmul(b));
  await k.realize(...outs);
  await outs[reps - 1]!.sum().item();
  const sec = (performance.now() - t1) / 1000;
  console.log(`matmul ${n}×${n}: ${((2 * n ** 3 * reps) / sec / 1e9).toFixed(2)} GFLOP/s`);
  console.log('stats:', JSON.stringify(k.stats()));
}
