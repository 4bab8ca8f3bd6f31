/**
 * The options of `kiln sample` / `kiln eval` for a student of `kiln distill`: clear errors for those that do
 * not apply to it (--guidance, --sampler on a consistency model, the null label). How a student samples is
 * the library's (`k.diffusion.studentSampling`, `describeStudent`).
 */
import { studentSampling, type StudentSampling } from '../diffusion/distill/sampling.js';
import type { StudentSpec } from '../diffusion/checkpoint.js';
import type { Args } from './args.js';

/**
 * The sampling of `kiln sample` / `kiln eval` (`command`) for the student in checkpoint `path`: its own
 * steps unless --steps, and errors naming the option for --guidance (the student has its teacher's
 * guidance built in, or learned a range of scales, and no trained null class), --sampler on a consistency
 * model, and the null label.
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
