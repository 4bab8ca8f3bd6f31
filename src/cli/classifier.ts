/** `kiln mnist-mlp` and `kiln lenet`: train an MNIST classifier and report its test accuracy. */
import * as k from '../index.js';
import { trainLeNet, trainMlp, type ClassifierOptions } from '../train/index.js';
import { Args, type OptionSpec } from './args.js';
import { LENET_CAPTIONS_PATH, LENET_PATH, outputFile } from './common.js';
import { optionsCommand, type Command, type Defaults } from './help.js';
import { Progress } from './progress.js';

/** The progress-bar callback of a classifier run. */
function progress(label: string): ClassifierOptions['onStep'] {
  let bar: Progress | null = null;
  return (tr, epoch) => {
    bar ??= new Progress(tr.config.totalSteps, `${label} `);
    bar.update(tr.step, { epoch: epoch + 1, loss: tr.losses.at(-1), lr: tr.opt.lr });
  };
}

/** Adds to a diverged run's error that nothing was saved (to `out`, if the run was to save). */
function nothingSaved(out: string): (e: Error) => never {
  return (e) => {
    if (e instanceof k.train.NonFiniteLossError) throw new Error(`${e.message}${out ? `; nothing was saved to ${out}` : ''}; a lower --lr may help`);
    throw e;
  };
}

/** The options of `kiln mnist-mlp`: the parser accepts these, and its help lists them. */
export const MNIST_MLP_OPTIONS: readonly OptionSpec[] = [
  { name: 'hidden', value: 'N,N,…', help: 'widths of the hidden layers' },
  { name: 'epochs', value: 'N', help: 'passes over the training digits' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'AdamW learning rate (cosine decay to the last step)' },
  { name: 'seed', value: 'N', help: 'seed of the initial weights and the shuffles' },
  { name: 'out', value: 'FILE', help: 'save the trained weights to this safetensors file (not saved unless given)' },
];

/** The defaults of `kiln mnist-mlp`'s options (by option name). */
export function mnistMlpDefaults() {
  return { hidden: [512, 512], epochs: 5, batch: 128, lr: 1e-3, seed: 0 } satisfies Defaults;
}

const LENET_CAPTIONS_FILE = 'models/lenet-captions.safetensors';

/** The options of `kiln lenet`: the parser accepts these, and its help lists them. */
export const LENET_OPTIONS: readonly OptionSpec[] = [
  { name: 'epochs', value: 'N', help: 'passes over the training digits' },
  { name: 'batch', value: 'N', help: 'images per step' },
  { name: 'lr', value: 'X', help: 'AdamW learning rate (cosine decay to the last step)' },
  { name: 'seed', value: 'N', help: 'seed of the initial weights and the shuffles' },
  { name: 'captions', help: `train and test on digits drawn small or large, thin or bold, as captions describe them (the digit classifier of kiln eval --prompts; saved to ${LENET_CAPTIONS_FILE} unless --out is given)` },
  { name: 'out', value: 'FILE', help: 'where to save it (kiln eval loads the metrics classifier from the default)' },
];

/** The defaults of `kiln lenet`'s options (by option name). */
export function lenetDefaults() {
  return { epochs: 4, batch: 128, lr: 2e-3, seed: 0, out: LENET_PATH } satisfies Defaults;
}

/** `kiln mnist-mlp` as the command line lists and runs it. */
export const MNIST_MLP: Command = optionsCommand({ name: 'mnist-mlp', summary: 'train an MLP classifier on MNIST and report its test accuracy', options: MNIST_MLP_OPTIONS, defaults: mnistMlpDefaults, main: (argv) => mnistMlpCommand(argv) });

/** `kiln lenet` as the command line lists and runs it. */
export const LENET: Command = optionsCommand({ name: 'lenet', summary: 'train the LeNet classifier that the generative metrics use', options: LENET_OPTIONS, defaults: lenetDefaults, main: (argv) => lenetCommand(argv) });

/** `kiln mnist-mlp`. */
export async function mnistMlpCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln mnist-mlp', argv, MNIST_MLP_OPTIONS);
  const d = mnistMlpDefaults();
  const hidden = a.ints('hidden', d.hidden, 1, 1 << 20);
  const o = {
    hidden,
    epochs: a.number('epochs', d.epochs, { min: 1, integer: true }),
    batchSize: a.number('batch', d.batch, { min: 1, integer: true }),
    lr: a.number('lr', d.lr, { above: 0 }),
    weightDecay: 0.01,
    seed: a.number('seed', d.seed, { min: 0, integer: true }),
    onStep: progress('mnist-mlp'),
  };
  const out = a.string('out', '');
  if (out) outputFile(out);
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const r = await trainMlp(o).catch(nothingSaved(out));
  console.log(`MLP 784-${hidden.join('-')}-10: test accuracy ${(100 * r.accuracy).toFixed(2)}%, final loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);
  if (out) {
    await k.save(r.net.stateDict(), out, { metadata: { model: `mlp-784-${hidden.join('-')}-10`, accuracy: String(r.accuracy) } });
    console.log(`saved ${out}`);
  }
}

/** `kiln lenet`. */
export async function lenetCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln lenet', argv, LENET_OPTIONS);
  const d = lenetDefaults();
  const o = {
    epochs: a.number('epochs', d.epochs, { min: 1, integer: true }),
    batchSize: a.number('batch', d.batch, { min: 1, integer: true }),
    lr: a.number('lr', d.lr, { above: 0 }),
    weightDecay: 1e-4,
    seed: a.number('seed', d.seed, { min: 0, integer: true }),
    captions: a.flag('captions'),
    onStep: progress('lenet'),
  };
  const out = outputFile(a.string('out', o.captions ? LENET_CAPTIONS_PATH : d.out));
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const r = await trainLeNet(o).catch(nothingSaved(out));
  console.log(`LeNet ${JSON.stringify(r.net.config)}: test accuracy ${(100 * r.accuracy).toFixed(2)}%${o.captions ? ' (captioned test digits)' : ''}, final loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);
  await k.save(r.net.stateDict(), out, { metadata: { model: 'lenet', config: JSON.stringify(r.net.config), accuracy: String(r.accuracy), data: o.captions ? 'captioned MNIST' : 'MNIST', command: `kiln lenet ${argv.join(' ')}`.trim() } });
  console.log(`saved ${out}`);
}
