/**
 * `kiln distill --method reflow`: couples (noise z, the guided teacher's flow-Heun sample x from it) are
 * drawn once and kept in couples.safetensors — in chunks, so a killed run continues where it stopped, and a
 * later run with the same teacher, guidance, steps and seed reuses them — then a new rectified flow,
 * initialized from the teacher, is trained on the straight paths between them and samples with Euler steps.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '../index.js';
import type { StudentSpec } from '../diffusion/checkpoint.js';
import { ReflowTrainer } from '../train/distill.js';
import type { DistillRun, RunResult } from './distill.js';
import { lossSummary } from './distill.js';
import { fmtTime, Progress } from './progress.js';

/** Couples drawn per sampling batch (and per save of couples.safetensors). */
const CHUNK = 100;
/** The `format` tag of couples.safetensors. */
const COUPLES_FORMAT = 'kiln-reflow-couples/1';
/** Values of one 1×28×28 image. */
const D = 28 * 28;

/** Couples on the host: noise z and samples x [count, 1, 28, 28] (row-major), labels [count]. */
interface Couples {
  z: Float32Array;
  x: Float32Array;
  labels: Int32Array;
  count: number;
}

/**
 * The run's couples: those of couples.safetensors in --out when it was drawn with the same teacher,
 * guidance, ODE steps and seed (continued if it holds fewer than `count`), else drawn anew. Couple i has
 * digit i mod 10; chunk c's noise comes from a generator seeded by the seed and c.
 */
async function drawCouples(run: DistillRun, count: number, odeSteps: number): Promise<Couples> {
  const file = join(run.out, 'couples.safetensors');
  const from = { teacher: run.teacherPath, guidance: run.guidance, steps: odeSteps, seed: run.int('seed', 0) };
  const c: Couples = { z: new Float32Array(count * D), x: new Float32Array(count * D), labels: Int32Array.from({ length: count }, (_, i) => i % 10), count };
  let have = 0;
  if (existsSync(file)) {
    const { tensors, metadata } = await k.loadWithMetadata(file);
    const meta = JSON.parse(metadata.kiln ?? '{}') as { format?: string; from?: unknown; count?: number };
    if (meta.format === COUPLES_FORMAT && JSON.stringify(meta.from) === JSON.stringify(from)) {
      have = Math.min(count, meta.count ?? 0);
      c.z.set((await tensors.z!.data() as Float32Array).subarray(0, have * D));
      c.x.set((await tensors.x!.data() as Float32Array).subarray(0, have * D));
      console.log(`reusing ${have} couples of ${file}`);
    }
    Object.values(tensors).forEach((t) => t.dispose());
  }
  if (have >= count) return c;
  const net = run.teacher.net;
  const rf = new k.diffusion.RectifiedFlow();
  const forward = k.compile((x: k.Tensor, t: k.Tensor, l: k.Tensor) => net.forward(x, t, l), { name: 'reflow.teacher' });
  const at = (x: k.Tensor, t: number, l: k.Tensor) => forward(x, k.tensor(new Float32Array(x.shape[0]!).fill(t)), l);
  const bar = new Progress(count - have, 'couples ');
  const t0 = performance.now();
  for (let start = have; start < count; start += CHUNK) {
    const m = Math.min(CHUNK, count - start);
    const labels = k.tensor(c.labels.slice(start, start + m)).keep();
    const nulls = k.full([m], net.config.numClasses, { dtype: 'i32' }).keep();
    const model = run.guidance === 0 ? (x: k.Tensor, t: number) => at(x, t, labels) : k.diffusion.classifierFreeGuidance(at, { scale: run.guidance, labels, nullLabels: nulls });
    const noise = k.randn([m, 1, 28, 28], { generator: new k.Generator(run.int('seed', 0) * 1_000_003 + start / CHUNK) }).keep();
    const x = await k.noGrad(() => k.diffusion.reflowCouples({ model, prediction: 'flow', process: rf, noise, steps: odeSteps, sampler: 'flow_heun' }));
    c.z.set(await noise.data() as Float32Array, start * D);
    c.x.set(await x.data() as Float32Array, start * D);
    [labels, nulls, noise, x].forEach((t) => t.dispose());
    const done = start + m;
    const save = { z: k.tensor(c.z.subarray(0, done * D), { shape: [done, 1, 28, 28] }), x: k.tensor(c.x.subarray(0, done * D), { shape: [done, 1, 28, 28] }), labels: k.tensor(c.labels.slice(0, done)) };
    await k.save(save, file, { metadata: { kiln: JSON.stringify({ format: COUPLES_FORMAT, from, count: done }) } });
    Object.values(save).forEach((t) => t.dispose());
    bar.update(done - have);
  }
  console.log(`drew ${count - have} couples (flow_heun ${odeSteps} steps, guidance ${run.guidance}) in ${fmtTime((performance.now() - t0) / 1000)}; kept in ${file}`);
  return c;
}

/** Reflow: couples of the guided teacher, then a flow trained on them (initialized from the teacher). */
export async function reflowStudent(run: DistillRun): Promise<RunResult> {
  const steps = run.int('steps'), n = run.int('steps-student'), count = run.int('couples'), odeSteps = run.int('teacher-steps');
  const batch = run.int('batch');
  if (batch > count) throw new Error(`--batch ${batch} is larger than --couples ${count}`);
  const settings = run.settings({ studentSteps: n, steps, couples: count, teacherSteps: odeSteps });
  if (run.a.flag('resume')) run.resumeMeta(settings);
  const couples = await drawCouples(run, count, odeSteps);
  const rf = new k.diffusion.RectifiedFlow();
  const student = await run.studentNet();
  const trainer = new ReflowTrainer(student, rf, { ...run.optim(steps), times: 'uniform' });
  const spec: StudentSpec = { method: 'reflow', objective: 'flow', steps: n, sampler: 'flow_euler', guidance: run.guidance, teacher: run.teacherPath };
  if (run.a.flag('resume')) {
    await trainer.load(run.ckpt);
    console.log(`resumed ${run.ckpt} at step ${trainer.step} of ${steps}`);
  }
  console.log(`reflow: ${steps} steps of batch ${batch} on ${count} couples; the student samples with flow_euler ${n} step${n > 1 ? 's' : ''}`);
  const perEpoch = Math.floor(count / batch);
  let order: { epoch: number; perm: Int32Array } = { epoch: -1, perm: new Int32Array(0) };
  await run.train(trainer, {
    steps, offset: 0, total: steps, label: '',
    batch: async (g) => {
      const epoch = Math.floor(g / perEpoch);
      if (order.epoch !== epoch) order = { epoch, perm: k.data.permutation(count, run.int('seed', 0), epoch) };
      const idx = order.perm.subarray((g % perEpoch) * batch, (g % perEpoch + 1) * batch);
      const z = new Float32Array(batch * D), x = new Float32Array(batch * D);
      idx.forEach((j, i) => {
        z.set(couples.z.subarray(j * D, (j + 1) * D), i * D);
        x.set(couples.x.subarray(j * D, (j + 1) * D), i * D);
      });
      return [k.tensor(z, { shape: [batch, 1, 28, 28] }), k.tensor(x, { shape: [batch, 1, 28, 28] }), k.tensor(Int32Array.from(idx, (j) => couples.labels[j]!))] as [k.Tensor, k.Tensor, k.Tensor];
    },
    save: async () => void (await trainer.save(run.ckpt, { model: run.teacher.spec, student: spec, distill: { settings } })),
    grid: (name) => run.grid(student, spec, name),
    writeLoss: () => run.writeLoss([{ losses: trainer.losses }]),
  });
  return { spec, grid: await run.grid(student, spec, 'samples.png'), summary: lossSummary(trainer.losses) };
}
