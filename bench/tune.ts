/**
 * Kernel autotuning: measures candidate values of the tuning knobs (src/wgsl/tuning.ts) on the current
 * adapter — elementwise kernels, then reductions, then matmuls, each group with the best knobs of the groups
 * before it — checks every candidate's results against float64, and prints the tuning-table row to add.
 *
 *   npm run bench -- --tune [--quick]
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench -- --tune
 *
 * stdout: line 1 is one JSON object, then a table per group and the row. Progress goes to stderr.
 * Each figure is the median of REPS timed runs (each a calibrated number of evaluations, then
 * `k.synchronize()`); a group's score is the geometric mean of its workloads' figures.
 */
import * as k from '../src/index.js';
import { tuningFor, type Tuning } from '../src/wgsl/tuning.js';

const QUICK = process.argv.includes('--quick');
const REPS = QUICK ? 3 : 5;
const TARGET_MS = QUICK ? 150 : 400;
const log = (msg: string): void => void process.stderr.write(`[tune] ${msg}\n`);

/** One workload: what it computes, its figure's unit and scale, and a float64 check of its result. */
interface Workload {
  name: string;
  unit: 'GB/s' | 'GFLOP/s';
  /** Bytes or FLOPs of one evaluation. */
  amount: number;
  run: () => k.Tensor;
  /** The largest error of `out` against float64, relative to the workload's scale. */
  error: (out: Float32Array) => number;
}

/** Median ms of one evaluation of `run` (after a warm-up that compiles its pipelines). */
async function timeMs(run: () => k.Tensor): Promise<number> {
  const once = async (n: number) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      const out = run();
      await k.realize(out);
      out.dispose();
    }
    await k.synchronize();
    return performance.now() - t;
  };
  await once(1);
  const n = Math.max(1, Math.min(50, Math.round(TARGET_MS / Math.max(0.05, await once(1)))));
  const times: number[] = [];
  for (let r = 0; r < REPS; r++) times.push((await once(n)) / n);
  return times.sort((a, b) => a - b)[times.length >> 1]!;
}

async function hostData(t: k.Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

/** The workloads of each group, on inputs made once (before any candidate). */
async function workloads(): Promise<Record<'elementwise' | 'reduce' | 'matmul', Workload[]>> {
  k.manualSeed(7);
  const keep = (t: k.Tensor) => k.keep(t);
  const N4 = 4 * 2 ** 20, N16 = 16 * 2 ** 20;
  const x = keep(k.randn([N4])), a = keep(k.randn([N4])), b = keep(k.randn([N4])), big = keep(k.randn([N16]));
  const rows = keep(k.randn([256, 65536])), cols = keep(k.randn([4096, 4096]));
  const mm = ([M, K, N]: number[]) => [keep(k.randn([M!, K!])), keep(k.randn([K!, N!]))] as const;
  const shapes = [[1024, 1024, 1024], [48, 144, 6272], [48, 6272, 144]];
  const operands = shapes.map(mm);
  await k.realize(x, a, b, big, rows, cols, ...operands.flat());
  const [X, A, B, BIG, ROWS, COLS] = await Promise.all([x, a, b, big, rows, cols].map(hostData));
  const ops = await Promise.all(operands.map(async ([p, q]) => [await hostData(p), await hostData(q)] as const));
  const rel = (got: Float32Array, want: (i: number) => number, scale: (i: number) => number, every = 1) => {
    let worst = 0;
    for (let i = 0; i < got.length; i += every) worst = Math.max(worst, Math.abs(got[i]! - want(i)) / scale(i));
    return worst;
  };
  const sums = (data: Float32Array, n: number, len: number, at: (o: number, r: number) => number) => {
    const s = new Float64Array(n), abs = new Float64Array(n);
    for (let o = 0; o < n; o++) for (let r = 0; r < len; r++) {
      const v = data[at(o, r)]!;
      s[o] += v;
      abs[o] += Math.abs(v);
    }
    return { s, abs };
  };
  const total = sums(BIG, 1, N16, (_o, r) => r), rowSums = sums(ROWS, 256, 65536, (o, r) => o * 65536 + r), colSums = sums(COLS, 4096, 4096, (o, r) => r * 4096 + o);
  return {
    elementwise: [{
      name: 'chain relu(x·a+b)·σ(x) 4M', unit: 'GB/s', amount: 16 * N4,
      run: () => k.scope(() => x.mul(a).add(b).relu().mul(x.sigmoid())),
      error: (o) => rel(o, (i) => Math.max(X[i]! * A[i]! + B[i]!, 0) / (1 + Math.exp(-X[i]!)), () => 1, 97),
    }],
    reduce: [
      { name: 'sum 16M', unit: 'GB/s', amount: 4 * N16, run: () => big.sum(), error: (o) => rel(o, () => total.s[0]!, () => total.abs[0]!) },
      { name: 'row sums [256, 65536]', unit: 'GB/s', amount: 4 * N16, run: () => rows.sum(1), error: (o) => rel(o, (i) => rowSums.s[i]!, (i) => rowSums.abs[i]!) },
      { name: 'column sums [4096, 4096]', unit: 'GB/s', amount: 4 * 4096 * 4096, run: () => cols.sum(0), error: (o) => rel(o, (i) => colSums.s[i]!, (i) => colSums.abs[i]!) },
    ],
    matmul: shapes.map(([M, K, N], s) => ({
      name: `matmul ${M}×${K}×${N}`, unit: 'GFLOP/s' as const, amount: 2 * M! * K! * N!,
      run: () => operands[s]![0].matmul(operands[s]![1]),
      error: (o: Float32Array) => {
        const [P, Q] = ops[s]!;
        // every 61st output against float64, relative to √K (the spread of a sum of K unit products)
        return rel(o, (i) => {
          const r = Math.floor(i / N!), c = i % N!;
          let acc = 0;
          for (let t = 0; t < K!; t++) acc += P[r * K! + t]! * Q[t * N! + c]!;
          return acc;
        }, () => Math.sqrt(K!), 61);
      },
    })),
  };
}

/** The candidates of each group (knobs changed on top of the best so far). */
const CANDIDATES: Record<'elementwise' | 'reduce' | 'matmul', Partial<Tuning>[]> = {
  elementwise: [1, 2, 4, 8].flatMap((e) => [1, 4].map((v) => ({ elementsPerInvocation: e, vectorWidth: v as 1 | 4 }))),
  reduce: [4096, 16384, 65536].flatMap((p) => (['chunk', 'stride'] as const).flatMap((m) => [false, true].map((t) => ({ reducePartials: p, reduceMapping: m, reduceTree: t })))),
  // register tiles with and without sharing A's loads within subgroups (the same kernel on a device without them)
  matmul: [
    ...([[4, 4], [4, 8], [8, 8], [16, 8]] as [number, number][]).flatMap((tile) => [false, true].map((share) => ({ matmulKernel: 'registers' as const, matmulTile: tile, matmulUnrollK: 1 as const, matmulShareRows: share }))),
    ...([2, 4] as const).flatMap((u) => [false, true].map((share) => ({ matmulKernel: 'registers' as const, matmulTile: [8, 8] as [number, number], matmulUnrollK: u, matmulShareRows: share }))),
    ...([[4, 4], [4, 8], [8, 8]] as [number, number][]).map((tile) => ({ matmulKernel: 'shared' as const, matmulTile: tile, matmulUnrollK: 1 as const })),
  ],
};

const info = await k.init();
const base = tuningFor(info);
log(`adapter: ${info.driver} — ${info.description || info.device || info.vendor}; the table picks '${base.name}'`);
const loads = await workloads();
let best: Partial<Tuning> = {};
const report: Record<string, { knobs: Partial<Tuning>; score: number; figures: number[]; error?: string }[]> = {};
for (const group of ['elementwise', 'reduce', 'matmul'] as const) {
  report[group] = [];
  for (const knobs of CANDIDATES[group]) {
    await k.init({ tuning: { ...best, ...knobs } });
    const figures: number[] = [];
    let error: string | undefined;
    for (const w of loads[group]) {
      const out = w.run();
      const e = w.error(await hostData(out));
      out.dispose();
      if (!(e < 1e-4)) error = `${w.name}: error ${e.toExponential(2)} against float64`;
      const ms = await timeMs(w.run);
      figures.push(w.amount / ms / 1e6);
    }
    const score = error ? 0 : Math.exp(figures.reduce((s, f) => s + Math.log(f), 0) / figures.length);
    report[group]!.push({ knobs, score, figures, ...(error ? { error } : {}) });
    log(`${group} ${JSON.stringify(knobs)}: ${figures.map((f) => f.toFixed(2)).join(' / ')}${error ? ` — WRONG (${error})` : ''}`);
  }
  const winner = report[group]!.reduce((a, b) => (b.score > a.score ? b : a));
  if (!(winner.score > 0)) throw new Error(`every ${group} candidate computed wrong results on this adapter (${report[group]![0]!.error}); no row to suggest`);
  best = { ...best, ...winner.knobs };
}
const config = { ...base.config, ...best };
const name = info.driver === 'hardware' ? [info.vendor, info.architecture].filter(Boolean).join('-') || 'gpu' : info.driver;
const quote = (v: string) => `'${v.replace(/['\\]/g, '\\$&')}'`;
const matches = info.driver === 'hardware'
  ? `(i) => i.driver === 'hardware' && i.vendor === ${quote(info.vendor)} && i.architecture === ${quote(info.architecture)}`
  : `(i) => i.driver === ${quote(info.driver)}`;
const configText = Object.entries(config).map(([key, v]) => `${key}: ${typeof v === 'string' ? quote(v) : JSON.stringify(v).replace(/,/g, ', ')}`).join(', ');
console.log(JSON.stringify({ bench: 'kiln-tune', adapter: { driver: info.driver, vendor: info.vendor, architecture: info.architecture, description: info.description }, table_row: base.name, quick: QUICK, results: report, best: config }));
const unitOf = (g: keyof typeof loads) => loads[g][0]!.unit;
const lines: string[] = [`\nkiln kernel tuning — adapter: ${info.driver} (${info.description || info.device || info.vendor}); the table's row now: '${base.name}'`];
for (const group of ['elementwise', 'reduce', 'matmul'] as const) {
  lines.push(`\n${group} (${loads[group].map((w) => w.name).join(' / ')}, ${unitOf(group)}; score = geometric mean)`);
  for (const r of report[group]!) {
    const mark = Object.entries(r.knobs).every(([key, v]) => JSON.stringify(config[key as keyof Tuning]) === JSON.stringify(v)) ? '  ← best' : '';
    const now = Object.entries(r.knobs).every(([key, v]) => JSON.stringify(base.config[key as keyof Tuning]) === JSON.stringify(v)) ? '  (the table now)' : '';
    lines.push(`  ${JSON.stringify(r.knobs).padEnd(72)} ${r.figures.map((f) => f.toFixed(2).padStart(7)).join(' ')}   score ${r.score.toFixed(2).padStart(7)}${r.error ? `  WRONG: ${r.error}` : ''}${mark}${now}`);
  }
}
lines.push(`\nRow to add to TUNING_TABLE in src/wgsl/tuning.ts, above the row it refines ('${base.name}'):`);
lines.push(`  {\n    name: ${quote(name)},\n    matches: ${matches},\n    config: { ${configText} },\n  },`);
console.log(lines.join('\n'));
k.destroy();
process.exit(0);
