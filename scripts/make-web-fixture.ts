/**
 * Writes the fixtures of the browser-vs-Node tests:
 *   tests/fixtures/mnist-tiny.safetensors   a tiny class-conditional UNet trained on MNIST (EMA weights only,
 *                                            so it stays small) in the checkpoint format `loadDenoiser` reads;
 *   tests/fixtures/mnist-tiny-golden.json   the sampling options of the golden sample and how it was made;
 *   tests/fixtures/mnist-tiny-golden.f32    the golden sample, float32 little-endian [N, 1, 28, 28], made in Node
 *                                            exactly as `kiln sample` makes it (k.diffusion.generate).
 *
 * The golden sample comes from the code the browser test then checks, so it only catches changes (a
 * regression snapshot). Whether it is right is checked in tests/node/web.test.ts against two of its images
 * recomputed independently: the UNet on the float64 CPU reference device and the guided Euler loop written
 * out in the test, not through `generate`.
 *
 *   npx tsx scripts/make-web-fixture.ts [--steps 1200] [--golden-only] [--golden-out FILE]
 *
 * `--golden-only` keeps the checkpoint and only recomputes the golden sample. `--golden-out FILE` writes
 * the golden sample of the committed checkpoint to FILE instead (the tests use it to sample in Node on
 * another adapter, e.g. with VK_ICD_FILENAMES pointing at SwiftShader) and touches no fixture.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '../src/index.js';
import { Args } from '../src/cli/args.js';
import { Progress } from '../src/cli/progress.js';
import { DiffusionTrainer, TRAIN_DEFAULTS, type TrainConfig } from '../src/train/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'tests/fixtures');
const ckpt = join(dir, 'mnist-tiny.safetensors');

/** The tiny backbone: about 41k parameters, 14×14 internally (pixel-unshuffle stem), no attention. */
const MODEL = { widths: [8, 16], depth: 1, attention: [], midAttention: false, heads: 2, groups: 4, patch: 2 };

/** How the golden sample is drawn (the browser test draws the same one in the demo page). */
const GOLDEN = { labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], perClass: 1, sampler: 'flow_euler' as k.diffusion.SamplerName, steps: 10, guidance: 2, seed: 7 };

async function train(steps: number): Promise<void> {
  const config: TrainConfig = { ...TRAIN_DEFAULTS, objective: 'flow', steps, batchSize: 32, lr: 4e-3, warmup: Math.min(50, steps >> 3), emaDecay: 0.99, seed: 0 };
  const model = k.diffusion.buildDenoiser('unet', MODEL);
  const spec = { kind: 'unet', config: (model as unknown as { config: object }).config };
  k.manualSeed(config.seed);
  const trainer = new DiffusionTrainer(model, config);
  const data = await k.data.loadMnist('train');
  const bar = new Progress(steps, 'fixture ');
  const batches = new k.data.StepBatches(data, config.batchSize, config.seed);
  while (trainer.step < steps) {
    const { x, y } = batches.at(trainer.step);
    await trainer.trainStep(x, y);
    x.dispose();
    y.dispose();
    const recent = trainer.losses.slice(-20);
    bar.update(trainer.step, { loss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN });
  }
  const tmp = `${ckpt}.full`;
  await trainer.save(tmp, { model: spec });
  // keep only the EMA weights (what loadDenoiser reads) and the metadata
  const { tensors, metadata } = await k.loadWithMetadata(tmp);
  const ema = Object.fromEntries(Object.entries(tensors).filter(([n]) => n.startsWith('ema.')));
  await k.save(ema, ckpt, { metadata });
  for (const t of Object.values(tensors)) t.dispose();
  rmSync(tmp);
  const first = trainer.losses.slice(0, 20), last = trainer.losses.slice(-20);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  console.log(`trained ${steps} steps: loss ${mean(first).toFixed(3)} → ${mean(last).toFixed(3)}; wrote ${ckpt} (${readFileSync(ckpt).length} bytes)`);
}

/** Samples the golden settings from the checkpoint and writes them (to `out`, or as the fixture with its JSON). */
async function golden(out?: string): Promise<void> {
  const { model, meta } = await k.diffusion.loadDenoiser(ckpt);
  const objective = (meta.train as TrainConfig).objective;
  const labels = GOLDEN.labels.flatMap((l) => Array<number>(GOLDEN.perClass).fill(l));
  const x = await k.noGrad(() => k.diffusion.generate(model, { objective, labels, shape: [1, 28, 28], sampler: GOLDEN.sampler, steps: GOLDEN.steps, guidance: GOLDEN.guidance, seed: GOLDEN.seed }));
  const values = (await x.data()) as Float32Array;
  x.dispose();
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (out) {
    writeFileSync(out, bytes);
    console.log(`wrote ${out} (${k.deviceInfo().driver})`);
    return;
  }
  writeFileSync(join(dir, 'mnist-tiny-golden.f32'), bytes);
  const info = { ...GOLDEN, objective, shape: [labels.length, 1, 28, 28], dtype: 'float32-le', adapter: k.deviceInfo().driver, command: `npm run kiln -- sample --checkpoint tests/fixtures/mnist-tiny.safetensors --labels ${GOLDEN.labels.join(',')} --per-class ${GOLDEN.perClass} --sampler ${GOLDEN.sampler} --steps ${GOLDEN.steps} --guidance ${GOLDEN.guidance} --seed ${GOLDEN.seed}` };
  writeFileSync(join(dir, 'mnist-tiny-golden.json'), `${JSON.stringify(info, null, 2)}\n`);
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  console.log(`golden sample [${info.shape}] in [${lo.toFixed(3)}, ${hi.toFixed(3)}] on ${info.adapter}`);
}

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log('npx tsx scripts/make-web-fixture.ts [--steps 1200] [--golden-only] [--golden-out FILE]   (see the comment at the top of the script)');
  process.exit(0);
}
const args = new Args('npx tsx scripts/make-web-fixture.ts', argv, { options: ['steps', 'golden-out'], flags: ['golden-only'] });
try {
  await k.init();
  const out = args.has('golden-out') ? args.string('golden-out', '') : undefined;
  mkdirSync(dir, { recursive: true });
  if (!out && !args.flag('golden-only')) await train(args.number('steps', 1200, { min: 1, integer: true }));
  await golden(out);
} finally {
  k.destroy();
}
process.exit(0);
