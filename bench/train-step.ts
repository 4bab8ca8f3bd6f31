/**
 * Training-step benchmark: the MNIST MLP 784-512-512-10 (batch 128, AdamW, loss read back every step)
 * and a denoiser MLP (784 + 128-d time embedding → 1024 → 1024 → 784, SiLU, MSE, forward + backward,
 * batch 128), and the default MNIST diffusion UNet step of `kiln train`. Prints one JSON line, then a table.
 *
 *   npm run bench:train [-- --quick]
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench:train
 */
import * as k from '../src/index.js';
import { DiffusionTrainer, TRAIN_DEFAULTS } from '../src/train/index.js';

const QUICK = process.argv.includes('--quick');
const STEPS = QUICK ? 5 : 15;

/** Figures measured on this machine by others (ms per step; lavapipe / SwiftShader). */
const REFERENCE = {
  mlpStep: { tfjs: [189, 1337], jaxjs: [142, 304], target: [80, 250] },
  denoiserStep: { tfjs: [551, 4939], jaxjs: [547, 1079], target: [320, null] },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Time and pipelines compiled of the two warm-up steps of the last `timeSteps` (a cold start when the driver's shader cache is empty). */
let warmup = { ms: 0, pipelines: 0 };

/**
 * Median ms per step, and median host ms: the step's time not spent waiting for the GPU (`k.stats().waitMs`:
 * readbacks, pipeline compilation) — graph building, autograd, planning, encoding and submitting.
 */
async function timeSteps(step: () => Promise<void>): Promise<{ ms: number; hostMs: number }> {
  const t0 = performance.now(), p0 = k.stats().pipelinesCompiled;
  for (let i = 0; i < 2; i++) await step(); // compile pipelines, fill the pool
  warmup = { ms: performance.now() - t0, pipelines: k.stats().pipelinesCompiled - p0 };
  const times: number[] = [], host: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t = performance.now(), w0 = k.stats().waitMs;
    await step();
    const ms = performance.now() - t;
    times.push(ms);
    host.push(ms - (k.stats().waitMs - w0));
  }
  return { ms: median(times), hostMs: median(host) };
}

async function mlpStep(): Promise<{ ms: number; hostMs: number; kernels: number }> {
  k.manualSeed(0);
  const net = new k.nn.Sequential(new k.nn.Linear(784, 512), new k.nn.ReLU(), new k.nn.Linear(512, 512), new k.nn.ReLU(), new k.nn.Linear(512, 10));
  const opt = new k.optim.AdamW(net, { lr: 1e-3 });
  const x = k.randn([128, 784]).keep();
  const y = k.randint(0, 10, [128]).keep();
  await k.realize(x, y);
  const step = async () => {
    const loss = opt.minimize(() => k.F.crossEntropy(net.forward(x), y));
    await loss.item();
    loss.dispose();
  };
  const { ms, hostMs } = await timeSteps(step);
  const before = k.stats().kernels;
  await step();
  return { ms, hostMs, kernels: k.stats().kernels - before };
}

async function denoiserStep(): Promise<{ ms: number; hostMs: number; kernels: number }> {
  k.manualSeed(0);
  const net = new k.nn.Sequential(new k.nn.Linear(784 + 128, 1024), new k.nn.SiLU(), new k.nn.Linear(1024, 1024), new k.nn.SiLU(), new k.nn.Linear(1024, 784));
  const x = k.randn([128, 784 + 128]).keep();
  const target = k.randn([128, 784]).keep();
  await k.realize(x, target);
  const step = async () => {
    const loss = k.scope(() => {
      const l = k.F.mseLoss(net.forward(x), target);
      l.backward();
      return l;
    });
    await k.realize(...net.parameters().map((p) => p.grad!));
    await loss.item();
    loss.dispose();
    net.zeroGrad();
  };
  const { ms, hostMs } = await timeSteps(step);
  const before = k.stats().kernels;
  await step();
  return { ms, hostMs, kernels: k.stats().kernels - before };
}

/** The default MNIST diffusion step (UNet of the cpu preset, batch 32, the trainer of kiln train); GPU time from k.profile. */
async function unetStep(): Promise<{ ms: number; hostMs: number; gpuMs: number; kernels: number; warmupMs: number; warmupPipelines: number }> {
  k.manualSeed(0);
  const net = new k.nn.UNet({ widths: [16, 32], attention: [], midAttention: false, heads: 2, patch: 2 });
  const tr = new DiffusionTrainer(net, { ...TRAIN_DEFAULTS, steps: 1000, batchSize: 32 });
  const x = k.rand([32, 1, 28, 28]).mul(2).sub(1).keep();
  const y = k.randint(0, 10, [32]).keep();
  const step = async () => {
    await tr.trainStep(x, y);
    await tr.flush();
  };
  const { ms, hostMs } = await timeSteps(step);
  const { ms: warmupMs, pipelines: warmupPipelines } = warmup;
  const before = k.stats().kernels;
  const prof = await k.profile(step);
  return { ms, hostMs, gpuMs: prof.reduce((a, p) => a + p.ms, 0), kernels: k.stats().kernels - before, warmupMs, warmupPipelines };
}

const info = await k.init();
const driver = info.driver;
const col = driver === 'swiftshader' ? 1 : 0;
const mlp = await mlpStep();
const den = await denoiserStep();
const unet = await unetStep();
k.setProgramCache(false);
const planned = await unetStep(); // the same step with every realization planned, lowered and rendered anew
k.setProgramCache(true);
const result = {
  adapter: { driver, description: info.description },
  mlpStep: { ms: mlp.ms, hostMs: mlp.hostMs, kernelsPerStep: mlp.kernels, gflopPerStep: 0.51, gflops: 0.51 / (mlp.ms / 1000) },
  denoiserStep: { ms: den.ms, hostMs: den.hostMs, kernelsPerStep: den.kernels, gflopPerStep: 2.1, gflops: 2.1 / (den.ms / 1000) },
  unetStep: { ms: unet.ms, hostMs: unet.hostMs, gpuMs: unet.gpuMs, kernelsPerStep: unet.kernels, firstTwoStepsMs: unet.warmupMs, pipelinesCompiled: unet.warmupPipelines },
  unetStepPlannedAnew: { ms: planned.ms, hostMs: planned.hostMs },
  reference: REFERENCE,
};
console.log(JSON.stringify(result));
const row = (name: string, ms: number, ref: { tfjs: number[]; jaxjs: number[]; target: (number | null)[] }) =>
  `${name.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms   tfjs ${String(ref.tfjs[col]).padStart(5)}   jax-js ${String(ref.jaxjs[col]).padStart(5)}   target ${ref.target[col] ?? '-'}${ref.target[col] ? (ms <= ref.target[col]! ? '  met' : '  not met') : ''}`;
console.log(`\nadapter: ${driver} (${info.description})`);
console.log(row('MLP 784-512-512-10 AdamW step', mlp.ms, REFERENCE.mlpStep));
console.log(row('denoiser MLP fwd+bwd step', den.ms, REFERENCE.denoiserStep));
console.log(`${'MNIST diffusion UNet step (cpu preset)'.padEnd(34)} ${unet.ms.toFixed(1).padStart(8)} ms   of which ${unet.gpuMs.toFixed(0)} ms in kernels (k.profile)`);
console.log(`host ms per step (not waiting for the GPU): MLP ${mlp.hostMs.toFixed(1)} (target ≤ 2 compiled), denoiser ${den.hostMs.toFixed(1)}, UNet ${unet.hostMs.toFixed(1)} (target ≤ 15 compiled)`);
console.log(`UNet step with every realization planned anew (program cache off, same run): ${planned.ms.toFixed(1)} ms, host ${planned.hostMs.toFixed(1)} ms`);
console.log(`kernels per step: MLP ${mlp.kernels}, denoiser ${den.kernels}, UNet ${unet.kernels}`);
console.log(`UNet's first two steps: ${(unet.warmupMs / 1000).toFixed(1)} s, ${unet.warmupPipelines} pipelines compiled (MESA_SHADER_CACHE_DIR=<empty dir> for a cold start)`);
k.destroy();
process.exit(0);
