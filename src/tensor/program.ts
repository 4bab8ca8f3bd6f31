/**
 * Programs: the planned, lowered and rendered kernels that realize a pending graph, cached by the graph's
 * structure. A training or sampling step builds a graph of the same structure every time — only buffers
 * and run-time scalars (constants, random keys and counters) differ — so from the second step on its
 * program is found by one walk over the graph instead of being planned, lowered and rendered again.
 * A program refers to nodes by their position in that walk; launching it binds the new graph's buffers
 * and recomputes each uniform word from the node it comes from, so results are those of planning anew.
 */
import type { LazyNode } from './node.js';
import { Scheduler, scheduleConfig } from './plan.js';
import { paramWord, storageBytes } from './lower.js';
import type { DType } from './dtype.js';
import type { RecordedLaunch } from './trace.js';
import { gpu } from '../wgsl/device.js';
import { render, type Kernel, type KernelConfig, type Pass } from '../wgsl/kernels.js';
import { acquireBuffer, type BindGroupCache, type Launch } from '../wgsl/runtime.js';

/** One kernel of a program, its nodes given by position in the graph walk. */
export interface ProgramKernel {
  kernel: Kernel;
  passes: Pass[];
  inputs: number[];
  outs: number[];
  /** Uniform words: node position, run-time scalar index, dtype. */
  params: { at: number; i: number; dt: DType }[];
  /** Its bind groups from earlier launches (reused while the same buffers are bound). */
  groups: BindGroupCache;
  /** The output buffers of its last two launches, asked for again. */
  recent: GPUBuffer[][];
}

/** The kernels realizing one graph structure. */
export interface Program {
  kernels: ProgramKernel[];
  /** The same number for every program of the same structure (built again after an eviction, or uncached). */
  id: number;
}

/** Program ids by structure key. */
const programIds = new Map<string, number>();
let nextProgramId = 0;

/** Largest number of programs kept per kernel configuration (oldest dropped first). */
const CACHE_SIZE = 256;
const caches = new WeakMap<KernelConfig, Map<string, Program>>();

/** Switches: the program cache can be turned off (every realization is then planned from scratch). */
export const programConfig = { cache: true };

/** Turns the program cache on or off (off: every realization is planned, lowered and rendered anew; for debugging). */
export function setProgramCache(on: boolean): void {
  programConfig.cache = on;
}

/** Counters of the program cache. */
export const programStats = { hits: 0, misses: 0 };

/** Numbers as JSON, with the non-finite values JSON would print as null told apart. */
const argText = (arg: unknown) => JSON.stringify(arg, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

/** The part of a node's own description that shapes its kernels (not its run-time scalars). */
function ownKey(n: LazyNode): string {
  const def = n.def;
  const arg = 'params' in def && def.params ? def.structure?.(n) ?? '' : n.arg === undefined ? '' : argText(n.arg);
  return `${n.op}:${n.dtype}:${n.shape.join(',')}:${arg}`;
}

/**
 * The nodes of the pending graph of `targets` in a canonical order (sources before consumers, in source
 * order; stored nodes are inputs) and a key equal for graphs of the same structure.
 */
function walk(targets: LazyNode[]): { nodes: LazyNode[]; key: string } {
  const index = new Map<LazyNode, number>();
  const nodes: LazyNode[] = [];
  const parts: string[] = [];
  for (const t of targets) {
    // iterative post-order: graphs of a training step are deep
    const stack: [LazyNode, number][] = [[t, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [n, i] = top;
      if (index.has(n)) { stack.pop(); continue; }
      if (!n.realized && i < n.src.length) {
        top[1]++;
        const s = n.src[i]!;
        if (!index.has(s)) stack.push([s, 0]);
        continue;
      }
      stack.pop();
      index.set(n, nodes.length);
      nodes.push(n);
      parts.push(n.realized ? `B:${n.dtype}:${n.shape.join(',')}` : `${ownKey(n)}(${n.src.map((s) => index.get(s)).join(',')})`);
    }
  }
  const key = `${parts.join(';')}|${targets.map((t) => index.get(t)).join(',')}|${scheduleConfig.fusion}:${scheduleConfig.maxInputs}`;
  return { nodes, key };
}

/** Plans, lowers and renders the program of a graph whose nodes are `nodes` (in walk order). */
function build(targets: LazyNode[], nodes: LazyNode[], cfg: KernelConfig, key: string): Program {
  const at = new Map(nodes.map((n, i) => [n, i]));
  const pos = (n: LazyNode) => {
    const i = at.get(n);
    if (i === undefined) throw new Error(`kiln internal error: a kernel touches a '${n.op}' node outside the graph it realizes`);
    return i;
  };
  let id = programIds.get(key);
  if (id === undefined) {
    if (programIds.size >= 4096) programIds.clear(); // a structure seen again later is then compared as new once
    programIds.set(key, (id = ++nextProgramId));
  }
  return {
    id,
    kernels: new Scheduler(targets).planned.map((p) => ({
      kernel: p.kernel,
      passes: render(p.kernel, cfg),
      inputs: p.inputs.map(pos),
      outs: p.outs.map(pos),
      params: p.sources.map((s) => ({ at: pos(s.node), i: s.i, dt: s.dt })),
      groups: { passes: [], scratch: [] },
      recent: p.outs.map(() => []),
    })),
  };
}

/** The program realizing `targets` (unrealized GPU nodes) and the nodes it refers to. */
export function programFor(targets: LazyNode[]): { program: Program; nodes: LazyNode[] } {
  const cfg = gpu().kernels;
  const { nodes, key } = walk(targets);
  let cache = caches.get(cfg);
  if (!cache) caches.set(cfg, (cache = new Map()));
  let program = programConfig.cache ? cache.get(key) : undefined;
  if (program) {
    programStats.hits++;
    return { program, nodes };
  }
  programStats.misses++;
  program = build(targets, nodes, cfg, key);
  if (programConfig.cache) {
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(key, program);
  }
  return { program, nodes };
}

/** Launches of a program over a graph's nodes: output buffers acquired, uniform words computed, nodes stored. */
export function launchesOf(program: Program, nodes: LazyNode[]): Launch[] {
  const launches: Launch[] = [];
  for (const k of program.kernels) {
    const outs = k.outs.map((o, j) => {
      const n = nodes[o]!;
      const { buffer, bytes } = acquireBuffer(storageBytes(n), k.recent[j]);
      k.recent[j] = [buffer, ...k.recent[j]!.slice(0, 1)];
      n.buffer = buffer;
      n.bufferBytes = bytes;
      return buffer;
    });
    const params = new Uint32Array(k.params.length);
    k.params.forEach((p, j) => (params[j] = paramWord(nodes[p.at]!, p.i, p.dt)));
    launches.push({ kernel: k.kernel, passes: k.passes, inputs: k.inputs.map((i) => nodes[i]!.buffer!), params, outs, groups: k.groups });
  }
  // sources are dropped only after every launch captured its input buffers
  for (const k of program.kernels) for (const o of k.outs) nodes[o]!.becomeBuffer({});
  return launches;
}

/** What a recording (./trace.ts) keeps of launched programs: each kernel with the nodes it bound. */
export function recordedLaunches(program: Program, nodes: LazyNode[], launches: Launch[]): RecordedLaunch[] {
  return program.kernels.map((k, i) => ({
    kernel: k,
    key: `${program.id}.${i}`,
    inputs: k.inputs.map((j) => nodes[j]!),
    outs: k.outs.map((j) => nodes[j]!),
    params: launches[i]!.params,
    paramSources: k.params.map((p) => ({ node: nodes[p.at]!, i: p.i, dt: p.dt })),
  }));
}
