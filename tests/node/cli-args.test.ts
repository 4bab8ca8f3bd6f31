/** The one argument parser of every kiln command and script: unknown options are errors that list the valid ones. */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Args } from '../../src/cli/args.ts';
import { lenetCommand, mnistMlpCommand } from '../../src/cli/classifier.ts';
import { evalCommand, sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';
import { toy2dCommand } from '../../src/cli/toy2d.ts';
import { checkpointFormat, evalVaeCommand, isVAECheckpoint, sampleVaeCommand, trainVaeCommand } from '../../src/cli/vae.ts';

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
