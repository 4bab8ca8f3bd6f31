/** MNIST diffusion end to end: models, trainer, checkpoints and resume, sampling, metrics and the CLI. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS, type TrainConfig } from '../../src/train/index.ts';
import { evalCommand, sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-mnist-'));
/** A learning rate at which the tiny `kiln train` run below diverges within its first 50 steps. */
const DIVERGE_LR = '1e4';

/** Decodes kiln's own grey PNGs (8-bit, one channel, filter 0 rows, any zlib stream): pixels row-major. */
function decodeGreyPng(file: Uint8Array): { width: number; height: number; data: Uint8Array } {
  expect(Array.from(file.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let width = 0, height = 0;
  const idat: Uint8Array[] = [];
  for (let o = 8; o < file.length;) {
    const len = dv.getUint32(o);
    const type = String.fromCharCode(...file.subarray(o + 4, o + 8));
    if (type === 'IHDR') {
      [width, height] = [dv.getUint32(o + 8), dv.getUint32(o + 12)];
      expect([file[o + 16], file[o + 17]]).toEqual([8, 0]); // 8-bit grey
    } else if (type === 'IDAT') idat.push(file.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((width + 1) * height);
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width + 1)]).toBe(0);
    data.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { width, height, data };
}
const TINY: Partial<k.nn.UNetConfig> = { widths: [8, 16], attention: [], midAttention: true, heads: 2, groups: 4, patch: 2 };
const trainCfg = (steps: number): TrainConfig => ({ ...TRAIN_DEFAULTS, steps, batchSize: 16, lr: 3e-3, warmup: 10, seed: 3 });

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('models', () => {
  it('UNet and DiT map [N, 1, 28, 28] to the same shape, start at zero output, and use PyTorch-style names', async () => {
    k.manualSeed(0);
    // the models of the training tests below, so they reuse the kernels compiled here
    const unet = new k.nn.UNet(TINY);
    const dit = new k.nn.DiT({ dim: 32, depth: 2, heads: 2, patch: 4 });
    const x = k.randn([3, 1, 28, 28]), t = k.tensor([1, 500, 999]), y = k.tensor(Int32Array.from([0, 7, 10]));
    for (const m of [unet, dit]) {
      const out = m.forward(x, t, y);
      expect(out.shape).toEqual([3, 1, 28, 28]);
      // the output layers are zero-initialized (ADM / adaLN-Zero), so an untrained model predicts 0
      expect(Math.max(...Array.from(await out.abs().data()))).toBe(0);
    }
    const names = Object.keys(new k.nn.UNet({ ...TINY, attention: [1] }).stateDict());
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
    // the batch size of the training tests below, so they reuse the kernels compiled here
    const B = 16;
    const x = k.randn([B, 1, 28, 28]), target = k.randn([B, 1, 28, 28]);
    const t = k.tensor(Array.from({ length: B }, (_, i) => (i * 61 + 10) % 1000)), y = k.tensor(Int32Array.from({ length: B }, (_, i) => i % 11));
    const named = [...unet.namedParameters()];
    /** Names of the parameters whose gradient is missing, not finite, or exactly zero everywhere. */
    const dead = async () => {
      const out: string[] = [];
      await k.realize(...named.flatMap(([, p]) => (p.grad ? [p.grad] : []))); // one submission for all
      for (const [name, p] of named) {
        const g = p.grad ? await p.grad.data() : null;
        if (!g || !g.every(Number.isFinite) || !g.some((v) => v !== 0)) out.push(name);
      }
      return out;
    };
    // as initialised, the output conv is zero (the model starts by predicting 0): with a non-zero target
    // only its own weight and bias get a non-zero gradient, every layer behind it an exactly zero one (and
    // with the loss ‖output‖², as this test once had, all of them are zero)
    unet.forward(x, t, y).sub(target).square().mean().backward();
    expect(new Set(await dead())).toEqual(new Set(named.map(([n]) => n).filter((n) => !n.startsWith('conv_out.'))));
    // the output conv, the residual blocks' second convs and the attention output projections start at
    // zero (so each block starts as the identity); give every all-zero weight small random values, as training soon does: then every
    // parameter gets a non-zero, finite gradient — a layer cut off from the loss (detached, unused, or a
    // broken VJP) shows here
    unet.zeroGrad();
    const zeroInit: string[] = [];
    for (const [name, p] of named) {
      if (!name.endsWith('.weight') || (await p.data()).some((v) => v !== 0)) continue;
      zeroInit.push(name);
      k.noGrad(() => p.assign(k.randn(p.shape).mul(0.1)));
    }
    expect(zeroInit).toContain('conv_out.weight');
    unet.forward(x, t, y).sub(target).square().mean().backward();
    expect(await dead()).toEqual([]);
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
    // loss.csv: a header, then one row per step with a finite loss, the losses the checkpoint holds
    const csv = readFileSync(join(dir, 'cli', 'loss.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,loss');
    const rows = csv.slice(1).map((r) => r.split(',').map(Number));
    expect(rows.map((r) => r[0])).toEqual([1, 2, 3]);
    expect(rows.every((r) => r.length === 2 && Number.isFinite(r[1]) && r[1]! > 0)).toBe(true);
    expect(rows.map((r) => r[1])).toEqual(meta.losses);
    // samples.png: 10 rows (digits 0–9) of one 28×28 sample with 2-pixel gaps, each cell with visible structure
    const png = decodeGreyPng(readFileSync(join(dir, 'cli', 'samples.png')));
    expect([png.width, png.height]).toEqual([1 * 30 + 2, 10 * 30 + 2]);
    for (let r = 0; r < 10; r++) {
      const cell: number[] = [];
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) cell.push(png.data[(2 + r * 30 + y) * png.width + 2 + x]!);
      const mean = cell.reduce((a, b) => a + b, 0) / cell.length;
      const sd = Math.sqrt(cell.reduce((a, b) => a + (b - mean) ** 2, 0) / cell.length);
      expect(sd, `row ${r} of samples.png is blank`).toBeGreaterThan(10);
      expect(new Set(cell).size, `row ${r} of samples.png has too few grey levels`).toBeGreaterThan(20);
    }
    const gen = (seed: number) => k.noGrad(() => k.diffusion.generate(model, { objective: 'flow', labels: [3, 8], shape: [1, 28, 28], steps: 2, guidance: 1.5, seed }));
    const a = await (await gen(11)).data(), b = await (await gen(11)).data(), c = await (await gen(12)).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  }, 600_000);

  it('kiln train --resume continues a checkpoint whose model config leaves keys at their defaults out (as python/train_ddp.py writes it), and refuses one without optimizer state', async () => {
    const out = join(dir, 'resume-defaults');
    const args = (steps: number) => ['--preset', 'cpu', '--steps', String(steps), '--batch', '4', '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--out', out, '--seed', '5'];
    await trainCommand(args(2));
    const file = join(out, 'checkpoint.safetensors');
    const { tensors, metadata } = await k.loadWithMetadata(file);
    const meta = JSON.parse(metadata.kiln!) as { model: { config: Record<string, unknown> } };
    delete meta.model.config.guidanceInput;
    await k.save(tensors, file, { metadata: { ...metadata, kiln: JSON.stringify(meta) } });
    for (const t of Object.values(tensors)) t.dispose();
    await trainCommand([...args(3), '--resume']);
    expect((await k.diffusion.loadDenoiser(file)).meta.step).toBe(3);
    // a stored value other than the default still has to match
    const again = await k.loadWithMetadata(file);
    const changed = JSON.parse(again.metadata.kiln!) as { model: { config: Record<string, unknown> } };
    changed.model.config.guidanceInput = true;
    await k.save(again.tensors, file, { metadata: { ...again.metadata, kiln: JSON.stringify(changed) } });
    await expect(trainCommand([...args(4), '--resume'])).rejects.toThrow(/--resume: .* holds model .*"guidanceInput":true.*pass the same --preset\/--model\)/);
    // a checkpoint without optimizer state (python/train_ddp.py keeps none) is refused, saying so
    const noOptimizer = JSON.parse(again.metadata.kiln!) as { optimizer?: unknown };
    delete noOptimizer.optimizer;
    await k.save(again.tensors, file, { metadata: { ...again.metadata, kiln: JSON.stringify(noOptimizer) } });
    for (const t of Object.values(again.tensors)) t.dispose();
    await expect(trainCommand([...args(4), '--resume'])).rejects.toThrow(/checkpoint\.safetensors holds no optimizer state, so its run cannot be resumed/);
    // and a trainer that is refused it is left as it was: no step, no weights taken
    const spec = JSON.parse(again.metadata.kiln!).model as { kind: 'unet'; config: Record<string, unknown> };
    const model = k.diffusion.buildDenoiser(spec.kind, spec.config);
    const trainer = new DiffusionTrainer(model, { ...TRAIN_DEFAULTS, steps: 4, batchSize: 4 });
    const weights = async () => Array.from(await model.parameters()[0]!.data());
    const before = await weights();
    await expect(trainer.load(file)).rejects.toThrow(/holds no optimizer state/);
    expect(trainer.step).toBe(0);
    expect(await weights()).toEqual(before);
  }, 600_000);

  it('a diverging kiln train stops at the first non-finite loss, exits with 1 and keeps the last good checkpoint', async () => {
    // a learning rate far too high: warmup over 50 steps keeps the first updates small enough to save a checkpoint
    // first; the schedule of the first 50 steps does not depend on --steps, so the run that stops early repeats them
    const args = (out: string, steps: number, saveEvery: number) => ['--preset', 'cpu', '--steps', String(steps), '--batch', '4', '--lr', DIVERGE_LR, '--warmup', '50', '--save-every', String(saveEvery), '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--seed', '5', '--out', out];
    const kiln = (argv: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', ...argv], { encoding: 'utf8', timeout: 900_000 });
    const out = join(dir, 'diverge');
    const r = kiln(args(out, 50, 2));
    expect(r.status, r.stderr).toBe(1);
    const m = /kiln train: DiffusionTrainer: (?:non-finite loss (?:NaN|-?Infinity) at step (\d+) \(last finite loss [-\d.e+]+ at step (\d+)\); training stopped|the update of step (\d+) made '[^']+' non-finite \(its loss was still finite: [-\d.e+]+\); training stopped and \S+ was not written)\n(\S+) is the last good checkpoint \(step (\d+)\); the losses up to the failing step are in (\S+); a lower --lr may help/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const bad = Number(m![1] ?? m![3]);
    const kept = Number(m![5]);
    expect(m![4]).toBe(join(out, 'checkpoint.safetensors'));
    expect(kept).toBeGreaterThanOrEqual(2);
    expect(kept).toBeLessThan(bad);
    expect(bad - kept).toBeLessThanOrEqual(2 + 1); // saved every 2 steps; the loss of a step is read one step late
    // loss.csv: the losses up to the failing step, all finite before it
    const losses = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[1]));
    if (m![1]) {
      expect(losses.length).toBe(bad);
      expect(Number.isFinite(losses[bad - 1])).toBe(false);
    }
    expect(losses.slice(0, bad - 1).every(Number.isFinite)).toBe(true);
    expect(readdirSync(out).filter((f) => f.endsWith('.png') || f.includes('.tmp-'))).toEqual([]);
    // the kept checkpoint is the one of step `kept`: the same weights, moments and losses as a run of `kept` steps
    const ref = join(dir, 'diverge-ref');
    await trainCommand(args(ref, kept, kept));
    const a = await k.loadWithMetadata(join(out, 'checkpoint.safetensors'));
    const b = await k.loadWithMetadata(join(ref, 'checkpoint.safetensors'));
    const [ma, mb] = [a.metadata, b.metadata].map((x) => JSON.parse(x.kiln!) as Record<string, unknown>);
    expect(ma!.step).toBe(kept);
    expect(ma!.losses).toEqual(mb!.losses);
    expect(ma!.rng).toEqual(mb!.rng);
    expect(Object.keys(a.tensors).sort()).toEqual(Object.keys(b.tensors).sort());
    for (const [name, t] of Object.entries(a.tensors)) {
      const va = await t.data(), vb = await b.tensors[name]!.data();
      expect(Array.from(va).every(Number.isFinite), name).toBe(true);
      expect(Buffer.from(va.buffer, va.byteOffset, va.byteLength).equals(Buffer.from(vb.buffer, vb.byteOffset, vb.byteLength)), name).toBe(true);
    }
    for (const t of [...Object.values(a.tensors), ...Object.values(b.tensors)]) t.dispose();
    // and it loads as a model
    const { model } = await k.diffusion.loadDenoiser(join(out, 'checkpoint.safetensors'));
    expect(model.parameters().length).toBeGreaterThan(0);
    // a run that diverges before its first save leaves no checkpoint (in this process: the exit code is checked above)
    const none = join(dir, 'diverge-none');
    await expect(trainCommand(args(none, 50, 1000))).rejects.toThrow(/DiffusionTrainer: non-finite loss NaN at step \d+ .*\nthis run wrote no checkpoint;/);
    expect(existsSync(join(none, 'checkpoint.safetensors'))).toBe(false);
  }, 1_800_000);

  it('argument errors name the option and what it expects', async () => {
    await expect(trainCommand(['--steps', 'x'])).rejects.toThrow(/--steps expects an integer ≥ 1, got 'x'/);
    await expect(trainCommand(['--objective', 'score'])).rejects.toThrow(/--objective must be one of flow, eps, v, got 'score'/);
    await expect(trainCommand(['--objective', 'eps', '--time-mean', '1'])).rejects.toThrow(/--time-mean applies to --objective flow \(its logit-normal times\), not eps/);
    await expect(trainCommand(['--time-mean', 'x'])).rejects.toThrow(/--time-mean expects a number, got 'x'/);
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
