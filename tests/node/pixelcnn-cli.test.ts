/**
 * The PixelCNN commands: kiln train-pixelcnn writes its files and evaluates the average of the weights,
 * kiln eval and kiln sample use that average unless --raw, kiln eval --samples scores samples with LeNet
 * against binarized digits, and --bits 8 reports bits per dimension. A file of its own: each test file runs
 * in a fresh process, and Dawn's mappings of one file's many models and samplers add up (vitest.config.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as k from '../../src/index.ts';
import { evaluateNll } from '../../src/train/index.ts';
import { evalPixelcnnCommand, isPixelCNNCheckpoint, samplePixelcnnCommand, trainPixelcnnCommand } from '../../src/cli/pixelcnn.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-pixelcnn-cli-'));

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The JSON line a command printed last. */
async function printedJson(run: () => Promise<void>): Promise<Record<string, unknown>> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await run();
    return JSON.parse(String(log.mock.calls.at(-1)![0]));
  } finally {
    log.mockRestore();
  }
}

describe('kiln train-pixelcnn, eval and sample', () => {
  it('kiln train-pixelcnn --classes writes a checkpoint, loss.csv, nll.json and a grid; kiln eval reports the same NLL as JSON', async () => {
    const out = join(dir, 'cli');
    const args = ['--steps', '2', '--batch', '4', '--width', '4', '--layers', '2', '--head', '8', '--classes', '--data-limit', '64', '--eval-limit', '20', '--samples', '10', '--out', out];
    await trainPixelcnnCommand(args);
    const ckpt = join(out, 'pixelcnn.safetensors');
    expect(isPixelCNNCheckpoint(ckpt)).toBe(true);
    for (const f of ['loss.csv', 'samples.png', 'nll.json']) expect(existsSync(join(out, f)), f).toBe(true);
    expect(readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
    const report = JSON.parse(readFileSync(join(out, 'nll.json'), 'utf8'));
    expect(report.images).toBe(20);
    const json = join(out, 'eval.json');
    await evalPixelcnnCommand(['--checkpoint', ckpt, '--limit', '20', '--json', json]);
    const ev = JSON.parse(readFileSync(json, 'utf8'));
    // the test NLL of the run and of kiln eval are both those of the average of the weights
    expect(report.ema).toBe(true);
    expect(ev.ema).toBe(true);
    expect(ev.natsPerImage).toBeCloseTo(report.natsPerImage, 3);
    expect(ev.bitsPerDim).toBeCloseTo(ev.natsPerImage / 784 / Math.LN2, 6);
    // --raw: the trained weights, which 2 steps moved away from their average (decay 0.999)
    await evalPixelcnnCommand(['--checkpoint', ckpt, '--limit', '20', '--raw', '--json', json]);
    const raw = JSON.parse(readFileSync(json, 'utf8'));
    expect(raw.ema).toBe(false);
    expect(Math.abs(raw.natsPerImage - ev.natsPerImage)).toBeGreaterThan(0.01);
    const { model: rawModel, ema, meta } = await k.nn.loadPixelCNN(ckpt, { ema: false });
    expect(ema).toBe(false);
    // dynamic binarization scores the pixels' probabilities by default
    expect((meta.train as { softTargets?: boolean }).softTargets).toBe(true);
    const r = await evaluateNll(rawModel, k.data.evalPixelBatches(await k.data.loadMnist('test'), 'dynamic', 20, 20));
    expect(r.natsPerImage).toBeCloseTo(raw.natsPerImage, 3);
    // kiln sample: the average unless --raw
    const drawn = await printedJson(() => samplePixelcnnCommand(['--checkpoint', ckpt, '--count', '2', '--raw', '--out', join(out, 'raw')]));
    expect(drawn.ema).toBe(false);
    // LeNet scores of 20 samples (2 per digit) against binarized test digits; no NLL with --limit 0
    await evalPixelcnnCommand(['--checkpoint', ckpt, '--limit', '0', '--samples', '20', '--json', json]);
    const scored = JSON.parse(readFileSync(json, 'utf8'));
    expect(scored.natsPerImage).toBeUndefined();
    expect(scored.samples).toBe(20);
    expect(scored.histogram.reduce((p: number, v: number) => p + v, 0)).toBe(20);
    expect(scored.accuracy).toBeGreaterThanOrEqual(0);
    expect(scored.fid).toBeGreaterThan(scored.fidFloor);
    expect(scored.reference).toMatch(/binarized .*fixed seed 1234/);
    expect(scored.sampleSeconds100).toBeGreaterThan(0);
    await expect(evalPixelcnnCommand(['--checkpoint', ckpt, '--samples', '25'])).rejects.toThrow(/--samples expects a multiple of 10 ≥ 20 \(10 batches\), got '25'/);
    await expect(evalPixelcnnCommand(['--checkpoint', ckpt, '--limit', '0'])).rejects.toThrow(/--limit 0 and --samples 0 leave nothing to evaluate/);
    // resuming with other model options is refused
    const other = args.map((v, i) => (args[i - 1] === '--width' ? '8' : v));
    await expect(trainPixelcnnCommand([...other, '--resume'])).rejects.toThrow(/--resume: .*pixelcnn\.safetensors holds PixelCNN .*"width":4.*pass the same model options/);
  });
});

describe('8-bit', () => {
  it('kiln train-pixelcnn --bits 8 trains on grey levels and reports bits per dimension', async () => {
    const out = join(dir, 'grey');
    await trainPixelcnnCommand(['--bits', '8', '--steps', '2', '--batch', '4', '--width', '4', '--layers', '2', '--head', '8', '--data-limit', '64', '--eval-limit', '8', '--samples', '4', '--out', out]);
    const report = JSON.parse(readFileSync(join(out, 'nll.json'), 'utf8'));
    expect(report.binarization).toBe('grey');
    // near-uniform over 256 levels at the start: about 8 bits per dimension
    expect(report.bitsPerDim).toBeGreaterThan(4);
    expect(report.bitsPerDim).toBeLessThan(10);
    expect(report.bitsPerDim).toBeCloseTo(report.natsPerImage / 784 / Math.LN2, 6);
    expect(existsSync(join(out, 'samples.png'))).toBe(true);
    // grey levels are not drawn: no probability targets
    const { meta } = await k.nn.loadPixelCNN(join(out, 'pixelcnn.safetensors'));
    expect((meta.train as { softTargets?: boolean }).softTargets).toBe(false);
  });
});
