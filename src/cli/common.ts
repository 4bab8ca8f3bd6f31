/**
 * What several commands share: output paths checked before the work starts, PNG grids of images, the
 * repository's metrics classifier, and the features of real digits.
 */
import { accessSync, constants, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '../index.js';
import { imageGrid } from '../io/grid.js';
import type { OptionSpec } from './args.js';

/** A file-system error said plainly (its code kept). */
function plain(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const what: Record<string, string> = { EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system', ENOTDIR: 'a part of the path is a file, not a directory', EEXIST: 'exists and is not a directory', ENOSPC: 'no space left on the device' };
  return err.code && what[err.code] ? `${what[err.code]} (${err.code})` : err.message;
}

/**
 * Makes sure the output directory `dir` (of option `option`) exists and is writable — created if
 * missing — so that a bad `--out` fails at startup, not after the work. Returns `dir`.
 */
export function outputDir(dir: string, option = '--out'): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(`${option} ${dir}: cannot create this directory: ${plain(e)}`);
  }
  if (!statSync(dir).isDirectory()) throw new Error(`${option} ${dir}: exists and is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new Error(`${option} ${dir}: cannot write into this directory: ${plain(e)}`);
  }
  return dir;
}

/** Like `outputDir` for the folder of the output file `file`, which must not be a directory or read-only. Returns `file`. */
export function outputFile(file: string, option = '--out'): string {
  outputDir(dirname(file), option);
  let st;
  try {
    st = statSync(file);
  } catch {
    return file; // does not exist yet: the folder is writable
  }
  if (st.isDirectory()) throw new Error(`${option} ${file}: is a directory; give a file name`);
  try {
    accessSync(file, constants.W_OK);
  } catch (e) {
    throw new Error(`${option} ${file}: cannot overwrite this file: ${plain(e)}`);
  }
  return file;
}

/**
 * The error of a training command whose run diverged (`e`, a `NonFiniteLossError`): its message, then
 * which checkpoint file was kept (`savedStep`: the step of the last one this run wrote, −1 if none) and
 * where the losses up to the failing step are.
 */
export function diverged(e: Error, ckpt: string, savedStep: number, lossFile: string): Error {
  const kept = savedStep >= 0 ? `${ckpt} is the last good checkpoint (step ${savedStep})` : `this run wrote no checkpoint`;
  return new Error(`${e.message}\n${kept}; the losses up to the failing step are in ${lossFile}; a lower --lr may help`);
}

/** Writes images [N, 1, H, W] in [−1, 1] as a PNG grid in rows of `cols`. */
export async function writeGrid(file: string, x: k.Tensor, cols: number): Promise<void> {
  writeFileSync(file, imageGrid(await x.data(), x.shape, cols));
}

/** The `--json` option of the evaluation commands. */
export const JSON_OPTION: OptionSpec = { name: 'json', value: 'FILE', help: 'also write the figures to this JSON file' };

/** The `--data-limit` option of the training commands. */
export const DATA_LIMIT_OPTION: OptionSpec = { name: 'data-limit', value: 'N', help: 'train on the first N training images only' };

/**
 * The options of a training command's output: `--out` (where `files` go), `--save-every` and `--resume`
 * (continuing from `checkpoint` in --out).
 */
export function outputOptions(files: string, checkpoint: string): OptionSpec[] {
  return [
    { name: 'out', value: 'DIR', help: `where ${files} go` },
    { name: 'save-every', value: 'N', help: 'write the checkpoint every N steps' },
    { name: 'resume', help: `continue from ${checkpoint} in --out` },
  ];
}

/** The `--precision` option of the training commands. */
export const PRECISION_OPTION: OptionSpec = { name: 'precision', value: 'P', choices: ['f32', 'f16'], help: 'f16: mixed precision (f16 activations, f32 weights, dynamic loss scaling; needs the adapter feature shader-f16)' };

/**
 * A line on a mixed-precision run's loss scaler at its end: the scale and the steps it skipped. `who`
 * names the scaler if there are several; `firstStep` is the training step of its first update (a
 * discriminator that starts late), so the last skipped step is named as a training step.
 */
export async function scalerSummary(scaler: k.optim.GradScaler, who = '', firstStep = 1): Promise<string> {
  const st = await scaler.stats();
  return `mixed precision${who ? ` (${who})` : ''}: loss scale ${st.scale} at the end; ${st.skippedSteps} steps skipped for overflowing gradients${st.skippedSteps ? ` (the last at step ${st.lastSkippedStep + firstStep - 1})` : ''}`;
}

/** The checkpoint `kiln sample` and `kiln eval` read when no --checkpoint is given (where `kiln train` writes by default). */
export const DEFAULT_CHECKPOINT = 'out/mnist/checkpoint.safetensors';

/** The images of the MNIST training split (the default of the commands' --data-limit: all of them). */
export const MNIST_TRAIN_IMAGES = 60000;

/** Where `kiln lenet` saves the metrics classifier and where the metrics load it from. */
export const LENET_PATH = fileURLToPath(new URL('../../models/lenet-mnist.safetensors', import.meta.url));

/** The digit classifier of `kiln eval --prompts`: LeNet trained on captioned digits (`kiln lenet --captions`). */
export const LENET_CAPTIONS_PATH = fileURLToPath(new URL('../../models/lenet-captions.safetensors', import.meta.url));

/** Loads the metrics classifier saved by `kiln lenet` (eval mode), or says how to make it. */
export async function loadMetricsNet(path = LENET_PATH): Promise<k.nn.LeNet> {
  return k.nn.loadLeNet(path).catch((e: Error) => {
    throw new Error(`${e.message}\n(the metrics classifier is made by \`npm run lenet${path === LENET_CAPTIONS_PATH ? ' -- --captions' : ''}\`)`);
  });
}

/** LeNet features of the first `count` real digits of an MNIST split. */
export async function realFeatures(net: k.nn.LeNet, split: 'train' | 'test', count: number): Promise<k.diffusion.FeatureSet> {
  return k.diffusion.featureSet(net, k.data.batches(await k.data.loadMnist(split), { batchSize: 500, limit: count }));
}
