/**
 * The one argument parser of every kiln command and script, and the help texts made from the same option
 * tables: unknown options are errors that list the valid ones, every command's help lists every option its
 * parser takes with a description and its default (the preset's, for kiln train), and the samplers are
 * listed under the objectives they fit.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k from '../../src/index.ts';
import { Args } from '../../src/cli/args.ts';
import { lenetCommand, mnistMlpCommand } from '../../src/cli/classifier.ts';
import { COMMANDS } from '../../src/cli/commands.ts';
import { demoCommand } from '../../src/cli/demo.ts';
import { distillCommand } from '../../src/cli/distill.ts';
import { TEXT_PRESETS } from '../../src/cli/captions.ts';
import { evalCommand, LATENT_PRESETS, presetFor, PRESETS, sampleCommand, TRAIN, trainCommand, trainHelpText } from '../../src/cli/diffusion.ts';
import { toy2dCommand } from '../../src/cli/toy2d.ts';
import { checkpointFormat, evalVaeCommand, isVAECheckpoint, sampleVaeCommand, trainVaeCommand } from '../../src/cli/vae.ts';
import { evalPixelcnnCommand, samplePixelcnnCommand, trainPixelcnnCommand } from '../../src/cli/pixelcnn.ts';
import { evalGanCommand, sampleGanCommand, trainGanCommand } from '../../src/cli/stylegan.ts';
import { evalNllCommand } from '../../src/cli/likelihood.ts';
import { SAMPLER_NAMES } from '../../src/diffusion/samplers.ts';
import { TRAIN_DEFAULTS } from '../../src/train/index.ts';

describe('Args', () => {
  it('parses options and flags, and names what a bad value should be', () => {
    const a = new Args('kiln test', ['--steps', '3', '--lr', '0.5', '--resume', '--labels', '1,2'], { options: ['steps', 'lr', 'labels', 'out'], flags: ['resume'] });
    expect(a.number('steps', 1, { min: 1, integer: true })).toBe(3);
    expect(a.number('lr', 1, { above: 0 })).toBe(0.5);
    expect(a.ints('labels', [], 0, 9)).toEqual([1, 2]);
    expect(a.flag('resume')).toBe(true);
    expect(a.has('out')).toBe(false);
    expect(a.string('out', 'dir')).toBe('dir');
    expect(() => new Args('kiln test', ['--lr', '0'], { options: ['lr'] }).number('lr', 1, { above: 0 })).toThrow(/--lr expects a number > 0, got '0'/);
    expect(() => new Args('kiln test', ['--lr'], { options: ['lr'] })).toThrow(/--lr expects a value/);
    expect(() => new Args('kiln test', ['3'], { options: ['lr'] })).toThrow(/unexpected argument '3' \(options start with --; see kiln test --help\)/);
    expect(Args.peek(['--seed', '1', '--checkpoint', 'a.safetensors'], 'checkpoint')).toBe('a.safetensors');
  });

  it('an unknown option is an error that lists the valid options and flags', () => {
    expect(() => new Args('kiln test', ['--stepz', '3'], { options: ['steps', 'lr'], flags: ['resume'] })).toThrow('unknown option --stepz (see kiln test --help); valid options: --steps, --lr, --resume');
    // an option table: entries with a value (or choices) are options, the others flags
    const table = [{ name: 'steps', value: 'N', help: 'steps' }, { name: 'mode', choices: ['a', 'b'], help: 'mode' }, { name: 'resume', help: 'resume' }];
    expect(() => new Args('kiln test', ['--stepz', '3'], table)).toThrow('unknown option --stepz (see kiln test --help); valid options: --steps, --mode, --resume');
    expect(() => new Args('kiln test', ['--x', '3'], [])).toThrow('unknown option --x (see kiln test --help); kiln test takes no options');
    // the choices of the table are checked without being repeated at the call
    expect(() => new Args('kiln test', ['--mode', 'c'], table).string('mode', 'a')).toThrow("--mode must be one of a, b, got 'c'");
    expect(new Args('kiln test', ['--mode', 'b', '--resume'], table).string('mode', 'a')).toBe('b');
  });

  it('every command rejects an unknown option before doing any work, listing its own options', async () => {
    const commands: [string, (argv: string[]) => Promise<void>, string][] = [
      ['train', trainCommand, '--preset'],
      ['train-vae', trainVaeCommand, '--kl-weight'],
      ['train-pixelcnn', trainPixelcnnCommand, '--binarize'],
      ['train-gan', trainGanCommand, '--r1-every'],
      ['sample', sampleGanCommand, '--psi'],
      ['eval', evalGanCommand, '--no-ema'],
      ['sample', samplePixelcnnCommand, '--count'],
      ['eval', evalPixelcnnCommand, '--limit'],
      ['eval', evalNllCommand, '--nll-steps'],
      ['distill', distillCommand, '--steps-student'],
      ['sample', sampleCommand, '--per-class'],
      ['eval', evalCommand, '--per-class'],
      ['sample', sampleVaeCommand, '--seed'],
      ['eval', evalVaeCommand, '--samples'],
      ['mnist-mlp', mnistMlpCommand, '--hidden'],
      ['lenet', lenetCommand, '--epochs'],
      ['toy2d', toy2dCommand, '--dataset'],
      ['demo', demoCommand, '--iters'],
    ];
    for (const [name, run, option] of commands) {
      await expect(run(['--bogus', '1'])).rejects.toThrow(new RegExp(`^unknown option --bogus \\(see kiln ${name} --help\\); valid options: .*${option}`));
    }
  });
});

/** The options an unknown option's error lists as valid: what the command's parser takes. */
async function parserOptions(run: (argv: string[]) => Promise<void>): Promise<string[]> {
  const e = await run(['--bogus', '1']).then(() => null, (err: Error) => err);
  expect(e).not.toBeNull();
  if (/takes no options$/.test(e!.message)) return [];
  const m = /valid options: (.*)$/.exec(e!.message);
  expect(m, e!.message).not.toBeNull();
  return m![1]!.split(', ').map((o) => o.slice(2));
}

/** The lines of a help text that describe option --name: `  --name [VALUE]  description…`. */
function optionLines(help: string, name: string): string[] {
  return help.split('\n').filter((l) => l.startsWith(`  --${name} `) || l === `  --${name}`);
}

/** The `(default: …)` of option --name in a help text that describes it on exactly one line, or null. */
function defaultOf(help: string, name: string): string | null {
  const lines = optionLines(help, name);
  expect(lines, `one line for --${name} in\n${help}`).toHaveLength(1);
  return /\(default: (.*)\)$/.exec(lines[0]!)?.[1] ?? null;
}

/** The samplers listed under each group of objectives in a help text (`  flow    ddpm ddim …` → { flow: [...] }). */
function samplerListing(help: string): Record<string, string[]> {
  const lines = help.split('\n');
  const at = lines.indexOf('Samplers by objective (--sampler NAME):');
  expect(at, help).toBeGreaterThan(0);
  const out: Record<string, string[]> = {};
  for (const l of lines.slice(at + 1)) {
    const m = /^ {2}([a-z, ]+?) {2,}([a-z_\d ]+)$/.exec(l);
    if (!m) continue;
    for (const objective of m[1]!.split(', ')) out[objective] = m[2]!.split(' ');
  }
  return out;
}

/** What a command printed to the console while running with `argv`. */
async function printed(run: (argv: string[]) => Promise<void>, argv: string[]): Promise<string> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await run(argv);
    return log.mock.calls.map((c) => c.join(' ')).join('\n');
  } finally {
    log.mockRestore();
  }
}

describe('help texts', () => {
  /** Each command's parsers: sample and eval have one for diffusion (eval two: samples, and the likelihood with --nll), one for VAE, one for PixelCNN and one for GAN checkpoints. */
  const parsers: Record<string, ((argv: string[]) => Promise<void>)[]> = { sample: [sampleCommand, sampleVaeCommand, samplePixelcnnCommand, sampleGanCommand], eval: [evalCommand, evalNllCommand, evalVaeCommand, evalPixelcnnCommand, evalGanCommand] };
  /** The options that take a value but have no default (they are off unless given). */
  const noDefault: Record<string, string[]> = { 'mnist-mlp': ['out'], train: ['latent'], eval: ['json'] };

  it('every command has -h and --help, which list every option its parser takes, with a description and its default', async () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(['demo', 'mnist-mlp', 'lenet', 'train', 'train-vae', 'train-pixelcnn', 'train-gan', 'distill', 'sample', 'eval', 'toy2d', 'info']);
    for (const c of COMMANDS) {
      const help = await c.help([]);
      expect(help.startsWith(`kiln ${c.name} — ${c.summary}\n`), help).toBe(true);
      // the command prints the same text for -h and --help, and does no work
      expect(await printed(c.run, ['-h'])).toBe(help);
      expect(await printed(c.run, ['--help'])).toBe(help);
      const takes = new Set<string>();
      for (const run of parsers[c.name] ?? [c.run]) for (const o of await parserOptions(run)) takes.add(o);
      // every option the parsers take has a line with a description; options with a value have a default
      for (const name of [...takes, 'help', 'no-compile']) {
        const lines = optionLines(help, name);
        expect(lines.length, `kiln ${c.name} --help lists --${name}`).toBeGreaterThan(0);
        for (const line of lines) {
          expect(line, `kiln ${c.name}: --${name} is described`).toMatch(new RegExp(`^ {2}--${name}( \\S+)? {2,}\\S.{8,}`));
          const valued = / {2}--\S+ \S+ {2}/.test(line);
          if (valued && !noDefault[c.name]?.includes(name)) expect(line, `kiln ${c.name}: --${name} has a default`).toMatch(/\(default: [^)]+\)$/);
          if (!valued) expect(line).not.toMatch(/\(default:/);
        }
      }
      // and the help lists no option the parsers do not take
      const listed = [...help.matchAll(/^ {2}--([a-z\d-]+)/gm)].map((m) => m[1]!);
      expect(listed.filter((o) => !takes.has(o) && o !== 'help' && o !== 'no-compile'), `kiln ${c.name}`).toEqual([]);
    }
  });

  it('kiln train --help shows the defaults of the preset in use, read from the preset tables', async () => {
    const D = TRAIN_DEFAULTS;
    for (const [latent, presets] of [[false, PRESETS], [true, LATENT_PRESETS]] as const) {
      for (const name of ['cpu', 'gpu'] as const) {
        const p = presets[name];
        const argv = latent ? ['--latent', 'vae.safetensors'] : [];
        // chosen by the adapter or by --preset: the same defaults
        for (const help of [trainHelpText(argv, { preset: name, driver: 'test' }), trainHelpText([...argv, '--preset', name], null)]) {
          expect(defaultOf(help, 'preset')).toBe(name);
          expect(defaultOf(help, 'model')).toBe(p.model);
          expect(Number(defaultOf(help, 'steps'))).toBe(p.steps);
          expect(Number(defaultOf(help, 'batch'))).toBe(p.batch);
          expect(Number(defaultOf(help, 'lr'))).toBe(p.lr);
          expect(Number(defaultOf(help, 'warmup'))).toBe(Math.min(D.warmup, Math.floor(p.steps / 10)));
          expect(Number(defaultOf(help, 'weight-decay'))).toBe(D.weightDecay);
          expect(Number(defaultOf(help, 'clip'))).toBe(D.clip);
          expect(Number(defaultOf(help, 'label-dropout'))).toBe(D.labelDropout);
          expect(Number(defaultOf(help, 'seed'))).toBe(D.seed);
          expect(defaultOf(help, 'objective')).toBe(D.objective);
          expect(defaultOf(help, 'sampler')).toBe(k.diffusion.defaultSampler(D.objective));
        }
      }
    }
    // the defaults that follow the run's length or objective follow the --steps and --objective given
    const short = trainHelpText(['--preset', 'gpu', '--steps', '300', '--objective', 'eps'], null);
    expect(Number(defaultOf(short, 'steps'))).toBe(PRESETS.gpu.steps);
    expect(Number(defaultOf(short, 'warmup'))).toBe(30);
    expect(Number(defaultOf(short, 'ema'))).toBe(D.emaDecay);
    expect(defaultOf(short, 'sampler')).toBe(k.diffusion.defaultSampler('eps'));
    // --captions: a pixel preset's steps come from the text preset when it has its own (warmup follows them); latents keep theirs
    for (const name of ['cpu', 'gpu'] as const) {
      const steps = TEXT_PRESETS[name].steps ?? PRESETS[name].steps;
      const text = trainHelpText(['--captions', '--preset', name], null);
      expect(Number(defaultOf(text, 'steps'))).toBe(steps);
      expect(Number(defaultOf(text, 'warmup'))).toBe(Math.min(D.warmup, Math.floor(steps / 10)));
      expect(Number(defaultOf(text, 'batch'))).toBe(PRESETS[name].batch);
      // its grids sample as kiln sample samples a text checkpoint, into out/mnist-text
      const sampling = k.diffusion.defaultSampling('flow', true);
      expect([defaultOf(text, 'sampler'), Number(defaultOf(text, 'sample-steps')), Number(defaultOf(text, 'guidance'))]).toEqual([sampling.sampler, sampling.steps, sampling.guidance]);
      expect(defaultOf(text, 'out')).toBe('out/mnist-text');
      expect(Number(defaultOf(text, 'time-mean'))).toBe(0);
      expect(Number(defaultOf(trainHelpText(['--captions', '--latent', 'vae.safetensors', '--preset', name], null), 'steps'))).toBe(LATENT_PRESETS[name].steps);
    }
    expect(TEXT_PRESETS.cpu.steps ?? PRESETS.cpu.steps).not.toBe(PRESETS.cpu.steps); // so the loop above tells the tables apart
    // without an adapter to pick a preset, both side by side
    const both = trainHelpText([], null);
    expect(defaultOf(both, 'steps')).toBe(`${PRESETS.cpu.steps} with --preset cpu, ${PRESETS.gpu.steps} with --preset gpu`);
    expect(defaultOf(both, 'batch')).toBe(`${PRESETS.cpu.batch} with --preset cpu, ${PRESETS.gpu.batch} with --preset gpu`);
    expect(defaultOf(both, 'preset')).toBeNull();
    expect(Number(defaultOf(both, 'clip'))).toBe(D.clip); // the same in both: printed once
    // software adapters pick cpu, whatever their adapter info calls the architecture (SwiftShader says 'swiftshader')
    const adapter = (driver: string, architecture: string) => ({ driver, architecture }) as k.DeviceInfo;
    expect(presetFor(adapter('lavapipe', 'software'))).toBe('cpu');
    expect(presetFor(adapter('swiftshader', 'swiftshader'))).toBe('cpu');
    expect(presetFor(adapter('software', ''))).toBe('cpu');
    expect(presetFor(adapter('hardware', 'rdna-3'))).toBe('gpu');
    // the help of the command: the preset this adapter picks
    const picked = presetFor(await k.init());
    const help = await TRAIN.help([]);
    expect(defaultOf(help, 'preset')).toBe(picked);
    expect(Number(defaultOf(help, 'steps'))).toBe(PRESETS[picked].steps);
    expect(Number(defaultOf(await TRAIN.help(['--preset', 'gpu']), 'steps'))).toBe(PRESETS.gpu.steps);
  });

  it('the samplers are listed under the objectives they fit, and every listed one samples that objective', async () => {
    for (const c of COMMANDS.filter((x) => ['train', 'sample', 'eval'].includes(x.name))) {
      const listing = samplerListing(await c.help(['--preset', 'cpu']));
      expect(Object.keys(listing).sort()).toEqual(['eps', 'flow', 'v']);
      expect(listing.flow).toEqual(expect.arrayContaining(['flow_euler', 'flow_heun', 'ddim', 'euler', 'dpmpp_2m', 'unipc']));
      expect(listing.flow).not.toContain('heun');
      for (const o of ['eps', 'v']) {
        expect(listing[o]).toEqual(expect.arrayContaining(['ddpm', 'ddim', 'heun', 'dpmpp_2m', 'unipc']));
        expect(listing[o]).not.toContain('flow_euler');
        expect(listing[o]).not.toContain('flow_heun');
      }
      for (const s of ['sde_euler_maruyama', 'pc_langevin']) expect(Object.values(listing).flat()).not.toContain(s);
      expect(await c.help([])).toMatch(/\(sde_euler_maruyama and pc_langevin need a continuous VP or VE SDE/);
    }
    // the listing is what the samplers do: each listed one turns noise into finite samples of an exactly
    // known model of the objective's process, each other one fails or returns NaN
    const listing = samplerListing(await TRAIN.help(['--preset', 'cpu']));
    const mix = new k.diffusion.GaussianMixture([1], [[1.5]], [0.5]);
    for (const objective of ['flow', 'eps'] as const) {
      const { process } = k.diffusion.objectiveSetup(objective);
      for (const sampler of SAMPLER_NAMES) {
        const path = k.diffusion.samplingPath(process, { steps: 4 });
        const run = k.scope(async () => {
          const { x } = await k.diffusion.sample({ model: mix.model(process), prediction: 'x0', process, path, noise: k.tensor([-1, 0.5, 2], { shape: [3, 1] }), sampler });
          const v = Array.from(await x.data());
          x.dispose();
          return v;
        });
        const v = await run.then((r) => r, () => null);
        const works = v !== null && v.every(Number.isFinite);
        expect(works, `${sampler} on ${objective}: ${v}`).toBe(listing[objective]!.includes(sampler));
      }
    }
  }, 300_000);

  it('a --sampler that does not fit the objective is an error naming the sampler, the objective and the samplers that fit', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'kiln-sampler-'));
    // a run this small would end in seconds if the sampler were not refused
    const tiny = ['--steps', '1', '--batch', '2', '--data-limit', '2', '--grid-per-class', '1', '--sample-steps', '1', '--out', tmp];
    try {
      const flow = samplerListing(await TRAIN.help([])).flow!;
      await expect(trainCommand(['--sampler', 'heun', ...tiny])).rejects.toThrow(`--sampler heun does not fit --objective flow: 'heun' steps in σ = s/a, which is infinite at the start of the RectifiedFlow path (a = 0); the samplers for flow are ${flow.join(', ')}`);
      await expect(trainCommand(['--sampler', 'flow_heun', '--objective', 'v', ...tiny])).rejects.toThrow(/^--sampler flow_heun does not fit --objective v: .*; the samplers for v are ddpm, ddim, /);
      await expect(trainCommand(['--sampler', 'pc_langevin', ...tiny])).rejects.toThrow(/^--sampler pc_langevin does not fit --objective flow: 'pc_langevin' needs a continuous VP, sub-VP or VE SDE process, got RectifiedFlow; the samplers for flow are /);
      // the checkpoint of the tests was trained with rectified flow
      const ckpt = 'tests/fixtures/mnist-tiny.safetensors';
      await expect(sampleCommand(['--checkpoint', ckpt, '--sampler', 'edm_heun', '--out', join(tmp, 'x.png')])).rejects.toThrow(`--sampler edm_heun does not fit this checkpoint's objective flow: 'edm_heun' steps in σ = s/a, which is infinite at the start of the RectifiedFlow path (a = 0); the samplers for flow are ${flow.join(', ')}`);
      await expect(evalCommand(['--checkpoint', ckpt, '--sampler', 'heun'])).rejects.toThrow(/^--sampler heun does not fit this checkpoint's objective flow: /);
      // a name that is no sampler fails before the checkpoint is read
      await expect(sampleCommand(['--checkpoint', join(tmp, 'missing.safetensors'), '--sampler', 'nope'])).rejects.toThrow(`--sampler must be one of ${SAMPLER_NAMES.join(', ')}, got 'nope'`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('kiln (the command line)', () => {
  const kiln = (...argv: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...argv], { encoding: 'utf8', timeout: 60_000 });

  it('-h is --help for every command, and --version prints the package version', () => {
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    const v = kiln('--version');
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(`kiln ${version}`);
    const h = kiln('train', '-h');
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/^kiln train — /);
    expect(h.stdout).toMatch(/^ {2}--preset cpu\|gpu {2,}model and run size: .*\(default: (cpu|gpu)\)$/m);
    expect(h.stdout).toMatch(/^ {2}--steps N {2,}training steps \(default: \d+\)$/m);
    const main = kiln('--help');
    expect(main.status).toBe(0);
    for (const c of COMMANDS) expect(main.stdout).toMatch(new RegExp(`^ {2}${c.name} +${c.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    const about = kiln('help', 'demo');
    expect(about.status).toBe(0);
    expect(about.stdout).toMatch(/^kiln demo — /);
    expect(about.stdout).toMatch(/^ {2}--size N {2,}.*\(default: \d+\)$/m);
    const bad = kiln('info', '--verbose');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('kiln info: unknown option --verbose (see kiln info --help); kiln info takes no options');
  });
});

describe('bad values, outputs and checkpoints fail at startup with messages that name them', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const aFile = join(tmp, 'plain.txt');
  writeFileSync(aFile, 'not a directory');

  it('ranges are checked by the parser: --label-dropout and --ema are in [0, 1]', async () => {
    await expect(trainCommand(['--label-dropout', '2'])).rejects.toThrow("--label-dropout expects a number in [0, 1], got '2'");
    await expect(trainCommand(['--ema', '5'])).rejects.toThrow("--ema expects a number in [0, 1], got '5'");
    expect(() => new Args('kiln test', ['--p', '-1'], { options: ['p'] }).number('p', 0, { above: 0, max: 1 })).toThrow("--p expects a number in (0, 1], got '-1'");
    expect(() => new Args('kiln test', ['--p', '9'], { options: ['p'] }).number('p', 0, { max: 1 })).toThrow("--p expects a number ≤ 1, got '9'");
  });

  it('an output that cannot be written is an error before any work', async () => {
    const under = join(aFile, 'sub');
    const t0 = performance.now();
    await expect(trainCommand(['--out', under])).rejects.toThrow(`--out ${under}: cannot create this directory: `);
    await expect(trainVaeCommand(['--out', under])).rejects.toThrow(`--out ${under}: cannot create this directory: `);
    await expect(toy2dCommand(['--out', aFile])).rejects.toThrow(`--out ${aFile}: `);
    await expect(lenetCommand(['--out', join(under, 'lenet.safetensors')])).rejects.toThrow(`--out ${under}: cannot create this directory: `);
    await expect(mnistMlpCommand(['--out', tmp])).rejects.toThrow(`--out ${tmp}: is a directory; give a file name`);
    // sample and eval check their outputs before loading the checkpoint (any existing file passes the first check)
    await expect(sampleCommand(['--checkpoint', aFile, '--out', join(under, 'x.png')])).rejects.toThrow(`--out ${under}: cannot create this directory: `);
    await expect(evalCommand(['--checkpoint', aFile, '--json', join(under, 'x.json')])).rejects.toThrow(`--json ${under}: cannot create this directory: `);
    await expect(sampleVaeCommand(['--checkpoint', aFile, '--out', under])).rejects.toThrow(`--out ${under}: cannot create this directory: `);
    await expect(evalVaeCommand(['--checkpoint', aFile, '--json', tmp])).rejects.toThrow(`--json ${tmp}: is a directory; give a file name`);
    expect(performance.now() - t0).toBeLessThan(20_000); // no training, sampling or data loading ran first
  });

  it('a checkpoint that is truncated, a directory, or has bad metadata is named with the problem', () => {
    const bytes = (header: string, data: number[]) => {
      const h = Buffer.from(header);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, h, Buffer.from(data)]);
    };
    const good = bytes(JSON.stringify({ __metadata__: { kiln: JSON.stringify({ format: 'kiln-vae-checkpoint/1' }) }, w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), new Array(8).fill(0));
    const f = join(tmp, 'vae.safetensors');
    writeFileSync(f, good);
    expect(checkpointFormat(f)).toBe('kiln-vae-checkpoint/1');
    writeFileSync(f, good.subarray(0, 92));
    expect(() => isVAECheckpoint(f)).toThrow(`load ${f}: header length ${good.length - 16} runs past the end of the file (92 bytes)`);
    writeFileSync(f, good.subarray(0, good.length - 3));
    expect(() => isVAECheckpoint(f)).toThrow(`load ${f}: tensor 'w' ends at byte 8 of the data but only 5 bytes follow the header (truncated file?)`);
    expect(() => isVAECheckpoint(tmp)).toThrow(`load ${tmp}: is a directory, not a safetensors file (EISDIR)`);
    writeFileSync(f, bytes(JSON.stringify({ __metadata__: { kiln: '{"format": ' } }), []));
    expect(() => isVAECheckpoint(f)).toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: its 'kiln' metadata is not valid JSON`));
    writeFileSync(f, bytes('{}', []));
    expect(isVAECheckpoint(f)).toBe(false);
    expect(isVAECheckpoint(join(tmp, 'missing.safetensors'))).toBe(false);
  });

  it('kiln mnist-mlp at a diverging learning rate stops at the first non-finite loss and saves nothing', async () => {
    const out = join(tmp, 'mlp.safetensors');
    const e = await mnistMlpCommand(['--lr', '1e6', '--epochs', '1', '--hidden', '16', '--batch', '64', '--out', out]).then(() => null, (err: Error) => err);
    expect(e?.message).toMatch(new RegExp(`^ClassifierTrainer: non-finite loss (NaN|-?Infinity) at step \\d+ \\(last finite loss [-\\d.e+]+ at step \\d+\\); training stopped; nothing was saved to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; a lower --lr may help$`));
    expect(existsSync(out)).toBe(false);
  }, 300_000);

  it('kiln eval on a truncated checkpoint exits 1 naming the file and the problem', () => {
    const f = join(tmp, 'cut.safetensors');
    const h = Buffer.from(JSON.stringify({ __metadata__: { kiln: JSON.stringify({ format: 'kiln-diffusion-checkpoint/1' }) }, w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(f, Buffer.concat([len, h]).subarray(0, 92));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'eval', '--checkpoint', f], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`kiln eval: load ${f}: header length ${h.length} runs past the end of the file (92 bytes)\n`);
  });
});
