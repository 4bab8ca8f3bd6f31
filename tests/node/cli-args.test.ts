/** The one argument parser of every kiln command and script: unknown options are errors that list the valid ones. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Args } from '../../src/cli/args.ts';
import { lenetCommand, mnistMlpCommand } from '../../src/cli/classifier.ts';
import { evalCommand, sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';
import { toy2dCommand } from '../../src/cli/toy2d.ts';
import { evalVaeCommand, sampleVaeCommand, trainVaeCommand } from '../../src/cli/vae.ts';

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
  });

  it('every command rejects an unknown option before doing any work, listing its own options', async () => {
    const commands: [string, (argv: string[]) => Promise<void>, string][] = [
      ['train', trainCommand, '--preset'],
      ['train-vae', trainVaeCommand, '--kl-weight'],
      ['sample', sampleCommand, '--per-class'],
      ['eval', evalCommand, '--per-class'],
      ['sample', sampleVaeCommand, '--seed'],
      ['eval', evalVaeCommand, '--samples'],
      ['mnist-mlp', mnistMlpCommand, '--hidden'],
      ['lenet', lenetCommand, '--epochs'],
      ['toy2d', toy2dCommand, '--dataset'],
    ];
    for (const [name, run, option] of commands) {
      await expect(run(['--bogus', '1'])).rejects.toThrow(new RegExp(`^unknown option --bogus \\(see kiln ${name} --help\\); valid options: .*${option}`));
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
    expect(h.stdout).toMatch(/--preset/);
  });
});
