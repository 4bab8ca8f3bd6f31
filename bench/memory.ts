/**
 * Training memory: the peak of live GPU bytes of a compiled training step in f32, with gradient
 * checkpointing, in mixed precision (f16 under k.autocast, with loss scaling) and with both, and the step
 * time, for the default MNIST UNet and DiT of `kiln train` (the cpu preset that a software adapter picks)
 * and the default VAE of `kiln train-vae` (before its discriminator starts).
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
const WARMUP = 4, TIMED = 2, ROUNDS = 5;

interface Figures { peakMB: number; ms: number }
type Run = { step: () => Promise<void>; flush: () => Promise<void> };

/** Peak MB above the bytes live before `make` over compiled steps of the trainer `make` returns (kept for timing). */
async function measure(make: () => Run): Promise<{ peakMB: number; run: Run }> {
  await k.synchronize();
  const base = k.memory().liveBytes;
  const run = make();
  for (let i = 0; i < WARMUP; i++) await run.step();
  await run.flush();
  await k.synchronize();
  k.resetPeakMemory();
  for (let i = 0; i < TIMED; i++) await run.step();
  await run.flush();
  await k.synchronize();
  return { peakMB: (k.memory().peakBytes - base) / 2 ** 20, run };
}

/**
 * ms per step of each run: ROUNDS rounds that time TIMED steps of every run in turn, the median per run (on a
 * shared machine a load change then hits every variant alike instead of the one being timed).
 */
async function timeInterleaved(runs: Run[]): Promise<number[]> {
  const times = runs.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, run] of runs.entries()) {
      await k.synchronize();
      const t = performance.now();
      for (let s = 0; s < TIMED; s++) await run.step();
      await run.flush();
      await k.synchronize();
      times[i]!.push((performance.now() - t) / TIMED);
    }
  }
  return times.map((v) => [...v].sort((a, b) => a - b)[v.length >> 1]!);
}

/** One measured configuration of a step. */
interface Variant { checkpointed: boolean; precision: 'f32' | 'f16' }
const VARIANTS: Record<string, Variant> = {
  f32: { checkpointed: false, precision: 'f32' },
  checkpointing: { checkpointed: true, precision: 'f32' },
  f16: { checkpointed: false, precision: 'f16' },
  'f16 + checkpointing': { checkpointed: true, precision: 'f16' },
};

function diffusion(kind: 'unet' | 'dit', v: Variant) {
  k.manualSeed(0);
  const model = k.diffusion.buildDenoiser(kind, { ...(kind === 'unet' ? PRESETS.cpu.unet : PRESETS.cpu.dit) }) as k.nn.UNet | k.nn.DiT;
  model.gradientCheckpointing = v.checkpointed;
  const tr = new DiffusionTrainer(model, { ...TRAIN_DEFAULTS, steps: 1000, batchSize: BATCH, precision: v.precision });
  const x = k.rand([BATCH, 1, 28, 28]).mul(2).sub(1).keep(), y = k.randint(0, 10, [BATCH]).keep();
  return { step: () => tr.trainStep(x, y), flush: () => tr.flush() };
}

function vae(v: Variant) {
  k.manualSeed(0);
  const model = new k.nn.VAE();
  model.gradientCheckpointing = v.checkpointed;
  const tr = new VAETrainer(model, { ...VAE_TRAIN_DEFAULTS, discStart: 1e9, precision: v.precision }, null);
  const x = k.rand([BATCH, 1, 28, 28]).mul(2).sub(1).keep();
  return { step: () => tr.trainStep(x), flush: () => tr.flush() };
}

const info = await k.init();
const f16 = info.features.includes('shader-f16');
const models = [['UNet (cpu preset)', (v: Variant) => diffusion('unet', v)], ['DiT (cpu preset)', (v: Variant) => diffusion('dit', v)], ['VAE (default)', vae]] as const;
const results: Record<string, Record<string, Figures | null>> = {};
for (const [name, make] of models) {
  results[name] = {};
  const measured: [string, { peakMB: number; run: Run }][] = [];
  for (const [vname, v] of Object.entries(VARIANTS)) {
    const supported = v.precision === 'f32' || f16;
    if (supported) measured.push([vname, await measure(() => make(v))]);
    else results[name]![vname] = null;
  }
  const ms = await timeInterleaved(measured.map(([, m]) => m.run));
  measured.forEach(([vname, m], i) => (results[name]![vname] = { peakMB: m.peakMB, ms: ms[i]! }));
}
console.log(JSON.stringify({ adapter: info.driver, f16, batch: BATCH, results }));
console.log(`\nadapter: ${info.driver}${f16 ? '' : ' (no shader-f16: f16 rows not measured)'}; batch ${BATCH}; compiled steps (${WARMUP} warm-up; ms: median of ${ROUNDS} interleaved rounds of ${TIMED} steps); peak MiB and ms per step, change against f32`);
const names = Object.keys(VARIANTS);
console.log(`${'step'.padEnd(20)} ${names.map((n) => n.padStart(24)).join(' ')}`);
const TARGETS: Record<string, number> = { checkpointing: 0.4, f16: 0.35 };
for (const [name] of models) {
  const base = results[name]!.f32!;
  const cells = names.map((n) => {
    const f = results[name]![n];
    if (!f) return '–'.padStart(24);
    const change = n === 'f32' ? '' : ` (${((1 - f.peakMB / base.peakMB) * 100).toFixed(0)} %, ${(f.ms / base.ms).toFixed(2)}×)`;
    return `${f.peakMB.toFixed(1)} MiB ${f.ms.toFixed(0)} ms${change}`.padStart(24);
  });
  console.log(`${name.padEnd(20)} ${cells.join(' ')}`);
  if (name.startsWith('UNet')) {
    for (const [n, want] of Object.entries(TARGETS)) {
      const f = results[name]![n];
      if (!f) continue;
      const lower = 1 - f.peakMB / base.peakMB;
      const slowOk = n !== 'checkpointing' || f.ms / base.ms <= 1.4;
      console.log(`  target ${n}: ≥ ${want * 100} % lower${n === 'checkpointing' ? ', ≤ 1.4× slower' : ''}: ${(lower * 100).toFixed(0)} % (${lower >= want && slowOk ? 'met' : 'not met'})`);
    }
  }
}
k.destroy();
process.exit(0);
