/**
 * `kiln eval --nll`: rectified flow written as the SDE the probability-flow likelihood integrates gives the
 * closed-form log-density of a Gaussian mixture (its exact denoiser stands in for a network); the summary's
 * bits per dimension of 8-bit data from densities in [−1, 1]; the command on a small checkpoint, through
 * `kiln eval`'s dispatch, and its refusals.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { EVAL } from '../../src/cli/commands.ts';
import { evalNllCommand, flowAsSde, segmentedLogLikelihood, summarizeNll } from '../../src/cli/likelihood.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS } from '../../src/train/index.ts';

const D = k.diffusion;
const dir = mkdtempSync(join(tmpdir(), 'kiln-nll-'));

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rectified flow as an SDE', () => {
  const mix = new D.GaussianMixture([0.4, 0.6], [[-1, 0.5], [1, -0.5]], [0.4, 0.3]);
  const flow = new D.RectifiedFlow();
  const pts = [[-1, 0.4], [0.9, -0.6], [0, 0]];
  const eps = 1e-3, T = 0.99;

  it('integrates to the closed-form log-density of a Gaussian mixture (exact divergence), with the exact or the Gaussian prior', async () => {
    const process = flowAsSde();
    // its coefficients are the flow's, and f, g² are those of x_t = (1 − t)·x0 + t·z
    expect(process.at(0.3)).toEqual(flow.at(0.3));
    expect(process.driftCoef(0.5)).toBeCloseTo(-2, 12);
    expect(process.diffusion(0.5) ** 2).toBeCloseTo(2, 12);
    const exactPrior = (z: Float32Array | Float64Array) => mix.logDensity(z, 1 - T, T);
    const exact = mix.logDensity(pts.flat(), 1 - eps, eps);
    const { logp } = await D.logLikelihood({ model: mix.model(flow), prediction: 'x0', process, x: k.tensor(pts), steps: 60, eps, T, priorLogProb: exactPrior });
    logp.forEach((v, i) => expect(Math.abs(v - exact[i]!), `point ${i}: ${v} vs ${exact[i]}`).toBeLessThan(3e-3));
    // the Gaussian prior N(0, T²) of kiln eval --nll ignores the 0.01·x0 left at T: a small error
    const gauss = await D.logLikelihood({ model: mix.model(flow), prediction: 'x0', process, x: k.tensor(pts), steps: 60, eps, T });
    gauss.logp.forEach((v, i) => expect(Math.abs(v - exact[i]!)).toBeLessThan(0.01));
  });

  it('segment by segment (the end points of one segment start the next) gives the same log-density, with fewer steps for a sharp density', async () => {
    const process = flowAsSde();
    // a sharp mixture (stds 0.004, 0.006): its field changes fast near the data, where uniform steps are too coarse
    const sharp = new D.GaussianMixture([0.5, 0.5], [[-1, 0.5], [1, -0.5]], [0.004, 0.006]);
    const x = [[-1.003, 0.498], [0.995, -0.504]];
    const exactPrior = (z: Float32Array | Float64Array) => sharp.logDensity(z, 1 - T, T);
    const exact = sharp.logDensity(x.flat(), 1 - eps, eps);
    const seg = await segmentedLogLikelihood({ model: sharp.model(flow), prediction: 'x0', process, x: k.tensor(x), steps: 10, priorLogProb: exactPrior }, [eps, 0.01, 0.1, T]);
    seg.forEach((v, i) => expect(Math.abs(v - exact[i]!), `segmented, point ${i}: ${v} vs ${exact[i]}`).toBeLessThan(0.01));
    // as many steps spread uniformly over [0.001, 0.99] miss it by far more
    const { logp } = await D.logLikelihood({ model: sharp.model(flow), prediction: 'x0', process, x: k.tensor(x), steps: 30, eps, T, priorLogProb: exactPrior });
    const uniformErr = Math.max(...logp.map((v, i) => Math.abs(v - exact[i]!)));
    expect(uniformErr).toBeGreaterThan(0.1);
    await expect(segmentedLogLikelihood({ model: sharp.model(flow), prediction: 'x0', process, x: k.tensor(x) }, [0.5, 0.1])).rejects.toThrow(/segments must be at least two increasing times, got \[0.5, 0.1\]/);
  });
});

describe('summarizeNll', () => {
  it('gives nats per image, and bits per dimension of 8-bit data dequantized into cells of width 1/127.5', () => {
    const r = summarizeNll([-100, -300], 784);
    expect(r.images).toBe(2);
    expect(r.natsPerImage).toBe(200);
    expect(r.natsStdErr).toBeCloseTo(Math.sqrt(2 * 100 ** 2) / Math.sqrt(2), 10);
    // −log P(v) ≤ −log p(x) + 784·ln 127.5
    expect(r.bitsPerDim).toBeCloseTo((200 + 784 * Math.log(127.5)) / (784 * Math.LN2), 10);
    expect(r.bitsStdErr).toBeCloseTo(r.natsStdErr / (784 * Math.LN2), 12);
    expect(() => summarizeNll([], 784)).toThrow(/summarizeNll: no log-densities/);
  });
});

describe('kiln eval --nll', () => {
  const TINY: Partial<k.nn.UNetConfig> = { widths: [8, 16], attention: [], midAttention: false, heads: 2, groups: 4, patch: 2 };

  /** A checkpoint of a 1-step run of `objective`, saved as kiln train saves it. */
  async function checkpoint(name: string, objective: 'flow' | 'eps'): Promise<string> {
    k.manualSeed(0);
    const model = new k.nn.UNet(TINY);
    const t = new DiffusionTrainer(model, { ...TRAIN_DEFAULTS, objective, steps: 1, batchSize: 2 });
    const x = k.zeros([2, 1, 28, 28]);
    await t.trainStep(x, k.tensor(Int32Array.from([1, 2])));
    const path = join(dir, `${name}.safetensors`);
    await t.save(path, { model: { kind: 'unet', config: TINY } });
    return path;
  }

  it('reports the NLL of test digits in nats per image and bits per dimension, reproducibly per seed; other checkpoints are refused', async () => {
    const path = await checkpoint('flow', 'flow');
    const json = join(dir, 'nll.json');
    // through kiln eval's dispatch: --nll picks the likelihood
    await EVAL.run(['--checkpoint', path, '--nll', '3', '--nll-steps', '2', '--nll-batch', '2', '--json', json]);
    const r = JSON.parse(readFileSync(json, 'utf8'));
    expect(r.images).toBe(3);
    expect(Number.isFinite(r.natsPerImage)).toBe(true);
    expect(r.bitsPerDim).toBeCloseTo(r.natsPerImage / (784 * Math.LN2) + Math.log2(127.5), 8);
    expect(r).toMatchObject({ steps: 2, divergence: 'hutchinson', ema: true, segments: [0.001, 0.01, 0.1, 0.99] });
    await evalNllCommand(['--checkpoint', path, '--nll', '3', '--nll-steps', '2', '--nll-batch', '2', '--json', json]);
    expect(JSON.parse(readFileSync(json, 'utf8')).natsPerImage).toBeCloseTo(r.natsPerImage, 3);
    await evalNllCommand(['--checkpoint', path, '--nll', '3', '--nll-steps', '2', '--nll-batch', '2', '--seed', '1', '--json', json]);
    expect(JSON.parse(readFileSync(json, 'utf8')).natsPerImage).not.toBeCloseTo(r.natsPerImage, 3);
    const eps = await checkpoint('eps', 'eps');
    await expect(evalNllCommand(['--checkpoint', eps, '--nll', '3'])).rejects.toThrow(/kiln eval --nll: the probability-flow likelihood is implemented for the flow objective .*trained with 'eps'/);
    await expect(evalNllCommand(['--checkpoint', path, '--nll', '1'])).rejects.toThrow(/--nll expects an integer ≥ 2, got '1'/);
    await expect(evalNllCommand(['--checkpoint', path, '--per-class', '3'])).rejects.toThrow(/unknown option --per-class/);
  }, 300_000);
});
