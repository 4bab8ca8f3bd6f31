/**
 * Recording a call of a compiled function (./compile.ts): while it runs eagerly, every kernel it launches
 * is noted with the nodes it reads and writes and its uniform words; the tensors it reads that existed
 * before the call (parameters, optimizer state, arguments) and the ones it assigns new values to are noted
 * too, as are the host values it declared per-call (`perCall`: learning rates, step counters, random
 * counters, host-sampled times) and the constants it uploaded. ./compile.ts turns two equal recordings
 * into a replayable trace.
 *
 * This module holds no Tensor code (tensor.ts calls its hooks); recorders are found through the async
 * context, so only work started inside the compiled call is recorded.
 */
import type { LazyNode } from './node.js';
import type { DType } from './dtype.js';
import { asyncContextSlot } from './context.js';

/** The part of a Tensor the recorder sees (tensor.ts implements it). */
export interface TracedTensor {
  readonly id: number;
  readonly disposed: boolean;
  grad: TracedTensor | null;
  /** The node without noting the access. */
  readonly rawNode: LazyNode;
}

/** A host value computed once per call (eager: once; compiled: at every replay, in recorded order). */
export interface PerCallEntry {
  compute: () => unknown;
}

/** How a node depends on a per-call value: its run-time scalars (`arg`) or its uploaded data (`data`). */
export interface DynamicBinding {
  entry: number;
  arg?: (v: unknown) => unknown;
  data?: (v: unknown) => ArrayBufferView;
}

/** One kernel launched during the recorded call. */
export interface RecordedLaunch {
  /** The program kernel. */
  kernel: object;
  /** Its identity: equal for the same kernel of programs of the same structure. */
  key: string;
  inputs: LazyNode[];
  outs: LazyNode[];
  params: Uint32Array;
  /** For each uniform word: the leaf it comes from, and which of its scalars. */
  paramSources: { node: LazyNode; i: number; dt: DType }[];
}

/** What one call of a compiled function did. */
export class Recording {
  readonly launches: RecordedLaunch[] = [];
  readonly perCall: PerCallEntry[] = [];
  /** Pre-existing tensors read or assigned, with their node and gradient when first seen. */
  readonly touched = new Map<TracedTensor, { node: LazyNode; grad: TracedTensor | null }>();
  /** Nodes of pre-existing tensors: which tensors held them when read. */
  readonly heldBy = new Map<LazyNode, TracedTensor[]>();
  /** Pre-existing tensors given a new value. */
  readonly assigned = new Set<TracedTensor>();
  /** Hashes of constants uploaded from host data (not per-call), kept alive until `release`. */
  readonly uploads = new Map<LazyNode, string>();
  /** Pre-existing tensors disposed during the call. */
  readonly disposed = new Set<TracedTensor>();
  /** Why this recording cannot be replayed, if it cannot. */
  readonly problems: string[] = [];
  /** Nodes bound to a per-call value (scalars and uploads). */
  readonly dynamic = new Map<LazyNode, DynamicBinding>();

  constructor(readonly name: string, readonly firstTensor: number, readonly firstNode: number) {}

  /** Lets go of the uploaded constants it kept alive (a trace made from it keeps the ones it binds). */
  release(): void {
    for (const n of this.uploads.keys()) n.release();
    this.uploads.clear();
  }

  /** True for tensors created before the call began. */
  preexisting(t: TracedTensor): boolean {
    return t.id < this.firstTensor;
  }
}

const slot = asyncContextSlot<Recording>();
/** Browsers (no async context): the one recording in progress. */
let global: Recording | null = null;
let active = 0;

/** True while any call is being recorded (a cheap test before the async-context lookup). */
export function tracing(): boolean {
  return active > 0;
}

/** The recording the current code runs under, if any. */
export function currentRecording(): Recording | null {
  if (active === 0) return null;
  return slot.ctx ? slot.ctx.getStore() ?? null : global;
}

/**
 * Runs `fn` under `rec`: work it starts is recorded, and when it returns a promise, also what it starts
 * after its awaits, until the promise settles.
 */
export function recordInto<T>(rec: Recording, fn: () => T): T {
  active++;
  if (!slot.ctx) {
    if (global) {
      active--;
      throw new Error(`k.compile(${rec.name}): called while '${global.name}' is being traced; in browsers compiled functions are traced one at a time — await the other call first`);
    }
    global = rec;
  }
  const end = () => {
    active--;
    if (!slot.ctx) global = null;
  };
  let r: T;
  try {
    r = slot.ctx ? slot.ctx.run(rec, fn) : fn();
  } catch (e) {
    end();
    throw e;
  }
  if (r instanceof Promise) return r.finally(end) as T;
  end();
  return r;
}

/** Tensor hook: `t` is about to be used (its node read). */
export function noteAccess(t: TracedTensor): void {
  const rec = currentRecording();
  if (!rec || !rec.preexisting(t) || rec.touched.has(t)) return;
  const node = t.rawNode;
  rec.touched.set(t, { node, grad: t.grad });
  if (node.id < rec.firstNode) {
    const list = rec.heldBy.get(node);
    if (list) list.push(t);
    else rec.heldBy.set(node, [t]);
  }
}

/** Tensor hook: `t` is given a new node. */
export function noteAssign(t: TracedTensor): void {
  const rec = currentRecording();
  if (rec && rec.preexisting(t)) {
    noteAccess(t);
    rec.assigned.add(t);
  }
}

/** Tensor hook: `t` is disposed (noted when the recording used it: disposing what it never touched is not its work). */
export function noteDispose(t: TracedTensor): void {
  const rec = currentRecording();
  if (rec && rec.preexisting(t) && rec.touched.has(t)) rec.disposed.add(t);
}

/** Creation hook: a buffer was uploaded from host data (a constant of the function unless bound per call). */
export function noteUpload(node: LazyNode, data: ArrayBufferView): void {
  const rec = currentRecording();
  if (rec) rec.uploads.set(node.retain(), hashBytes(data));
}

/** Readback hook: reading values on the host inside a compiled function is an error. */
export function checkNoRead(what: string): void {
  const rec = currentRecording();
  if (rec) {
    throw new Error(`k.compile(${rec.name}): the function reads a tensor's values on the host (${what}) while it is traced. A compiled function's JavaScript runs only when it is traced, so a value read there would be stale at later calls: return the tensor and read it after the call, or leave this function uncompiled`);
  }
}

/** Registers a per-call host value with the current recording; returns the recording and its index (null outside one). */
export function notePerCall(entry: PerCallEntry): { rec: Recording; index: number } | null {
  const rec = currentRecording();
  if (!rec) return null;
  rec.perCall.push(entry);
  return { rec, index: rec.perCall.length - 1 };
}

let hostSteps = 0;
/** Runs a per-call computation (host draws are allowed in it). */
export function inHostStep<T>(fn: () => T): T {
  hostSteps++;
  try {
    return fn();
  } finally {
    hostSteps--;
  }
}

/** Host-random hook: a draw on the host in a compiled function must be per-call, or replays would reuse it. */
export function checkHostStep(what: string): void {
  if (hostSteps > 0 || !tracing()) return;
  const rec = currentRecording();
  if (rec) throw new Error(`k.compile(${rec.name}): ${what} draws random numbers on the host while the function is traced; replays would reuse them. Wrap the draw and what is computed from it in k.perCall(() => …) and make tensors with its .tensor(…)/.scalar(…)`);
}

/** Realization hook: notes the kernels of one realization. */
export function noteLaunches(rec: Recording, launches: RecordedLaunch[]): void {
  rec.launches.push(...launches);
}

/** FNV-1a over the bytes (equal data gives equal hashes; used to compare constants between calls). */
function hashBytes(data: ArrayBufferView): string {
  const b = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return `${b.length}:${(h >>> 0).toString(16)}`;
}
