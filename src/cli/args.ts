/**
 * Command-line option parsing for every kiln command and script: `--name value` options and `--name`
 * flags, checked against the command's option table (the same table its help text is made from), with
 * errors that name the option and what it expects (an unknown option lists the valid ones).
 */

/** The options and flags a command accepts, by name. */
export interface Accepts {
  options: string[];
  flags?: string[];
}

/**
 * One line of a command's option table, which both the parser and the help text read: an option takes a
 * value (`value` or `choices`), a flag takes none.
 */
export interface OptionSpec {
  /** The name without the leading `--`. */
  name: string;
  /** How the help shows the value (`N`, `X`, `FILE`); the choices joined by `|` when absent. */
  value?: string;
  /** The only values the option takes (checked by `Args.string`). */
  choices?: readonly string[];
  /** What it does, in one line. */
  help: string;
}

/** True when the option table entry is a flag (takes no value). */
export function isFlag(o: OptionSpec): boolean {
  return o.value === undefined && o.choices === undefined;
}

/** The names an option table accepts, as options (with a value) and flags. */
export function acceptsOf(specs: readonly OptionSpec[]): Accepts {
  return { options: specs.filter((o) => !isFlag(o)).map((o) => o.name), flags: specs.filter(isFlag).map((o) => o.name) };
}

/** Parsed `--name value` options of one command, checked against the names it accepts. */
export class Args {
  private readonly values = new Map<string, string>();
  private readonly flags = new Set<string>();
  private readonly specs: readonly OptionSpec[];
  /**
   * `command` is how errors name the command, e.g. `kiln train`; `table` is its option table (or, for
   * scripts without help text, the names it accepts).
   */
  constructor(readonly command: string, argv: string[], table: Accepts | readonly OptionSpec[]) {
    this.specs = isSpecs(table) ? table : [];
    const accepts = isSpecs(table) ? acceptsOf(table) : table;
    const valid = () => [...accepts.options, ...(accepts.flags ?? [])].map((n) => `--${n}`).join(', ');
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (options start with --; see ${command} --help)`);
      const name = a.slice(2);
      if (accepts.flags?.includes(name)) {
        this.flags.add(name);
        continue;
      }
      if (!accepts.options.includes(name)) throw new Error(`unknown option --${name} (see ${command} --help); ${valid() ? `valid options: ${valid()}` : `${command} takes no options`}`);
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`--${name} expects a value`);
      this.values.set(name, v);
    }
  }
  /** The value of option `--name` in raw arguments, without checking the rest (to choose between commands before parsing). */
  static peek(argv: string[], name: string): string | undefined {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  }
  /** True when the flag was given. */
  flag(name: string): boolean {
    return this.flags.has(name);
  }
  /** A string option (one of `choices`, or of the choices in the option table, when there are any). */
  string<T extends string = string>(name: string, fallback: T, choices?: readonly T[]): T {
    choices ??= this.specs.find((o) => o.name === name)?.choices as readonly T[] | undefined;
    const v = (this.values.get(name) ?? fallback) as T;
    if (choices && !choices.includes(v)) throw new Error(`--${name} must be one of ${choices.join(', ')}, got '${v}'`);
    return v;
  }
  /** True when the option was given. */
  has(name: string): boolean {
    return this.values.has(name);
  }
  /** A number ≥ min (or > `above`) and ≤ max (integer when asked). */
  number(name: string, fallback: number, opts: { min?: number; above?: number; max?: number; integer?: boolean } = {}): number {
    const raw = this.values.get(name);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    const min = opts.min ?? -Infinity;
    const above = opts.above ?? -Infinity;
    const max = opts.max ?? Infinity;
    if (!Number.isFinite(v) || v < min || !(v > above) || v > max || (opts.integer && !Number.isInteger(v))) {
      const lo = opts.above !== undefined ? { open: '(', v: above, text: ` > ${above}` } : min > -Infinity ? { open: '[', v: min, text: ` ≥ ${min}` } : null;
      const bound = lo && max < Infinity ? ` in ${lo.open}${lo.v}, ${max}]` : lo ? lo.text : max < Infinity ? ` ≤ ${max}` : '';
      throw new Error(`--${name} expects ${opts.integer ? 'an integer' : 'a number'}${bound}, got '${raw}'`);
    }
    return v;
  }
  /** A comma-separated list of integers in [lo, hi]. */
  ints(name: string, fallback: number[], lo: number, hi: number): number[] {
    const raw = this.values.get(name);
    if (raw === undefined) return fallback;
    const v = raw.split(',').map(Number);
    if (!v.length || v.some((x) => !Number.isInteger(x) || x < lo || x > hi)) throw new Error(`--${name} expects comma-separated integers in [${lo}, ${hi}], got '${raw}'`);
    return v;
  }
}

/** True when `table` is an option table rather than lists of names. */
function isSpecs(table: Accepts | readonly OptionSpec[]): table is readonly OptionSpec[] {
  return Array.isArray(table);
}
