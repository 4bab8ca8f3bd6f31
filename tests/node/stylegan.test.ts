/**
 * The style-based GAN against independent references: AdaIN against its formula computed here in float64
 * (instance-norm semantics: biased variance, eps inside the square root), its gradients by finite
 * differences on the CPU reference, truncation ψ = 0 giving w̄ for every sample, noise injection that is
 * deterministic at zero scale (and not otherwise), the generator's shapes, and `kiln train-gan` writing a
 * checkpoint, loss.csv and a grid, resuming, and `kiln eval` / `kiln sample` reading it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as k from '../../src/index.ts';
import { evalGanCommand, isGANCheckpoint, sampleGanCommand, trainGanCommand } from '../../src/cli/stylegan.ts';
import { values } from '../shared/util.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-stylegan-'));

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** AdaIN in float64: w·(x − μ)/√(σ² + eps) + b per (n, c), σ² the biased variance over the H·W positions. */
function adainReference(x: number[], [N, C, H, W]: number[], w: number[], b: number[], eps: number): number[] {
  const out = new Array<number>(x.length);
  const P = H! * W!;
  for (let n = 0; n < N!; n++) for (let c = 0; c < C!; c++) {
    const o = (n * C! + c) * P;
    let mu = 0;
    for (let i = 0; i < P; i++) mu += x[o + i]!;
    mu /= P;
    let v = 0;
    for (let i = 0; i < P; i++) v += (x[o + i]! - mu) ** 2;
    v /= P; // biased, as instance norm
    for (let i = 0; i < P; i++) out[o + i] = w[n * C! + c]! * ((x[o + i]! - mu) / Math.sqrt(v + eps)) + b[n * C! + c]!;
  }
  return out;
}

describe('AdaIN', () => {
  it('k.F.adaIN equals the float64 formula, with the biased variance and eps inside the square root', async () => {
    const shape = [2, 3, 4, 5];
    const x = values(120, 1, -2, 2), w = values(6, 2, 0.5, 2), b = values(6, 3, -1, 1);
    // one channel nearly constant, where the eps inside √ matters
    for (let i = 20; i < 40; i++) x[i] = 0.3 + 1e-3 * (i % 3);
    for (const eps of [1e-5, 0.1]) {
      const got = await k.F.adaIN(k.tensor(x, { shape }), k.tensor(w, { shape: [2, 3] }), k.tensor(b, { shape: [2, 3] }), eps).data();
      const ref = adainReference(x, shape, w, b, eps);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!), `eps ${eps}, element ${i}`).toBeLessThan(2e-5 * (1 + Math.abs(ref[i]!)));
    }
    // an unbiased variance or eps outside the square root would differ here by far more than the tolerance
    const unbiased = adainReference(x, shape, w, b, 1e-5).map((v, i) => v - b[Math.floor(i / 20)]!);
    expect(Math.abs(unbiased[0]! * Math.sqrt(19 / 20) - unbiased[0]!)).toBeGreaterThan(1e-3);
  });

  it('the module applies the affine map of the style: (scale, shift) = affine(style), scale starting near 1', async () => {
    k.manualSeed(1);
    const m = new k.nn.AdaIN(3, 4);
    const x = k.randn([2, 3, 4, 4]), s = k.randn([2, 4]);
    const [w, b] = m.styles(s);
    const ref = adainReference(Array.from(await x.data()), x.shape, Array.from(await w.data()), Array.from(await b.data()), 1e-5);
    const got = await m.forward(x, s).data();
    for (let i = 0; i < ref.length; i++) expect(got[i]).toBeCloseTo(ref[i]!, 4);
    expect(Array.from(await m.affine.bias!.data())).toEqual([1, 1, 1, 0, 0, 0]);
    expect(() => m.forward(x, k.randn([2, 5]))).toThrow('AdaIN: expected styles [N, 4], got [2, 5]');
    expect(() => k.F.adaIN(x, k.ones([2, 4]), k.zeros([2, 3]))).toThrow('adaIN: weight must be [2, 3] or [3] for x [2, 3, 4, 4], got [2, 4]');
  });

  it('gradients with respect to x, the scale and the shift match finite differences (float64, CPU reference)', async () => {
    const r = await k.gradcheck((x, w, b) => k.F.adaIN(x!, w!, b!, 1e-3), [
      { shape: [2, 2, 3, 3], data: values(36, 5, -1, 1) },
      { shape: [2, 2], data: values(4, 6, 0.5, 1.5) },
      { shape: [2, 2], data: values(4, 7, -1, 1) },
    ]);
    expect(r.ok, `worst ${r.worst} at ${JSON.stringify(r.at)}`).toBe(true);
    for (const g of r.analytic) expect(g.some((v) => Math.abs(v) > 1e-3)).toBe(true);
  });
});

describe('StyleGenerator', () => {
  it('maps codes and labels to 28×28 images, with gradients reaching every parameter', async () => {
    k.manualSeed(2);
    const g = new k.nn.StyleGenerator({ channels: [8, 4, 4], latentDim: 8, wDim: 8, mappingLayers: 2 });
    expect(g.size).toBe(28);
    expect(g.numStyles).toBe(6);
    const y = k.tensor([0, 3, 9], { dtype: 'i32' });
    const x = g.forward(k.randn([3, 8]), y);
    expect(x.shape).toEqual([3, 1, 28, 28]);
    // noise weights start at 0: give them a value so that their gradient is not 0 by construction
    for (const l of g.layers) l.noise.weight.assign(k.full([l.outChannels], 0.1));
    g.forward(k.randn([3, 8]), y).square().mean().backward();
    for (const [name, p] of g.namedParameters()) {
      expect(p.grad, name).toBeTruthy();
      const v = await p.grad!.abs().max().item();
      // an embedding row of a label not in the batch gets no gradient; the others must
      expect(v, name).toBeGreaterThan(0);
    }
    g.zeroGrad();
    expect(() => g.forward(k.randn([3, 8]))).toThrow('MappingNetwork: the model is class-conditional (10 classes); pass labels [3]');
    expect(() => g.forward(k.randn([3, 5]), y)).toThrow('MappingNetwork: expected codes [N, 8], got [3, 5]');
  });

  it('truncation ψ = 0 gives w̄ of each sample\'s class for every code; ψ = 1 leaves w as mapped', async () => {
    k.manualSeed(3);
    const g = new k.nn.StyleGenerator({ channels: [8, 4, 4], latentDim: 8, wDim: 8, mappingLayers: 2, mixing: 0, wAvgDecay: 0.5 });
    // training-mode passes move w̄ toward the mapped w of each class seen
    for (let i = 0; i < 3; i++) g.forward(k.randn([6, 8]), k.tensor([1, 1, 2, 2, 2, 5], { dtype: 'i32' }));
    const avg = (await g.w_avg.data()) as Float32Array;
    const row = (c: number) => Array.from(avg.slice(c * 8, c * 8 + 8));
    expect(row(0).every((v) => v === 0)).toBe(true); // class 0 never seen
    expect(row(1).some((v) => v !== 0)).toBe(true);
    const labels = k.tensor([1, 2, 5, 1], { dtype: 'i32' });
    const w = g.map(k.randn([4, 8]), labels);
    const t = (await g.truncate(w, 0, labels).data()) as Float32Array;
    for (const [i, c] of [1, 2, 5, 1].entries()) expect(Array.from(t.slice(i * 8, i * 8 + 8))).toEqual(row(c));
    expect(Array.from(await g.truncate(w, 1, labels).data())).toEqual(Array.from(await w.data()));
    const half = (await g.truncate(w, 0.5, labels).data()) as Float32Array, wv = (await w.data()) as Float32Array;
    for (let i = 0; i < 8; i++) expect(half[i]).toBeCloseTo((wv[i]! + row(1)[i]!) / 2, 5);
    // the images of ψ = 0 are the same for different codes once the noise is fixed
    g.eval();
    const a = await g.generate(k.randn([2, 8]), k.tensor([2, 2], { dtype: 'i32' }), { psi: 0, noise: 'none' }).data();
    expect(Array.from(a.slice(0, 784))).toEqual(Array.from(a.slice(784)));
  });

  it('noise injection with zero scale is deterministic; with a non-zero scale two passes differ', async () => {
    k.manualSeed(4);
    const g = new k.nn.StyleGenerator({ channels: [8, 4, 4], latentDim: 8, wDim: 8, mappingLayers: 2, numClasses: 0 }).eval();
    const z = k.randn([2, 8]);
    const same = async () => [Array.from(await g.generate(z).data()), Array.from(await g.generate(z).data())];
    const [a, b] = await same();
    expect(a).toEqual(b);
    g.layers.at(3).noise.weight.assign(k.full([4], 0.5));
    const [c, d] = await same();
    expect(c).not.toEqual(d);
    // given noise maps: the same maps give the same images
    const maps = Array.from({ length: g.numStyles }, (_, i) => k.randn([2, 1, 7 * 2 ** Math.floor(i / 2), 7 * 2 ** Math.floor(i / 2)]));
    const e = Array.from(await g.generate(z, undefined, { noise: maps }).data()), f = Array.from(await g.generate(z, undefined, { noise: maps }).data());
    expect(e).toEqual(f);
    expect(() => g.layers.at(0).noise.forward(k.zeros([2, 8, 7, 7]), k.zeros([2, 1, 6, 7]))).toThrow('NoiseInjection: expected noise [2, 1, 7, 7], got [2, 1, 6, 7]');
  });
});

describe('kiln train-gan', () => {
  it('writes a checkpoint, loss.csv and a grid, resumes where it stopped, and kiln eval / kiln sample read the checkpoint', async () => {
    const out = join(dir, 'cli');
    const base = ['--batch', '4', '--channels', '8,4,4', '--latent-dim', '8', '--w-dim', '8', '--mapping-layers', '2', '--disc-width', '4', '--data-limit', '64', '--samples', '20', '--save-every', '2', '--out', out];
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await trainGanCommand(['--steps', '2', ...base]);
      const ckpt = join(out, 'gan.safetensors');
      expect(isGANCheckpoint(ckpt)).toBe(true);
      for (const f of ['loss.csv', 'samples.png']) expect(existsSync(join(out, f)), f).toBe(true);
      await trainGanCommand(['--steps', '3', ...base, '--resume']);
      expect(log.mock.calls.flat().join('\n')).toMatch(/resumed .*gan\.safetensors at step 2/);
      const rows = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n');
      expect(rows[0]).toBe('step,d_loss,g_loss');
      expect(rows.map((r) => r.split(',')[0])).toEqual(['step', '1', '2', '3']);
      const { meta } = await k.nn.loadStyleGenerator(ckpt);
      expect(meta.step).toBe(3);
      const json = join(out, 'eval.json');
      await evalGanCommand(['--checkpoint', ckpt, '--per-class', '2', '--json', json]);
      const ev = JSON.parse(readFileSync(json, 'utf8'));
      expect(ev.samples).toBe(20);
      expect(ev.histogram.reduce((a: number, b: number) => a + b, 0)).toBe(20);
      expect(ev.accuracy).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(ev.fid)).toBe(true);
      await sampleGanCommand(['--checkpoint', ckpt, '--count', '10', '--psi', '0.5', '--out', join(out, 'grid')]);
      expect(existsSync(join(out, 'grid', 'samples.png'))).toBe(true);
      // resuming with other model options is refused
      await expect(trainGanCommand(['--steps', '4', ...base.map((v, i) => (base[i - 1] === '--w-dim' ? '16' : v)), '--resume'])).rejects.toThrow(/--resume: .*gan\.safetensors holds the generator .*"wDim":8.*pass the same model options/);
    } finally {
      log.mockRestore();
    }
  });
});
