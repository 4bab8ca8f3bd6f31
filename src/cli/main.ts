#!/usr/bin/env node
/**
 * The kiln command line. `demo` renders the Mandelbrot set with fused tensor ops (a picture written to
 * out/mandelbrot.png) and times a matmul, reporting the adapter used.
 */
import { writeFileSync } from 'node:fs';
import * as k from '../index.js';
import { encodePng, toBytes } from '../io/png.js';
import { Args } from './args.js';
import { lenetCommand, mnistMlpCommand } from './classifier.js';
import { outputDir } from './common.js';
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
  toy2d [--dataset moons|8gaussians|swissroll|checkerboard] [--objective flow|ddpm-eps] [--steps 1500]
        [--sample-steps 50] [--out DIR]     train a 2D diffusion model, plot data vs samples and trajectories
  info                                      print the WebGPU adapter kiln picks
  help, -h, --help                          this text (every command takes -h or --help)
  --no-compile                              (any command) run training and sampling steps eagerly instead of
                                            replaying compiled steps: slower, the same results; for debugging
  --version                                 the version of kiln
`;

/** `kiln demo`. */
async function demo(argv: string[]): Promise<void> {
  const opts = new Args('kiln demo', argv, { options: ['size', 'iters', 'out'] });
  const size = opts.number('size', 512, { min: 1, integer: true });
  const iters = opts.number('iters', 64, { min: 1, integer: true });
  const outDir = outputDir(opts.string('out', 'out'));
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
function checkpointArg(argv: string[]): string {
  return Args.peek(argv, 'checkpoint') ?? 'out/mnist/checkpoint.safetensors';
}

/** The package version (package.json two folders up, from src/cli and from dist/cli alike). */
async function version(): Promise<string> {
  const { readFileSync } = await import(['node', 'fs'].join(':'));
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  // -h is --help for every command
  const [cmd = 'help', ...given] = process.argv.slice(2).map((a) => (a === '-h' ? '--help' : a));
  // --no-compile (every command): training and sampling steps run eagerly, for debugging (same results)
  const args = given.filter((a) => a !== '--no-compile');
  if (args.length < given.length) k.setCompile(false);
  try {
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') return void console.log(`kiln ${await version()}`);
    // commands without a help text of their own are described in full by HELP
    if (args.includes('--help') && ['demo', 'mnist-mlp', 'lenet', 'toy2d', 'info'].includes(cmd)) return void console.log(HELP);
    if (cmd === 'demo') await demo(args);
    else if (cmd === 'mnist-mlp') await mnistMlpCommand(args);
    else if (cmd === 'lenet') await lenetCommand(args);
    else if (cmd === 'train') await trainCommand(args);
    else if (cmd === 'train-vae') await trainVaeCommand(args);
    else if (cmd === 'sample') await (isVAECheckpoint(checkpointArg(args)) ? sampleVaeCommand(args) : sampleCommand(args));
    else if (cmd === 'eval') await (isVAECheckpoint(checkpointArg(args)) ? evalVaeCommand(args) : evalCommand(args));
    else if (cmd === 'toy2d') await toy2dCommand(args);
    else if (cmd === 'info') console.log(JSON.stringify(await k.init(), null, 2));
    else if (cmd === 'help' || cmd === '--help') console.log(HELP);
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
