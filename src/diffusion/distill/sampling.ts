/**
 * How a distilled student samples. A student of `kiln distill` records in its checkpoint (`StudentSpec`,
 * metadata key `student`) the method, steps, sampler or consistency times and boundary, and the teacher's
 * guidance scale it learned: it samples with that and no classifier-free guidance (the guidance is baked
 * into its weights; the null class was not distilled), one network evaluation per step — or, for a student
 * that takes the guidance scale as an input (`scales`), at any w in the range it learned. These functions
 * turn the record into the options of `generate` (or `evaluate`) and into words, for any tool that samples
 * a student — the command line, the browser demo.
 */
import type { StudentSpec } from '../checkpoint.js';
import type { SamplerName } from '../samplers.js';
import type { ConsistencyBoundary } from './consistency.js';

/**
 * What `generate` and `evaluate` take to sample a student: a sampler, its steps and guidance 0 (progressive
 * and reflow students), or a consistency model's times and boundary (consistency students).
 */
export interface StudentSampling {
  sampler?: SamplerName;
  steps?: number;
  guidance?: number;
  consistency?: ConsistencyBoundary & { times: number[] };
}

/** Model times of a consistency student's `steps` evaluations, descending from pure noise: 1, 1 − 1/N, …, 1/N. */
export function consistencyTimes(steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`consistencyTimes: steps must be a positive integer, got ${steps}`);
  return Array.from({ length: steps }, (_, i) => 1 - i / steps);
}

/**
 * How student `s` samples with `steps` network evaluations (default: the steps it was distilled for, the
 * ones it samples best with). A progressive or reflow student takes `steps` steps of its sampler
 * (`flow_euler` unless recorded) with guidance 0; a consistency student samples at its recorded times, or
 * at `consistencyTimes(steps)` for another number of steps. A student that takes the guidance scale as an
 * input samples at scale `w` (default: the one it records; it must lie in its range). Spread the result
 * into `generate`'s options.
 */
export function studentSampling(s: StudentSpec, steps = s.steps, w = s.guidance): StudentSampling {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`studentSampling: steps must be a positive integer, got ${steps}`);
  if (s.scales && !(w >= s.scales.wMin && w <= s.scales.wMax)) throw new Error(`studentSampling: this student learned the guidance scales ${s.scales.wMin} to ${s.scales.wMax}, got ${w}`);
  const guidance = s.scales ? { guidance: w } : {};
  if (s.method === 'consistency') {
    if (!s.boundary) throw new Error('studentSampling: a consistency student must record its boundary (StudentSpec.boundary)');
    const times = steps === s.steps && s.times ? s.times : consistencyTimes(steps);
    return { consistency: { ...s.boundary, times }, ...guidance };
  }
  return { sampler: s.sampler ?? 'flow_euler', steps, guidance: 0, ...guidance };
}

/** The guidance of student `s` in words: `guidance 1.5 built in`, or `guidance w, an input learned for w in [0, 3]`. */
function guidanceWords(s: StudentSpec, w = s.guidance): string {
  return s.scales ? `guidance ${w}, an input learned for w in [${s.scales.wMin}, ${s.scales.wMax}]` : `guidance ${s.guidance} built in`;
}

/** Number and noun: `1 step`, `4 steps`. */
const steps = (n: number) => `${n} step${n === 1 ? '' : 's'}`;

/**
 * A student's sampling `how` in words, e.g. `progressive student, flow_euler 4 steps, one network evaluation
 * per step (guidance 1.5 baked in)` or `consistency student, 2 steps at t = 1, 0.5, …`.
 */
export function describeStudent(s: StudentSpec, how: StudentSampling): string {
  const c = how.consistency;
  const what = c ? `${steps(c.times.length)} at t = ${c.times.map((t) => +t.toFixed(4)).join(', ')}` : `${how.sampler} ${steps(how.steps!)}`;
  // a guidance student keeps its teacher's sampler (Heun: two evaluations a step), without the doubled batch
  const cost = s.method === 'guidance' ? 'one network evaluation where its teacher took two' : 'one network evaluation per step';
  return `${s.method} student, ${what}, ${cost} (${guidanceWords(s, how.guidance)})`;
}

/** What a student is in a few words, for lists of checkpoints: `progressive student, 1 step, guidance 1.5 built in`. */
export function studentSummary(s: StudentSpec): string {
  return `${s.method} student, ${steps(s.steps)}, ${s.scales ? `guidance an input in [${s.scales.wMin}, ${s.scales.wMax}]` : `guidance ${s.guidance} built in`}`;
}
