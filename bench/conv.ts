/**
 * Convolution benchmark: conv2d 3×3, batch 16, 64 → 64 channels, 32×32, stride 1, 'same' padding;
 * forward, and forward + backward (input and weight gradients), in GFLOP/s (2·N·O·C·9·H·W per
 * convolution, three convolutions' worth for forward + backward). Prints one JSON line, then a table.
 *
 *   npm run bench:conv [-- --quick] [-- --no-share]
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench:conv
 */
import * as k from '../src/index.js';

const QUICK = process.argv.includes('--quick');
const REPS = QUICK ? 3 : 7;
const [N, C, O, H] = [16, 64, 64, 32];
const FLOP = 2 * N * O * C * 9 * H * H;

/** Figures measured on this machine by others (GFLOP/s; lavapipe / SwiftShader). */
const REFERENCE = {
  forward: { tfjs: [4.35, 0.53], jaxjs: [3.79, 1.34], target: [12, 2.0] },
  forwardBackward: { tfjs: [1.58, 0.32], jaxjs: [6.22, 1.9], target: [16, 2.85] },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ms of `run` (after one warm-up), until the GPU has finished its work. */
async function time(run: () => k.Tensor[]): Promise<{ ms: number; kernels: number }> {
  const once = async () => {
    const outs = run();
    await k.realize(...outs);
    await k.synchronize();
    outs.forEach((t) => t.dispose());
  };
  await once();
  const times: number[] = [];
  let kernels = 0;
  for (let i = 0; i < REPS; i++) {
    const before = k.stats().kernels;
    const t = performance.now();
    await once();
    times.push(performance.now() - t);
    kernels = k.stats().kernels - before;
  }
  return { ms: median(times), kernels };
}

let info = await k.init();
// register-tile matmuls without subgroup-shared loads of A, for comparison
if (process.argv.includes('--no-share')) info = await k.init({ tuning: { matmulShareRows: false } });
const col = info.driver === 'swiftshader' ? 1 : 0;
k.manualSeed(0);
const x = k.randn([N, C, H, H]).keep();
const w = k.randn([O, C, 3, 3]).mul(0.05).keep();
await k.realize(x, w);
x.requiresGrad = true;
w.requiresGrad = true;
const fwd = await time(() => [k.noGrad(() => k.nn.conv2d(x, w, null, { padding: 'same' }))]);
const fb = await time(() => k.scope(() => {
  const y = k.nn.conv2d(x, w, null, { padding: 'same' });
  const [gx, gw] = k.gradients(y.square().sum().mul(0.5), [x, w]);
  return [k.keep(gx!), k.keep(gw!)];
}));
const result = {
  bench: 'kiln-conv',
  adapter: { driver: info.driver, description: info.description, tuning: info.tuning },
  shape: { N, C, O, H, W: H, kernel: 3 },
  forward: { ms: fwd.ms, gflops: FLOP / fwd.ms / 1e6, kernels: fwd.kernels },
  forwardBackward: { ms: fb.ms, gflops: (3 * FLOP) / fb.ms / 1e6, kernels: fb.kernels },
  reference: REFERENCE,
};
console.log(JSON.stringify(result));
const row = (name: string, r: { ms: number; gflops: number }, ref: { tfjs: number[]; jaxjs: number[]; target: number[] }) =>
  `${name.padEnd(22)} ${r.gflops.toFixed(2).padStart(6)} GFLOP/s ${r.ms.toFixed(1).padStart(8)} ms   tfjs ${ref.tfjs[col]}   jax-js ${ref.jaxjs[col]}   target ≥ ${ref.target[col]}${r.gflops >= ref.target[col]! ? '  met' : '  not met'}`;
console.log(`\nadapter: ${info.driver} (${info.description}), kernels tuned by the '${info.tuning}' row; conv2d 3×3, [${N}, ${C}, ${H}, ${H}] → ${O} channels`);
console.log(row('forward', result.forward, REFERENCE.forward));
console.log(row('forward + backward', result.forwardBackward, REFERENCE.forwardBackward));
k.destroy();
process.exit(0);
