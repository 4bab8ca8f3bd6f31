/** A one-line terminal progress bar: step, metrics, steps/s and ETA (plain lines when not a TTY). */
export class Progress {
  private readonly start = performance.now();
  private last = 0;
  constructor(readonly total: number, readonly label = '', readonly out: NodeJS.WriteStream = process.stderr) {}

  /** Reports step `step` (1-based) with named metrics (`undefined` = not known yet, shown as …); redraws at most 10× per second. */
  update(step: number, metrics: Record<string, number | string | undefined> = {}): void {
    const now = performance.now();
    const done = step >= this.total;
    if (!done && now - this.last < 100) return;
    this.last = now;
    const sec = (now - this.start) / 1000;
    const rate = step / Math.max(sec, 1e-9);
    const eta = (this.total - step) / Math.max(rate, 1e-9);
    const width = 24;
    const filled = Math.round((width * step) / this.total);
    const m = Object.entries(metrics).map(([k, v]) => `${k} ${v === undefined ? '…' : typeof v === 'number' ? fmtNum(v) : v}`).join('  ');
    const line = `${this.label}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${this.total}  ${m}  ${rate.toFixed(2)} it/s  ETA ${fmtTime(eta)}`;
    if (this.out.isTTY) this.out.write(`\r${line}\x1b[K${done ? '\n' : ''}`);
    else if (done || step % Math.max(1, Math.floor(this.total / 20)) === 0) this.out.write(`${line}\n`);
  }
}

function fmtNum(v: number): string {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4);
}

/** Seconds as h:mm:ss or m:ss. */
export function fmtTime(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}
