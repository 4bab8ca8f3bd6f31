/**
 * How a distilled student samples, as the library states it (`k.diffusion.studentSampling`,
 * `consistencyTimes`, `describeStudent`, `studentSummary`; the command line and the browser demo both use
 * them), and what `generate` reports while sampling: one `onEvaluate` per network evaluation with its batch
 * (doubled by guidance), and a consistency model's steps through `onStep` without changing its samples (bit for bit).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';

type StudentSpec = k.diffusion.StudentSpec;

const boundary = { sMin: 0.002, sigmaData: 0.5, form: 'velocity' as const };
const progressive: StudentSpec = { method: 'progressive', objective: 'flow', steps: 2, sampler: 'flow_euler', guidance: 1.5 };
const consistency: StudentSpec = { method: 'consistency', objective: 'flow', steps: 2, times: [1, 0.5], boundary, guidance: 1 };
const reflow: StudentSpec = { method: 'reflow', objective: 'flow', steps: 1, guidance: 3 };

describe('student sampling (library)', () => {
  it('consistencyTimes: N evaluations from pure noise, evenly spaced', () => {
    expect(k.diffusion.consistencyTimes(1)).toEqual([1]);
    expect(k.diffusion.consistencyTimes(4)).toEqual([1, 0.75, 0.5, 0.25]);
    expect(() => k.diffusion.consistencyTimes(0)).toThrow('consistencyTimes: steps must be a positive integer, got 0');
  });

  it('studentSampling: the student\'s own steps and sampler with no guidance, or its consistency times', () => {
    expect(k.diffusion.studentSampling(progressive)).toEqual({ sampler: 'flow_euler', steps: 2, guidance: 0 });
    expect(k.diffusion.studentSampling(progressive, 8)).toEqual({ sampler: 'flow_euler', steps: 8, guidance: 0 });
    // a reflow student records no sampler: Euler steps
    expect(k.diffusion.studentSampling(reflow)).toEqual({ sampler: 'flow_euler', steps: 1, guidance: 0 });
    expect(k.diffusion.studentSampling(consistency)).toEqual({ consistency: { ...boundary, times: [1, 0.5] } });
    // other steps: evenly spaced times
    expect(k.diffusion.studentSampling(consistency, 3).consistency!.times).toEqual([1, 1 - 1 / 3, 1 - 2 / 3]);
    expect(() => k.diffusion.studentSampling(progressive, 1.5)).toThrow('studentSampling: steps must be a positive integer, got 1.5');
    expect(() => k.diffusion.studentSampling({ ...consistency, boundary: undefined })).toThrow(/a consistency student must record its boundary/);
  });

  it('describeStudent and studentSummary say what a student is and how it samples', () => {
    expect(k.diffusion.describeStudent(progressive, k.diffusion.studentSampling(progressive, 1))).toBe('progressive student, flow_euler 1 step, one network evaluation per step (guidance 1.5 built in)');
    expect(k.diffusion.describeStudent(consistency, k.diffusion.studentSampling(consistency))).toBe('consistency student, 2 steps at t = 1, 0.5, one network evaluation per step (guidance 1 built in)');
    expect(k.diffusion.studentSummary(progressive)).toBe('progressive student, 2 steps, guidance 1.5 built in');
    expect(k.diffusion.studentSummary(reflow)).toBe('reflow student, 1 step, guidance 3 built in');
    // a student that takes the scale as an input samples at any scale it learned, its own by default
    const ranged = { ...progressive, scales: { wMin: 0, wMax: 3 } };
    expect(k.diffusion.studentSampling(ranged, 1)).toEqual({ sampler: 'flow_euler', steps: 1, guidance: 1.5 });
    expect(k.diffusion.studentSampling(ranged, 1, 3)).toEqual({ sampler: 'flow_euler', steps: 1, guidance: 3 });
    expect(() => k.diffusion.studentSampling(ranged, 1, 4)).toThrow('studentSampling: this student learned the guidance scales 0 to 3, got 4');
    expect(k.diffusion.describeStudent(ranged, k.diffusion.studentSampling(ranged, 1, 2))).toBe('progressive student, flow_euler 1 step, one network evaluation per step (guidance 2, an input learned for w in [0, 3])');
    expect(k.diffusion.studentSummary(ranged)).toBe('progressive student, 2 steps, guidance an input in [0, 3]');
  });
});

describe('generate reports its network evaluations and a consistency model\'s steps', () => {
  let net: k.nn.UNet;
  beforeAll(async () => {
    await k.init();
    k.manualSeed(3);
    net = new k.nn.UNet({ size: 8, widths: [8], depth: 1, attention: [], midAttention: false, heads: 2, groups: 4 });
    // the zero-initialized output layers get small random weights, so the network's output depends on its input
    for (const [name, p] of net.namedParameters()) if (name.endsWith('.weight') && !(await p.data()).some((v) => v !== 0)) k.noGrad(() => p.assign(k.randn(p.shape).mul(0.05)));
    net.eval();
  });

  const sample = async (o: Partial<k.diffusion.GenerateOptions>) => {
    const evaluations: number[] = [];
    const steps: { step: number; total: number; x: Float32Array; x0: Float32Array }[] = [];
    const x = await k.noGrad(() => k.diffusion.generate(net, {
      objective: 'flow', labels: [1, 2, 3], shape: [1, 8, 8], seed: 9, ...o,
      onEvaluate: ({ batch }) => void evaluations.push(batch),
      onStep: o.onStep && (async ({ step, total, x: xi, x0 }) => void steps.push({ step, total, x: (await xi.data()) as Float32Array, x0: (await x0.data()) as Float32Array })),
    }));
    const values = (await x.data()) as Float32Array;
    x.dispose();
    return { values, evaluations, steps };
  };

  it('one evaluation of the batch per Euler step; guidance doubles the batch, not the evaluations', async () => {
    expect((await sample({ sampler: 'flow_euler', steps: 3, guidance: 0 })).evaluations).toEqual([3, 3, 3]);
    expect((await sample({ sampler: 'flow_euler', steps: 2, guidance: 2 })).evaluations).toEqual([6, 6]);
    expect((await sample({ sampler: 'flow_heun', steps: 2, guidance: 0 })).evaluations.length).toBeGreaterThan(2);
  });

  it('a consistency model: one evaluation per time; onStep sees each evaluation\'s input and output and leaves the sample as it is', async () => {
    const how = k.diffusion.studentSampling(consistency);
    const plain = await sample(how);
    const watched = await sample({ ...how, onStep: () => {} });
    expect(plain.evaluations).toEqual([3, 3]);
    expect(watched.evaluations).toEqual([3, 3]);
    expect(watched.steps.map((s) => [s.step, s.total])).toEqual([[1, 2], [2, 2]]);
    // the first input is the starting noise (s = 1 at t = 1), the last output the sample
    const noise = await k.randn([3, 1, 8, 8], { generator: new k.Generator(9) }).data();
    expect(Array.from(watched.steps[0]!.x)).toEqual(Array.from(noise));
    expect(Array.from(watched.steps[1]!.x0)).toEqual(Array.from(watched.values));
    let d = 0;
    for (let i = 0; i < plain.values.length; i++) d = Math.max(d, Math.abs(plain.values[i]! - watched.values[i]!));
    expect(d).toBe(0);
  });
});
