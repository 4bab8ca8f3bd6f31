/**
 * Help texts of the kiln commands, made from the option tables the parser checks arguments against (so a
 * help text lists exactly the options its command accepts): one line per option with what it does and its
 * default, the defaults being the values the command itself falls back to.
 */
import { Args, isFlag, type OptionSpec } from './args.js';

/** A default as the help prints it: numbers as the parser reads them, lists comma-separated. */
export type DefaultValue = string | number | readonly number[];

/** The defaults of a command's options by option name (an option without a default is absent). */
export type Defaults = Readonly<Record<string, DefaultValue | undefined>>;

/**
 * Defaults that depend on something the help cannot settle (the preset of an unknown adapter, the
 * objective of a checkpoint): one set for each case, e.g. `{ when: 'with --preset', name: 'cpu', values }`.
 */
export interface DefaultsCase {
  when: string;
  name: string;
  values: Defaults;
}

/** A kiln command as `kiln --help` lists it and `kiln <name>` runs it. */
export interface Command {
  name: string;
  /** What it does, in one line. */
  summary: string;
  /** Its help text; options given beside --help choose the defaults shown (e.g. --preset). */
  help(argv: string[]): Promise<string>;
  /** Runs it with these arguments (prints the help when they ask for it). */
  run(argv: string[]): Promise<void>;
}

/** The options every command takes (the command line handles them before the command runs). */
export const GENERAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'help', help: 'print this help and exit (-h is the same)' },
  { name: 'no-compile', help: 'run training and sampling steps eagerly instead of replaying compiled ones: slower, same results' },
];

/**
 * A command's entry for the command line: `run` prints `help(argv)` when the arguments ask for help and
 * otherwise runs `main` (so no command checks for --help itself).
 */
export function command(o: { name: string; summary: string; help: (argv: string[]) => Promise<string>; main: (argv: string[]) => Promise<void> }): Command {
  return {
    name: o.name,
    summary: o.summary,
    help: o.help,
    run: async (argv) => (wantsHelp(argv) ? void console.log(await o.help(argv)) : o.main(argv)),
  };
}

/** A command whose help is its one option table with its defaults (see `command`). */
export function optionsCommand(o: { name: string; summary: string; options: readonly OptionSpec[]; defaults: () => Defaults; main: (argv: string[]) => Promise<void> }): Command {
  const usage = `Usage: kiln ${o.name}${o.options.length ? ' [options]' : ''}`;
  const sections = () => (o.options.length ? [{ heading: 'Options:', options: o.options, defaults: o.defaults() }] : []);
  return command({ ...o, help: async (argv) => helpFor(`kiln ${o.name}`, argv, o.options, () => helpText({ title: `kiln ${o.name} — ${o.summary}`, usage, sections: sections() })) });
}

/** True when the arguments ask for help (`--help` or `-h`). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * The arguments given beside --help, parsed by the command's option table so that they can choose the
 * defaults shown; `build` makes the text from them. Arguments that do not parse are left out (help is
 * printed whatever else was typed).
 */
export function helpFor(command: string, argv: string[], table: readonly OptionSpec[], build: (a: Args) => string): string {
  try {
    return build(new Args(command, argv.filter((x) => x !== '--help' && x !== '-h'), table));
  } catch {
    return build(new Args(command, [], table));
  }
}

/** How the help prints a default: small numbers in exponent notation (2e-4), lists comma-separated. */
export function formatDefault(v: DefaultValue): string {
  if (typeof v === 'number') return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v);
  if (typeof v === 'string') return v;
  return v.join(',');
}

/** `(default: …)` of one option ('' when it has none); cases that agree are printed once, the others side by side. */
function defaultText(name: string, defaults: Defaults | readonly DefaultsCase[]): string {
  if (!Array.isArray(defaults)) {
    const v = (defaults as Defaults)[name];
    return v === undefined ? '' : ` (default: ${formatDefault(v)})`;
  }
  const cases = defaults as readonly DefaultsCase[];
  const groups = new Map<string, DefaultsCase[]>();
  for (const c of cases) {
    const v = c.values[name];
    if (v === undefined) continue;
    const text = formatDefault(v);
    groups.set(text, [...(groups.get(text) ?? []), c]);
  }
  if (!groups.size) return '';
  if (groups.size === 1 && [...groups.values()][0]!.length === cases.length) return ` (default: ${[...groups.keys()][0]})`;
  return ` (default: ${[...groups].map(([text, cs]) => `${text} ${cs[0]!.when} ${cs.map((c) => c.name).join(' and ')}`).join(', ')})`;
}

/** How the help shows an option with its value: `--steps N`, `--model unet|dit`, `--resume`. */
export function optionHead(o: OptionSpec): string {
  return isFlag(o) ? `--${o.name}` : `--${o.name} ${o.value ?? o.choices!.join('|')}`;
}

/** A section of a help text: a heading and its options with their defaults. */
export interface HelpSection {
  heading: string;
  options: readonly OptionSpec[];
  defaults?: Defaults | readonly DefaultsCase[];
}

/**
 * A command's help: `kiln <name> — <summary>`, the usage line, notes, one section per option table
 * (each option on its own line: `--name VALUE`, what it does, its default), the general options, then the
 * closing lines. A default given for a name the table does not have is an error (stale defaults).
 */
export function helpText(o: { title: string; usage: string; notes?: string[]; sections: HelpSection[]; after?: string[] }): string {
  const sections = [...o.sections, { heading: 'General options:', options: GENERAL_OPTIONS }];
  const width = Math.min(26, Math.max(...sections.flatMap((s) => s.options.map((x) => optionHead(x).length))) + 2);
  const lines = [o.title, '', o.usage];
  if (o.notes?.length) lines.push('', ...o.notes);
  for (const s of sections) {
    const names = new Set(s.options.map((x) => x.name));
    const cases: readonly Defaults[] = !s.defaults ? [] : Array.isArray(s.defaults) ? (s.defaults as readonly DefaultsCase[]).map((c) => c.values) : [s.defaults as Defaults];
    for (const d of cases) for (const [name, v] of Object.entries(d)) if (v !== undefined && !names.has(name)) throw new Error(`internal: a default for --${name}, which ${o.title.split(' — ')[0]} does not take`);
    lines.push('', s.heading);
    for (const x of s.options) {
      const head = optionHead(x);
      lines.push(`  ${head.length + 2 <= width ? head.padEnd(width) : `${head}  `}${x.help}${s.defaults ? defaultText(x.name, s.defaults) : ''}`);
    }
  }
  if (o.after?.length) lines.push('', ...o.after);
  return lines.join('\n');
}
