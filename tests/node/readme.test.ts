/**
 * The README as tested documentation: every ```ts block is self-contained (it imports the package and
 * initializes the device) and runs as written — type-checked with tsc, then run in a Node process of its own
 * with `kiln-gpu` resolved to this repository's source — and what it prints is checked.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '../../src/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(ROOT, 'out', 'readme-blocks');

/** The ```ts blocks of the README, in order, with the line each starts at. */
function blocks(): { line: number; code: string }[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const out: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ts') continue;
    const start = i + 1;
    while (++i < lines.length && lines[i]!.trim() !== '```');
    out.push({ line: start + 1, code: lines.slice(start, i).join('\n') + '\n' });
  }
  return out;
}

/** Runs one block file with Node (tsx resolves `kiln-gpu` through the tsconfig beside it). */
function run(file: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: DIR, encoding: 'utf8', timeout: 240_000 });
}

describe('README code blocks', () => {
  const all = blocks();

  beforeAll(() => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    writeFileSync(join(DIR, 'tsconfig.json'), JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { baseUrl: '.', paths: { 'kiln-gpu': ['../../src/index.ts'] } },
      include: ['*.ts'],
    }));
    all.forEach((b, i) => writeFileSync(join(DIR, `block${i + 1}.ts`), `export {};\n${b.code}`));
  });

  it('every block imports the package and initializes the device itself', () => {
    expect(all.length).toBeGreaterThanOrEqual(4);
    for (const b of all) {
      expect(b.code, `README line ${b.line}`).toMatch(/^import \* as k from 'kiln-gpu';$/m);
      expect(b.code, `README line ${b.line}`).toMatch(/await k\.init\(/);
      expect(b.code, `README line ${b.line}`).toMatch(/k\.destroy\(\);/);
    }
  });

  it('every block type-checks', () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(DIR, 'tsconfig.json')], { cwd: DIR, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  /** The numbers a block printed (console.log of arrays spreads them over lines). */
  const numbers = (text: string) => [...text.matchAll(/-?\d+(?:\.\d+)?(?:e[-+]?\d+)?/g)].map((m) => Number(m[0]));

  it('the short example prints the adapter, rows of a softmax that sum to 1 and a mean', () => {
    const r = run('block1.ts');
    expect(r.status, r.stderr).toBe(0);
    const [driver, ...rest] = r.stdout.trim().split('\n');
    expect(['hardware', 'lavapipe', 'swiftshader', 'software']).toContain(driver);
    const values = numbers(rest.join('\n').replace(/\.\.\. \d+ more items/, ''));
    const mean = values.pop()!;
    expect(values).toHaveLength(100); // Node prints the first 100 of the 128 row sums
    for (const v of values) expect(Math.abs(v - 1)).toBeLessThan(1e-5);
    expect(Math.abs(mean)).toBeLessThan(0.05); // the mean of 8,192 standard normals
  });

  it('the defineOp block computes softsign(2x) + 1 in one kernel', () => {
    const r = run('block2.ts');
    expect(r.status, r.stderr).toBe(0);
    const values = numbers(r.stdout);
    const want = [-3, -1, 0, 1, 3].map((x) => (2 * x) / (1 + Math.abs(2 * x)) + 1);
    expect(values).toHaveLength(6);
    want.forEach((w, i) => expect(values[i]!).toBeCloseTo(w, 6));
    expect(values[5]).toBe(1); // kernels
  });

  it('the training block lowers the loss on MNIST and saves the model', () => {
    rmSync(join(DIR, 'mlp.safetensors'), { force: true });
    const r = run('block3.ts');
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/step (\d+): loss ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(losses).toHaveLength(4);
    expect(losses[0]!).toBeGreaterThan(2); // ≈ ln 10 at the start
    expect(losses[3]!).toBeLessThan(0.6);
    expect(existsSync(join(DIR, 'mlp.safetensors'))).toBe(true);
  });

  it('the compiled-step block trains (the loss falls) and replays its recorded step', () => {
    const r = run('block4.ts');
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/step (\d+): loss ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(losses).toHaveLength(4);
    expect(losses[0]!).toBeGreaterThan(2); // ≈ ln 10 at the start
    expect(losses[3]!).toBeLessThan(losses[0]! / 4);
    const stats = /recorded: (\d+), replayed: (\d+), traces: (\d+)/.exec(r.stdout);
    expect(stats, r.stdout).not.toBeNull();
    const [recorded, replayed, traces] = stats!.slice(1).map(Number) as [number, number, number];
    expect(recorded + replayed).toBe(20);
    expect(replayed).toBeGreaterThanOrEqual(10);
    expect(traces).toBe(1);
  });

  it('the memory block backpropagates through checkpointed blocks and reports a peak of live bytes', () => {
    const r = run('block5.ts');
    expect(r.status, r.stderr).toBe(0);
    const m = /^\[ 512, 256 \] peak ([\d.]+) MiB$/.exec(r.stdout.trim());
    expect(m, r.stdout).not.toBeNull();
    // at least the input, its gradient and the blocks' weights (3 × 256 × 257 floats) were live
    expect(Number(m![1])).toBeGreaterThan((2 * 512 * 256 + 3 * 256 * 257) * 4 / 2 ** 20);
  });

  it('the mixed-precision block trains under autocast with loss scaling (the loss falls, no step skipped)', async () => {
    const r = run('block6.ts');
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/step (\d+): loss ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(losses).toHaveLength(4);
    expect(losses[3]!).toBeLessThan(losses[0]! / 3);
    const f16 = (await k.init()).features.includes('shader-f16');
    expect(r.stdout).toContain(`${f16 ? 'f16' : 'f32'} { scale: 65536, skippedSteps: 0, lastSkippedStep: 0 }`);
  });

  it('the diffusion block samples points near the modes of the 8-Gaussian mixture', () => {
    const r = run('block7.ts');
    expect(r.status, r.stderr).toBe(0);
    const pts = JSON.parse(r.stdout.trim()) as [number, number][];
    expect(pts).toHaveLength(16);
    // the modes sit at radius 2, angles k·45°, with σ = 0.1: every sample lands within 0.5 of one (the starting noise does not)
    const near = pts.filter(([x, y]) => {
      const a = Math.round(Math.atan2(y, x) / (Math.PI / 4)) * (Math.PI / 4);
      return Math.hypot(x - 2 * Math.cos(a), y - 2 * Math.sin(a)) < 0.5;
    });
    expect(near.length).toBe(16);
  });
});
