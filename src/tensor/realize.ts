/**
 * Realization: plans the pending graph of the requested nodes, launches its kernels (one submit, one at a
 * time) and reads values back; reads requested in the same tick share one submit and one map. Pending
 * index checks (./checks.ts) ride along: computed in the same submit, read in the same map.
 */
import { type DType, type TypedArray, allocHostArray, halfToFloat, isFloat } from './dtype.js';
import type { LazyNode } from './node.js';
import type { Tensor } from './tensor.js';
import { realizeReference } from './reference.js';
import { storageBytes } from './lower.js';
import { launchesOf, programFor, recordedLaunches } from './program.js';
import { gpu } from '../wgsl/device.js';
import { deviceReplaced, execute, executeAndRead, isStaleBuffer, recycle, waitForSubmitted, type Launch } from '../wgsl/runtime.js';
import { checkNoRead, currentRecording, noteLaunches, tracing, type Recording } from './trace.js';
import { CHECK_BATCH, pendingChecks, settleChecks, settleInBackground, takeChecks, takeDeferredFailure, uncomputedChecks } from './checks.js';

let chain: Promise<unknown> = Promise.resolve();
/** Runs `fn` after every earlier realization has been submitted (one at a time). */
function serialize<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => undefined);
  return next;
}

/**
 * Nodes whose kernels were planned but never ran (a kernel failed to compile, or the submit failed): their
 * buffers hold no values, so any later use reports the original error instead of reading garbage. Only
 * what the failed realization touched is invalid; everything else keeps working.
 */
const failed = new WeakMap<LazyNode, Error>();
let anyFailed = false;

function checkNotFailed(nodes: Iterable<LazyNode>): void {
  if (anyFailed) {
    for (const n of nodes) {
      const e = failed.get(n);
      if (e) throw new Error(`kiln: this tensor depends on a result whose computation failed earlier: ${e.message}`, { cause: e });
    }
  }
  if (deviceReplaced()) for (const n of nodes) {
    if (n.buffer && isStaleBuffer(n.buffer)) throw new Error('kiln: this tensor depends on a tensor stored on an earlier WebGPU device (destroyed, or lost and replaced by init()); its values are gone — create it again');
  }
}

/** Realizes nodes (GPU and CPU reference) and reads back `reads` (GPU) in the same submit. */
export async function realizeNodes(nodes: LazyNode[], reads: LazyNode[] = []): Promise<ArrayBuffer[]> {
  const rec = tracing() ? currentRecording() : null;
  const cpu = nodes.filter((n) => n.device === 'cpu');
  if (rec && cpu.length) rec.problems.push('it computes on the cpu reference device');
  // index checks on the cpu reference are computed with its values and settled at once
  const cpuChecks = takeChecks('cpu');
  if (cpu.length || cpuChecks.length) {
    try {
      realizeReference([...cpu, ...cpuChecks.map((c) => c.node)]);
    } catch (e) {
      settleChecks(cpuChecks, null);
      throw e;
    }
    const failure = settleChecks(cpuChecks, cpuChecks.map((c) => c.node.host!));
    if (failure) throw failure;
  }
  const gpuNodes = nodes.filter((n) => n.device === 'webgpu' && !n.realized);
  const gpuReads = reads.filter((n) => n.device === 'webgpu');
  if (!gpuNodes.length && !gpuReads.length) return [];
  gpu();
  return serialize(async (): Promise<ArrayBuffer[] | (() => Promise<ArrayBuffer[]>)> => {
    // pending index checks are computed in the same program and submit as the requested nodes — except in
    // a compiled function's recording: which of its realizations would pick them up depends on timing, so
    // they ride along with the next realization outside it (replays run no device-side index checks)
    const pending = [...gpuNodes.filter((n) => !n.realized && !n.freed), ...(rec ? [] : uncomputedChecks('webgpu'))];
    checkNotFailed(gpuReads);
    let launches: Launch[] = [];
    let outs: LazyNode[] = [];
    if (pending.length) {
      const { program, nodes } = programFor(pending);
      checkNotFailed(nodes);
      launches = launchesOf(program, nodes);
      if (rec) noteLaunches(rec, recordedLaunches(program, nodes, launches));
      outs = program.kernels.flatMap((k) => k.outs.map((o) => nodes[o]!));
    }
    // a submit that fails leaves what it would have written invalid: later uses report the failure
    const fail = (e: unknown) => {
      for (const n of outs) failed.set(n, e as Error);
      if (outs.length) anyFailed = true;
    };
    if (!gpuReads.length) {
      if (rec || pendingChecks('webgpu') < CHECK_BATCH) {
        try {
          await execute(launches);
        } catch (e) {
          fail(e);
          throw e;
        }
        return [];
      }
      // a loop that never reads back: its checks are read with this submit and settled in the background
      const checks = takeChecks('webgpu');
      let read: () => Promise<ArrayBuffer[]>;
      try {
        read = await executeAndRead(launches, checks.map((c) => ({ buffer: c.node.buffer!, bytes: storageBytes(c.node) })));
      } catch (e) {
        fail(e);
        settleChecks(checks, null);
        throw e;
      }
      settleInBackground(checks, read);
      return [];
    }
    for (const n of gpuReads) if (!n.buffer) throw new Error('kiln: cannot read a disposed tensor');
    const checks = takeChecks('webgpu');
    let read: () => Promise<ArrayBuffer[]>;
    try {
      read = await executeAndRead(launches, [...gpuReads, ...checks.map((c) => c.node)].map((n) => ({ buffer: n.buffer!, bytes: storageBytes(n) })));
    } catch (e) {
      fail(e);
      settleChecks(checks, null);
      throw e;
    }
    return async () => {
      let raws: ArrayBuffer[];
      try {
        raws = await read();
      } catch (e) {
        settleChecks(checks, null);
        throw e;
      }
      const failure = settleChecks(checks, raws.slice(gpuReads.length)) ?? (await takeDeferredFailure());
      if (failure) throw failure;
      return raws.slice(0, gpuReads.length);
    };
  }).then((r) => (typeof r === 'function' ? r() : r));
}

interface PendingRead {
  node: LazyNode;
  resolve: (v: Float64Array | ArrayBuffer) => void;
  reject: (e: unknown) => void;
}
let pendingReads: PendingRead[] = [];
let flushScheduled = false;

function flushReads(): void {
  flushScheduled = false;
  const batch = pendingReads;
  pendingReads = [];
  const nodes = [...new Set(batch.map((r) => r.node))];
  const gpuNodes = nodes.filter((n) => n.device === 'webgpu');
  realizeNodes(nodes, gpuNodes).then(
    (buffers) => {
      for (const r of batch) {
        if (r.node.device === 'cpu') r.resolve(r.node.host!);
        else r.resolve(buffers[gpuNodes.indexOf(r.node)]!);
        r.node.release();
      }
    },
    (e) => {
      for (const r of batch) {
        r.reject(e);
        r.node.release();
      }
    },
  );
}

/** Reads a node's values; reads requested in the same tick share one submit and one map. */
export function readNode(node: LazyNode): Promise<Float64Array | ArrayBuffer> {
  if (tracing()) checkNoRead(`a tensor of shape [${node.shape.join(', ')}]`);
  node.retain();
  return new Promise((resolve, reject) => {
    pendingReads.push({ node, resolve, reject });
    if (!flushScheduled) {
      flushScheduled = true;
      queueMicrotask(flushReads);
    }
  });
}

export function decode(raw: Float64Array | ArrayBuffer, dtype: DType, n: number): TypedArray {
  if (raw instanceof Float64Array) {
    if (isFloat(dtype)) return raw.slice(0, n);
    const out = allocHostArray(dtype, n);
    for (let i = 0; i < n; i++) out[i] = raw[i]!;
    return out;
  }
  switch (dtype) {
    case 'f32': return new Float32Array(raw, 0, n);
    case 'i32': return new Int32Array(raw, 0, n);
    case 'u32': return new Uint32Array(raw, 0, n);
    case 'bool': return Uint8Array.from(new Uint32Array(raw, 0, n));
    case 'f16': {
      const h = new Uint16Array(raw, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]!);
      return out;
    }
  }
}

/** Resolves once every realization requested so far has been submitted to the GPU. */
export function submitted(): Promise<void> {
  return serialize(async () => undefined);
}

/**
 * Submits launches made by `prepare` when their turn comes, in order with every other realization (a
 * compiled function's replay). `inputs` must not depend on a failed computation, and are released once
 * submitted (the caller retained them); if the submit fails, `outs` report the failure at their next use.
 */
export function submitPrepared(inputs: LazyNode[], outs: LazyNode[], prepare: () => Launch[]): Promise<void> {
  return serialize(async () => {
    try {
      checkNotFailed(inputs);
      await execute(prepare());
    } catch (e) {
      for (const n of outs) failed.set(n, e as Error);
      if (outs.length) anyFailed = true;
      throw e;
    } finally {
      // the inputs' work is submitted: buffers they alone held go back to the pool at once (a replay
      // that asks for the buffers it had two calls ago then finds them, and keeps its bind groups)
      for (const n of inputs) n.release();
      recycle();
    }
  });
}

/** Computes the given tensors now (one submit); resolves when the work is queued on the GPU. */
export async function realize(...tensors: Tensor[]): Promise<void> {
  for (const t of tensors) if (t.disposed) throw new Error('realize: the tensor was disposed');
  await realizeNodes(tensors.map((t) => t.node));
}

/**
 * Resolves when the GPU has finished all work submitted so far (PyTorch's `torch.cuda.synchronize`, JAX's
 * `block_until_ready`). Pending lazy tensors are not computed: `realize` them first to include them.
 */
export async function synchronize(): Promise<void> {
  await serialize(async () => undefined);
  await waitForSubmitted();
}
