/**
 * The samplers of `k.diffusion` by the objectives `kiln train` trains, read from the library's table of
 * which sampler drives which noise process: the listing in the help texts, and the check of `--sampler`
 * against an objective (a sampler that does not fit fails before any work, naming the samplers that do).
 */
import * as k from '../index.js';
// The sampler table and the objectives' processes come from the same modules (the table tests processes
// with instanceof, so both must be the same copy of the classes, also in the bundled command).
import { SAMPLER_NAMES, samplerMismatch, samplersFor, type SamplerName } from '../diffusion/samplers.js';
import { objectiveSetup, type Objective } from '../diffusion/training.js';

/** The objectives `kiln train` trains (the values of --objective), the default first. */
export const OBJECTIVES = ['flow', 'eps', 'v'] as const satisfies readonly Objective[];

/** Every sampler name `--sampler` takes. */
export { SAMPLER_NAMES };

/** The samplers that fit a model trained with `objective`, in the library's order. */
export function samplersOf(objective: Objective): SamplerName[] {
  return samplersFor(objectiveSetup(objective).process);
}

/** The objectives grouped by the samplers that fit them (objectives with the same samplers share a group). */
export function samplerGroups(): { objectives: Objective[]; samplers: SamplerName[] }[] {
  const groups: { objectives: Objective[]; samplers: SamplerName[] }[] = [];
  for (const o of OBJECTIVES) {
    const samplers = samplersOf(o);
    const same = groups.find((g) => g.samplers.join() === samplers.join());
    if (same) same.objectives.push(o);
    else groups.push({ objectives: [o], samplers });
  }
  return groups;
}

/** The help's listing: a line per group of objectives with its samplers, then the samplers no objective here fits. */
export function samplerLines(): string[] {
  const groups = samplerGroups();
  const labels = groups.map((g) => g.objectives.join(', '));
  const width = Math.max(...labels.map((l) => l.length)) + 2;
  const used = new Set(groups.flatMap((g) => g.samplers));
  const unused = SAMPLER_NAMES.filter((s) => !used.has(s));
  const lines = ['Samplers by objective (--sampler NAME):', ...groups.map((g, i) => `  ${labels[i]!.padEnd(width)}${g.samplers.join(' ')}`)];
  if (unused.length) lines.push(`  (${unused.join(' and ')} need a continuous VP or VE SDE, which none of these objectives trains)`);
  return lines;
}

/** The default sampler of each objective, as help defaults (one case per objective). */
export function defaultSamplers(): { when: string; name: Objective; sampler: SamplerName }[] {
  return OBJECTIVES.map((o) => ({ when: 'for', name: o, sampler: k.diffusion.defaultSampler(o) }));
}

/**
 * Checks that `sampler` fits a model trained with `objective` (`whose` says where the objective comes
 * from, e.g. `--objective` or `this checkpoint's objective`); if not, the error names the sampler, the
 * objective, why, and the samplers that fit.
 */
export function checkSampler(sampler: SamplerName, objective: Objective, whose: string): SamplerName {
  const why = samplerMismatch(sampler, objectiveSetup(objective).process);
  if (why) throw new Error(`--sampler ${sampler} does not fit ${whose} ${objective}: ${why}; the samplers for ${objective} are ${samplersOf(objective).join(', ')}`);
  return sampler;
}
