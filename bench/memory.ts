/**
 * Training memory: the peak of live GPU bytes of a compiled training step with gradient checkpointing off
 * and on, and the step time, for the default MNIST UNet and DiT of `kiln train` (the cpu preset that a
 * software adapter picks) and the default VAE of `kiln train-vae` (before its discriminator starts).
 * The peak counts everything the step keeps live beyond what was live before the model was made
 * (weights, optimizer state, the step's buffers and temporaries), from `k.memory().peakBytes` after
 * `k.resetPeakMemory()` over the timed steps. Prints one JSON line, then a table.
 *
 *   npm run bench:memory [-- --batch N]
 */
import * as k from '../src/index.js';
import { DiffusionTrainer, TRAIN_DEFAULTS, VAETrainer, VAE_TRAIN_DEFAULTS } from '../src/train/index.js';
import { PRESETS } from '../src/cli/diffusion.js';

const at = process.argv.indexOf('--batch');
const BATCH = at > 0 ? Number(process.argv[at + 1]) : 128;
const WARMUP = 4, TIMED = 2;

interface Figures { peakMB: number; ms: number }

/** Peak MB above the bytes live before `make`, and ms per step, of compiled steps of the trainer `make` returns. */
async function measure(make: () => { step: () => Promise<void>; flush: () => Promise<void> }): Promise<Figures> {
  await k.synchronize();
  const base = k.memory().liveBytes;
  const { step, flush } = make();
  for (let i = 0; i < WARMUP; i++) await step();
  await flush();
  await k.synchronize();
  k.resetPeakMemory();
  const t = performance.now();
  for (let i = 0; i < TIMED; i++) await step();
  await flush();
  await k.synchronize();
  return { peakMB: (k.memory().peakBytes - base) / 2 ** 20, ms: (performance.now() - t) / TIMED };
}

function diffusion(kind: 'unet' | 'dit', checkpointed: boolean) {
  k.manualSeed(0);
  const model = k.diffusion.buildDenoiser(kind, { ...(kind === 'unet' ? PRESETS.cpu.unet : PRESETS.cpu.dit) }) as k.nn.UNet | k.nn.DiT;
  model.gradientCheckpointing = checkpointed;
  const tr = new DiffusionTrainer(model, { ...TRAIN_DEFAULTS, steps: 1000, batchSize: BATCH });
  const x = k.rand([BATCH, 1, 28, 28]).mul(2).sub(1).keep(), y = k.randint(0, 10, [BATCH]).keep();
  return { step: () => tr.trainStep(x, y), flush: () => tr.flush() };
}

function vae(checkpointed: boolean) {
  k.manualSeed(0);
  const model = new k.nn.VAE();
  model.gradientCheckpointing = checkpointed;
  const tr = new VAETrainer(model, { ...VAE_TRAIN_DEFAULTS, discStart: 1e9 }, null);
  const x = k.rand([BATCH, 1, 28, 28]).mul(2).sub(1).keep();
  return { step: () => tr.trainStep(x), flush: () => tr.flush() };
}

const info = await k.init();
const rows: [string, Figures, Figures][] = [];
for (const [name, make] of [['UNet (cpu preset)', (c: boolean) => diffusion('unet', c)], ['DiT (cpu preset)', (c: boolean) => diffusion('dit', c)], ['VAE (default)', vae]] as const) {
  const off = await measure(() => make(false));
  const on = await measure(() => make(true));
  rows.push([name, off, on]);
}
const result = Object.fromEntries(rows.map(([name, off, on]) => [name, { off, checkpointing: on, peakReduction: 1 - on.peakMB / off.peakMB, slowdown: on.ms / off.ms }]));
console.log(JSON.stringify({ adapter: info.driver, batch: BATCH, results: result }));
console.log(`\nadapter: ${info.driver}; batch ${BATCH}; compiled steps (${WARMUP} warm-up, ${TIMED} timed)`);
console.log(`${'step'.padEnd(20)} ${'peak MB off'.padStart(12)} ${'peak MB ckpt'.padStart(13)} ${'lower by'.padStart(9)} ${'ms off'.padStart(8)} ${'ms ckpt'.padStart(8)} ${'slower'.padStart(7)}`);
for (const [name, off, on] of rows) {
  const target = name.startsWith('UNet') ? `  target: ≥ 40 % lower, ≤ 1.4× slower (${1 - on.peakMB / off.peakMB >= 0.4 && on.ms / off.ms <= 1.4 ? 'met' : 'not met'})` : '';
  console.log(`${name.padEnd(20)} ${off.peakMB.toFixed(1).padStart(12)} ${on.peakMB.toFixed(1).padStart(13)} ${`${((1 - on.peakMB / off.peakMB) * 100).toFixed(0)} %`.padStart(9)} ${off.ms.toFixed(0).padStart(8)} ${on.ms.toFixed(0).padStart(8)} ${`${(on.ms / off.ms).toFixed(2)}×`.padStart(7)}${target}`);
}
k.destroy();
process.exit(0);
