/**
 * `compile(fn)`: a training or sampling step traced once and replayed (PyTorch's `torch.compile` /
 * CUDA graphs, JAX's `jit`).
 *
 * The first calls with a given argument signature run `fn` eagerly and record what it did (./trace.ts):
 * the kernels it launched with their uniform words, the tensors that existed before the call which it read
 * (parameters, optimizer state, arguments) or gave new values (`assign`), and the host values it declared
 * per call (`perCall`). When two consecutive calls record the same thing — the first call usually differs,
 * creating optimizer state — later calls replay the recording: the per-call host values are recomputed,
 * their uniform words patched and their buffers rewritten, the current buffers of the state tensors and
 * arguments bound, and the recorded kernels submitted at once, with no graph building, scheduling,
 * rendering or hashing, and bind groups reused. Results are bit-identical to eager calls.
 *
 * A compiled function's JavaScript runs only while it is recorded. Numbers it computes on the host are
 * constants of the trace unless made per call; if two recordings keep differing, the call throws an error
 * naming what changed instead of replaying a stale value. Reading a tensor's values inside it is an error.
 * Tensors inside arrays and plain objects among the arguments are arguments too (JAX's pytrees).
 */
import type { DType } from './dtype.js';
import { LazyNode, nextNodeId } from './node.js';
import { peekTensorId, Tensor } from './tensor.js';
import { paramWord, storageBytes } from './lower.js';
import type { ProgramKernel } from './program.js';
import { realizeNodes, submitPrepared, submitted } from './realize.js';
import { hasLiveGraph } from './tape.js';
import { currentRecording, inHostStep, recordInto, Recording, type PerCallEntry } from './trace.js';
import { leavesOf, signatureOf } from './compile-signature.js';
import { acquireBuffer, releaseBuffer, sizeClass, type Launch } from '../wgsl/runtime.js';
import { planArena } from './arena.js';
import { gpu } from '../wgsl/device.js';

/** Options of `compile`. */
export interface CompileOptions {
  /** Name in messages (default: the function's name). */
  name?: string;
  /** false: every call runs eagerly (for debugging; the same results). Default true. */
  enabled?: boolean;
}

/** Counters of a compiled function. */
export interface CompileStats {
  /** Calls run eagerly and recorded. */
  recorded: number;
  /** Calls replayed from a trace. */
  replayed: number;
  /** Traces made (one per argument signature, again after `reset` or a guard failure). */
  traces: number;
}

/**
 * A compiled function: called like `fn`, with the same result type (a replay of a synchronous function
 * returns its tensors at once, their work queued on the GPU).
 */
export interface CompiledFunction<A extends unknown[], R> {
  (...args: A): R;
  readonly stats: CompileStats;
  /** Drops the traces and their buffers (the next calls record again). */
  reset(): void;
}

/** The global switch: off, every compiled function runs eagerly (`--no-compile`, for debugging). */
const compileConfig = { enabled: true };

/** Turns compilation on or off for every compiled function (off: each call runs eagerly, with the same results). */
export function setCompile(on: boolean): void {
  compileConfig.enabled = on;
}

/** Replays by every compiled function (reported by `k.stats()`). */
export const compileCounters = { replays: 0 };

/** Recordings after which, if each differed from the one before, the next call throws instead of recording. */
const MAX_RECORDINGS = 3;
/** Argument signatures kept per function (least recently used dropped). */
const MAX_SIGNATURES = 8;

/** Where a value the trace binds comes from. */
type Slot =
  | { kind: 'produced'; bytes: number; shape: number[]; dtype: DType; keep: boolean; buffer: GPUBuffer | null; recent: GPUBuffer[]; shared?: number }
  | { kind: 'arg'; index: number }
  | { kind: 'tensor'; tensors: Tensor[]; shape: number[]; dtype: DType }
  | { kind: 'upload'; entry: number; data: (v: unknown) => ArrayBufferView; bytes: number; buffer: GPUBuffer | null }
  | { kind: 'const'; node: LazyNode };

/** A uniform word recomputed from a per-call value. */
interface Patch {
  word: number;
  entry: number;
  arg: (v: unknown) => unknown;
  node: Pick<LazyNode, 'def' | 'dtype' | 'shape' | 'op'>;
  i: number;
  dt: DType;
}

interface TraceLaunch {
  kernel: ProgramKernel;
  /** The kernel's identity across programs built again for the same structure. */
  key: string;
  inputs: number[];
  outs: number[];
  params: Uint32Array;
  patches: Patch[];
  /** The shared buffer (see shareBuffers) of its scratch, for a two-pass kernel. */
  scratch?: number;
}

/** The shape of a compiled function's result with tensors replaced by slots. */
type OutTemplate = { slot: number } | OutTemplate[] | { [k: string]: OutTemplate } | undefined;

/** A replayable recording. */
interface Trace {
  slots: Slot[];
  launches: TraceLaunch[];
  perCall: PerCallEntry[];
  out: OutTemplate;
  /** State tensors (or arguments) and the slot holding their new value. */
  states: State[];
  /** Pre-existing tensors it used, as they stood when recorded (checked before each replay). */
  standing: { tensor: Tensor; requiresGrad: boolean; grad: boolean }[];
  /** Arguments the function disposes. */
  disposedArgs: number[];
  /** The last replay's submission (the trace's buffers are freed only after it). */
  pending: Promise<void> | null;
  /** Dropped: replays that are still queued finish, nothing new starts. */
  dead: boolean;
  /** The buffers its temporaries share (see shareBuffers), made at the first replay. */
  shared: { bytes: number; buffer: GPUBuffer | null }[] | null;
}

/** A tensor given a new value by the function: a pre-existing tensor, or argument `arg` of each call. */
type State = ({ tensor: Tensor } | { arg: number }) & { slot: number; shape: readonly number[]; dtype: DType };

/** What a recording is compared by, and the trace it becomes. */
interface Analysis {
  signature: string[];
  /** Descriptions of the signature entries, for messages. */
  described: string[];
  problems: string[];
  trace: Trace;
}

/**
 * Turns a finished recording into its signature and trace. `ends` holds the node each result tensor and
 * assigned tensor had when the call returned (later calls may have moved them on since).
 */
function analyze(rec: Recording, args: unknown[], argNodes: (LazyNode | null)[], result: unknown, ends: Map<Tensor, LazyNode>): Analysis {
  const slots: Slot[] = [];
  const slotOf = new Map<LazyNode, number>();
  const desc: string[] = [];
  const problems = [...rec.problems];
  // the arguments' nodes when the call began (an argument the function assigns has moved on since)
  const argOf = new Map<LazyNode, number>();
  argNodes.forEach((n, i) => {
    if (n && !argOf.has(n)) argOf.set(n, i);
  });
  const add = (n: LazyNode, s: Slot, d: string) => {
    slotOf.set(n, slots.length);
    slots.push(s);
    desc.push(d);
    return slots.length - 1;
  };
  /** The slot of a node the recorded kernels did not compute. */
  const external = (n: LazyNode): number => {
    const known = slotOf.get(n);
    if (known !== undefined) return known;
    const dyn = rec.dynamic.get(n);
    if (dyn?.data) return add(n, { kind: 'upload', entry: dyn.entry, data: dyn.data, bytes: storageBytes(n), buffer: null }, `per-call upload ${dyn.entry}`);
    const arg = argOf.get(n);
    const held = rec.heldBy.get(n);
    if (arg !== undefined) {
      if (held?.some((t) => !args.includes(t))) problems.push(`argument ${arg} holds the values of a tensor the function also reads directly; pass it one way only`);
      return add(n, { kind: 'arg', index: arg }, `argument ${arg}`);
    }
    if (held) return add(n, { kind: 'tensor', tensors: held as Tensor[], shape: n.shape, dtype: n.dtype }, `tensor#${held.map((t) => t.id).join('=')}`);
    const hash = rec.uploads.get(n);
    return add(n, { kind: 'const', node: n }, hash ? `constant ${hash}` : `buffer#${n.id}`);
  };
  const launches: TraceLaunch[] = [];
  const signature: string[] = [];
  const described: string[] = [];
  for (const l of rec.launches) {
    const inputs = l.inputs.map(external);
    const outs = l.outs.map((n) => {
      if (n.id < rec.firstNode) problems.push(`it computed a lazy tensor of shape [${n.shape.join(', ')}] made before the call`);
      return add(n, { kind: 'produced', bytes: storageBytes(n), shape: n.shape, dtype: n.dtype, keep: false, buffer: null, recent: [] }, `result ${slots.length}`);
    });
    const patches: Patch[] = [];
    l.paramSources.forEach((p, word) => {
      const dyn = rec.dynamic.get(p.node);
      if (dyn?.arg) patches.push({ word, entry: dyn.entry, arg: dyn.arg, node: { def: p.node.def, dtype: p.node.dtype, shape: p.node.shape, op: p.node.op }, i: p.i, dt: p.dt });
    });
    const words = Array.from(l.params, (w, j) => (patches.some((p) => p.word === j) ? '*' : String(w)));
    const k = l.kernel as ProgramKernel;
    launches.push({ kernel: k, key: l.key, inputs, outs, params: l.params, patches });
    signature.push(`K${l.key}(${inputs.map((s) => desc[s]).join(',')})->${outs.join(',')} [${words.join(',')}]`);
    described.push(`kernel ${launches.length} (${k.kernel.ops?.join(', ') || k.kernel.kind}) reading ${inputs.map((s) => desc[s]).join(', ')} with uniform words [${words.join(', ')}]`);
  }
  // the result: tensors only (checked by checkCall)
  const template = (v: unknown): OutTemplate => {
    if (v instanceof Tensor) {
      if (v.device !== 'webgpu') problems.push('its result is on the cpu reference device');
      const n = ends.get(v)!;
      const s = slotOf.has(n) ? slotOf.get(n)! : external(n);
      const slot = slots[s]!;
      if (slot.kind === 'produced') slot.keep = true;
      if (slot.kind === 'upload') problems.push('it returns a tensor uploaded per call (k.perCall(…).tensor), which replays rewrite; return a computed tensor (e.g. its .add(0))');
      return { slot: s };
    }
    if (Array.isArray(v)) return v.map(template);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, template(x)]));
    return undefined;
  };
  const out = template(result);
  signature.push(`out ${JSON.stringify(out)}`);
  described.push(`the result ${JSON.stringify(out)}`);
  // state: pre-existing tensors given new values
  const states: State[] = [];
  for (const t of rec.assigned as Set<Tensor>) {
    const n = ends.get(t);
    if (!n) continue; // disposed inside the call
    if (!n.realized) problems.push(`a tensor of shape [${t.shape.join(', ')}] it assigned was left uncomputed`);
    const s = slotOf.has(n) ? slotOf.get(n)! : external(n);
    const slot = slots[s]!;
    if (slot.kind === 'produced') slot.keep = true;
    if (slot.kind === 'upload') problems.push('it assigns a tensor uploaded per call (k.perCall(…).tensor), which replays rewrite; assign a computed tensor');
    // an argument it assigns is the argument of each call, not the tensor of the recorded one
    const arg = args.indexOf(t);
    states.push(arg >= 0 ? { arg, slot: s, shape: t.shape, dtype: t.dtype } : { tensor: t, slot: s, shape: t.shape, dtype: t.dtype });
    const who = arg >= 0 ? `argument ${arg}` : `tensor#${t.id}`;
    signature.push(`state ${who} <- ${desc[s]}`);
    described.push(`the new value of ${who} (shape [${t.shape.join(', ')}]): ${desc[s]}`);
  }
  // how the tensors it used stood: gradients switched on or off, or accumulated, outside it make other work
  const standing = [...(rec.touched as Map<Tensor, { node: LazyNode; grad: Tensor | null }>)].filter(([t]) => !args.includes(t)).map(([t, start]) => ({ tensor: t, requiresGrad: t.requiresGrad, grad: start.grad !== null }));
  const disposedArgs: number[] = [];
  for (const t of rec.disposed as Set<Tensor>) {
    const i = args.indexOf(t);
    if (i >= 0) disposedArgs.push(i);
    else problems.push(`it disposed a tensor of shape [${t.shape.join(', ')}] that existed before the call (not an argument), which replays could not repeat; dispose it outside the compiled function`);
  }
  signature.push(`per-call ${rec.perCall.length}; disposes ${disposedArgs.join(',')}`);
  described.push(`${rec.perCall.length} per-call values, disposing arguments [${disposedArgs.join(', ')}]`);
  return { signature, described, problems, trace: { slots, launches, perCall: rec.perCall, out, states, standing, disposedArgs, pending: null, dead: false, shared: null } };
}

/**
 * What a call did that no replay could repeat — an error at once: a result that is not tensors or is
 * part of a live gradient graph, `.grad` left set.
 */
function checkCall(rec: Recording, args: unknown[], result: unknown): void {
  const visit = (v: unknown, path: string): void => {
    if (v === undefined) return;
    if (v instanceof Tensor) {
      if (hasLiveGraph(v)) throw new Error(`k.compile(${rec.name}): its result ${path} is part of a gradient graph, which a replay cannot rebuild; run the backward pass inside the compiled function (e.g. loss.backward() and the optimizer's step), or call it under k.noGrad`);
      return;
    }
    if (Array.isArray(v)) return v.forEach((x, i) => visit(x, `${path}[${i}]`));
    if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.entries(v).forEach(([key, x]) => visit(x, `${path}.${key}`));
    throw new Error(`k.compile(${rec.name}): the function returned ${path === 'result' ? '' : `${path} = `}${typeof v === 'object' ? String(v) : JSON.stringify(v)}; a compiled function returns tensors (alone, in arrays or in plain objects) or nothing — a number computed on the host would be stale at later calls`);
  };
  visit(result, 'result');
  for (const [t, start] of rec.touched as Map<Tensor, { node: LazyNode; grad: Tensor | null }>) {
    if (t.grad && t.grad !== start.grad) {
      throw new Error(`k.compile(${rec.name}): the function left .grad set on a tensor of shape [${t.shape.join(', ')}]; replays could not update it. Clear gradients inside the function (e.g. the optimizer's zeroGrad() or minimize()), or return them`);
    }
  }
}

/** The first difference between two recordings, in words. */
function difference(name: string, a: Analysis, b: Analysis): string {
  // what no replay could repeat comes first
  const problem = b.problems[0] ?? a.problems[0];
  if (problem) return `k.compile(${name}): ${problem}`;
  const n = Math.max(a.signature.length, b.signature.length);
  for (let i = 0; i < n; i++) {
    if (a.signature[i] === b.signature[i]) continue;
    if (i >= a.signature.length || i >= b.signature.length) return `k.compile(${name}): consecutive calls launched different numbers of kernels (${a.trace.launches.length} and ${b.trace.launches.length}): the function builds a different computation at each call`;
    return `k.compile(${name}): consecutive calls differ at ${a.described[i]}, then ${b.described[i]}`;
  }
  return `k.compile(${name}): recordings differ`;
}

/** Per argument signature: the last recording and, once two agree, the trace. */
interface SignatureState {
  last: Analysis | null;
  trace: Trace | null;
  differing: number;
  /** The analyses of its recordings, in call order. */
  analysis: Promise<void>;
  /** Why the function cannot be compiled (thrown at the next call). */
  error: Error | null;
  /** Dropped by `reset` or evicted: its pending analyses make no trace. */
  dead: boolean;
}

/**
 * Compiles `fn`: the first calls for each argument signature (shapes, dtypes, devices of tensor arguments;
 * other arguments by value) run eagerly and are recorded; once two consecutive calls record the same
 * kernels, later calls replay them without running `fn`'s JavaScript. See the module comment for the rules.
 */
export function compile<A extends unknown[], R>(fn: (...args: A) => R, opts: CompileOptions = {}): CompiledFunction<A, R> {
  const name = opts.name ?? (fn.name || 'anonymous');
  const states = new Map<string, SignatureState>();
  const stats: CompileStats = { recorded: 0, replayed: 0, traces: 0 };

  const drop = (st: SignatureState) => {
    if (st.trace) freeTrace(st.trace);
    st.trace = null;
  };

  /** Whether `fn` returns promises (learned at its first recorded call): replays then return one too. */
  let isAsync = false;

  /** Compares a finished recording with the previous one of its signature: a trace when they agree. */
  const conclude = (st: SignatureState, rec: Recording, args: unknown[], argNodes: (LazyNode | null)[], result: unknown, ends: Map<Tensor, LazyNode>) => {
    const b = st.last;
    let accepted = false;
    try {
      // a synchronous function may have been called again before its earlier recordings were analyzed, or
      // the signature was dropped (reset, eviction) meanwhile
      if (st.trace || st.error || st.dead) return;
      const a = analyze(rec, args, argNodes, result, ends);
      st.last = a;
      accepted = !a.problems.length && !!b && !b.problems.length && a.signature.length === b.signature.length && a.signature.every((s, i) => s === b.signature[i]) && retainConstants(a.trace);
      if (accepted) {
        st.trace = a.trace;
        st.last = null;
        st.differing = 0;
        stats.traces++;
      } else if (b && ++st.differing >= MAX_RECORDINGS - 1) {
        throw new Error(`${difference(name, b, a)}. Values that change from call to call must be arguments, or computed in k.perCall(() => …) and made into tensors with its .scalar/.tensor; or pass { enabled: false } to run this function eagerly`);
      }
    } catch (e) {
      st.error = e as Error;
      st.last = null;
    } finally {
      rec.release(); // after the trace took its constants
      for (const n of ends.values()) n.release();
    }
  };

  const call = (...given: A): R => {
    // disabled, or inside another compiled function's recording: run eagerly (inlined into that one)
    if (opts.enabled === false || !compileConfig.enabled || currentRecording()) return fn(...given) as R;
    const args = leavesOf(given);
    const key = signatureOf(name, args);
    let st = states.get(key);
    if (st) states.delete(key);
    st ??= { last: null, trace: null, differing: 0, analysis: Promise.resolve(), error: null, dead: false };
    states.set(key, st);
    if (states.size > MAX_SIGNATURES) {
      const [oldKey, old] = states.entries().next().value!;
      drop(old);
      old.dead = true;
      states.delete(oldKey);
    }
    const failure = () => {
      const e = st.error;
      if (!e) return;
      states.delete(key);
      throw e;
    };
    failure(); // an earlier call's recording found the function cannot be compiled
    if (st.trace) {
      const out = replay(st.trace, args);
      if (out) {
        stats.replayed++;
        compileCounters.replays++;
        return (isAsync ? out.done.then(() => out.result) : (out.done.catch(() => undefined), out.result)) as R;
      }
      drop(st); // a guard failed (a state tensor was disposed or re-shaped): record again
      st.last = null;
    }
    // arguments are computed first, so that a recording holds only the function's own work
    const lazy = args.filter((a): a is Tensor => a instanceof Tensor && !a.rawNode.realized).map((t) => t.rawNode);
    // (kernels are planned when their turn comes, so the recorded ones find these stored)
    if (lazy.length) realizeNodes(lazy).catch(() => undefined);
    const rec = new Recording(name, peekTensorId(), nextNodeId());
    const argNodes = args.map((a) => (a instanceof Tensor ? a.rawNode : null));
    const finish = (r: unknown) => {
      try {
        checkCall(rec, args, r);
      } catch (e) {
        rec.release();
        throw e;
      }
      // the nodes of the results and new state as the call left them, kept until the recording is analyzed
      // (the caller may dispose a result, or call again, before the recorded work is even planned)
      const ends = new Map<Tensor, LazyNode>();
      for (const t of [...tensorsIn(r), ...(rec.assigned as Set<Tensor>)]) if (!t.disposed && !ends.has(t)) ends.set(t, t.rawNode.retain());
      // and those still lazy are computed inside the recording
      const pending = [...new Set(ends.values())].filter((n) => !n.realized);
      if (pending.length) recordInto(rec, () => void realizeNodes(pending).catch(() => undefined));
      stats.recorded++;
      st.analysis = st.analysis.then(() => submitted()).then(() => conclude(st, rec, args, argNodes, r, ends));
    };
    let result: unknown;
    try {
      result = recordInto(rec, () => fn(...given));
    } catch (e) {
      rec.release();
      throw e;
    }
    if (result instanceof Promise) {
      isAsync = true;
      return result.then(
        async (r) => {
          finish(r);
          await st.analysis;
          return r;
        },
        (e) => {
          rec.release();
          throw e;
        },
      ) as R;
    }
    finish(result);
    return result as R;
  };

  return Object.assign(call, {
    stats,
    reset() {
      for (const st of states.values()) {
        drop(st);
        st.dead = true;
      }
      states.clear();
    },
  }) as CompiledFunction<A, R>;
}

/** The tensors in a result (tensors, arrays and plain objects of them). */
function tensorsIn(v: unknown, out: Tensor[] = []): Tensor[] {
  if (v instanceof Tensor) out.push(v);
  else if (Array.isArray(v)) for (const x of v) tensorsIn(x, out);
  else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) tensorsIn(x, out);
  return out;
}

/** Returns a trace's own buffers to the pool. */
function freeTrace(tr: Trace): void {
  if (tr.dead) return;
  tr.dead = true;
  // a replay still queued binds these buffers: they go back only after it is submitted
  void (tr.pending ?? Promise.resolve()).then(() => releaseTrace(tr));
}

function releaseTrace(tr: Trace): void {
  for (const s of tr.slots) {
    if (s.kind === 'upload' && s.buffer) releaseBuffer(s.buffer);
    if (s.kind === 'produced' || s.kind === 'upload') s.buffer = null;
    if (s.kind === 'const') s.node.release();
  }
  for (const g of tr.shared ?? []) if (g.buffer) releaseBuffer(g.buffer);
  tr.shared = null;
}

/** The buffers the trace's temporaries and kernel scratch buffers share (see ./arena.ts). */
function shareBuffers(tr: Trace): { bytes: number; buffer: GPUBuffer | null }[] {
  const temps = tr.slots.flatMap((s, i) => (s.kind === 'produced' && !s.keep ? [{ slot: i, bytes: sizeClass(s.bytes) }] : []));
  const scratch = (l: TraceLaunch) => l.kernel.passes[0]!.scratchBytes;
  const { groupOf, scratchOf, sizes } = planArena(tr.launches.map((l) => ({ inputs: l.inputs, outs: l.outs, scratchBytes: scratch(l) && sizeClass(scratch(l)!) })), temps);
  for (const [slot, g] of groupOf) (tr.slots[slot] as Extract<Slot, { kind: 'produced' }>).shared = g;
  for (const [j, g] of scratchOf) tr.launches[j]!.scratch = g;
  return sizes.map((bytes) => ({ bytes, buffer: null }));
}

/** Keeps what a trace binds as constants alive while the trace lives; false if one is gone already. */
function retainConstants(tr: Trace): boolean {
  const consts = tr.slots.flatMap((s) => (s.kind === 'const' ? [s.node] : []));
  if (consts.some((n) => n.freed)) return false;
  for (const n of consts) n.retain();
  return true;
}

/**
 * Replays a trace: per-call values recomputed now (in order), results and new state bound to fresh
 * buffers now, the kernels submitted in turn. Null when a guard fails (the caller records again).
 */
function replay(tr: Trace, args: unknown[]): { result: unknown; done: Promise<void> } | null {
  // guards, before anything changes: the tensors it reads and updates, and how they stood when recorded
  const bound: (LazyNode | null)[] = tr.slots.map((s) => {
    if (s.kind === 'arg') return (args[s.index] as Tensor).rawNode;
    if (s.kind === 'tensor') {
      const n = s.tensors[0]!;
      if (s.tensors.some((t) => t.disposed || t.rawNode !== n.rawNode)) return null;
      if (n.rawNode.dtype !== s.dtype || n.rawNode.shape.join() !== s.shape.join() || n.rawNode.device !== 'webgpu') return null;
      return n.rawNode;
    }
    if (s.kind === 'const') return s.node;
    return null;
  });
  if (tr.slots.some((s, i) => s.kind === 'tensor' && !bound[i])) return null;
  for (const st of tr.states) {
    const t = 'tensor' in st ? st.tensor : (args[st.arg] as Tensor);
    if (t.disposed || t.dtype !== st.dtype || t.shape.join() !== st.shape.join()) return null;
  }
  for (const s of tr.standing) if (s.tensor.disposed || s.tensor.requiresGrad !== s.requiresGrad || (s.tensor.grad !== null) !== s.grad) return null;

  // per-call values (in recorded order), the uniform words and uploads they make
  const values = tr.perCall.map((e) => inHostStep(e.compute));
  const params = tr.launches.map((l) => {
    if (!l.patches.length) return l.params;
    const p = l.params.slice();
    for (const x of l.patches) p[x.word] = paramWord({ ...x.node, arg: x.arg(values[x.entry]) } as LazyNode, x.i, x.dt);
    return p;
  });
  const uploads = tr.slots.map((s) => (s.kind === 'upload' ? s.data(values[s.entry]) : null));

  const reading = bound.filter((n): n is LazyNode => n !== null);
  for (const n of reading) n.retain();
  const lazy = reading.filter((n) => !n.realized);
  if (lazy.length) void realizeNodes(lazy).catch(() => undefined); // its error is reported by the replay (failed inputs)

  // results and state get fresh buffers (their tensors outlive the call); temporaries use the trace's own
  const fresh = new Map<number, LazyNode>();
  tr.shared ??= shareBuffers(tr);
  tr.slots.forEach((s, i) => {
    if (s.kind !== 'produced') return;
    if (!s.keep) {
      const g = tr.shared![s.shared!]!;
      s.buffer = g.buffer ??= acquireBuffer(g.bytes).buffer;
      return;
    }
    const { buffer, bytes } = acquireBuffer(s.bytes, s.recent);
    s.recent = [buffer, ...s.recent.slice(0, 1)];
    const n = new LazyNode('buffer', [], s.shape, s.dtype, 'webgpu');
    n.buffer = buffer;
    n.bufferBytes = bytes;
    fresh.set(i, n.retain()); // until submitted, even if the caller disposes the result at once
  });
  const buffers = (i: number): GPUBuffer => {
    const s = tr.slots[i]!;
    if (s.kind === 'produced') return s.keep ? fresh.get(i)!.buffer! : s.buffer!;
    if (s.kind === 'upload') return s.buffer!;
    const n = bound[i]!;
    if (!n.buffer) throw new Error('kiln: a compiled function reads a tensor that was disposed before its replay ran');
    return n.buffer;
  };
  const result = build(tr.out, fresh, bound);
  // state tensors now refer to their new values (the old ones stay alive until the replay is submitted)
  for (const st of tr.states) {
    const n = fresh.get(st.slot) ?? bound[st.slot];
    if (!n) continue;
    const tensor = 'tensor' in st ? st.tensor : (args[st.arg] as Tensor);
    const old = tensor.rawNode;
    tensor.node = n.retain();
    old.release();
  }
  for (const i of tr.disposedArgs) (args[i] as Tensor).dispose();
  const done = submitPrepared([...reading, ...fresh.values()], [...fresh.values()], (): Launch[] => {
    const device = gpu().device;
    tr.slots.forEach((s, i) => {
      if (s.kind !== 'upload') return;
      s.buffer ??= acquireBuffer(s.bytes).buffer;
      const data = uploads[i]!;
      const bytes = new Uint8Array(Math.min(s.bytes, Math.ceil(data.byteLength / 4) * 4));
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, Math.min(data.byteLength, bytes.length)));
      device.queue.writeBuffer(s.buffer, 0, bytes);
    });
    return tr.launches.map((l, j) => {
      const scratch = l.scratch === undefined ? undefined : (tr.shared![l.scratch]!.buffer ??= acquireBuffer(tr.shared![l.scratch]!.bytes).buffer);
      return { kernel: l.kernel.kernel, passes: l.kernel.passes, inputs: l.inputs.map(buffers), params: params[j]!, outs: l.outs.map(buffers), groups: l.kernel.groups, scratch };
    });
  });
  tr.pending = done.catch(() => undefined);
  return { result, done };
}

/** The result of a replay: new tensors on the fresh nodes, in the recorded structure. */
function build(t: OutTemplate, fresh: Map<number, LazyNode>, bound: (LazyNode | null)[]): unknown {
  if (t === undefined) return undefined;
  if (Array.isArray(t)) return t.map((x) => build(x, fresh, bound));
  if ('slot' in t && typeof t.slot === 'number') return new Tensor(fresh.get(t.slot as number) ?? bound[t.slot as number]!);
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, build(v as OutTemplate, fresh, bound)]));
}
