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
afterAll(() => {
  k.destroy();
});

/** max |got − ref| / max |ref|, failing above TOL with the worst element. */
async function relError(what: string, got: k.Tensor, ref: k.Tensor): Promise<number> {
  expect(got.shape, `${what}: shape`).toEqual(ref.shape);
  const [g, r] = await Promise.all([got.data(), ref.data()]);
  let scale = 0, worst = 0, at = -1;
  for (let i = 0; i < r.length; i++) scale = Math.max(scale, Math.abs(r[i]!));
  for (let i = 0; i < r.length; i++) {
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
