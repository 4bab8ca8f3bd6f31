/**
 * kiln's UNet, DiT, VAE and PatchDiscriminator against their PyTorch mirror (python/kiln_torch), from committed
 * fixtures (no Python needed), in both directions of weight transfer:
 *   ckpt-kiln-*   checkpoints written by kiln's trainers (scripts/torch-mirror-kiln.ts), which PyTorch loaded
 *                 strictly into the mirror;
 *   ckpt-torch-*  checkpoints written from PyTorch models (every parameter random, EMA different from the raw
 *                 weights) by kiln_torch.save_diffusion_checkpoint / save_vae_checkpoint, which kiln loads here,
 *                 strictly, and through the loaders `kiln sample` uses (k.diffusion.loadDenoiser, k.nn.loadVAE).
 * Each case-* file holds seeded inputs and what PyTorch computed from the checkpoint's weights (in float64); kiln
 * runs the same forward in float32. Tolerance: every element within 1e-4 of the reference's largest magnitude.
 *
 * Regenerate with PyTorch: `npx tsx scripts/torch-mirror-kiln.ts` (the kiln checkpoints), then
 * `/usr/bin/python3 scripts/torch-mirror.py` (see its docstring); `npm run test:torch` checks the committed
 * files against PyTorch and runs the distributed trainer.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/torch-mirror');
const CASES = readdirSync(DIR).filter((f) => f.startsWith('case-') && f.endsWith('.safetensors')).sort();
const TOL = 1e-4;

interface Meta { case: string; checkpoint: string; weights: 'ema' | 'model' | 'vae' | 'disc'; op: 'denoise' | 'encode' | 'decode' | 'discriminate' }

beforeAll(async () => {
  await k.init();
});

/** max |got − ref| / max |ref|, failing above TOL with the worst element (elements where `skip` is true only need to be finite). */
async function relError(what: string, got: k.Tensor, ref: k.Tensor, skip?: k.Tensor): Promise<number> {
  expect(got.shape, `${what}: shape`).toEqual(ref.shape);
  const [g, r, m] = await Promise.all([got.data(), ref.data(), skip?.data()]);
  let scale = 0, worst = 0, at = -1;
  for (let i = 0; i < r.length; i++) scale = Math.max(scale, Math.abs(r[i]!));
  for (let i = 0; i < r.length; i++) {
    if (m?.[i]) {
      expect(Number.isFinite(g[i]!), `${what}: element ${i} is not finite`).toBe(true);
      continue;
    }
    const e = Math.abs(g[i]! - r[i]!);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  expect(scale, `${what}: the reference is all zeros`).toBeGreaterThan(0);
  const err = worst / scale;
  if (!(err <= TOL)) throw new Error(`${what}: |kiln − torch| = ${worst} at element ${at} (kiln ${g[at]}, torch ${r[at]}) is ${err.toExponential(2)} of max|torch| = ${scale}, above ${TOL}`);
  return err;
}

async function checkpoint(name: string): Promise<{ tensors: Record<string, k.Tensor>; meta: Record<string, unknown> }> {
  const { tensors, metadata } = await k.loadWithMetadata(join(DIR, name));
  return { tensors, meta: JSON.parse(metadata.kiln!) as Record<string, unknown> };
}

const report: string[] = [];

describe('the PyTorch mirror of kiln\'s models (tests/fixtures/torch-mirror)', () => {
  it('has the cases of both directions', () => {
    for (const src of ['kiln', 'torch']) {
      for (const c of ['unet-ema', 'unet-model', 'dit-ema', 'dit-model', 'vae-encode', 'vae-decode', 'disc']) expect(CASES).toContain(`case-${src}-${c}.safetensors`);
    }
  });

  it('loads the state dicts PyTorch wrote strictly (every name, shape and dtype)', async () => {
    for (const kind of ['unet', 'dit'] as const) {
      const { tensors, meta } = await checkpoint(`ckpt-torch-${kind}.safetensors`);
      const spec = meta.model as { kind: 'unet' | 'dit'; config: Record<string, unknown> };
      expect(spec.kind).toBe(kind);
      const model = k.diffusion.buildDenoiser(spec.kind, spec.config);
      model.loadStateDict(k.nn.withoutPrefix(tensors, 'model.'), { strict: true });
      // the EMA holds the parameters (buffers such as a DiT's fixed positions are under model. only)
      expect(Object.keys(k.nn.withoutPrefix(tensors, 'ema.')).sort()).toEqual([...model.namedParameters()].map(([n]) => n).sort());
      for (const t of Object.values(tensors)) t.dispose();
    }
    const { tensors, meta } = await checkpoint('ckpt-torch-vae.safetensors');
    new k.nn.VAE(meta.vae as Partial<k.nn.VAEConfig>).loadStateDict(k.nn.withoutPrefix(tensors, 'vae.'), { strict: true });
    new k.nn.PatchDiscriminator(meta.discriminator as Partial<k.nn.PatchDiscriminatorConfig>).loadStateDict(k.nn.withoutPrefix(tensors, 'disc.'), { strict: true });
    for (const t of Object.values(tensors)) t.dispose();
  });

  it('takes the same training steps as python/train_ddp.py (AdamW, warmup-cosine rate, clipping, EMA)', async () => {
    // what DiffusionTrainer's update does (LossTrainer: minimize with clipping, the schedule's step, the EMA update),
    // on a fixed batch and target instead of its random draws
    const { tensors: f, metadata } = await k.loadWithMetadata(join(DIR, 'train-steps.safetensors'));
    const o = JSON.parse(metadata.train!) as { lr: number; warmup: number; steps: number; weightDecay: number; clip: number; emaDecay: number };
    const { tensors, meta } = await checkpoint(metadata.checkpoint!);
    const spec = meta.model as { kind: 'unet' | 'dit'; config: Record<string, unknown> };
    const model = k.diffusion.buildDenoiser(spec.kind, spec.config);
    model.loadStateDict(k.nn.withoutPrefix(tensors, 'model.'), { strict: true });
    const opt = new k.optim.AdamW(model, { lr: o.lr, weightDecay: o.weightDecay });
    const sched = k.train.warmupCosine(opt, o.lr, o.warmup, o.steps);
    const ema = new k.optim.EMA(model, o.emaDecay);
    const losses: number[] = [];
    for (let i = 0; i < Number(metadata.steps); i++) {
      const loss = opt.minimize(() => model.forward(f['input.x']!, f['input.t']!, f['input.labels']!).sub(f['input.target']!).square().mean(), { clipGradNorm: o.clip });
      sched.step();
      await ema.update();
      losses.push(await loss.item());
    }
    const ref = Array.from(await f.losses!.data());
    losses.forEach((l, i) => expect(Math.abs(l - ref[i]!) / ref[i]!, `loss of step ${i + 1}`).toBeLessThan(TOL));
    // elements whose gradient is zero in exact arithmetic (zero_grad.*: a bias that a GroupNorm over one channel removes
    // again, attention's key bias) take Adam steps of about lr in the direction of their rounding noise: not compared
    let err = 0, skipped = 0;
    const shadow = ema.stateDict();
    for (const [n, p] of model.namedParameters()) {
      const skip = f[`zero_grad.${n}`];
      if (skip) skipped += Array.from(await skip.data()).filter(Boolean).length;
      err = Math.max(err, await relError(`weight ${n}`, p, f[`after.model.${n}`]!, skip), await relError(`EMA ${n}`, shadow[n]!, f[`after.ema.${n}`]!, skip));
    }
    expect(skipped).toBeLessThan(0.05 * model.parameters().reduce((a, p) => a + p.size, 0));
    report.push(`${'train-steps'.padEnd(20)} ${err.toExponential(2)}`);
  });

  it('uses kiln train\'s learning-rate schedule and noise schedule in python/train_ddp.py', async () => {
    const { tensors: f, metadata } = await k.loadWithMetadata(join(DIR, 'schedules.safetensors'));
    const [lr, ac] = await Promise.all([f.lr!.data(), f.alphas_cumprod!.data()]);
    const steps = Number(metadata.steps), base = JSON.parse(metadata.lr!) as number;
    expect(lr.length).toBe(steps);
    const opt = new k.optim.AdamW([k.zeros([1], { requiresGrad: true })], { lr: base });
    const sched = k.train.warmupCosine(opt, base, Number(metadata.warmup), steps);
    for (let i = 0; i < steps; i++) {
      expect(Math.abs(opt.lr - lr[i]!), `lr at step ${i}`).toBeLessThanOrEqual(1e-6 * base);
      sched.step();
    }
    const vp = new k.diffusion.DiscreteVP({ numTrainTimesteps: 1000, schedule: 'squaredcos_cap_v2' });
    expect(ac.length).toBe(vp.alphasCumprod.length);
    vp.alphasCumprod.forEach((v, i) => expect(Math.abs(v - ac[i]!), `alphas_cumprod[${i}]`).toBeLessThanOrEqual(1e-6));
  });

  for (const file of CASES) {
    it(file.replace(/^case-|\.safetensors$/g, ''), async () => {
      const t0 = performance.now();
      const { tensors: x, metadata } = await k.loadWithMetadata(join(DIR, file));
      const meta = metadata as unknown as Meta;
      const path = join(DIR, meta.checkpoint);
      let err = 0;
      await k.noGrad(async () => {
        if (meta.op === 'denoise') {
          // what `kiln sample` does: the checkpoint's model with its EMA (or, with --raw, its trained) weights
          const { model } = await k.diffusion.loadDenoiser(path, { ema: meta.weights === 'ema' });
          err = await relError(`${file} output`, model.forward(x['input.x']!, x['input.t']!, x['input.labels']!), x.output!);
        } else if (meta.op === 'encode' || meta.op === 'decode') {
          const { vae } = await k.nn.loadVAE(path);
          if (meta.op === 'encode') {
            const { mean, logvar } = vae.encode(x['input.x']!);
            err = Math.max(await relError(`${file} mean`, mean, x['output.mean']!), await relError(`${file} logvar`, logvar, x['output.logvar']!));
          } else {
            err = await relError(`${file} output`, vae.decode(x['input.z']!), x.output!);
          }
        } else {
          const { tensors, meta: m } = await checkpoint(meta.checkpoint);
          const disc = new k.nn.PatchDiscriminator(m.discriminator as Partial<k.nn.PatchDiscriminatorConfig>);
          disc.loadStateDict(k.nn.withoutPrefix(tensors, 'disc.'), { strict: true });
          disc.eval();
          err = await relError(`${file} output`, disc.forward(x['input.x']!), x.output!);
        }
      });
      report.push(`${meta.case.padEnd(20)} ${err.toExponential(2)}  ${(performance.now() - t0).toFixed(0)} ms`);
    });
  }

  afterAll(() => {
    if (process.env.KILN_TORCH_REPORT) console.log(report.join('\n'));
  });
});
