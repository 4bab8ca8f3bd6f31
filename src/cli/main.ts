#!/usr/bin/env node
/**
 * The kiln command line: `kiln <command> [options]` runs one of the commands of `./commands.ts`;
 * `kiln --help` lists them, `kiln <command> --help` (or -h) lists a command's options with their
 * defaults, and `kiln --version` prints the package version.
 */
import * as k from '../index.js';
import { COMMANDS, mainHelp } from './commands.js';

/** The package version (package.json two folders up, from src/cli and from dist/cli alike). */
async function version(): Promise<string> {
  const { readFileSync } = await import(['node', 'fs'].join(':'));
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  const [cmd = 'help', ...given] = process.argv.slice(2);
  // --no-compile (every command): training and sampling steps run eagerly, for debugging (same results)
  const args = given.filter((a) => a !== '--no-compile');
  if (args.length < given.length) k.setCompile(false);
  try {
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') return void console.log(`kiln ${await version()}`);
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      const about = COMMANDS.find((c) => c.name === args[0]);
      return void console.log(about ? await about.help(args.slice(1)) : mainHelp());
    }
    const command = COMMANDS.find((c) => c.name === cmd);
    if (!command) {
      console.error(`kiln: unknown command '${cmd}'\n\n${mainHelp()}`);
      process.exitCode = 2;
      return;
    }
    await command.run(args);
  } catch (e) {
    console.error(`kiln ${cmd}: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    k.destroy();
  }
}

await main();
process.exit(process.exitCode ?? 0);
