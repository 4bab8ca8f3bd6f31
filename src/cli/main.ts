#!/usr/bin/env node
/**
 * The kiln command line. `demo` renders the Mandelbrot set with fused tensor ops (a picture written to
 * out/mandelbrot.png) and times a matmul, reporting the adapter used.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { encodePng, toBytes } from './png.js';
import { LENET_PATH, trainLeNet, trainMlp } from './classifier.js';
import { toy2dCommand } from './toy2d.js';
import { evalCommand, sampleCommand, trainCommand } from './diffusion.js';
import { evalVaeCommand, isVAECheckpoint, sampleVaeCommand, trainVaeCommand } from './vae.js';

const HELP = `kiln — WebGPU tensors in Node and the browser

Usage: kiln <command> [options]

Commands:
  demo [--size N] [--iters N] [--out DIR]   render the Mandelbrot set with fused kernels, time a matmul
  mnist-mlp [--hidden 512,512] [--epochs 5] [--batch 128] [--lr 1e-3] [--seed 0] [--out FILE]
                                            train an MLP classifier on MNIST, report test accuracy
  lenet [--epochs 4] [--batch 128] [--lr 2e-3] [--seed 0] [--out models/lenet-mnist.safetensors]
                                            train the LeNet classifier that the generative metrics use
  train [--preset cpu|gpu] [--model unet|dit] [--objective flow|eps|v] [--steps N] [--out DIR] [--resume] …
                                            train a class-conditional diffusion model on MNIST (--help for all)
  train-vae [--steps N] [--kl-weight X] [--disc-start N] [--out DIR] [--resume] …
                                            train the KL-VAE (+ PatchGAN) for latent diffusion (--help for all);
                                            then kiln train --latent DIR/vae.safetensors trains on its latents
  sample [--checkpoint FILE] [--sampler NAME] [--steps N] [--guidance W] [--labels 0,1,…] [--out FILE]
                                            sample a grid of digits from a checkpoint (latent ones are decoded;
                                            a VAE checkpoint gives prior samples and interpolations)
  eval [--checkpoint FILE] [--per-class 50] conditional accuracy, classifier-FID and Inception-style score
                                            (a VAE checkpoint: reconstruction error and its scores)
  toy2d [--dataset moons|8gaussians|swissroll|checkerboard] [--objective flow|ddpm-eps] [--steps 3000]
        [--sample-steps 50] [--out DIR]     train a 2D diffusion model, plot data vs samples and trajectories
  info                                      print the WebGPU adapter kiln picks
  help                                      this text
`;

function stringOption(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} expects a value`);
  return v;
}

async function mnistMlp(args: string[]): Promise<void> {
  const hidden = stringOption(args, '--hidden', '512,512').split(',').map(Number);
  if (hidden.some((h) => !Number.isInteger(h) || h < 1)) throw new Error(`--hidden expects comma-separated positive integers, got ${stringOption(args, '--hidden', '')}`);
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const r = await trainMlp({
    hidden,
    epochs: option(args, '--epochs', 5),
    batchSize: option(args, '--batch', 128),
    lr: option(args, '--lr', 1e-3),
    weightDecay: 0.01,
    seed: option(args, '--seed', 0, 0),
  });
  console.log(`MLP 784-${hidden.join('-')}-10: test accuracy ${(100 * r.accuracy).toFixed(2)}%, final loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);
  const out = stringOption(args, '--out', '');
  if (out) {
    await k.save(r.net.stateDict(), out, { metadata: { model: `mlp-784-${hidden.join('-')}-10`, accuracy: String(r.accuracy) } });
    console.log(`saved ${out}`);
  }
}

async function lenet(args: string[]): Promise<void> {
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const r = await trainLeNet({
    epochs: option(args, '--epochs', 4),
    batchSize: option(args, '--batch', 128),
    lr: option(args, '--lr', 2e-3),
    weightDecay: 1e-4,
    seed: option(args, '--seed', 0, 0),
  });
  console.log(`LeNet ${JSON.stringify(r.net.config)}: test accuracy ${(100 * r.accuracy).toFixed(2)}%, final loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(0)} s`);
  const out = stringOption(args, '--out', LENET_PATH);
  await k.save(r.net.stateDict(), out, { metadata: { model: 'lenet', config: JSON.stringify(r.net.config), accuracy: String(r.accuracy), command: `kiln lenet ${args.join(' ')}`.trim() } });
  console.log(`saved ${out}`);
}

function option(args: string[], name: string, fallback: number, min = Number.MIN_VALUE): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < min) throw new Error(`${name} expects a number ≥ ${min === Number.MIN_VALUE ? '0 (exclusive)' : min}, got ${JSON.stringify(args[i + 1])}`);
  return v;
}

async function demo(args: string[]): Promise<void> {
  const size = option(args, '--size', 512);
  const iters = option(args, '--iters', 64);
  const outIdx = args.indexOf('--out');
  const outDir = outIdx >= 0 ? args[outIdx + 1]! : 'out';
  const info = await k.init();
  console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
  const t0 = performance.now();
  // z ← z² + c over a grid of c, counting the steps each point stays bounded
  const img = await k.scope(async () => {
    const xs = k.linspace(-2.2, 0.8, size).reshape([1, size]).expand([size, size]);
    const ys = k.linspace(-1.5, 1.5, size).reshape([size, 1]).expand([size, size]);
    let zr = k.zeros([size, size]);
    let zi = k.zeros([size, size]);
    let count = k.zeros([size, size]);
    for (let i = 0; i < iters; i++) {
      const next = k.scope(() => {
        const r2 = zr.mul(zr), i2 = zi.mul(zi);
        const inside = r2.add(i2).le(4);
        const nzr = k.where(inside, r2.sub(i2).add(xs), zr);
        const nzi = k.where(inside, zr.mul(zi).mul(2).add(ys), zi);
        return [nzr, nzi, count.add(inside.cast('f32'))];
      });
      [zr, zi, count].forEach((t) => t.dispose());
      [zr, zi, count] = next as [k.Tensor, k.Tensor, k.Tensor];
      if (i % 16 === 15) await k.realize(zr, zi, count);
    }
    return count.div(iters).sqrt().data();
  });
  const ms = performance.now() - t0;
  mkdirSync(outDir, { recursive: true });
  const file = `${outDir}/mandelbrot.png`;
  writeFileSync(file, encodePng(toBytes(img), size, size));
  console.log(`mandelbrot ${size}×${size}, ${iters} iterations: ${ms.toFixed(0)} ms → ${file}`);

  const n = 512;
  const a = k.randn([n, n]), b = k.randn([n, n]);
  await k.realize(a, b);
  await a.matmul(b).sum().item();
  const t1 = performance.now();
  const reps = 5;
  const outs = Array.from({ length: reps }, () => a.matmul(b));
  await k.realize(...outs);
  await outs[reps - 1]!.sum().item();
  const sec = (performance.now() - t1) / 1000;
  console.log(`matmul ${n}×${n}: ${((2 * n ** 3 * reps) / sec / 1e9).toFixed(2)} GFLOP/s`);
  console.log('stats:', JSON.stringify(k.stats()));
}

/** The value of --checkpoint (or the default diffusion checkpoint), to tell VAE checkpoints from diffusion ones. */
function checkpointArg(args: string[]): string {
  const i = args.indexOf('--checkpoint');
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : 'out/mnist/checkpoint.safetensors';
}

async function main(): Promise<void> {
  const [cmd = 'help', ...args] = process.argv.slice(2);
  try {
    if (cmd === 'demo') await demo(args);
    else if (cmd === 'mnist-mlp') await mnistMlp(args);
    else if (cmd === 'lenet') await lenet(args);
    else if (cmd === 'train') await trainCommand(args);
    else if (cmd === 'train-vae') await trainVaeCommand(args);
    else if (cmd === 'sample') await (isVAECheckpoint(checkpointArg(args)) ? sampleVaeCommand(args) : sampleCommand(args));
    else if (cmd === 'eval') await (isVAECheckpoint(checkpointArg(args)) ? evalVaeCommand(args) : evalCommand(args));
    else if (cmd === 'toy2d') {
      const info = await k.init();
      console.log(`adapter: ${info.driver} (${info.description || info.vendor})`);
      const dataset = stringOption(args, '--dataset', 'moons') as k.data.Toy2D;
      if (!['moons', '8gaussians', 'swissroll', 'checkerboard'].includes(dataset)) throw new Error(`--dataset must be moons, 8gaussians, swissroll or checkerboard, got ${dataset}`);
      const objective = stringOption(args, '--objective', 'flow');
      if (objective !== 'flow' && objective !== 'ddpm-eps') throw new Error(`--objective must be flow or ddpm-eps, got ${objective}`);
      const file = await toy2dCommand({ dataset, objective, steps: option(args, '--steps', 3000), sampleSteps: option(args, '--sample-steps', 50), out: stringOption(args, '--out', 'out') });
      console.log(`wrote ${file}`);
    }
    else if (cmd === 'info') console.log(JSON.stringify(await k.init(), null, 2));
    else if (cmd === 'help' || cmd === '--help' || cmd === '-h') console.log(HELP);
    else {
      console.error(`kiln: unknown command '${cmd}'\n\n${HELP}`);
      process.exitCode = 2;
    }
  } catch (e) {
    console.error(`kiln ${cmd}: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    k.destroy();
  }
}

await main();
process.exit(process.exitCode ?? 0);
