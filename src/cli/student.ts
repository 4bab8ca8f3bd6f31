/**
 * How the commands sample a student of `kiln distill`: the sampler, steps (or a consistency model's times)
 * and boundary its checkpoint records, no classifier-free guidance (the teacher's is baked in), and clear
 * errors for the options of `kiln sample` / `kiln eval` that do not apply to it.
 */
import * as k from '../index.js';
import type { StudentSpec } from '../diffusion/checkpoint.js';
import type { ConsistencyBoundary } from '../diffusion/distill/consistency.js';
import type { Args } from './args.js';

/** What `generate` and `evaluate` take to sample a student: a sampler and steps, or a consistency model's times. */
export interface StudentSampling {
  sampler?: k.diffusion.SamplerName;
  steps?: number;
  guidance?: number;
  consistency?: ConsistencyBoundary & { times: number[] };
}

/** Model times of a consistency student's `steps` evaluations, descending from pure noise: 1, 1 − 1/N, …, 1/N. */
export function consistencyTimes(steps: number): number[] {
  return Array.from({ length: steps }, (_, i) => 1 - i / steps);
}

/**
 * How a student samples with `steps` evaluations (default: the steps it was distilled for): without
 * guidance (its teacher's is baked in), or, for a student that takes the scale as an input, at scale `w`
 * (default: the one it records).
 */
export function studentSampling(s: StudentSpec, steps = s.steps, w = s.guidance): StudentSampling {
  const guidance = s.scales ? w : 0;
  if (s.method === 'consistency') {
    const times = steps === s.steps && s.times ? s.times : consistencyTimes(steps);
    return { consistency: { ...s.boundary!, times }, ...(s.scales ? { guidance } : {}) };
  }
  return { sampler: s.sampler ?? 'flow_euler', steps, guidance };
}

/** A student's sampling in words, e.g. `progressive student, flow_euler 4 steps (guidance 1.5 baked in)`. */
export function describeStudent(s: StudentSpec, how: StudentSampling): string {
  const steps = how.consistency ? `${how.consistency.times.length} step${how.consistency.times.length > 1 ? 's' : ''} at t = ${how.consistency.times.map((t) => +t.toFixed(4)).join(', ')}` : `${how.sampler} ${how.steps} step${how.steps! > 1 ? 's' : ''}`;
  const guidance = s.scales ? `guidance ${how.guidance ?? s.guidance}, an input learned for w in [${s.scales.wMin}, ${s.scales.wMax}]` : `guidance ${s.guidance} built in`;
  return `${s.method} student, ${steps}, one network evaluation per step (${guidance})`;
}

/**
 * The sampling of `kiln sample` / `kiln eval` (`command`) for the student in checkpoint `path`: its own
 * steps unless --steps, and errors naming the option for --guidance (the student has its teacher's
 * guidance built in and no trained null class), --sampler on a consistency model, and the null label.
 */
export function studentOptions(a: Args, path: string, s: StudentSpec, labels: number[] = []): StudentSampling {
  const what = `${path} is a ${s.method} student of kiln distill`;
  const w = a.number('guidance', s.guidance);
  if (s.scales && (w < s.scales.wMin || w > s.scales.wMax)) throw new Error(`--guidance ${w}: ${what} that learned the guidance scales ${s.scales.wMin} to ${s.scales.wMax}; pick one in that range`);
  if (!s.scales && a.has('guidance') && a.number('guidance', 0) !== 0) {
    throw new Error(`--guidance ${a.number('guidance', 0)}: ${what} with its teacher's guidance ${s.guidance} built in; it samples with one evaluation per step and no classifier-free guidance (omit --guidance)`);
  }
  if (s.method === 'consistency' && a.has('sampler')) throw new Error(`--sampler ${a.string('sampler', '')}: ${what}, which samples at its own times (consistency sampling); omit --sampler`);
  if (labels.includes(10)) throw new Error(`--labels: ${what}, distilled for the digits 0–9 only; the null class 10 (unconditional) was not distilled`);
  const how = studentSampling(s, a.number('steps', s.steps, { min: 1, integer: true }), w);
  if (how.sampler && a.has('sampler')) how.sampler = a.string('sampler', how.sampler);
  return how;
}
