/**
 * The page's sampling controls follow the model loaded. A student of `kiln distill` samples its own way —
 * its sampler or consistency times, its steps by default, no guidance (its teacher's is built in; a student
 * that takes the scale as an input keeps the guidance control, limited to the scales it learned) and no
 * unconditional digits (the null class was not distilled) — so for a student the steps are set to its own,
 * the sampler, guidance and "none" digit are disabled with an explanation, and the values they had come back
 * when a model of `kiln train` (or one trained in the page) is loaded again. A text-conditioned model sets the
 * sampler, steps and guidance `kiln sample` uses for it (they stay editable); the values they had come back
 * when a model of digit classes is loaded again.
 */
import { GUIDANCE_NOTE, studentNotes } from './explain.js';
import type { ModelSummary } from './protocol.js';

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo page: missing element #${id}`);
  return e as T;
}

/** The steps, guidance and sampler set for models of digit classes, kept while a student or a text model is loaded. */
let kept: { steps: string; guidance: string; sampler: string } | null = null;

/** Fits the sampling controls to model `m`; `fillSamplers` offers the samplers of a model that is not a student. */
export function fitSamplingControls(m: ModelSummary, fillSamplers: () => void): void {
  const s = m.student;
  const steps = el<HTMLInputElement>('mnist-steps'), guidance = el<HTMLInputElement>('mnist-guidance');
  const sampler = el<HTMLSelectElement>('mnist-sampler'), digit = el<HTMLSelectElement>('mnist-digit');
  const none = Array.from(digit.options).find((o) => o.value === '10');
  if (s) {
    kept ??= { steps: steps.value, guidance: guidance.value, sampler: sampler.value };
    steps.value = String(s.steps);
    guidance.value = s.scales ? String(s.guidance) : '0';
    sampler.replaceChildren(new Option(s.sampler ?? 'consistency sampling (its own times)', s.sampler ?? ''));
    if (none?.selected) digit.value = 'all';
    const notes = studentNotes(s);
    el('mnist-sampler-note').textContent = notes.sampler;
    el('mnist-guidance-note').textContent = notes.guidance;
  } else {
    const own = m.text?.sampling;
    if (own) kept ??= { steps: steps.value, guidance: guidance.value, sampler: sampler.value };
    const values = own ? { steps: String(own.steps), guidance: String(own.guidance), sampler: own.sampler } : kept;
    if (!own) kept = null;
    fillSamplers();
    if (values) {
      steps.value = values.steps;
      guidance.value = values.guidance;
      // a sampler this model's objective does not offer gives way to the objective's default (listed first)
      if (Array.from(sampler.options).some((o) => o.value === values.sampler)) sampler.value = values.sampler;
      else sampler.selectedIndex = 0;
      sampler.dispatchEvent(new Event('change')); // its explanation follows
    }
    el('mnist-guidance-note').textContent = GUIDANCE_NOTE;
  }
  sampler.disabled = !!s;
  guidance.disabled = !!s && !s.scales;
  if (none) none.disabled = !!s;
  steps.title = s ? `network evaluations per image: the student was distilled for ${s.steps}` : '';
  guidance.title = s ? (s.scales ? `an input of the student: ${s.scales.wMin} to ${s.scales.wMax}` : `built into the student: ${s.guidance}`) : '';
}

/** What the model line adds for a student: how it samples and what it does not do (empty for other models). */
export function studentLine(m: ModelSummary): string {
  const s = m.student;
  return s ? ` A ${s.method} student of kiln distill: ${s.description.replace(/^\w+ student, /, '')}; digits 0–${m.numClasses - 1}, ${s.scales ? `guidance ${s.scales.wMin} to ${s.scales.wMax} without a second pass` : 'no guidance'}.` : '';
}

/** What a sampling run of `n` images cost, from the batch of each network evaluation: `1 network evaluation of 20 images`. */
export function samplingCost(evaluations: number[], n: number): string {
  const e = evaluations.length, batches = [...new Set(evaluations)];
  const doubled = e > 0 && batches.every((b) => b === 2 * n) ? ' (guidance doubles the batch)' : '';
  return `${e} network evaluation${e === 1 ? '' : 's'} of ${batches.length === 1 ? `${batches[0]} images` : `batches of ${batches.join(', ')}`}${doubled}`;
}
