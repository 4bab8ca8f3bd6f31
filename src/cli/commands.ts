/**
 * The kiln commands in the order `kiln --help` lists them, each with its one-line summary, its help text
 * and what it runs. `kiln sample` and `kiln eval` take a diffusion or a VAE checkpoint and run the
 * command for its kind; their help covers both.
 */
import * as k from '../index.js';
import { Args, type OptionSpec } from './args.js';
import { LENET, MNIST_MLP } from './classifier.js';
import { DEFAULT_CHECKPOINT } from './common.js';
import { DEMO } from './demo.js';
import { DISTILL } from './distill.js';
import { EVAL_OPTIONS, evalCommand, evalSection, SAMPLE_OPTIONS, sampleCommand, sampleSection, TRAIN } from './diffusion.js';
import { command, helpFor, helpText, optionsCommand, type Command, type HelpSection } from './help.js';
import { samplerLines } from './samplers.js';
import { TOY2D } from './toy2d.js';
import { EVAL_VAE_OPTIONS, evalVaeCommand, evalVaeSection, isVAECheckpoint, SAMPLE_VAE_OPTIONS, sampleVaeCommand, sampleVaeSection, TRAIN_VAE } from './vae.js';
import { EVAL_PIXELCNN_OPTIONS, evalPixelcnnCommand, evalPixelcnnSection, isPixelCNNCheckpoint, SAMPLE_PIXELCNN_OPTIONS, samplePixelcnnCommand, samplePixelcnnSection, TRAIN_PIXELCNN } from './pixelcnn.js';
import { EVAL_GAN_OPTIONS, evalGanCommand, evalGanSection, isGANCheckpoint, SAMPLE_GAN_OPTIONS, sampleGanCommand, sampleGanSection, TRAIN_GAN } from './stylegan.js';
import { EVAL_NLL_OPTIONS, evalNllCommand, evalNllSection, wantsNll } from './likelihood.js';

/** The checkpoint a sample or eval command line names (--checkpoint, else the default), to tell VAE checkpoints from diffusion ones. */
function checkpointArg(argv: string[]): string {
  return Args.peek(argv, 'checkpoint') ?? DEFAULT_CHECKPOINT;
}

/**
 * A command that takes a diffusion, a VAE, a PixelCNN or a GAN checkpoint: its help has a section for each kind
 * (and the samplers by objective), and it runs the command of the checkpoint's kind.
 */
function byCheckpoint(o: {
  name: string;
  summary: string;
  options: readonly OptionSpec[];
  sections: (a: Args) => HelpSection[];
  diffusion: (argv: string[]) => Promise<void>;
  vae: (argv: string[]) => Promise<void>;
  pixelcnn: (argv: string[]) => Promise<void>;
  gan: (argv: string[]) => Promise<void>;
  /** Runs instead of `diffusion` when the command line asks for the likelihood (`--nll`). */
  diffusionNll?: (argv: string[]) => Promise<void>;
}): Command {
  const help = async (argv: string[]) => helpFor(`kiln ${o.name}`, argv, o.options, (a) => helpText({
    title: `kiln ${o.name} — ${o.summary}`,
    usage: `Usage: kiln ${o.name} [--checkpoint FILE] [options]`,
    notes: [
      'The options depend on the checkpoint: one written by kiln train (diffusion), by kiln train-vae (VAE), by kiln train-pixelcnn (PixelCNN)',
      'or by kiln train-gan (style GAN).',
      'A student of kiln distill takes the diffusion options: it samples at the steps, sampler (or consistency times) it records,',
      'with one network evaluation per step and no classifier-free guidance (its teacher\'s guidance is built in).',
    ],
    sections: o.sections(a),
    after: samplerLines(),
  }));
  return command({ name: o.name, summary: o.summary, help, main: (argv) => {
    const path = checkpointArg(argv);
    const diffusion = o.diffusionNll && wantsNll(argv) ? o.diffusionNll : o.diffusion;
    return (isVAECheckpoint(path) ? o.vae : isPixelCNNCheckpoint(path) ? o.pixelcnn : isGANCheckpoint(path) ? o.gan : diffusion)(argv);
  } });
}

/** `kiln sample`: a grid of digits from a diffusion checkpoint, or prior samples and interpolations of a VAE. */
export const SAMPLE: Command = byCheckpoint({
  name: 'sample',
  summary: 'sample a grid from a checkpoint: digits, or prompts of a text one (latent ones are decoded; a VAE gives prior samples and interpolations)',
  options: [...SAMPLE_OPTIONS, ...SAMPLE_VAE_OPTIONS, ...SAMPLE_PIXELCNN_OPTIONS, ...SAMPLE_GAN_OPTIONS],
  sections: (a) => [sampleSection(a), sampleVaeSection(a), samplePixelcnnSection(a), sampleGanSection(a)],
  diffusion: sampleCommand,
  vae: sampleVaeCommand,
  pixelcnn: samplePixelcnnCommand,
  gan: sampleGanCommand,
});

/**
 * `kiln eval`: LeNet scores of a diffusion or GAN checkpoint's samples (a diffusion model's probability-flow
 * NLL with --nll), a VAE's reconstruction error and scores, or a PixelCNN's test NLL and sample scores.
 */
export const EVAL: Command = byCheckpoint({
  name: 'eval',
  summary: 'score samples by LeNet: conditional accuracy (a text checkpoint: digit, size, stroke), classifier-FID, Inception-style score; a VAE: reconstruction error too',
  options: [...EVAL_OPTIONS, ...EVAL_NLL_OPTIONS, ...EVAL_VAE_OPTIONS, ...EVAL_PIXELCNN_OPTIONS, ...EVAL_GAN_OPTIONS],
  sections: () => [evalSection(), evalNllSection(), evalVaeSection(), evalPixelcnnSection(), evalGanSection()],
  diffusion: evalCommand,
  diffusionNll: evalNllCommand,
  vae: evalVaeCommand,
  pixelcnn: evalPixelcnnCommand,
  gan: evalGanCommand,
});

/** What `kiln info` does, in one line. */
const INFO_SUMMARY = 'print the WebGPU adapter kiln picks, as JSON';

/** `kiln info`: the adapter kiln picks. */
export const INFO: Command = optionsCommand({
  name: 'info',
  summary: INFO_SUMMARY,
  options: [],
  defaults: () => ({}),
  main: async (argv) => {
    new Args('kiln info', argv, []);
    console.log(JSON.stringify(await k.init(), null, 2));
  },
});

/** Every kiln command, in the order `kiln --help` lists them. */
export const COMMANDS: readonly Command[] = [DEMO, MNIST_MLP, LENET, TRAIN, TRAIN_VAE, TRAIN_PIXELCNN, TRAIN_GAN, DISTILL, SAMPLE, EVAL, TOY2D, INFO];

/** The text of `kiln --help`: the commands with their summaries, and the options every command takes. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'kiln — WebGPU tensors in Node and the browser',
    '',
    'Usage: kiln <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'kiln <command> --help (or -h, or kiln help <command>) lists the options of a command, one a line, with their defaults.',
    'Every command also takes --no-compile: training and sampling steps run eagerly instead of replaying compiled',
    'steps (slower, the same results; for debugging).',
    '',
    `  ${'--version'.padEnd(width)}print the version of kiln`,
    `  ${'--help'.padEnd(width)}this text (also -h, help)`,
  ].join('\n');
}
