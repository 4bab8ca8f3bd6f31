/**
 * Trainers stop on a non-finite loss: the step is named with the last finite loss, no checkpoint is
 * written after it (nor one whose tensors hold NaN or ±∞), and the checkpoint on disk stays byte-identical.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as k from '../../src/index.ts';

let dir = '';
beforeAll(async () => {
  await k.init();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-trainers-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A small classifier trainer on a fixed batch of 8 random points in 4-D with 3 classes. */
function setup(seed = 0) {
  k.manualSeed(seed);
  const net = new k.nn.Sequential(new k.nn.Linear(4, 8), new k.nn.ReLU(), new k.nn.Linear(8, 3));
  const trainer = new k.train.ClassifierTrainer(net, { lr: 1e-2, weightDecay: 0, totalSteps: 20 });
  const x = k.randn([8, 4]).keep();
  const y = k.tensor(Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1])).keep();
  const nan = k.full([8, 4], NaN).keep();
  return { net, trainer, x, y, nan };
}

/** The error a promise rejects with. */
async function rejection(p: Promise<unknown>): Promise<k.train.NonFiniteLossError> {
  try {
    await p;
  } catch (e) {
    return e as k.train.NonFiniteLossError;
  }
  throw new Error('did not reject');
}

describe('non-finite losses stop training', () => {
  it('a NaN loss stops the run at the next read-back, naming the step and the last finite loss', async () => {
    const { trainer, x, y, nan } = setup();
    await trainer.trainStep(x, y);
    await trainer.trainStep(x, y);
    await trainer.trainStep(nan, y); // step 3: its loss is read back during step 4
    const e = await rejection(trainer.trainStep(x, y));
    expect(e).toBeInstanceOf(k.train.NonFiniteLossError);
    expect(e.message).toBe(`ClassifierTrainer: non-finite loss NaN at step 3 (last finite loss ${String(Number(trainer.losses[1]!.toPrecision(6)))} at step 2); training stopped`);
    expect([e.step, e.lastFiniteStep, e.lastFinite]).toEqual([3, 2, [trainer.losses[1]]]);
    expect(trainer.losses.slice(0, 2).every(Number.isFinite)).toBe(true);
    // the run goes on only if the caller insists: the weights are NaN now, so is every later step's loss, and the
    // last finite one is still step 2's (one history row per step)
    const e2 = await rejection(trainer.trainStep(x, y));
    expect(e2.message).toMatch(/non-finite loss NaN at step 4 \(last finite loss [\d.]+ at step 2\)/);
    const e3 = await rejection(trainer.flush());
    expect(e3.message).toMatch(/non-finite loss NaN at step 5 \(last finite loss [\d.]+ at step 2\)/);
    expect(trainer.losses.length).toBe(5);
  });

  it('no checkpoint is written after a non-finite step: the file on disk stays byte-identical', async () => {
    const { trainer, x, y, nan } = setup(1);
    const p = path.join(dir, 'a.safetensors');
    await trainer.trainStep(x, y);
    await trainer.trainStep(x, y);
    await trainer.save(p);
    const good = fs.readFileSync(p);
    await trainer.trainStep(nan, y);
    // save reads the last loss first: the error names step 3
    const e = await rejection(trainer.save(p));
    expect(e.message).toMatch(/^ClassifierTrainer: non-finite loss NaN at step 3 \(last finite loss [\d.]+ at step 2\); training stopped$/);
    expect(fs.readFileSync(p).equals(good)).toBe(true);
    // caught and saved again: still refused, because a step since the last save was not finite
    const e2 = await rejection(trainer.save(p));
    expect(e2.message).toMatch(new RegExp(`non-finite loss NaN at step 3 .*; ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was not written$`));
    expect(fs.readFileSync(p).equals(good)).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // the kept checkpoint loads and resumes at step 2 with finite weights
    const other = setup(1);
    await other.trainer.load(p);
    expect(other.trainer.step).toBe(2);
    for (const pp of other.net.parameters()) expect(Array.from(await pp.data()).every(Number.isFinite)).toBe(true);
    // and a resumed run can save again
    await other.trainer.trainStep(other.x, other.y);
    await other.trainer.save(p);
    expect(fs.readFileSync(p).equals(good)).toBe(false);
  });

  it('an update that makes the weights non-finite is caught at the save even while the loss it followed was finite', async () => {
    const { net, trainer, x, y } = setup(2);
    const p = path.join(dir, 'b.safetensors');
    await trainer.trainStep(x, y);
    await trainer.save(p);
    const good = fs.readFileSync(p);
    await trainer.trainStep(x, y);
    // stands in for an update that overflowed: the loss of step 2 was computed before it
    (net.at(2) as k.nn.Linear).weight.assign(k.full([3, 8], Infinity));
    const e = await rejection(trainer.save(p));
    expect(e).toBeInstanceOf(k.train.NonFiniteLossError);
    expect(e.message).toMatch(new RegExp(`^ClassifierTrainer: the update of step 2 made 'model\\.2\\.weight' non-finite \\(its loss was still finite: [\\d.]+\\); training stopped and ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was not written$`));
    expect(e.step).toBe(2);
    expect(fs.readFileSync(p).equals(good)).toBe(true);
  });

  it('a really diverging run (the 2D toy denoiser at a huge learning rate) stops with the step named', async () => {
    const e = await rejection(k.train.trainToy({ dataset: 'moons', objective: 'flow', steps: 40, batchSize: 64, lr: 1e30, seed: 0 }));
    expect(e).toBeInstanceOf(k.train.NonFiniteLossError);
    expect(e.message).toMatch(/^ToyTrainer: non-finite loss (NaN|-?Infinity) at step (\d+) \(last finite loss [-\d.e+]+ at step \d+\); training stopped$/);
    expect(e.step).toBeGreaterThan(1);
    expect(e.step).toBeLessThan(40);
    expect(e.lastFiniteStep).toBe(e.step - 1);
  });

  it('trainers with several metrics per step name the ones that went non-finite', async () => {
    /** A trainer whose steps record given metric values (no model). */
    class Metrics extends k.train.Trainer<number[]> {
      constructor() {
        super({ format: 'test/1', historyKey: 'history' }, ['rec', 'kl']);
      }
      protected state() {
        return { tensors: {}, meta: {} };
      }
      protected restore() {}
      async trainStep(rec: number, kl: number): Promise<void> {
        this.step++;
        await this.record([k.tensor([rec]), k.tensor([kl])], (v) => v);
      }
    }
    const t = new Metrics();
    await t.trainStep(0.5, 2);
    await t.trainStep(0.25, 3);
    await t.trainStep(0.125, Infinity);
    const e = await rejection(t.flush());
    expect(e.message).toBe('Metrics: non-finite kl Infinity at step 3 (last finite kl 3 at step 2); training stopped');
    expect([e.step, e.lastFiniteStep, e.lastFinite]).toEqual([3, 2, [0.25, 3]]);
    const u = new Metrics();
    await u.trainStep(NaN, -Infinity);
    const e2 = await rejection(u.trainStep(1, 1));
    expect(e2.message).toBe('Metrics: non-finite rec NaN, kl -Infinity at step 1 (no step before it had finite values); training stopped');
    expect([e2.step, e2.lastFiniteStep, e2.lastFinite]).toEqual([1, 0, null]);
  });
});
