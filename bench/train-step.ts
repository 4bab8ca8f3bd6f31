/**
 * Training-step benchmark: the MNIST MLP 784-512-512-10 (batch 128, AdamW, loss read back every step)
 * and a denoiser MLP (784 + 128-d time embedding → 1024 → 1024 → 784, SiLU, MSE, forward + backward,
 * batch 128), the default MNIST diffusion UNet step of `kiln train`, the default DiT's and VAE's steps —
 * each compiled (`k.compile`) and eager in the same run. Prints one JSON line, then a table.
 *
 *   npm run bench:train [-- --quick] [-- --bake-index-constants] [-- --dawn-busy-poll] [-- --scalar] [-- --no-share]
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench:train
 */
import * as k from '../src/index.js';
import { DiffusionTrainer, TRAIN_DEFAULTS, VAETrainer, VAE_TRAIN_DEFAULTS } from '../src/train/index.js';
import { indexLifting } from '../src/wgsl/kernels.js';

const QUICK = process.argv.includes('--quick');
/** `--scalar`: kernels read and write one element at a time (no vec4), for comparison with the default. */
const SCALAR = process.argv.includes('--scalar');
/** `--no-share`: register-tile matmuls load every row of A themselves (no subgroup sharing), for comparison. */
const NO_SHARE = process.argv.includes('--no-share');
// every kernel with its index constants baked into its source (one pipeline per shape), for comparison
if (process.argv.includes('--bake-index-constants')) indexLifting.limit = 0;
// Dawn's own waiting (a setImmediate loop that keeps a core busy while the GPU works), for comparison
if (process.argv.includes('--dawn-busy-poll')) (globalThis as { __kilnDawnPolling?: true }).__kilnDawnPolling = true;
const STEPS = QUICK ? 5 : 15;

/** Figures measured on this machine by others (ms per step; lavapipe / SwiftShader). */
const REFERENCE = {
  mlpStep: { tfjs: [189, 1337], jaxjs: [142, 304], target: [50, 250] },
  denoiserStep: { tfjs: [551, 4939], jaxjs: [547, 1079], target: [250, null] },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Time and pipelines compiled of the warm-up steps of the last `timeSteps` (a cold start when the driver's shader cache is empty). */
let warmup = { ms: 0, pipelines: 0 };

/** One step: submits its work and returns what to wait for (a loss to read back, or nothing). */
type Step = () => Promise<k.Tensor | void>;

/**
 * Median ms per step (submit to result read back), and median host ms: with the GPU idle, the time from
 * the call until the step's work is submitted — graph building, autograd, planning, encoding (eager), or
 * patching and encoding (compiled). The first three steps warm up (pipelines, pool; a compiled step
 * records its first calls eagerly); five more let the first replays make their bind groups and V8 optimize
 * the code every step runs, so the figures are those of a long training run.
 */
async function timeSteps(step: Step, steps = STEPS): Promise<{ ms: number; hostMs: number }> {
  const t0 = performance.now(), p0 = k.stats().pipelinesCompiled;
  for (let i = 0; i < 3; i++) await finish(await step());
  warmup = { ms: performance.now() - t0, pipelines: k.stats().pipelinesCompiled - p0 };
  for (let i = 0; i < 5; i++) await finish(await step());
  const times: number[] = [], host: number[] = [];
  for (let i = 0; i < steps; i++) {
    await k.synchronize();
    const t = performance.now();
    const out = await step();
    host.push(performance.now() - t);
    await finish(out);
    times.push(performance.now() - t);
  }
  return { ms: median(times), hostMs: median(host) };
}

async function finish(out: k.Tensor | void): Promise<void> {
  if (out) {
    await out.item();
    out.dispose();
  } else await k.synchronize();
}

interface StepFigures { ms: number; hostMs: number; kernels: number; pipelines: number; step: Step }

/** Times a step and counts its kernels. */
async function measure(step: Step, steps = STEPS): Promise<StepFigures> {
  const { ms, hostMs } = await timeSteps(step, steps);
  const before = k.stats().kernels;
  await finish(await step());
  return { ms, hostMs, kernels: k.stats().kernels - before, pipelines: warmup.pipelines, step };
}

/** The MNIST MLP 784-512-512-10, AdamW, batch 128, its loss read back every step; compiled or eager. */
async function mlpStep(compiled: boolean): Promise<StepFigures> {
  k.manualSeed(0);
  const net = new k.nn.Sequential(new k.nn.Linear(784, 512), new k.nn.ReLU(), new k.nn.Linear(512, 512), new k.nn.ReLU(), new k.nn.Linear(512, 10));
  const opt = new k.optim.AdamW(net, { lr: 1e-3 });
  const x = k.randn([128, 784]).keep();
  const y = k.randint(0, 10, [128]).keep();
  await k.realize(x, y, ...net.parameters());
  const update = k.compile((xb: k.Tensor, yb: k.Tensor) => opt.minimize(() => k.F.crossEntropy(net.forward(xb), yb)), { name: 'mlpStep', enabled: compiled });
  return measure(async () => update(x, y));
}

async function denoiserStep(): Promise<StepFigures> {
  k.manualSeed(0);
  const net = new k.nn.Sequential(new k.nn.Linear(784 + 128, 1024), new k.nn.SiLU(), new k.nn.Linear(1024, 1024), new k.nn.SiLU(), new k.nn.Linear(1024, 784));
  const x = k.randn([128, 784 + 128]).keep();
  const target = k.randn([128, 784]).keep();
  await k.realize(x, target);
  return measure(async () => {
    const loss = k.scope(() => {
      const l = k.F.mseLoss(net.forward(x), target);
      l.backward();
      return l;
    });
    await k.realize(...net.parameters().map((p) => p.grad!));
    net.zeroGrad();
    return loss;
  });
}

/** A trainer's step on a fixed batch (its loss is read one step late by the trainer; `finish` waits for the GPU). */
function trainerStep(tr: { trainStep: (...b: k.Tensor[]) => Promise<void>; flush: () => Promise<void>; compile: boolean }, compiled: boolean, ...batch: k.Tensor[]): Step {
  tr.compile = compiled;
  return async () => {
    await tr.trainStep(...batch);
  };
}

/** The default MNIST diffusion step (UNet of the cpu preset, batch 32, the trainer of kiln train). */
async function unetStep(compiled: boolean, steps = STEPS): Promise<StepFigures> {
  k.manualSeed(0);
  const net = new k.nn.UNet({ widths: [16, 32], attention: [], midAttention: false, heads: 2, patch: 2 });
  const tr = new DiffusionTrainer(net, { ...TRAIN_DEFAULTS, steps: 1000, batchSize: 32 });
  const x = k.rand([32, 1, 28, 28]).mul(2).sub(1).keep();
  const y = k.randint(0, 10, [32]).keep();
  return measure(trainerStep(tr, compiled, x, y), steps);
}

/** The default MNIST DiT (7×7 tokens) trained by the same trainer, batch 32. */
async function ditStep(compiled: boolean): Promise<StepFigures> {
  k.manualSeed(0);
  const tr = new DiffusionTrainer(new k.nn.DiT(), { ...TRAIN_DEFAULTS, steps: 1000, batchSize: 32 });
  const x = k.rand([32, 1, 28, 28]).mul(2).sub(1).keep();
  const y = k.randint(0, 10, [32]).keep();
  return measure(trainerStep(tr, compiled, x, y), Math.min(STEPS, 5));
}

/** The default MNIST VAE's training step (batch 16, before the discriminator switches on). */
async function vaeStep(compiled: boolean): Promise<StepFigures> {
  k.manualSeed(0);
  const tr = new VAETrainer(new k.nn.VAE(), { ...VAE_TRAIN_DEFAULTS, discStart: 1e9 }, null);
  const x = k.rand([16, 1, 28, 28]).mul(2).sub(1).keep();
  return measure(trainerStep(tr, compiled, x), Math.min(STEPS, 5));
}

const info = await k.init();
if (SCALAR || NO_SHARE) await k.init({ tuning: { ...(SCALAR ? { vectorWidth: 1 as const } : {}), ...(NO_SHARE ? { matmulShareRows: false } : {}) } });
const driver = info.driver;
const col = driver === 'swiftshader' ? 1 : 0;
// the compiled UNet runs first: its warm-up pipelines are those of a cold `kiln train` step
const unet = await unetStep(true);
const gpuMs = (await k.profile(async () => finish(await unet.step()))).reduce((a, p) => a + p.ms, 0);
const unetEager = await unetStep(false);
const mlp = await mlpStep(true);
const mlpEager = await mlpStep(false);
const den = await denoiserStep();
const dit = await ditStep(true);
const ditEager = await ditStep(false);
const vae = await vaeStep(true);
const vaeEager = await vaeStep(false);
const figures = ({ step: _, ...f }: StepFigures) => f;
const pair = (c: StepFigures, e: StepFigures) => ({ compiled: figures(c), eager: figures(e), speedup: e.ms / c.ms, hostSpeedup: e.hostMs / c.hostMs });
const result = {
  adapter: { driver, description: info.description },
  mlpStep: { ...pair(mlp, mlpEager), gflopPerStep: 0.51, gflops: 0.51 / (mlp.ms / 1000) },
  denoiserStep: { ms: den.ms, hostMs: den.hostMs, kernelsPerStep: den.kernels, gflopPerStep: 2.1, gflops: 2.1 / (den.ms / 1000) },
  unetStep: { ...pair(unet, unetEager), gpuMs, coldPipelines: unet.pipelines },
  ditStep: pair(dit, ditEager),
  vaeStep: pair(vae, vaeEager),
  reference: REFERENCE,
};
console.log(JSON.stringify(result));
const f = (x: number) => x.toFixed(1).padStart(8);
const row = (name: string, ms: number, ref: { tfjs: number[]; jaxjs: number[]; target: (number | null)[] }) =>
  `${name.padEnd(34)} ${f(ms)} ms   tfjs ${String(ref.tfjs[col]).padStart(5)}   jax-js ${String(ref.jaxjs[col]).padStart(5)}   target ${ref.target[col] ?? '-'}${ref.target[col] ? (ms <= ref.target[col]! ? '  met' : '  not met') : ''}`;
console.log(`\nadapter: ${driver} (${info.description})`);
console.log(row('MLP 784-512-512-10 AdamW step', mlp.ms, REFERENCE.mlpStep));
console.log(row('denoiser MLP fwd+bwd step', den.ms, REFERENCE.denoiserStep));
console.log(`\n${'step (same run)'.padEnd(26)} ${'compiled ms'.padStart(12)} ${'eager ms'.padStart(10)} ${'speed-up'.padStart(9)} ${'host ms c/e'.padStart(16)} ${'kernels'.padStart(8)} ${'pipelines'.padStart(10)}`);
const line = (name: string, c: StepFigures, e: StepFigures, target = '') =>
  console.log(`${name.padEnd(26)} ${f(c.ms).padStart(12)} ${f(e.ms).padStart(10)} ${(e.ms / c.ms).toFixed(2).padStart(8)}× ${`${c.hostMs.toFixed(1)} / ${e.hostMs.toFixed(1)}`.padStart(16)} ${String(c.kernels).padStart(8)} ${String(c.pipelines).padStart(10)}  ${target}`);
line('MLP AdamW step', mlp, mlpEager, 'target: host ≤ 2 ms compiled');
line('UNet diffusion step', unet, unetEager, 'target: ≥ 1.5× faster, host ≤ 15 ms compiled');
line('DiT diffusion step', dit, ditEager);
line('VAE step', vae, vaeEager);
console.log(`\nUNet step: ${gpuMs.toFixed(0)} ms in kernels (k.profile; target ≤ 450); pipelines: compiled while warming up each model in this order (UNet first: ${unet.pipelines} = a cold kiln-train step when MESA_SHADER_CACHE_DIR is an empty dir; target ≤ 120)`);
k.destroy();
process.exit(0);
