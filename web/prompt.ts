/**
 * The page's conditioning controls. A model of digit classes is sampled by digit (a column per digit with
 * "all"); a text-conditioned model (`kiln train --captions`) gets a prompt box instead: each line, or each
 * part between semicolons, is a prompt, and each prompt gets a row of its own with `per` samples of it. Example
 * prompts whose words the model knows (the worker checks them with the model's tokenizer) are buttons that
 * fill the box and sample; Enter samples, Shift+Enter starts a new line.
 */
import { TEXT_GUIDANCE_NOTE } from './explain.js';
import type { ModelSummary } from './protocol.js';

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo page: missing element #${id}`);
  return e as T;
}

/** At most this many prompts at a time (rows of the sample grid). */
export const MAX_PROMPTS = 10;

/** The prompts of the text in the box: split at new lines and semicolons, spaces collapsed, empty parts dropped. */
export function parsePrompts(text: string): string[] {
  return text.split(/[\n;]/).map((p) => p.trim().replace(/\s+/g, ' ')).filter((p) => p);
}

/** Grows the prompt box to show every line (two to six rows). */
function fitRows(box: HTMLTextAreaElement): void {
  box.rows = Math.max(2, Math.min(6, box.value.split('\n').length));
}

/**
 * Shows the prompt box for a text-conditioned model and the digit controls otherwise; `sample` runs a
 * sampling. Call it after `fitSamplingControls`, whose guidance note it replaces for a text model.
 */
export function fitConditioningControls(m: ModelSummary, sample: () => void): void {
  const text = m.text;
  el('mnist-digit-label').hidden = !!text;
  el('mnist-prompt-box').hidden = !text;
  el('mnist-prompt-help').hidden = !text;
  el('mnist-count-label').textContent = text ? 'Per prompt' : 'Per digit';
  if (!text) return;
  if (!m.student) el('mnist-guidance-note').textContent = TEXT_GUIDANCE_NOTE;
  const box = el<HTMLTextAreaElement>('mnist-prompt');
  if (!box.value.trim() && text.examples[0]) box.value = text.examples[0];
  fitRows(box);
  el('mnist-prompt-suggestions').replaceChildren(...text.examples.map((p) => {
    const b = document.createElement('button');
    b.type = 'button';
    // an action: disabled while a job runs, like the page's other buttons that start one
    b.className = 'small suggestion action';
    b.textContent = p;
    b.title = 'sample this prompt';
    b.addEventListener('click', () => {
      box.value = p;
      fitRows(box);
      sample();
    });
    return b;
  }));
  const words = text.words.filter((w) => w !== ',');
  const commas = words.length < text.words.length ? ' (and commas)' : '';
  el('mnist-prompt-words').textContent = `The model knows ${words.length} words${commas}, up to ${text.maxWords} in a prompt: ${words.join(' ')}.`;
}

/** Enter in the prompt box samples; Shift+Enter starts a new line (another prompt). */
export function wirePromptBox(sample: () => void): void {
  const box = el<HTMLTextAreaElement>('mnist-prompt');
  box.addEventListener('input', () => fitRows(box));
  box.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || ev.shiftKey || ev.isComposing) return;
    ev.preventDefault();
    sample();
  });
}

/**
 * What a sampling run asks for: one label or one prompt per image, in sampling order; the grid's columns;
 * whether the images are ordered by digit (`kiln sample`'s order, shown a column per digit); and the grid's
 * caption. Bad input (no prompt, too many, a digit the model lacks) is an error saying what is expected.
 */
export function sampleConditions(m: ModelSummary, per: number, digit: string): { labels?: number[]; prompts?: string[]; cols: number; byDigit: boolean; caption: string } {
  if (m.text) {
    const prompts = parsePrompts(el<HTMLTextAreaElement>('mnist-prompt').value);
    if (!prompts.length) throw new Error(`type a prompt (e.g. "${m.text.examples[0] ?? 'a small bold three'}"); several go on separate lines or between semicolons`);
    if (prompts.length > MAX_PROMPTS) throw new Error(`at most ${MAX_PROMPTS} prompts at a time, got ${prompts.length}`);
    const rows = prompts.map((p, i) => `${i + 1}. “${p}”`).join(' · ');
    return { prompts: prompts.flatMap((p) => Array<string>(per).fill(p)), cols: per, byDigit: false, caption: `Samples, a row per prompt: ${rows}` };
  }
  let labels = digit === 'all' ? Array.from({ length: 10 }, (_, d) => Array<number>(per).fill(d)).flat() : Array<number>(per).fill(Number(digit));
  // an unconditional model has only the null class, 0
  if (m.numClasses === 0) labels = labels.map(() => 0);
  else if (labels.some((l) => l > m.numClasses)) throw new Error(`this model has ${m.numClasses} classes (0–${m.numClasses - 1}, ${m.numClasses} = none)`);
  return { labels, cols: Math.min(labels.length, 10), byDigit: digit === 'all', caption: 'Samples' };
}

/** How the model line names the conditioning: `10 classes`, or that it samples from prompts. */
export function conditioningLine(m: ModelSummary): string {
  return m.text ? `text-conditioned (${m.text.words.length} words): sample it from a prompt` : `${m.numClasses} classes`;
}
