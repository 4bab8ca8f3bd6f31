/** Command-line option parsing with errors that name the option and what it expects. */

/** Parsed `--name value` options of one command, checked against the names it accepts. */
export class Args {
  private readonly values = new Map<string, string>();
  private readonly flags = new Set<string>();
  constructor(readonly command: string, argv: string[], accepts: { options: string[]; flags?: string[] }) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (options start with --; see kiln ${command} --help)`);
      const name = a.slice(2);
      if (accepts.flags?.includes(name)) {
        this.flags.add(name);
        continue;
      }
      if (!accepts.options.includes(name)) throw new Error(`unknown option --${name} (see kiln ${command} --help)`);
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`--${name} expects a value`);
      this.values.set(name, v);
    }
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
  /** A number ≥ min (integer when asked). */
  number(name: string, fallback: number, opts: { min?: number; integer?: boolean } = {}): number {
    const raw = this.values.get(name);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    const min = opts.min ?? -Infinity;
    if (!Number.isFinite(v) || v < min || (opts.integer && !Number.isInteger(v))) {
      throw new Error(`--${name} expects ${opts.integer ? 'an integer' : 'a number'}${min > -Infinity ? ` ≥ ${min}` : ''}, got '${raw}'`);
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
