/** `kiln mnist-mlp` and `kiln lenet`: train an MNIST classifier and report its test accuracy. */
import * as k from '../index.js';
import { trainLeNet, trainMlp, type ClassifierOptions } from '../train/index.js';
import { Args } from './args.js';
import { LENET_PATH, outputFile } from './common.js';
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

/** `kiln mnist-mlp`. */
export async function mnistMlpCommand(argv: string[]): Promise<void> {
  const a = new Args('kiln mnist-mlp', argv, { options: ['hidden', 'epochs', 'batch', 'lr', 'seed', 'out'] });
  const hidden = a.ints('hidden', [512, 512], 1, 1 << 20);
  const o = {
    hidden,
    epochs: a.number('epochs', 5, { min: 1, integer: true }),
    batchSize: a.number('batch', 128, { min: 1, integer: true }),
    lr: a.number('lr', 1e-3, { above: 0 }),
    weightDecay: 0.01,
    seed: a.number('seed', 0, { min: 0, integer: true }),
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
  const a = new Args('kiln lenet', argv, { options: ['epochs', 'batch', 'lr', 'seed', 'out'] });
  const o = {
    epochs: a.number('epochs', 4, { min: 1, integer: true }),
    batchSize: a.number('batch', 128, { min: 1, integer: true }),
    lr: a.number('lr', 2e-3, { above: 0 }),
    weightDecay: 1e-4,
    seed: a.number('seed', 0, { min: 0, integer: true }),
    onStep: progress('lenet'),
  };
  const out = outputFile(a.string('out', LENET_PATH));
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const r = await trainLeNet(o).catch(nothingSaved(out));
  console.log(`LeNet ${JSON.stringify(r.net.config)}: test accuracy ${(100 * r.accuracy).toFixed(2)}%, final loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);
  await k.save(r.net.stateDict(), out, { metadata: { model: 'lenet', config: JSON.stringify(r.net.config), accuracy: String(r.accuracy), command: `kiln lenet ${argv.join(' ')}`.trim() } });
  console.log(`saved ${out}`);
}
