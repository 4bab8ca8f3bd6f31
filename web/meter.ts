/** The page's progress bars: a bar with a label that shows done / total, the rate and the time left. */

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo page: missing element #${id}`);
  return e as T;
}

/** Seconds as '42 s' or '3 min 05 s'. */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return '…';
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.round(s - 60 * m)).padStart(2, '0')} s`;
}

/** A progress bar with its label: done / total, the rate per second and the time left. */
export class Meter {
  private t0 = 0;
  private first = 0;
  private firstAt = 0;
  constructor(private readonly bar: string, private readonly label: string, private readonly unit: string) {}

  /** Starts a job of `total` units. */
  start(total: number, text = ''): void {
    this.t0 = performance.now();
    this.firstAt = 0;
    const b = el<HTMLProgressElement>(this.bar);
    b.max = Math.max(1, total);
    b.value = 0;
    el(this.label).textContent = text;
  }

  /** `done` of `total` units finished; `extra` is appended to the label. */
  update(done: number, total: number, extra = ''): void {
    const now = performance.now();
    // the rate from the first update on: the first unit includes compiling the job's pipelines
    if (!this.firstAt) {
      this.firstAt = now;
      this.first = done;
    }
    const b = el<HTMLProgressElement>(this.bar);
    b.max = Math.max(1, total);
    b.value = done;
    const elapsed = (now - this.firstAt) / 1000;
    const rate = elapsed > 0.2 ? (done - this.first) / elapsed : NaN;
    const left = done >= total ? '' : ` · ${Number.isFinite(rate) && rate > 0 ? `ETA ${duration((total - done) / rate)}` : 'ETA …'}`;
    el(this.label).textContent = `${done} / ${total} ${this.unit}${Number.isFinite(rate) ? ` · ${rate < 10 ? rate.toFixed(1) : rate.toFixed(0)} ${this.unit}/s` : ''}${left}${extra}`;
  }

  /** Replaces the label with a closing line. */
  finish(text: string): void {
    el(this.label).textContent = text;
  }

  /** Seconds since `start`. */
  seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }
}
