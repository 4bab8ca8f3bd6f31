/**
 * Writes the kiln-side checkpoints of the PyTorch-mirror fixtures (tests/fixtures/torch-mirror/ckpt-kiln-*.safetensors):
 * tiny models trained for a few steps by kiln's own trainers on random data, so every weight (also the
 * zero-initialized ones) has moved and the raw and EMA weights differ:
 *   ckpt-kiln-unet   DiffusionTrainer, UNet with a pixel-unshuffle stem, attention and 2 classes (+ the null class)
 *   ckpt-kiln-dit    DiffusionTrainer, DiT with fixed sinusoidal positions (a buffer, stored under model. only)
 *   ckpt-kiln-vae    VAETrainer with the PatchGAN discriminator on from the first step (vae.* and disc.*)
 * Each is the trainer's checkpoint file with its optimizer moments left out to keep the fixtures small (the
 * rest — names, metadata, the model/ema/vae/disc groups — is as `save` wrote it). Then
 * `/usr/bin/python3 scripts/torch-mirror.py` runs the PyTorch mirror on them and writes the fixtures that
 * tests/node/torch-mirror.test.ts compares against.
 *
 *   npx tsx scripts/torch-mirror-kiln.ts
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '../src/index.js';
import { DiffusionTrainer, VAETrainer, TRAIN_DEFAULTS, VAE_TRAIN_DEFAULTS } from '../src/train/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'tests/fixtures/torch-mirror');
const tmp = join(tmpdir(), `kiln-torch-mirror-${process.pid}`);

/** Saves the trainer's checkpoint, then rewrites it to `name` without the optimizer groups. */
async function keepWeights(save: (path: string) => Promise<unknown>, name: string): Promise<void> {
  const full = join(tmp, name);
  await save(full);
  const { tensors, metadata } = await k.loadWithMetadata(full);
  const kept = Object.fromEntries(Object.entries(tensors).filter(([n]) => !n.startsWith('optim')));
  await k.save(kept, join(dir, name), { metadata });
  for (const t of Object.values(tensors)) t.dispose();
  console.log(`${name}: ${Object.keys(kept).length} tensors`);
}

async function diffusion(kind: 'unet' | 'dit', config: Record<string, unknown>, name: string): Promise<void> {
  k.manualSeed(1);
  const model = k.diffusion.buildDenoiser(kind, config);
  const spec = { kind, config: (model as unknown as { config: object }).config };
  const trainer = new DiffusionTrainer(model, { ...TRAIN_DEFAULTS, steps: 4, batchSize: 4, lr: 0.05, warmup: 0, emaDecay: 0.5, seed: 1 });
  trainer.compile = false;
  const c = (model as unknown as { config: { channels: number; size: number; numClasses: number } }).config;
  for (let i = 0; i < 4; i++) {
    const x = k.rand([4, c.channels, c.size, c.size]).mul(2).sub(1);
    const y = k.randint(0, c.numClasses, [4], { dtype: 'i32' });
    await trainer.trainStep(x, y);
    x.dispose();
    y.dispose();
  }
  await keepWeights((p) => trainer.save(p, { model: spec }), name);
}

async function vae(name: string): Promise<void> {
  k.manualSeed(2);
  const model = new k.nn.VAE({ channels: 1, size: 16, patch: 2, widths: [2, 4], depth: 1, latentChannels: 2, groups: 2 });
  const trainer = new VAETrainer(model, { ...VAE_TRAIN_DEFAULTS, steps: 4, batchSize: 4, lr: 0.05, discLr: 0.05, warmup: 0, discStart: 0 }, { width: 4, layers: 2, groups: 2 });
  trainer.compile = false;
  for (let i = 0; i < 4; i++) {
    const x = k.rand([4, 1, 16, 16]).mul(2).sub(1);
    await trainer.trainStep(x);
    x.dispose();
  }
  await keepWeights((p) => trainer.save(p), name);
}

await k.init();
mkdirSync(dir, { recursive: true });
mkdirSync(tmp, { recursive: true });
try {
  await diffusion('unet', { channels: 1, size: 8, widths: [2, 4], depth: 1, attention: [1], midAttention: true, heads: 2, numClasses: 2, patch: 2, groups: 2 }, 'ckpt-kiln-unet.safetensors');
  await diffusion('dit', { channels: 1, size: 8, patch: 2, dim: 8, depth: 2, heads: 2, mlpRatio: 2, numClasses: 2, positions: 'sinusoidal' }, 'ckpt-kiln-dit.safetensors');
  await vae('ckpt-kiln-vae.safetensors');
} finally {
  rmSync(tmp, { recursive: true, force: true });
  k.destroy();
}
