/** The demo page's short explanations of its choices: what each process, sampler and dataset means. */
import type { SamplerName } from '../src/diffusion/samplers.js';
import type { Toy2D } from '../src/data/toy2d.js';
import type { StudentSummary, ToyObjective } from './protocol.js';

/** What the toy processes do, in one or two sentences. */
export const PROCESS_NOTES: Record<ToyObjective, string> = {
  flow: 'Rectified flow: x_t = (1 − t)·x₀ + t·ε moves each data point x₀ along a straight line to noise ε (t = 1). The network learns the velocity ε − x₀; sampling follows it back from t = 1 to t = 0.',
  'ddpm-eps': 'DDPM: over 1,000 timesteps the data is scaled down and noise mixed in, x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε (linear β schedule). The network learns to predict the noise ε; sampling removes it step by step.',
};

/** What each sampler does, in one sentence. */
export const SAMPLER_NOTES: Partial<Record<SamplerName, string>> = {
  flow_euler: 'Euler steps along the predicted velocity, x ← x + (t′ − t)·v: one network call per step; straight paths need few steps.',
  flow_heun: 'Heun’s method along the velocity: an Euler step, then a correction with the velocity at its end — two calls per step, second order.',
  ddim: 'DDIM: deterministic; each step jumps to the next noise level along the predicted x₀ and noise. Good in 10–50 steps.',
  ddpm: 'Ancestral DDPM: each step samples x_{t−1} given x_t, adding fresh noise. Faithful but needs many steps.',
  euler: 'Euler’s method on the probability-flow ODE in the noise level σ (Karras et al.): deterministic, first order.',
  euler_ancestral: 'An Euler step in σ, then part of the noise is replaced by fresh noise: stochastic, forgiving of errors.',
  heun: 'Heun’s method in σ: two network calls per step, second order; fewer steps for the same accuracy.',
  edm_heun: 'EDM’s Heun sampler (Karras et al.): Heun in σ with optional “churn” (fresh noise before each step); without churn, as here, the same as heun.',
  dpmpp_2m: 'DPM-Solver++(2M): a second-order multistep solver in log-SNR that reuses the previous step’s prediction: sharp in 10–20 steps.',
  dpmpp_2m_sde: 'The stochastic variant of DPM-Solver++(2M): adds noise each step, more variety, a few more steps.',
  unipc: 'UniPC: a multistep predictor–corrector solver; strong at very few steps.',
};

/** What each toy dataset looks like. */
export const DATASET_NOTES: Record<Toy2D, string> = {
  moons: 'two interleaved half circles: thin curved structure',
  '8gaussians': 'eight tight clusters on a circle: separate modes with empty space between them',
  swissroll: 'a spiral: a curve that winds around itself',
  checkerboard: 'uniform squares on a checkerboard: sharp edges',
};

/** What the guidance scale does. */
export const GUIDANCE_NOTE = 'Classifier-free guidance: the model runs with and without the digit label, output = (1 + w)·conditional − w·unconditional. 0 uses the label alone; larger w gives clearer, more typical digits and less variety.';

/** Classifier-free guidance for a text-conditioned model: the unconditional pass reads the empty caption. */
export const TEXT_GUIDANCE_NOTE = 'Classifier-free guidance: the model runs with the prompt and with the empty caption, output = (1 + w)·conditional − w·unconditional. 0 uses the prompt alone; larger w follows the prompt more closely, with less variety.';

/** How to get WebGPU in each browser (shown when the page has none). */
export const WEBGPU_HELP: [browser: string, how: string][] = [
  ['Chrome, Edge (Windows, macOS, ChromeOS)', 'version 113 or newer: on by default. If it is missing, check chrome://gpu — the GPU may be blocklisted; chrome://flags/#enable-unsafe-webgpu overrides that.'],
  ['Chrome on Linux', 'enable chrome://flags/#enable-unsafe-webgpu (and chrome://flags/#enable-vulkan), then relaunch.'],
  ['Chrome on Android', 'version 121 or newer, Android 12+ with a Qualcomm or ARM GPU: on by default.'],
  ['Firefox', 'version 141 or newer on Windows: on by default; elsewhere set dom.webgpu.enabled to true in about:config (or use Firefox Nightly).'],
  ['Safari', 'Safari 26 (macOS 26, iOS 26): on by default; older versions: Develop → Feature Flags → WebGPU.'],
  ['Any browser', 'WebGPU exists only in secure contexts: open the page at http://localhost or over https, not at http://<LAN address>.'],
];

/** What a student of `kiln distill` does instead of the sampler and guidance the page offers other models. */
export function studentNotes(s: StudentSummary): { sampler: string; guidance: string } {
  const n = `${s.steps} step${s.steps === 1 ? '' : 's'}`;
  const sampler = {
    progressive: `A progressive student: round after round it learned to take in one Euler step what its teacher took in two, down to ${n}. Another number of steps runs (Euler steps along its flow), but it was distilled for ${n}.`,
    consistency: `A consistency model maps a noisy image straight to its estimate of the digit: it samples at t = ${(s.times ?? []).map((t) => +t.toFixed(4)).join(', ')}, one evaluation each, re-noising the estimate in between. Another number of steps uses evenly spaced times.`,
    guidance: `A guidance student: its teacher's network taking the guidance scale as an input, which samples as its teacher did (${s.sampler ?? 'flow_heun'}, ${n}) without the second pass for the null class.`,
    reflow: `A reflow student: a flow retrained on straight paths from noise to its teacher's samples, which Euler steps follow; it was trained for ${n}.`,
  }[s.method];
  if (s.scales) return { sampler, guidance: `This student takes the guidance scale as an input: it learned its teacher's guided output at every scale from ${s.scales.wMin} to ${s.scales.wMax}, so any of them samples with one network evaluation per step, no second pass for the null class — which was not distilled, so no unconditional digits.` };
  const guidance = `Guidance ${s.guidance} is built into this student (it learned its teacher's guided output), so it samples without classifier-free guidance: one network evaluation per step, no second pass for the null class — which was not distilled, so no unconditional digits.`;
  return { sampler, guidance };
}

/**
 * Example prompts the page offers for a text-conditioned model (those whose words it knows): phrasings of
 * the MNIST caption set (`k.data.PHRASINGS`), with and without the size and stroke attributes.
 */
export const EXAMPLE_PROMPTS = ['a small bold three', 'a large thin seven', 'the number 5', 'a handwritten two', 'the digit eight, small and thin', 'bold 0'];
