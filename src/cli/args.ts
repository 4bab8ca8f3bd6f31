/**
 * Command-line option parsing for every kiln command and script: `--name value` options and `--name`
 * flags, checked against the names the command accepts, with errors that name the option and what it
 * expects (an unknown option lists the valid ones).
 */

/** The options and flags a command accepts. */
export interface Accepts {
  options: string[];
  flags?: string[];
}

/** Parsed `--name value` options of one command, checked against the names it accepts. */
export class Args {
  private readonly values = new Map<string, string>();
  private readonly flags = new Set<string>();
  /** `command` is how errors name the command, e.g. `kiln train`. */
  constructor(readonly command: string, argv: string[], accepts: Accepts) {
    const valid = () => [...accepts.options, ...(accepts.flags ?? [])].map((n) => `--${n}`).join(', ');
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (options start with --; see ${command} --help)`);
      const name = a.slice(2);
      if (accepts.flags?.includes(name)) {
        this.flags.add(name);
        continue;
      }
      if (!accepts.options.includes(name)) throw new Error(`unknown option --${name} (see ${command} --help); valid options: ${valid()}`);
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
  /** A string option (one of `choices` when given). */
  string<T extends string = string>(name: string, fallback: T, choices?: readonly T[]): T {
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
