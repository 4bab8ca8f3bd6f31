/**
 * `kiln distill` end to end on a tiny teacher built here (a small UNet with random weights saved as a
 * `kiln train` checkpoint): the student checkpoints record how they sample, a run killed mid-round resumes
 * to the same weights and losses as the uninterrupted run, `kiln sample` on a student makes exactly one
 * network evaluation per step without a doubled batch (counted on the network itself), and bad input is
 * refused with the option named.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { distillCommand } from '../../src/cli/distill.ts';
import { sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';
import { DiffusionTrainer, TRAIN_DEFAULTS, VAE_TRAIN_DEFAULTS, VAETrainer } from '../../src/train/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-distill-cli-'));
const teacher = join(dir, 'teacher.safetensors');
/** The tiny UNet of the MNIST tests (pixel-unshuffle stem, widths 8/16). */
const TINY: Partial<k.nn.UNetConfig> = { widths: [8, 16], attention: [], midAttention: false, heads: 2, groups: 4, patch: 2 };
/** Options every run below shares: tiny batches and grids, a checkpoint every step. */
const SMALL = ['--teacher', teacher, '--batch', '4', '--warmup', '1', '--grid-per-class', '1', '--save-every', '1'];

/** Meta of a kiln checkpoint and its tensors' bytes by name. */
async function contents(path: string): Promise<{ meta: Record<string, unknown>; bytes: Record<string, Buffer> }> {
  const { tensors, metadata } = await k.loadWithMetadata(path);
  const bytes: Record<string, Buffer> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const v = await t.data();
    bytes[name] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    t.dispose();
  }
  return { meta: JSON.parse(metadata.kiln!) as Record<string, unknown>, bytes };
}

/** Runs `fn` while counting the UNet forward passes and the batch size of each (compiled steps off: every evaluation calls forward). */
async function countForwards(fn: () => Promise<void>): Promise<number[]> {
  const batches: number[] = [];
  const forward = k.nn.UNet.prototype.forward;
  k.nn.UNet.prototype.forward = function (this: k.nn.UNet, x: k.Tensor, ...rest: [k.Tensor, (k.Tensor | null)?, (k.Tensor | null)?]) {
    batches.push(x.shape[0]!);
    return forward.call(this, x, ...rest);
  };
  k.setCompile(false);
  try {
    await fn();
  } finally {
    k.setCompile(true);
    k.nn.UNet.prototype.forward = forward;
  }
  return batches;
}

beforeAll(async () => {
  await k.init();
  // the teacher: a tiny UNet whose zero-initialized layers get small random weights (an untrained UNet predicts 0)
  k.manualSeed(7);
  const net = new k.nn.UNet(TINY);
  for (const [name, p] of net.namedParameters()) {
    if (name.endsWith('.weight') && !(await p.data()).some((v) => v !== 0)) k.noGrad(() => p.assign(k.randn(p.shape).mul(0.05)));
  }
  await new DiffusionTrainer(net, { ...TRAIN_DEFAULTS, steps: 1 }).save(teacher, { model: { kind: 'unet', config: net.config } });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kiln distill', () => {
  const prog = (out: string) => ['--method', 'progressive', ...SMALL, '--teacher-steps', '4', '--steps-student', '1', '--steps', '2', '--out', out];

  it('progressive: 4 → 2 → 1 steps; the checkpoints record the student, loss.csv and the grids are written', async () => {
    const out = join(dir, 'prog');
    await distillCommand(prog(out));
    for (const f of ['checkpoint.safetensors', 'student-2step.safetensors', 'student-1step.safetensors', 'loss.csv', 'samples-2step.png', 'samples.png']) expect(existsSync(join(out, f)), f).toBe(true);
    const { model, meta, student } = await k.diffusion.loadDenoiser(join(out, 'checkpoint.safetensors'));
    expect(meta.format).toBe('kiln-distill-progressive/1');
    expect(student).toEqual({ method: 'progressive', objective: 'flow', steps: 1, sampler: 'flow_euler', guidance: 1.5, teacher });
    expect((meta.train as { studentSteps: number }).studentSteps).toBe(1);
    expect(model).toBeInstanceOf(k.nn.UNet);
    expect((await k.diffusion.loadDenoiser(join(out, 'student-2step.safetensors'))).student!.steps).toBe(2);
    const csv = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,student_steps,loss');
    const rows = csv.slice(1).map((r) => r.split(',').map(Number));
    expect(rows.map((r) => [r[0], r[1]])).toEqual([[1, 2], [2, 2], [3, 1], [4, 1]]);
    expect(rows.every((r) => Number.isFinite(r[2]) && r[2]! > 0)).toBe(true);
    expect(rows.slice(2).map((r) => r[2])).toEqual(meta.losses);
  });

  it('a progressive run killed in its second round resumes to the same student and losses', async () => {
    const out = join(dir, 'prog-killed');
    // the fourth update (round 2, step 2) fails as a killed process would: the checkpoint on disk is round 2's step 1
    const trainStep = k.train.ProgressiveTrainer.prototype.trainStep;
    let calls = 0;
    k.train.ProgressiveTrainer.prototype.trainStep = async function (this: k.train.ProgressiveTrainer, ...batch) {
      if (++calls === 4) throw new Error('killed');
      return trainStep.apply(this, batch);
    };
    try {
      await expect(distillCommand(prog(out))).rejects.toThrow('killed');
    } finally {
      k.train.ProgressiveTrainer.prototype.trainStep = trainStep;
    }
    expect((await contents(join(out, 'checkpoint.safetensors'))).meta).toMatchObject({ step: 1, distill: { round: 1 } });
    await expect(distillCommand([...prog(out), '--steps', '3', '--resume'])).rejects.toThrow(/--resume: .*checkpoint\.safetensors was written by kiln distill with \{.*"steps":2\}, not \{.*"steps":3\} \(pass the same options, or another --out\)/);
    await distillCommand([...prog(out), '--resume']);
    const [a, b] = await Promise.all([contents(join(dir, 'prog', 'checkpoint.safetensors')), contents(join(out, 'checkpoint.safetensors'))]);
    expect(b.meta.losses).toEqual(a.meta.losses);
    expect(b.meta.distill).toEqual(a.meta.distill);
    expect(Object.keys(b.bytes).sort()).toEqual(Object.keys(a.bytes).sort());
    for (const name of Object.keys(a.bytes)) expect(b.bytes[name]!.equals(a.bytes[name]!), name).toBe(true);
    expect(readFileSync(join(out, 'loss.csv'), 'utf8')).toBe(readFileSync(join(dir, 'prog', 'loss.csv'), 'utf8'));
  });

  it('kiln sample on a student: its steps, one evaluation per step of the undoubled batch, no guidance', async () => {
    for (const [file, steps] of [['student-2step.safetensors', 2], ['checkpoint.safetensors', 1]] as const) {
      const batches = await countForwards(() => sampleCommand(['--checkpoint', join(dir, 'prog', file), '--labels', '3,8', '--per-class', '3', '--out', join(dir, 'prog', `s${steps}.png`)]));
      expect(batches, file).toEqual(Array<number>(steps).fill(6));
    }
    // --steps still chooses the steps; the teacher with its default guidance doubles the batch at each of its evaluations
    expect(await countForwards(() => sampleCommand(['--checkpoint', join(dir, 'prog', 'checkpoint.safetensors'), '--labels', '3', '--per-class', '2', '--steps', '3', '--out', join(dir, 's.png')]))).toEqual([2, 2, 2]);
    expect(await countForwards(() => sampleCommand(['--checkpoint', teacher, '--labels', '3', '--per-class', '2', '--sampler', 'flow_euler', '--steps', '2', '--out', join(dir, 's.png')]))).toEqual([4, 4]);
    await expect(sampleCommand(['--checkpoint', join(dir, 'prog', 'checkpoint.safetensors'), '--guidance', '2'])).rejects.toThrow(/--guidance 2: .*checkpoint\.safetensors is a progressive student of kiln distill with its teacher's guidance 1\.5 built in; .*\(omit --guidance\)/);
    await expect(sampleCommand(['--checkpoint', join(dir, 'prog', 'checkpoint.safetensors'), '--labels', '1,10'])).rejects.toThrow(/--labels: .* the null class 10 \(unconditional\) was not distilled/);
  });

  it('a progressive student continues to halve its steps as the next teacher, keeping its guidance', async () => {
    const out = join(dir, 'prog-more');
    await distillCommand(['--method', 'progressive', ...SMALL, '--teacher', join(dir, 'prog', 'student-2step.safetensors'), '--steps-student', '1', '--steps', '1', '--out', out]);
    const { student } = await k.diffusion.loadDenoiser(join(out, 'checkpoint.safetensors'));
    expect(student).toMatchObject({ method: 'progressive', steps: 1, guidance: 1.5 });
    await expect(distillCommand(['--method', 'progressive', ...SMALL, '--teacher', join(dir, 'prog', 'student-2step.safetensors'), '--guidance', '3', '--out', out])).rejects.toThrow(/--guidance 3: --teacher .* is a progressive student with guidance 1\.5 built in; its students keep it \(omit --guidance\)/);
  });

  it('consistency and reflow students sample at their own steps with one evaluation each', async () => {
    const cons = join(dir, 'cons');
    await distillCommand(['--method', 'consistency', ...SMALL, '--guidance', '1', '--steps-student', '2', '--grid', '4', '--steps', '2', '--out', cons]);
    const c = await k.diffusion.loadDenoiser(join(cons, 'checkpoint.safetensors'));
    expect(c.meta.format).toBe('kiln-distill-consistency/1');
    expect(c.student).toMatchObject({ method: 'consistency', objective: 'flow', steps: 2, times: [1, 0.5], guidance: 1, boundary: { sMin: 0.002, form: 'velocity' } });
    expect(await countForwards(() => sampleCommand(['--checkpoint', join(cons, 'checkpoint.safetensors'), '--labels', '0,1', '--per-class', '2', '--out', join(cons, 's.png')]))).toEqual([4, 4]);
    await expect(sampleCommand(['--checkpoint', join(cons, 'checkpoint.safetensors'), '--sampler', 'flow_heun'])).rejects.toThrow(/--sampler flow_heun: .* is a consistency student of kiln distill, which samples at its own times/);
    const re = join(dir, 'reflow');
    await distillCommand(['--method', 'reflow', ...SMALL, '--couples', '8', '--teacher-steps', '2', '--steps', '2', '--out', re]);
    const r = await k.diffusion.loadDenoiser(join(re, 'checkpoint.safetensors'));
    expect(r.student).toMatchObject({ method: 'reflow', steps: 1, sampler: 'flow_euler', guidance: 1.5 });
    expect(existsSync(join(re, 'couples.safetensors'))).toBe(true);
    expect(await countForwards(() => sampleCommand(['--checkpoint', join(re, 'checkpoint.safetensors'), '--labels', '5', '--per-class', '3', '--out', join(re, 's.png')]))).toEqual([3]);
  });

  it('--guidance-range: a student that takes w (its embedding starts at zero: the teacher at every w), sampled at any w in the range with one evaluation per step', async () => {
    // the student network: the teacher's weights and a zero guidance embedding give the teacher's output whatever w
    const { model } = await k.diffusion.loadDenoiser(teacher);
    const net = k.diffusion.buildDenoiser('unet', { ...model.config, guidanceInput: true });
    expect(net.loadStateDict(model.stateDict(), { strict: false }).missing.sort()).toEqual(['guidance_embed.0.bias', 'guidance_embed.0.weight', 'guidance_embed.1.bias', 'guidance_embed.1.weight']);
    const x = k.randn([2, 1, 28, 28]), t = k.full([2], 0.6), l = k.tensor(Int32Array.from([2, 7]));
    const ref = await model.forward(x, t, l).data();
    for (const w of [0, 3]) expect(Array.from(await net.forward(x, t, l, k.full([2], w)).data())).toEqual(Array.from(ref));
    expect(() => net.forward(x, t, l)).toThrow('UNet: this model takes the guidance scale as an input (guidanceInput); pass w [2] (0: the conditional model)');
    expect(() => model.forward(x, t, l, k.full([2], 1))).toThrow('UNet: this model takes no guidance scale (guidanceInput is off)');
    expect(() => net.forward(x, t, l, k.full([3], 1))).toThrow('UNet: expected guidance scales w of shape [2], got [3]');

    const out = join(dir, 'prog-w');
    await distillCommand([...prog(out), '--guidance-range', '0,3']);
    const s = await k.diffusion.loadDenoiser(join(out, 'checkpoint.safetensors'));
    expect(s.student).toEqual({ method: 'progressive', objective: 'flow', steps: 1, sampler: 'flow_euler', guidance: 1.5, scales: { wMin: 0, wMax: 3 }, teacher });
    expect((s.model.config as k.nn.UNetConfig).guidanceInput).toBe(true);
    // the scales reached the loss: the zero-initialized output layer of the embedding was trained
    expect((await (s.model as k.nn.UNet).guidance_embed!.at(1).weight.data()).some((v) => v !== 0)).toBe(true);
    const ckpt = join(out, 'checkpoint.safetensors');
    const sampleAt = async (w: string) => {
      const png = join(out, `w${w}.png`);
      const batches = await countForwards(() => sampleCommand(['--checkpoint', ckpt, '--labels', '3,8', '--per-class', '2', '--guidance', w, '--out', png]));
      return { batches, png: readFileSync(png) };
    };
    const [w0, w3] = [await sampleAt('0'), await sampleAt('3')];
    expect([w0.batches, w3.batches]).toEqual([[4], [4]]);
    expect(w0.png.equals(w3.png)).toBe(false);
    await expect(sampleCommand(['--checkpoint', ckpt, '--guidance', '3.5'])).rejects.toThrow(/--guidance 3\.5: .*checkpoint\.safetensors is a progressive student of kiln distill that learned the guidance scales 0 to 3; pick one in that range/);
    // its students keep its scales
    const more = join(dir, 'prog-w-more');
    await distillCommand(['--method', 'progressive', ...SMALL, '--teacher', join(out, 'student-2step.safetensors'), '--steps-student', '1', '--steps', '1', '--out', more]);
    expect((await k.diffusion.loadDenoiser(join(more, 'checkpoint.safetensors'))).student).toMatchObject({ steps: 1, guidance: 1.5, scales: { wMin: 0, wMax: 3 } });
    await expect(distillCommand(['--method', 'progressive', ...SMALL, '--teacher', join(out, 'student-2step.safetensors'), '--guidance-range', '0,2', '--out', more])).rejects.toThrow(/--guidance-range: --teacher .* is a progressive student that learned the scales 0,3; its students keep them \(omit --guidance-range\)/);
    // consistency students take w too
    const cons = join(dir, 'cons-w');
    await distillCommand(['--method', 'consistency', ...SMALL, '--guidance-range', '1,2', '--steps-student', '2', '--grid', '4', '--steps', '2', '--out', cons]);
    expect((await k.diffusion.loadDenoiser(join(cons, 'checkpoint.safetensors'))).student).toMatchObject({ method: 'consistency', guidance: 1.5, scales: { wMin: 1, wMax: 2 } });
    expect(await countForwards(() => sampleCommand(['--checkpoint', join(cons, 'checkpoint.safetensors'), '--labels', '0', '--per-class', '2', '--guidance', '2', '--out', join(cons, 's.png')]))).toEqual([2, 2]);
    for (const [args, message] of [
      [['--guidance-range', '3,1'], /--guidance-range 3,1: expected two scales LO,HI with 0 ≤ LO ≤ HI, e\.g\. 0,3/],
      [['--guidance-range', '0'], /--guidance-range 0: expected two scales LO,HI/],
      [['--guidance-range', '0,1'], /--guidance 1\.5: with --guidance-range 0,1 the default scale must lie in the range/],
      [['--method', 'reflow', '--guidance-range', '0,3'], /--guidance-range applies to --method progressive, consistency or guidance, not --method reflow/],
    ] as const) await expect(distillCommand([...SMALL, ...args, '--out', join(dir, 'bad-w')])).rejects.toThrow(message);
  });

  it('--method guidance: the teacher\'s sampling without the doubled batch at any w of its range, and the teacher of progressive students that take w', async () => {
    const out = join(dir, 'guid');
    await distillCommand(['--method', 'guidance', ...SMALL, '--steps-student', '2', '--steps', '2', '--out', out]);
    const ckpt = join(out, 'checkpoint.safetensors');
    const g = await k.diffusion.loadDenoiser(ckpt);
    expect(g.meta.format).toBe('kiln-distill-guidance/1');
    expect(g.student).toEqual({ method: 'guidance', objective: 'flow', steps: 2, sampler: 'flow_heun', guidance: 1.5, scales: { wMin: 0, wMax: 3 }, teacher });
    expect((await (g.model as k.nn.UNet).guidance_embed!.at(1).weight.data()).some((v) => v !== 0)).toBe(true);
    // the teacher's flow Heun evaluations, each on the undoubled batch
    const byTeacher = await countForwards(() => sampleCommand(['--checkpoint', teacher, '--labels', '4', '--per-class', '3', '--sampler', 'flow_heun', '--steps', '2', '--guidance', '2', '--out', join(out, 't.png')]));
    const byStudent = await countForwards(() => sampleCommand(['--checkpoint', ckpt, '--labels', '4', '--per-class', '3', '--guidance', '2', '--out', join(out, 's.png')]));
    expect(byTeacher.every((b) => b === 6)).toBe(true);
    expect(byStudent).toEqual(byTeacher.map(() => 3));
    // the second stage: progressive students of it take w too
    const prog = join(dir, 'guid-prog');
    await distillCommand(['--method', 'progressive', ...SMALL, '--teacher', ckpt, '--teacher-steps', '2', '--steps', '1', '--out', prog]);
    expect((await k.diffusion.loadDenoiser(join(prog, 'checkpoint.safetensors'))).student).toMatchObject({ method: 'progressive', steps: 1, guidance: 1.5, scales: { wMin: 0, wMax: 3 } });
    await expect(distillCommand(['--method', 'reflow', ...SMALL, '--teacher', ckpt, '--out', join(dir, 'bad-g')])).rejects.toThrow(/--teacher .* is a guidance student of kiln distill; --method reflow needs a checkpoint of kiln train \(a guidance student teaches --method progressive or consistency\)/);
  });

  it("the velocity boundary is exactly the identity at t_min, and the guided teacher is (1 + w)·cond − w·uncond", async () => {
    const { model } = await k.diffusion.loadDenoiser(teacher);
    const rf = new k.diffusion.RectifiedFlow();
    const x = k.randn([3, 1, 28, 28]), labels = k.tensor(Int32Array.from([1, 4, 9]));
    const boundary = { sMin: 0.002, form: 'velocity' as const };
    const at = (t: number) => k.noGrad(() => k.diffusion.consistencyOutput(model, x, [rf.at(t), rf.at(t), rf.at(t)], boundary, labels));
    expect(Array.from(await at(0.002).data())).toEqual(Array.from(await x.data()));
    // above t_min: one Euler step of the network's velocity to t_min
    const u = model.forward(x, k.full([3], 0.5), labels);
    const euler = await x.sub(u.mul(0.5 - 0.002)).data(), f = await at(0.5).data();
    expect(Math.max(...Array.from(f, (v, i) => Math.abs(v - euler[i]!)))).toBeLessThan(1e-5);
    const p = { t: k.full([3], 0.7), a: k.full([3, 1, 1, 1], 0.3), s: k.full([3, 1, 1, 1], 0.7) };
    const guided = await k.noGrad(() => k.diffusion.guidedTeacher(model, 1.5, 10)(x, p, labels)).data();
    const cond = await model.forward(x, p.t, labels).data(), uncond = await model.forward(x, p.t, k.full([3], 10, { dtype: 'i32' })).data();
    expect(Math.max(...Array.from(guided, (v, i) => Math.abs(v - (2.5 * cond[i]! - 1.5 * uncond[i]!))))).toBeLessThan(1e-4);
  });

  it('bad input is refused with the option, the value and what was expected', async () => {
    const vae = join(dir, 'vae.safetensors');
    await new VAETrainer(new k.nn.VAE({ widths: [8], patch: 4, groups: 4 }), { ...VAE_TRAIN_DEFAULTS, steps: 4 }, null).save(vae);
    const out = ['--out', join(dir, 'bad')];
    await expect(distillCommand(['--method', 'guided', ...out])).rejects.toThrow(/--method must be one of progressive, consistency, reflow, guidance, got 'guided'/);
    await expect(distillCommand(['--method', 'progressive', '--teacher', join(dir, 'missing.safetensors'), ...out])).rejects.toThrow(/--teacher .*missing\.safetensors: no such file \(train a teacher with kiln train --out <dir>\)/);
    await expect(distillCommand(['--method', 'consistency', '--teacher', vae, ...out])).rejects.toThrow(/--teacher .*vae\.safetensors is a VAE checkpoint \(kiln train-vae\); kiln distill needs a diffusion checkpoint written by kiln train/);
    await trainCommand(['--captions', '--steps', '1', '--batch', '2', '--data-limit', '8', '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--out', join(dir, 'text')]);
    await expect(distillCommand(['--method', 'progressive', '--teacher', join(dir, 'text', 'checkpoint.safetensors'), ...out])).rejects.toThrow(/--teacher .* is text-conditioned \(kiln train --captions\); kiln distill distills models of digit classes \(kiln train\)/);
    await expect(distillCommand(['--method', 'progressive', '--teacher', teacher, '--teacher-steps', '16', '--steps-student', '3', ...out])).rejects.toThrow(/--steps-student 3: progressive distillation halves the teacher's 16 steps each round, so the student's steps must be 16 divided by a power of two \(8, 4, 2, 1\)/);
    await expect(distillCommand(['--method', 'progressive', '--teacher', teacher, '--teacher-steps', '4', '--steps-student', '4', ...out])).rejects.toThrow(/--steps-student 4: .* must be 4 divided by a power of two \(2, 1\)/);
    await expect(distillCommand(['--method', 'progressive', '--couples', '10', ...out])).rejects.toThrow(/--couples applies to --method reflow, not --method progressive/);
    await expect(distillCommand(['--method', 'reflow', '--steps-student', '0', ...out])).rejects.toThrow(/--steps-student expects an integer ≥ 1, got '0'/);
    await expect(distillCommand(['--method', 'consistency', '--teacher', join(dir, 'prog', 'checkpoint.safetensors'), ...out])).rejects.toThrow(/--teacher .* is a progressive student of kiln distill; --method consistency needs a checkpoint of kiln train/);
    await expect(distillCommand(['--method', 'progressive', '--resume', '--teacher', teacher, ...out])).rejects.toThrow(/--resume: .*checkpoint\.safetensors does not exist/);
  });
});
