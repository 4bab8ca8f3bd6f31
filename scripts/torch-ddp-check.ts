/**
 * Checks a checkpoint written by python/train_ddp.py in kiln: loads it as `kiln sample` does (k.diffusion.loadDenoiser,
 * EMA weights) and compares kiln's output on the probe that train_ddp.py --probe wrote (the inputs of a first sampling
 * step, and PyTorch's output on them in float64) with PyTorch's: every element within 1e-4 of max|PyTorch|.
 *
 *   npx tsx scripts/torch-ddp-check.ts <checkpoint.safetensors> <probe.safetensors>
 */
import * as k from '../src/index.js';

const [ckpt, probe] = process.argv.slice(2);
if (!ckpt || !probe) {
  console.error('usage: npx tsx scripts/torch-ddp-check.ts <checkpoint.safetensors> <probe.safetensors>');
  process.exit(2);
}
const TOL = 1e-4;
await k.init();
try {
  const { model, meta } = await k.diffusion.loadDenoiser(ckpt);
  const { tensors: x } = await k.loadWithMetadata(probe);
  const out = k.noGrad(() => model.forward(x['input.x']!, x['input.t']!, x['input.labels']!));
  const [g, r] = await Promise.all([out.data(), x.output!.data()]);
  let scale = 0, worst = 0;
  for (let i = 0; i < r.length; i++) scale = Math.max(scale, Math.abs(r[i]!));
  for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(g[i]! - r[i]!) || (Number.isNaN(g[i]!) ? Infinity : 0));
  const err = worst / scale;
  const spec = meta.model as { kind: string };
  console.log(`${ckpt}: ${spec.kind} at step ${meta.step as number}; kiln vs PyTorch on ${x['input.x']!.shape[0]} first-step inputs: max |Δ| = ${worst.toExponential(2)} = ${err.toExponential(2)} of max|PyTorch| ${scale.toFixed(3)} (tolerance ${TOL})`);
  if (!(err <= TOL) || scale === 0) process.exitCode = 1;
} finally {
  k.destroy();
}
