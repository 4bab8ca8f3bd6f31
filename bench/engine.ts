/**
 * Engine benchmark for kiln: matmul, a fused elementwise chain, a full reduction, and upload/download latency.
 *
 *   npm run bench                 # full run on the default adapter (hardware, else lavapipe, else SwiftShader)
 *   npm run bench -- --quick      # short run
 *   npm run bench -- --scalar     # kernels without vec4 loads and stores, for comparison
 *   npm run bench -- --no-share   # register-tile matmuls without subgroup-shared loads of A, for comparison
 *   npm run bench -- --tune       # measure the kernel tuning knobs on this adapter (bench/tune.ts)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench   # force SwiftShader
 *
 * stdout: line 1 is one JSON object (machine-readable), then a human table. Progress goes to stderr.
 *
 * Method. `k.realize(out)` resolves once the work is *submitted*, not finished, so a timed run is
 *   t0 → N × (build, `await k.realize(out)`, `out.dispose()`) → `await k.synchronize()` (resolves when the
 *   GPU has finished every earlier submit) → t1
 * and the time per iteration is (t1 − t0 − sync) / N, where `sync` is the median cost of a synchronize on
 * an idle queue, measured at start (it matters only for tiny N·t).
 * The inputs are generated and synced first. Then one warm-up evaluation (+ sync) compiles the pipelines
 * and yields the per-evaluation counters, and a calibration of two back-to-back evaluations (one if the
 * warm-up exceeded 8 × TARGET_MS) picks N so that one run lasts about TARGET_MS. The figure reported is the median over up to REPS runs (fewer, but at least 3,
 * when the runs of one benchmark would exceed BUDGET_MS). The stats() counters over the timed runs are
 * checked for recompiles and pool misses; results are spot-checked against float64 on the host.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as k from '../src/index.js';
import { kernelConfig } from '../src/wgsl/runtime.js';
import type { Tensor } from '../src/index.js';

const QUICK = process.argv.includes('--quick');
/** `--scalar`: kernels read and write one element at a time (no vec4), for comparison with the default. */
const SCALAR = process.argv.includes('--scalar');
/** `--no-share`: register-tile matmuls load every row of A themselves (no subgroup sharing), for comparison. */
const NO_SHARE = process.argv.includes('--no-share');
const REPS = QUICK ? 3 : 7;
const TARGET_MS = QUICK ? 150 : 500;
/** Upper bound of the timed runs of one benchmark (at least 3 runs are made). */
const BUDGET_MS = QUICK ? 2500 : 15000;
const MATMUL_SIZES = [256, 512, 1024];
const CHAIN_N = 4 * 1024 * 1024;
const SUM_N = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Figures of other libraries measured on this machine by others (not re-measured here). */
const REFERENCE = {
  measured: '2026-11-21',
  lavapipe: {
    matmul1024_gflops: { tfjs: 4.9, jaxjs: 4.9 },
    chain_gbps: { tfjs: 0.47 },
    sum16M_gbps: { tfjs: 0.82 },
  },
  swiftshader: {
    matmul1024_gflops: { tfjs: 0.56, jaxjs: 2.0 },
    chain_gbps: { tfjs: 0.15 },
    sum16M_gbps: { tfjs: 0.23 },
  },
} as const;

/** The kernel targets per software adapter. */
const TARGETS: Record<string, { matmul1024_gflops: number; chain_gbps: number; sum16M_gbps: number }> = {
  lavapipe: { matmul1024_gflops: 16, chain_gbps: 4.5, sum16M_gbps: 8 },
  swiftshader: { matmul1024_gflops: 5, chain_gbps: 1.5, sum16M_gbps: 2.5 },
};

type HandFigures = { chain_gbps: number; sum16M_gbps: number; matmul1024_gflops: number; errors: Record<string, number> };

/**
 * The hand-written WGSL kernels of bench/hand-wgsl.mjs, timed now on their own device on the same adapter
 * (a child process; kiln's device is idle meanwhile), or null with an anomaly if they could not run.
 */
function handWgsl(): HandFigures | null {
  try {
    const script = fileURLToPath(new URL('./hand-wgsl.mjs', import.meta.url));
    const out = execFileSync(process.execPath, [script, ...(QUICK ? ['--quick'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 300_000 });
    const hand = JSON.parse(out.trim().split('\n').pop()!) as HandFigures;
    const e = hand.errors;
    if (!(e.chain_max_abs! < 1e-5 && e.sum_rel! < 1e-4 && e.matmul_max_abs! < 1e-3)) anomalies.push(`the hand-written WGSL kernels disagree with float64: ${JSON.stringify(e)}`);
    return hand;
  } catch (e) {
    anomalies.push(`the hand-written WGSL kernels did not run: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const now = (): number => performance.now();
/** Writes to stdout and waits until it is flushed (process.exit() may otherwise cut a piped stdout short). */
const writeStdout = (text: string): Promise<void> => new Promise((resolve) => void process.stdout.write(text, () => resolve()));

type Counters = ReturnType<typeof k.stats>;
function delta(a: Counters, b: Counters): Counters {
  const out = { ...b };
  for (const key of Object.keys(b) as (keyof Counters)[]) out[key] = b[key] - a[key];
  return out;
}

/** Waits until the GPU has finished everything submitted so far. */
async function sync(): Promise<void> {
  await k.synchronize();
}

let syncMs = 0;
const anomalies: string[] = [];

interface Timing {
  /** Median time per iteration, sync cost subtracted (ms). */
  ms: number;
  /** Per-rep times per iteration (ms), sync subtracted. */
  reps: number[];
  iters: number;
  runs: number;
  /** Median host time spent inside the build + realize calls, per iteration (ms). */
  enqueueMs: number;
  /** Median raw time of one rep including its sync (ms). */
  repMs: number;
  /** The warm-up evaluation including pipeline compilation (ms), and the calibration's estimate per iteration. */
  warmMs: number;
  calibMs: number;
  /** Counters of one evaluation. */
  perEval: Counters;
  /** Counters over all timed reps. */
  timed: Counters;
}

/**
 * Times `step` (which must build, realize and dispose one output): warm-up, calibration, then the timed runs.
 */
async function measure(name: string, step: () => Promise<void>): Promise<Timing> {
  // warm-up: compiles the pipelines; its counters describe one evaluation (kernels, dispatches, submits)
  const tw = now();
  const s0 = k.stats();
  await step();
  const perEval = delta(s0, k.stats());
  await sync();
  const warmMs = now() - tw - syncMs;
  // calibration (the warm-up time is no estimate: SwiftShader, e.g., compiles at the first dispatch):
  // two back-to-back evaluations, which also put in kiln's pool the second output buffer that back-to-back
  // evaluations need; only one when the warm-up was very long
  const pair = warmMs < 8 * TARGET_MS;
  const tc = now();
  await step();
  if (pair) await step();
  await sync();
  let est = (now() - tc - syncMs) / (pair ? 2 : 1);
  est = Math.max(0.01, est);
  const iters = Math.max(1, Math.min(2000, Math.round(TARGET_MS / est)));
  const runs = Math.max(3, Math.min(REPS, Math.floor(BUDGET_MS / (iters * est))));
  const reps: number[] = [];
  const enq: number[] = [];
  const raw: number[] = [];
  const t0s = k.stats();
  for (let r = 0; r < runs; r++) {
    let inside = 0;
    const t0 = now();
    for (let i = 0; i < iters; i++) {
      const a = now();
      await step();
      inside += now() - a;
    }
    await sync();
    const t = now() - t0;
    raw.push(t);
    reps.push(Math.max(0, t - syncMs) / iters);
    enq.push(inside / iters);
  }
  const timed = delta(t0s, k.stats());
  const ms = median(reps);
  const repMs = median(raw);
  const enqueueMs = median(enq);
  if (timed.pipelinesCompiled > 0) anomalies.push(`${name}: ${timed.pipelinesCompiled} pipeline(s) compiled during the timed runs (should be 0 after warm-up)`);
  if (timed.buffersAllocated > 0) anomalies.push(`${name}: ${timed.buffersAllocated} buffer(s) allocated during the timed runs (pool misses)`);
  if (syncMs > 0.1 * repMs) anomalies.push(`${name}: the closing readback (${syncMs.toFixed(2)} ms) is ${((100 * syncMs) / repMs).toFixed(0)}% of a timed run (subtracted)`);
  if (enqueueMs > 0.5 * ms && ms > 0) anomalies.push(`${name}: host-side build+realize takes ${enqueueMs.toFixed(3)} ms of ${ms.toFixed(3)} ms per iteration (CPU/submit-bound, not kernel-bound)`);
  const spread = Math.max(...reps) / Math.max(1e-9, Math.min(...reps));
  if (spread > 1.3) anomalies.push(`${name}: runs vary ${spread.toFixed(2)}× (max/min of ${runs} runs)`);
  log(`${name}: ${ms.toFixed(3)} ms/iter (${iters} iters × ${runs} runs, enqueue ${enqueueMs.toFixed(3)} ms/iter; warm-up ${warmMs.toFixed(1)} ms, calibration ${est.toFixed(1)} ms/iter)`);
  return { ms, reps, iters, runs, enqueueMs, repMs, perEval, timed, warmMs, calibMs: est };
}

function timingJson(t: Timing): Record<string, unknown> {
  return {
    ms_per_iter: r3(t.ms),
    runs_ms_per_iter: t.reps.map(r3),
    iters_per_run: t.iters,
    runs: t.runs,
    enqueue_ms_per_iter: r3(t.enqueueMs),
    warmup_ms: r3(t.warmMs),
    calibration_ms_per_iter: r3(t.calibMs),
    kernels: t.perEval.kernels,
    dispatches: t.perEval.dispatches,
    submits: t.perEval.submits,
    timed_pipelines_compiled: t.timed.pipelinesCompiled,
    timed_buffers_allocated: t.timed.buffersAllocated,
  };
}

/**
 * How fast the host CPU is right now (the software adapters run on it): a fixed single-threaded JS loop,
 * timed after a JIT warm-up in a fresh worker isolate (in the main isolate, kiln's and Dawn's code
 * invalidate V8 assumptions and the loop is deoptimized, which would look like a slower CPU). Median ms.
 */
const PROBE_SRC = `
const { parentPort } = require('node:worker_threads');
const data = new Float32Array(1 << 20).map((_, i) => (i % 17) * 0.25);
function dot() { let acc = 0; for (let i = 0; i < data.length; i++) acc += data[i] * data[i]; return acc; }
for (let i = 0; i < 8; i++) dot();
const ts = [];
for (let r = 0; r < 5; r++) { const t0 = performance.now(); let acc = 0; for (let k = 0; k < 16; k++) acc += dot(); ts.push(performance.now() - t0); }
ts.sort((a, b) => a - b);
parentPort.postMessage(ts[2]);
`;
function cpuProbe(): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(PROBE_SRC, { eval: true });
    w.once('message', (ms: number) => {
      void w.terminate();
      resolve(ms);
    });
    w.once('error', reject);
  });
}

/** The commit measured, and whether src/ differs from it (the engine under test). */
function gitState(): { commit: string | null; src_modified: boolean | null } {
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, src_modified: dirty };
  } catch {
    return { commit: null, src_modified: null };
  }
}

/** Busy CPU seconds of the whole machine so far (Linux /proc/stat, USER_HZ = 100), or null elsewhere. */
function machineBusySeconds(): number | null {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user! + nice! + system! + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
  } catch {
    return null;
  }
}
/** CPU seconds used by this process (all its threads, which includes the software adapter's). */
const ownCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function timeRepeated(n: number, fn: () => Promise<void>): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await fn();
    ts.push(now() - t0);
  }
  return median(ts);
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const tStart = now();
  const git = gitState();
  const busy0 = machineBusySeconds();
  const own0 = ownCpuSeconds();
  const cpuStart = await cpuProbe();
  await k.init();
  if (SCALAR || NO_SHARE) await k.init({ tuning: { ...(SCALAR ? { vectorWidth: 1 as const } : {}), ...(NO_SHARE ? { matmulShareRows: false } : {}) } });
  const info = k.deviceInfo();
  log(`adapter: ${info.driver} — ${info.description || info.device || info.vendor}${info.icd ? ` (ICD ${info.icd})` : ''}`);
  k.manualSeed(1234);

  for (let i = 0; i < 3; i++) await sync();
  syncMs = await timeRepeated(QUICK ? 9 : 21, sync);
  log(`idle tiny readback (sync): ${syncMs.toFixed(3)} ms`);

  // 1. matmul -------------------------------------------------------------------------------------
  const matmul: Record<string, unknown>[] = [];
  const gflops: Record<number, number> = {};
  for (const n of MATMUL_SIZES) {
    const a = k.randn([n, n]);
    const b = k.randn([n, n]);
    await k.realize(a, b);
    await sync(); // the inputs' generation is not part of the warm-up
    const t = await measure(`matmul n=${n}`, async () => {
      const out = a.matmul(b);
      await k.realize(out);
      out.dispose();
    });
    let check: number | undefined;
    if (n === 256) {
      // spot check 8 rows against float64 on the host
      const out = a.matmul(b);
      const [A, B, C] = await Promise.all([a.data(), b.data(), out.data()]);
      out.dispose();
      let err = 0;
      for (let i = 0; i < n; i += 32) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < n; q++) s += A[i * n + q]! * B[q * n + j]!;
          err = Math.max(err, Math.abs(s - C[i * n + j]!));
        }
      }
      check = err;
      if (!(err < 1e-2)) anomalies.push(`matmul n=256: max abs error ${err} against float64 (expected < 1e-2)`);
    }
    if (t.perEval.kernels !== 1) anomalies.push(`matmul n=${n}: ${t.perEval.kernels} kernels per evaluation (expected 1)`);
    gflops[n] = (2 * n ** 3) / (t.ms * 1e6);
    matmul.push({ n, gflops: r3(gflops[n]!), ...timingJson(t), ...(check !== undefined ? { max_abs_err_vs_f64: check } : {}) });
    a.dispose();
    b.dispose();
  }

  // 2. fused chain relu(x*a+b)*sigmoid(x) -----------------------------------------------------------
  const x = k.randn([CHAIN_N]);
  const ca = k.randn([CHAIN_N]);
  const cb = k.randn([CHAIN_N]);
  await k.realize(x, ca, cb);
  await sync();
  const chainExpr = (): Tensor => k.scope(() => x.mul(ca).add(cb).relu().mul(x.sigmoid()));
  const tc = await measure('chain 4M', async () => {
    const out = chainExpr();
    await k.realize(out);
    out.dispose();
  });
  const chainGBps = (16 * CHAIN_N) / (tc.ms * 1e6);
  let chainErr: number;
  {
    const out = chainExpr();
    const [X, A, B, O] = await Promise.all([x.data(), ca.data(), cb.data(), out.data()]);
    out.dispose();
    chainErr = 0;
    for (let i = 0; i < CHAIN_N; i += 97) {
      const ref = Math.max(X[i]! * A[i]! + B[i]!, 0) / (1 + Math.exp(-X[i]!));
      chainErr = Math.max(chainErr, Math.abs(ref - O[i]!));
    }
    if (!(chainErr < 1e-4)) anomalies.push(`chain: max abs error ${chainErr} against float64 (expected < 1e-4)`);
  }
  if (tc.perEval.kernels !== 1) anomalies.push(`chain: ${tc.perEval.kernels} kernels per evaluation (expected 1 fused kernel)`);
  x.dispose();
  ca.dispose();
  cb.dispose();

  // 3. sum over 16M floats --------------------------------------------------------------------------
  const big = k.randn([SUM_N]);
  await k.realize(big);
  await sync();
  const ts = await measure('sum 16M', async () => {
    const s = big.sum();
    await k.realize(s);
    s.dispose();
  });
  const sumGBps = (4 * SUM_N) / (ts.ms * 1e6);
  let sumRelErr: number;
  {
    const s = big.sum();
    const [X, S] = await Promise.all([big.data(), s.data()]);
    s.dispose();
    let ref = 0;
    let abs = 0;
    for (let i = 0; i < SUM_N; i++) {
      ref += X[i]!;
      abs += Math.abs(X[i]!);
    }
    sumRelErr = Math.abs(S[0]! - ref) / abs;
    if (!(sumRelErr < 1e-5)) anomalies.push(`sum: error ${sumRelErr} relative to Σ|x| (expected < 1e-5)`);
  }
  if (ts.perEval.kernels !== 1) anomalies.push(`sum: ${ts.perEval.kernels} kernels per evaluation (expected 1)`);
  big.dispose();

  // 4. upload / download latency --------------------------------------------------------------------
  const latency: Record<string, unknown> = {};
  const latReps = QUICK ? 7 : 21;
  for (const [label, n] of [['1', 1], ['1M', MiB]] as const) {
    const host = new Float32Array(n);
    for (let i = 0; i < n; i++) host[i] = Math.random();
    // warm
    for (let i = 0; i < 2; i++) {
      const t = k.tensor(host);
      await k.realize(t);
      await sync();
      t.dispose();
    }
    const api: number[] = [];
    const synced: number[] = [];
    for (let i = 0; i < latReps; i++) {
      const t0 = now();
      const t = k.tensor(host);
      await k.realize(t);
      const t1 = now();
      await sync();
      const t2 = now();
      api.push(t1 - t0);
      synced.push(t2 - t0);
      t.dispose();
    }
    const dl = k.tensor(host);
    await k.realize(dl);
    await dl.data();
    await dl.data();
    const down = await timeRepeated(latReps, async () => {
      await dl.data();
    });
    dl.dispose();
    const up = median(synced);
    latency[`upload_${label}`] = {
      floats: n,
      api_ms: r3(median(api)),
      completed_ms: r3(up),
      completed_minus_sync_ms: r3(Math.max(0, up - syncMs)),
    };
    latency[`download_${label}`] = { floats: n, ms: r3(down) };
  }

  // report ------------------------------------------------------------------------------------------
  const cpuEnd = await cpuProbe();
  const busy1 = machineBusySeconds();
  const wallS = (now() - tStart) / 1000;
  // after the CPU accounting: the child process would count as another process
  log('hand-written WGSL kernels (bench/hand-wgsl.mjs)');
  const hand = handWgsl();
  // share of the machine's CPU time used by other processes while this ran (they slow the software adapter)
  const otherShare = busy0 === null || busy1 === null ? null : Math.max(0, (busy1 - busy0 - (ownCpuSeconds() - own0)) / (wallS * os.cpus().length));
  if (otherShare !== null && otherShare > 0.1) anomalies.push(`other processes used ${(100 * otherShare).toFixed(0)}% of the machine's CPU time during the run (the software adapter competes with them)`);
  if (Math.max(cpuStart, cpuEnd) / Math.min(cpuStart, cpuEnd) > 1.25) anomalies.push(`host CPU speed drifted during the run: JS probe loop ${cpuStart.toFixed(1)} ms at start, ${cpuEnd.toFixed(1)} ms at end`);
  const driver = info.driver;
  const target = TARGETS[driver];
  const ref = driver === 'lavapipe' || driver === 'swiftshader' ? REFERENCE[driver] : null;
  const values = { matmul1024_gflops: gflops[1024]!, chain_gbps: chainGBps, sum16M_gbps: sumGBps };
  const targets = target
    ? Object.fromEntries((Object.keys(target) as (keyof typeof target)[]).map((key) => [key, { target: target[key], value: r3(values[key]), met: values[key] >= target[key] }]))
    : null;
  const result = {
    bench: 'kiln-engine',
    date: new Date().toISOString(),
    quick: QUICK,
    git,
    adapter: {
      driver: info.driver,
      description: info.description,
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      icd: info.icd ?? null,
      tuning: info.tuning,
      subgroup_size: info.subgroupSize,
      matmul_share_rows: kernelConfig().matmulShareRows,
    },
    host: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', cpu_probe_ms: { start: r3(cpuStart), end: r3(cpuEnd) }, other_processes_cpu_share: otherShare === null ? null : r3(otherShare) },
    method: {
      timing: 'N x (build, await k.realize(out), out.dispose()) then one 4-byte readback; per-iter = (total - sync_ms) / N; median over runs; warm-up excluded',
      max_runs: REPS,
      budget_ms_per_benchmark: BUDGET_MS,
      target_ms_per_run: TARGET_MS,
      sync_ms: r3(syncMs),
      vector_width: kernelConfig().vectorWidth,
    },
    results: {
      matmul,
      chain: {
        expr: 'relu(x*a+b)*sigmoid(x)',
        elements: CHAIN_N,
        bytes_per_element: 16,
        gbps: r3(chainGBps),
        ...timingJson(tc),
        max_abs_err_vs_f64: chainErr,
      },
      sum: {
        elements: SUM_N,
        bytes_per_element: 4,
        gbps: r3(sumGBps),
        ...timingJson(ts),
        rel_err_vs_f64: sumRelErr,
      },
      latency,
    },
    targets,
    hand_wgsl: hand && {
      ...hand,
      kiln_over_hand: { matmul1024: r3(gflops[1024]! / hand.matmul1024_gflops), chain: r3(chainGBps / hand.chain_gbps), sum16M: r3(sumGBps / hand.sum16M_gbps) },
    },
    reference: { label: `reference (measured ${REFERENCE.measured})`, lavapipe: REFERENCE.lavapipe, swiftshader: REFERENCE.swiftshader },
    anomalies,
    total_s: 0,
  };
  result.total_s = r3((now() - tStart) / 1000);
  await writeStdout(`${JSON.stringify(result)}\n`);

  // human table
  const lines: string[] = [];
  const adapterName = info.description || info.device || info.vendor || '(unnamed)';
  lines.push('');
  lines.push(`kiln engine benchmark${QUICK ? ' (--quick)' : ''} — adapter: ${driver} — ${adapterName}${info.icd ? ` [VK_ICD_FILENAMES=${info.icd}]` : ''}; kernels tuned by the '${info.tuning}' row`);
  lines.push(`kiln ${git.commit ?? '(no git)'}${git.src_modified ? ' + uncommitted changes in src/' : ''}; ${os.cpus().length} CPU(s), node ${process.version}; median of ${REPS === 3 ? 3 : `3..${REPS}`} runs of ~${TARGET_MS} ms each; idle 4-byte readback ${syncMs.toFixed(2)} ms (subtracted)${SCALAR ? '; --scalar: no vec4 loads or stores' : ''}`);
  lines.push(`host CPU probe (fixed JS loop, lower is faster): ${cpuStart.toFixed(1)} ms at start, ${cpuEnd.toFixed(1)} ms at end; other processes used ${otherShare === null ? 'n/a' : `${(100 * otherShare).toFixed(0)}%`} of the CPU time`);
  lines.push('');
  const refCols = ref
    ? `hand-WGSL: bench/hand-wgsl.mjs in this run; tfjs-webgpu / jax-js-webgpu: reference measured ${REFERENCE.measured} on ${driver}, not re-measured`
    : 'hand-WGSL: bench/hand-wgsl.mjs in this run; tfjs / jax-js: no reference for this adapter (lavapipe and SwiftShader only)';
  const rows: string[][] = [['benchmark', 'kiln', 'unit', 'ms/iter', 'N x runs', 'kernels', 'target', 'met', 'hand-WGSL', 'tfjs', 'jax-js']];
  const fmt = (v: number | undefined): string => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  for (const m of matmul) {
    const n = m.n as number;
    const is1024 = n === 1024;
    rows.push([
      `matmul f32 n=${n}`, fmt(gflops[n]), 'GFLOP/s', (m.ms_per_iter as number).toFixed(3), `${m.iters_per_run}x${m.runs}`, String(m.kernels),
      is1024 && target ? `>= ${target.matmul1024_gflops}` : '-', is1024 && target ? (gflops[n]! >= target.matmul1024_gflops ? 'yes' : 'NO') : '-',
      is1024 && hand ? fmt(hand.matmul1024_gflops) : '-', is1024 && ref ? fmt(ref.matmul1024_gflops.tfjs) : '-', is1024 && ref ? fmt(ref.matmul1024_gflops.jaxjs) : '-',
    ]);
  }
  rows.push([
    'chain relu(x*a+b)*sigmoid(x) 4M', fmt(chainGBps), 'GB/s', tc.ms.toFixed(3), `${tc.iters}x${tc.runs}`, String(tc.perEval.kernels),
    target ? `>= ${target.chain_gbps}` : '-', target ? (chainGBps >= target.chain_gbps ? 'yes' : 'NO') : '-',
    hand ? fmt(hand.chain_gbps) : '-', ref ? fmt(ref.chain_gbps.tfjs) : '-', '-',
  ]);
  rows.push([
    'sum 16M f32', fmt(sumGBps), 'GB/s', ts.ms.toFixed(3), `${ts.iters}x${ts.runs}`, String(ts.perEval.kernels),
    target ? `>= ${target.sum16M_gbps}` : '-', target ? (sumGBps >= target.sum16M_gbps ? 'yes' : 'NO') : '-',
    hand ? fmt(hand.sum16M_gbps) : '-', ref ? fmt(ref.sum16M_gbps.tfjs) : '-', '-',
  ]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  lines.push(line(rows[0]!));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) lines.push(line(r));
  lines.push(`(${refCols})`);
  lines.push('(kernels = k.stats().kernels for one evaluation; the sum is one kernel of two dispatches when split)');
  lines.push('');
  const lat = latency as Record<string, { api_ms?: number; completed_ms?: number; completed_minus_sync_ms?: number; ms?: number }>;
  lines.push('latency (median)                         ms');
  lines.push(`upload 1 float   (k.tensor + realize)    ${lat.upload_1!.api_ms!.toFixed(3)}   to GPU completion: ${lat.upload_1!.completed_ms!.toFixed(3)} incl. readback, ${lat.upload_1!.completed_minus_sync_ms!.toFixed(3)} excl.`);
  lines.push(`upload 1M floats (k.tensor + realize)    ${lat.upload_1M!.api_ms!.toFixed(3)}   to GPU completion: ${lat.upload_1M!.completed_ms!.toFixed(3)} incl. readback, ${lat.upload_1M!.completed_minus_sync_ms!.toFixed(3)} excl.`);
  lines.push(`download 1 float   (await t.data())      ${lat.download_1!.ms!.toFixed(3)}`);
  lines.push(`download 1M floats (await t.data())      ${lat.download_1M!.ms!.toFixed(3)}   (${((4 * MiB) / (lat.download_1M!.ms! * 1e6)).toFixed(2)} GB/s)`);
  lines.push('');
  lines.push(anomalies.length ? `anomalies:\n${anomalies.map((a) => `  - ${a}`).join('\n')}` : 'anomalies: none detected');
  lines.push(`total ${result.total_s.toFixed(1)} s`);
  await writeStdout(`${lines.join('\n')}\n`);

}

try {
  // --tune: measure the tuning knobs instead (bench/tune.ts)
  if (process.argv.includes('--tune')) await import('./tune.js');
  await main();
  k.destroy();
  process.exit(0);
} catch (e) {
  process.stderr.write(`[bench] failed: ${(e as Error).stack ?? String(e)}\n`);
  try {
    k.destroy();
  } catch {
    // ignore
  }
  process.exit(1);
}
