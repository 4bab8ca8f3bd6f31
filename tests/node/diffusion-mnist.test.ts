/** MNIST diffusion end to end: models, trainer, checkpoints and resume, sampling, metrics and the CLI. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS, type TrainConfig } from '../../src/train/index.ts';
import { evalCommand, sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-mnist-'));
const TINY: Partial<k.nn.UNetConfig> = { widths: [8, 16], attention: [], midAttention: true, heads: 2, groups: 4, patch: 2 };
const trainCfg = (steps: number): TrainConfig => ({ ...TRAIN_DEFAULTS, steps, batchSize: 16, lr: 3e-3, warmup: 10, seed: 3 });

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('models', () => {
  it('UNet and DiT map [N, 1, 28, 28] to the same shape, start at zero output, and use PyTorch-style names', async () => {
    k.manualSeed(0);
    const unet = new k.nn.UNet({ ...TINY, attention: [1] });
    const dit = new k.nn.DiT({ dim: 32, depth: 2, heads: 2 });
    const x = k.randn([3, 1, 28, 28]), t = k.tensor([1, 500, 999]), y = k.tensor(Int32Array.from([0, 7, 10]));
    for (const m of [unet, dit]) {
      const out = m.forward(x, t, y);
      expect(out.shape).toEqual([3, 1, 28, 28]);
      // the output layers are zero-initialized (ADM / adaLN-Zero), so an untrained model predicts 0
      expect(Math.max(...Array.from(await out.abs().data()))).toBe(0);
    }
    const names = Object.keys(unet.stateDict());
    expect(names).toContain('down.0.blocks.0.conv1.weight');
    expect(names).toContain('down.1.attns.0.attn.in_proj_weight');
    expect(names).toContain('class_embed.weight');
    expect(Object.keys(dit.stateDict())).toContain('blocks.1.ada.weight');
    expect(() => unet.forward(k.zeros([2, 1, 27, 27]), k.zeros([2]), k.zeros([2], { dtype: 'i32' }))).toThrow(/UNet: expected x of shape \[N, 1, 28, 28\], got \[2, 1, 27, 27\]/);
    expect(() => unet.forward(x, t)).toThrow(/UNet: this model is class-conditional \(10 classes\); pass labels/);
    expect(() => new k.nn.UNet({ widths: [8, 16, 32, 64] })).toThrow(/must be divisible by 2\^3/);
  });

  it('gradients of the UNet reach every parameter', async () => {
    k.manualSeed(1);
    const unet = new k.nn.UNet(TINY);
    const loss = unet.forward(k.randn([2, 1, 28, 28]), k.tensor([10, 900]), k.tensor(Int32Array.from([1, 10]))).square().mean();
    loss.backward();
    // the zero-initialized output conv gets a gradient; layers behind it see one once it is non-zero
    expect(unet.conv_out.weight.grad).toBeTruthy();
    expect(unet.parameters().every((p) => p.grad)).toBe(true);
  });
});

describe('training on real MNIST', () => {
  /** Mean loss of the first 10 steps over that of the last 20, after `steps` steps of rectified flow. */
  async function lossFactor(model: k.diffusion.Denoiser, steps: number): Promise<number> {
    const data = await k.data.loadMnist('train');
    const tr = new DiffusionTrainer(model, trainCfg(steps));
    const batches = new k.data.StepBatches(data, 16, 3);
    for (let s = 0; s < steps; s++) {
      const { x, y } = batches.at(s);
      await tr.trainStep(x, y);
      x.dispose();
      y.dispose();
    }
    await tr.flush();
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    expect(tr.losses.length).toBe(steps);
    expect(tr.losses.every(Number.isFinite)).toBe(true);
    return mean(tr.losses.slice(0, 10)) / mean(tr.losses.slice(-20));
  }

  it('a tiny UNet trained for 120 steps (rectified flow) lowers the loss by at least 1.5×', async () => {
    k.manualSeed(3);
    expect(await lossFactor(new k.nn.UNet(TINY), 120)).toBeGreaterThan(1.5); // 1.78 measured
  }, 300_000);

  it('a tiny DiT trained for 120 steps (rectified flow) lowers the loss by at least 2×', async () => {
    k.manualSeed(3);
    expect(await lossFactor(new k.nn.DiT({ dim: 32, depth: 2, heads: 2, patch: 4 }), 120)).toBeGreaterThan(2); // 2.91 measured
  }, 300_000);

  it('resuming from a checkpoint gives the same losses and weights as training straight through', async () => {
    const data = await k.data.loadMnist('train');
    const batches = new k.data.StepBatches(data, 16, 3);
    const run = async (tr: DiffusionTrainer, from: number, to: number) => {
      for (let s = from; s < to; s++) {
        const { x, y } = batches.at(s);
        await tr.trainStep(x, y);
        x.dispose();
        y.dispose();
      }
      await tr.flush();
    };
    k.manualSeed(3);
    const straight = new DiffusionTrainer(new k.nn.UNet(TINY), trainCfg(6));
    await run(straight, 0, 6);
    k.manualSeed(3);
    const first = new DiffusionTrainer(new k.nn.UNet(TINY), trainCfg(6));
    await run(first, 0, 3);
    const path = join(dir, 'resume.safetensors');
    await first.save(path, { model: { kind: 'unet', config: TINY } });
    k.manualSeed(99); // the checkpoint restores the generator
    const resumed = new DiffusionTrainer(new k.nn.UNet(TINY), trainCfg(6));
    await resumed.load(path);
    expect(resumed.step).toBe(3);
    await run(resumed, 3, 6);
    expect(resumed.losses).toEqual(straight.losses);
    const a = straight.model.stateDict(), b = resumed.model.stateDict();
    for (const name of ['conv_in.weight', 'up.0.blocks.1.conv2.weight', 'class_embed.weight']) {
      expect(Array.from(await b[name]!.data())).toEqual(Array.from(await a[name]!.data()));
    }
  }, 300_000);
});

describe('checkpoints, sampling and the CLI', () => {
  const ckpt = join(dir, 'cli', 'checkpoint.safetensors');

  it('kiln train writes a checkpoint, loss.csv and a grid; sampling it is deterministic for a seed', async () => {
    await trainCommand(['--preset', 'cpu', '--steps', '3', '--batch', '4', '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--out', join(dir, 'cli'), '--seed', '5']);
    const { model, meta } = await k.diffusion.loadDenoiser(ckpt);
    expect(meta.step).toBe(3);
    const gen = (seed: number) => k.noGrad(() => k.diffusion.generate(model, { objective: 'flow', labels: [3, 8], shape: [1, 28, 28], steps: 2, guidance: 1.5, seed }));
    const a = await (await gen(11)).data(), b = await (await gen(11)).data(), c = await (await gen(12)).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  }, 600_000);

  it('argument errors name the option and what it expects', async () => {
    await expect(trainCommand(['--steps', 'x'])).rejects.toThrow(/--steps expects an integer ≥ 1, got 'x'/);
    await expect(trainCommand(['--objective', 'score'])).rejects.toThrow(/--objective must be one of flow, eps, v, got 'score'/);
    await expect(trainCommand(['--stepz', '3'])).rejects.toThrow(/unknown option --stepz \(see kiln train --help\)/);
    await expect(sampleCommand(['--labels', '1,11'])).rejects.toThrow(/--labels expects comma-separated integers in \[0, 10\], got '1,11'/);
    await expect(sampleCommand(['--checkpoint', join(dir, 'missing.safetensors')])).rejects.toThrow(/does not exist/);
    await expect(evalCommand(['--per-class', '1'])).rejects.toThrow(/--per-class expects an integer ≥ 2/);
  });
});

describe('metrics', () => {
  it('the Fréchet distance matches the closed form for Gaussians with known moments', () => {
    // 2-D: FD = |μ₁−μ₂|² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½); with Σ₁ = diag(1, 4), Σ₂ = diag(9, 1): tr = 10 + 5 − 2(3 + 2) = 5
    const a = { mean: Float64Array.from([0, 1]), cov: Float64Array.from([1, 0, 0, 4]) };
    const b = { mean: Float64Array.from([3, -1]), cov: Float64Array.from([9, 0, 0, 1]) };
    expect(k.diffusion.frechetDistance(a, b)).toBeCloseTo(9 + 4 + 5, 9);
    // a rotated covariance: commuting case still closed-form, FD(Σ, Σ) = 0
    const c = Math.cos(0.3), s = Math.sin(0.3);
    const R = [c, -s, s, c], D = [2, 0.5];
    const cov = Float64Array.from([0, 1, 2, 3].map((i) => { const r = Math.floor(i / 2), q = i % 2; return R[r * 2]! * D[0]! * R[q * 2]! + R[r * 2 + 1]! * D[1]! * R[q * 2 + 1]!; }));
    expect(Math.abs(k.diffusion.frechetDistance({ mean: a.mean, cov }, { mean: a.mean, cov }))).toBeLessThan(1e-9);
  });

  it('featureStats and symmetricEigen agree with direct formulas', () => {
    const f = [1, 2, 3, 5, 2, 2, 0, 1];
    const { mean, cov } = k.diffusion.featureStats(f, 4, 2);
    expect(Array.from(mean)).toEqual([1.5, 2.5]);
    // unbiased covariance of x = [1,3,2,0], y = [2,5,2,1]
    expect(cov[0]).toBeCloseTo(5 / 3, 12);
    expect(cov[1]).toBeCloseTo(2, 12);
    expect(cov[3]).toBeCloseTo(3, 12);
    const e = k.diffusion.symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    expect(Array.from(e.values).sort()).toEqual([expect.closeTo(1, 12), expect.closeTo(3, 12)]);
  });

  it('the Inception-style score is 10 for confident uniform classes and 1 for identical predictions', () => {
    const oneHot = Array.from({ length: 100 }, (_, i) => Array.from({ length: 10 }, (_, c) => (c === i % 10 ? 1 : 0))).flat();
    expect(k.diffusion.inceptionScore(oneHot, 100, 10)).toBeCloseTo(10, 9);
    const same = Array.from({ length: 50 }, () => [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0]).flat();
    expect(k.diffusion.inceptionScore(same, 50, 10)).toBeCloseTo(1, 12);
  });

  it('the saved LeNet classifies the 10,000 test digits with ≥ 99% accuracy', async () => {
    const net = await k.nn.loadLeNet(fileURLToPath(new URL('../../models/lenet-mnist.safetensors', import.meta.url)));
    const test = await k.data.loadMnist('test');
    let correct = 0;
    for (const { x, y } of k.data.batches(test, { batchSize: 1000 })) {
      correct += await k.noGrad(() => k.scope(() => net.forward(x).argmax(1).eq(y).sum())).item();
      x.dispose();
      y.dispose();
    }
    expect(correct / 10000).toBeGreaterThanOrEqual(0.99); // 99.31% when trained
  });
});
