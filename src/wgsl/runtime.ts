/**
 * The WebGPU runtime: a buffer pool keyed by size class, a pipeline cache keyed by generated source,
 * one command encoder and one submit per realization, and batched asynchronous readback.
 */
import { captureErrors, gpu, takeError, type DeviceState } from './device.js';
import { render, type Binding, type Kernel, type KernelConfig, type Pass } from './kernels.js';

/** Counters exposed through `k.stats()`. */
export interface RuntimeStats {
  kernels: number;
  dispatches: number;
  submits: number;
  pipelinesCompiled: number;
  bytesAllocated: number;
  buffersAllocated: number;
  readbacks: number;
  /** Bind groups created (a step replayed from a cached program creates none while its buffers repeat). */
  bindGroups: number;
  /** Milliseconds the host spent waiting for the GPU: readbacks, `synchronize`, pipeline compilation. */
  waitMs: number;
}

/** Live memory as reported by `k.memory()`. */
export interface MemoryInfo {
  liveBuffers: number;
  liveBytes: number;
  /** The most live bytes at any moment since the last `resetPeakMemory()` (PyTorch's max_memory_allocated). */
  peakBytes: number;
  pooledBuffers: number;
  pooledBytes: number;
}

let waiters = 0;
let waitStart = 0;
/** Awaits GPU work, counting the time in `stats.waitMs` (overlapping waits count once). */
async function waiting<T>(p: Promise<T>): Promise<T> {
  if (waiters++ === 0) waitStart = performance.now();
  try {
    return await p;
  } finally {
    if (--waiters === 0) stats.waitMs += performance.now() - waitStart;
  }
}

/** Resolves when the GPU has finished all work submitted so far. */
export async function waitForSubmitted(): Promise<void> {
  await waiting(gpu().device.queue.onSubmittedWorkDone());
}

/** One kernel ready to encode: its description and the buffers it binds. */
export interface Launch {
  kernel: Kernel;
  /** The kernel rendered for the current configuration (rendered here when absent). */
  passes?: Pass[];
  inputs: GPUBuffer[];
  params: Uint32Array;
  outs: GPUBuffer[];
  /** Bind groups of an earlier launch of the same kernel, reused when it binds the same buffers. */
  groups?: BindGroupCache;
  /** The scratch buffer of a two-pass kernel, owned by the caller (else one is taken from the pool for the submit). */
  scratch?: GPUBuffer;
}

/**
 * What a kernel launched again and again keeps: the last few bind groups of each pass by what they bind,
 * and the scratch buffers it had (state updated every step alternates between two buffers).
 */
export interface BindGroupCache {
  passes: { key: number[]; group: GPUBindGroup }[][];
  scratch: GPUBuffer[];
}

/** Equal bind-group cache keys. */
function sameKey(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The buffer a pass binds at `b`: an input or output of the launch, its scratch buffer or the uniforms. */
function boundBuffer(b: Binding, l: Launch, scratch: GPUBuffer | null, uniform: GPUBuffer | null): GPUBuffer {
  return b.kind === 'in' ? l.inputs[b.slot]! : b.kind === 'out' ? l.outs[b.index]! : b.kind === 'scratch' ? scratch! : uniform!;
}

/** The bind-group cache key being looked up (reused across dispatches). */
const keyScratch: number[] = [];

/** Bind groups kept per pass of a cached kernel. */
const GROUPS_PER_PASS = 4;

/** Small integer names of GPU objects, for bind-group cache keys. */
const ids = new WeakMap<object, number>();
let nextId = 1;
function idOf(o: object): number {
  let i = ids.get(o);
  if (i === undefined) ids.set(o, (i = nextId++));
  return i;
}

/** One uniform buffer for every submit, rewritten in queue order and grown when a submit needs more. */
let uniformBuffer: GPUBuffer | null = null;

const USAGE = GPUBufferUsageFlags();
function GPUBufferUsageFlags(): number {
  // evaluated lazily in Node (globals installed by init); constants per the WebGPU spec
  return 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */;
}

/** Rounds a byte count up to its pool size class (≤ 12.5 % waste above 4 KiB). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 4096) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

const stats: RuntimeStats = { kernels: 0, dispatches: 0, submits: 0, pipelinesCompiled: 0, bytesAllocated: 0, buffersAllocated: 0, readbacks: 0, bindGroups: 0, waitMs: 0 };
const pool = new Map<number, GPUBuffer[]>();
let pendingFree: GPUBuffer[] = [];
let pooledBytes = 0;
let pooledBuffers = 0;
let liveBytes = 0;
let liveBuffers = 0;
let peakBytes = 0;
const pipelines = new Map<string, GPUComputePipeline>();
const layouts = new Map<string, GPUBindGroupLayout>();
let ownerDevice: GPUDevice | null = null;
/** The device each storage buffer was made on: buffers of a destroyed or lost device never reach the new pool. */
const bufferDevice = new WeakMap<GPUBuffer, GPUDevice>();

/** Devices used so far; after the first, buffers of an earlier device may still be held by tensors. */
let devicesSeen = 0;

/** True once a second device is in use (only then can a tensor hold a buffer of another device). */
export function deviceReplaced(): boolean {
  return devicesSeen > 1;
}

/** True when `buffer` was made on a device that is no longer the current one (destroyed or lost). */
export function isStaleBuffer(buffer: GPUBuffer): boolean {
  return devicesSeen > 1 && bufferDevice.get(buffer) !== ownerDevice;
}

function ensureDevice(s: DeviceState): void {
  if (ownerDevice === s.device) return;
  ownerDevice = s.device;
  devicesSeen++;
  compiling.clear();
  uniformBuffer = null;
  pool.clear();
  pendingFree = [];
  pipelines.clear();
  layouts.clear();
  pooledBytes = pooledBuffers = liveBytes = liveBuffers = peakBytes = 0;
}

/**
 * Returns a storage buffer of at least `bytes` (from the pool when possible), one of `prefer` when it is
 * free: a replayed kernel that gets the buffers it had before keeps its bind groups.
 */
export function acquireBuffer(bytes: number, prefer: readonly GPUBuffer[] = []): { buffer: GPUBuffer; bytes: number } {
  const s = gpu();
  ensureDevice(s);
  const size = sizeClass(bytes);
  if (size > s.info.limits.maxStorageBufferBindingSize) {
    throw new Error(`kiln: a tensor of ${bytes} bytes exceeds this adapter's largest storage binding (${s.info.limits.maxStorageBufferBindingSize} bytes, ${s.info.driver})`);
  }
  const list = pool.get(size);
  let buffer: GPUBuffer | undefined;
  for (const p of prefer) {
    const at = list ? list.lastIndexOf(p) : -1;
    if (at >= 0) {
      buffer = list!.splice(at, 1)[0];
      break;
    }
  }
  buffer ??= list?.pop();
  if (buffer) {
    pooledBytes -= size;
    pooledBuffers--;
  } else {
    buffer = s.device.createBuffer({ size, usage: USAGE });
    bufferDevice.set(buffer, s.device);
    stats.bytesAllocated += size;
    stats.buffersAllocated++;
  }
  liveBytes += size;
  liveBuffers++;
  if (liveBytes > peakBytes) peakBytes = liveBytes;
  return { buffer, bytes: size };
}

/** Returns a buffer to the pool once the work already encoded with it has been submitted. */
export function releaseBuffer(buffer: GPUBuffer): void {
  if (ownerDevice === null || bufferDevice.get(buffer) !== ownerDevice) return;
  liveBytes -= buffer.size;
  liveBuffers--;
  pendingFree.push(buffer);
}

/**
 * Returns released buffers to the pool. Safe whenever no prepared launch that binds them is still to be
 * submitted: at the end of a submit, and right after one by code that released only what it submitted.
 */
export function recycle(): void {
  for (const b of pendingFree) {
    const list = pool.get(b.size);
    if (list) list.push(b);
    else pool.set(b.size, [b]);
    pooledBytes += b.size;
    pooledBuffers++;
  }
  pendingFree = [];
}

/** Frees pooled (unused) buffers. */
export function trimPool(): void {
  for (const list of pool.values()) for (const b of list) b.destroy();
  pool.clear();
  pooledBytes = pooledBuffers = 0;
}

/** Uploads host data into a new storage buffer. */
export function uploadBuffer(data: ArrayBufferView): { buffer: GPUBuffer; bytes: number } {
  const s = gpu();
  const b = acquireBuffer(Math.max(4, data.byteLength));
  const n = Math.ceil(data.byteLength / 4) * 4;
  if (n === data.byteLength) s.device.queue.writeBuffer(b.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  else {
    const padded = new Uint8Array(n);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    s.device.queue.writeBuffer(b.buffer, 0, padded);
  }
  return b;
}

function layoutFor(device: GPUDevice, bindings: Binding[]): GPUBindGroupLayout {
  const key = bindings.map((b) => (b.kind === 'in' || (b.kind === 'scratch' && !b.write) ? 'r' : b.kind === 'params' ? 'u' : 'w')).join('');
  let l = layouts.get(key);
  if (!l) {
    l = device.createBindGroupLayout({
      entries: [...key].map((c, i) => ({
        binding: i,
        visibility: 4 /* COMPUTE */,
        buffer: { type: c === 'r' ? 'read-only-storage' : c === 'u' ? 'uniform' : 'storage' },
      })),
    });
    layouts.set(key, l);
  }
  return l;
}

/** Pipelines being compiled, so concurrent submits wait for one compilation of a kernel. */
const compiling = new Map<string, Promise<GPUComputePipeline>>();

/**
 * Compiles a pass inside error scopes: a kernel that fails to compile is an error of the operation that
 * asked for it (naming its ops), raised once, and the device stays usable for everything else.
 */
function pipelineFor(device: GPUDevice, pass: Pass, what: string): Promise<GPUComputePipeline> {
  const cached = pipelines.get(pass.code);
  if (cached) return Promise.resolve(cached);
  let p = compiling.get(pass.code);
  if (p) return p;
  p = (async () => {
    const { value: [module, pending], errors } = captureErrors(device, () => {
      const layout = device.createPipelineLayout({ bindGroupLayouts: [layoutFor(device, pass.bindings)] });
      const module = device.createShaderModule({ code: pass.code });
      const pending = device.createComputePipelineAsync({ layout, compute: { module, entryPoint: 'main' } });
      return [module, pending.then((x) => x, (e: Error) => e)] as const;
    });
    const [scoped, made] = await Promise.all([errors, pending]);
    if (scoped || made instanceof Error) {
      const info = await module.getCompilationInfo().catch(() => null);
      const msgs = info?.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n') ?? '';
      const reason = (made instanceof Error ? made.message : '') || scoped?.message || 'unknown error';
      const err = new Error(`kiln: the kernel for ${what} failed to compile (${reason}). The device is still usable; this is a kiln bug unless the kernel came from a custom op: please report it with the kernel source in error.cause.\n${msgs}`);
      (err as Error & { cause?: unknown }).cause = pass.code;
      throw err;
    }
    pipelines.set(pass.code, made);
    stats.pipelinesCompiled++;
    return made;
  })();
  compiling.set(pass.code, p);
  p.then(() => compiling.delete(pass.code), () => compiling.delete(pass.code));
  return p;
}

/** What a kernel computes, for error messages: the ops fused into it and its kind and sizes. */
function describe(k: Kernel): string {
  return k.ops?.length ? `${k.ops.map((o) => `'${o}'`).join(', ')} (${kernelLabel(k)})` : kernelLabel(k);
}

/** The kernel tuning for the current adapter (see ./tuning.ts). */
export function kernelConfig(): KernelConfig {
  return gpu().kernels;
}

/** Time spent on the GPU by one kind of kernel, summed over a profiled run. */
export interface KernelProfile {
  label: string;
  count: number;
  ms: number;
}

let profiling: { totals: Map<string, KernelProfile>; pending: Promise<void>[] } | null = null;

/** A short description of a kernel: its kind and sizes. */
export function kernelLabel(k: Kernel): string {
  switch (k.kind) {
    case 'elementwise': return `elementwise ${k.size}${k.extra?.length ? ` ×${k.extra.length + 1} outputs` : ''}`;
    case 'reduce': return `reduce ${k.op} ${k.outSize}×${k.redSize}${k.extra?.length ? ` ×${k.extra.length + 1} outputs` : ''}`;
    case 'matmul': return `matmul ${k.batchShape.length ? `[${k.batchShape.join(',')}] ` : ''}${k.M}×${k.K}×${k.N}`;
  }
}

/**
 * Collects GPU time per kernel label (with timestamp queries, each kernel in its own pass) while `fn`
 * runs; returns the kinds of kernels sorted by total time. Needs the adapter's 'timestamp-query'.
 */
export async function profileKernels(fn: () => Promise<void>): Promise<KernelProfile[]> {
  const s = gpu();
  if (!s.device.features.has('timestamp-query')) throw new Error("profile: this adapter has no 'timestamp-query' feature");
  if (profiling) throw new Error('profile: already profiling');
  profiling = { totals: new Map(), pending: [] };
  try {
    await fn();
    await Promise.all(profiling.pending);
    return [...profiling.totals.values()].sort((a, b) => b.ms - a.ms);
  } finally {
    profiling = null;
  }
}

type Copy = { src: GPUBuffer; dst: GPUBuffer; bytes: number; dstOffset: number };

/**
 * Encodes the launches into one command encoder (plus optional copies) and submits once. WebGPU errors
 * of the submission are not thrown (they arrive later): they are reported once, at the next readback.
 */
export async function execute(launches: Launch[], copies: Copy[] = []): Promise<void> {
  const s = gpu();
  const { errors } = await submit(launches, copies);
  void errors.then((e) => {
    if (e) s.error ??= e;
  });
}

/** Submits; resolves (after the submit) with a promise of the submission's WebGPU error, found later, if any. */
async function submit(launches: Launch[], copies: Copy[]): Promise<{ errors: Promise<Error | null> }> {
  // a timestamp query set holds at most 4096 queries: profile long submissions in parts
  if (profiling && launches.length > 2048) {
    const parts: Promise<Error | null>[] = [];
    for (let i = 0; i < launches.length; i += 2048) parts.push((await submit(launches.slice(i, i + 2048), i + 2048 >= launches.length ? copies : [])).errors);
    return { errors: Promise.all(parts).then((es) => es.find((e) => e) ?? null) };
  }
  const s = gpu();
  ensureDevice(s);
  const device = s.device;
  const cfg = kernelConfig();
  const rendered = launches.map((l) => l.passes ?? render(l.kernel, cfg));
  const uncompiled = new Map<string, [Pass, Kernel]>();
  rendered.forEach((passes, i) => {
    for (const p of passes) if (!pipelines.has(p.code) && !uncompiled.has(p.code)) uncompiled.set(p.code, [p, launches[i]!.kernel]);
  });
  if (uncompiled.size) await waiting(Promise.all([...uncompiled.values()].map(([p, k]) => pipelineFor(device, p, describe(k)))));
  gpu();
  const { errors } = captureErrors(device, () => encodeAndSubmit(s, launches, rendered, copies));
  return { errors: errors.then((e) => (e ? new Error(`kiln: WebGPU rejected a computation (kernels ${launches.slice(0, 4).map((l) => describe(l.kernel)).join('; ')}${launches.length > 4 ? '; …' : ''}): ${e.message}`) : null)) };
}

function encodeAndSubmit(s: DeviceState, launches: Launch[], rendered: Pass[][], copies: Copy[]): void {
  const device = s.device;

  // pack every kernel's parameters, then the words its passes add, into one uniform buffer
  const added = rendered.map((passes) => passes.find((p) => p.params)?.params ?? []);
  const words = launches.map((l, i) => l.params.length + added[i]!.length);
  const align = device.limits.minUniformBufferOffsetAlignment;
  const offsets: number[] = [];
  let total = 0;
  for (const n of words) {
    offsets.push(total);
    if (n) total += Math.ceil((Math.ceil(n / 4) * 16) / align) * align;
  }
  let uniform: GPUBuffer | null = null;
  if (total > 0) {
    if (!uniformBuffer || uniformBuffer.size < total) {
      uniformBuffer?.destroy();
      uniformBuffer = device.createBuffer({ size: Math.max(total, 2 * (uniformBuffer?.size ?? 0)), usage: 0x40 /* UNIFORM */ | 0x08 /* COPY_DST */ });
    }
    uniform = uniformBuffer;
    const host = new Uint32Array(total / 4);
    launches.forEach((l, i) => {
      host.set(l.params, offsets[i]! / 4);
      host.set(added[i]!, offsets[i]! / 4 + l.params.length);
    });
    device.queue.writeBuffer(uniform, 0, host);
  }

  const encoder = device.createCommandEncoder();
  const scratch: GPUBuffer[] = [];
  const prof = profiling && launches.length ? { set: device.createQuerySet({ type: 'timestamp', count: 2 * launches.length }), labels: launches.map((l) => kernelLabel(l.kernel)) } : null;
  if (launches.length) {
    let pass = prof ? null : encoder.beginComputePass();
    let current: GPUComputePipeline | null = null;
    launches.forEach((l, i) => {
      if (prof) current = null;
      if (prof) pass = encoder.beginComputePass({ timestampWrites: { querySet: prof.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      const passes = rendered[i]!;
      let scratchBuf: GPUBuffer | null = null;
      if (passes[0]!.scratchBytes) {
        if (l.scratch) scratchBuf = l.scratch;
        else {
          scratchBuf = acquireBuffer(passes[0]!.scratchBytes, l.groups?.scratch).buffer;
          scratch.push(scratchBuf);
          if (l.groups) l.groups.scratch = [scratchBuf, ...l.groups.scratch.slice(0, 1)];
        }
      }
      stats.kernels++;
      passes.forEach((p, pi) => {
        const pipeline = pipelines.get(p.code)!;
        // the cache key: the pipeline, the uniform offset and the bound buffers, as small integers, written
        // into a reused array (a replayed step looks up hundreds of groups: a hit allocates nothing)
        const n = p.bindings.length + 2;
        keyScratch.length = n;
        keyScratch[0] = idOf(pipeline);
        keyScratch[1] = offsets[i]!;
        for (let b = 0; b < p.bindings.length; b++) keyScratch[b + 2] = idOf(boundBuffer(p.bindings[b]!, l, scratchBuf, uniform));
        const cache = l.groups ? (l.groups.passes[pi] ??= []) : null;
        let group: GPUBindGroup | undefined;
        if (cache) {
          for (const c of cache) {
            if (sameKey(c.key, keyScratch)) {
              group = c.group;
              break;
            }
          }
        }
        if (!group) {
          const key = keyScratch.slice(0, n);
          const entries: GPUBindGroupEntry[] = p.bindings.map((b, bi) =>
            b.kind === 'params' ? { binding: bi, resource: { buffer: uniform!, offset: offsets[i]!, size: Math.ceil(words[i]! / 4) * 16 } } : { binding: bi, resource: { buffer: boundBuffer(b, l, scratchBuf, uniform) } });
          group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
          stats.bindGroups++;
          if (cache) {
            if (cache.length >= GROUPS_PER_PASS) cache.shift();
            cache.push({ key, group });
          }
        }
        if (pipeline !== current) pass!.setPipeline((current = pipeline));
        pass!.setBindGroup(0, group);
        pass!.dispatchWorkgroups(...p.workgroups);
        stats.dispatches++;
      });
      if (prof) pass!.end();
    });
    if (!prof) pass!.end();
  }
  let times: GPUBuffer | null = null;
  if (prof) {
    const bytes = 16 * launches.length;
    const resolved = device.createBuffer({ size: bytes, usage: 0x200 /* QUERY_RESOLVE */ | 0x04 /* COPY_SRC */ });
    times = device.createBuffer({ size: bytes, usage: 0x01 /* MAP_READ */ | 0x08 /* COPY_DST */ });
    encoder.resolveQuerySet(prof.set, 0, 2 * launches.length, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, times, 0, bytes);
    const t = times, totals = profiling!.totals;
    profiling!.pending.push((async () => {
      await device.queue.onSubmittedWorkDone();
      await t.mapAsync(1 /* READ */);
      const ns = new BigUint64Array(t.getMappedRange());
      prof.labels.forEach((label, i) => {
        const e = totals.get(label) ?? { label, count: 0, ms: 0 };
        e.count++;
        e.ms += Number(ns[2 * i + 1]! - ns[2 * i]!) / 1e6;
        totals.set(label, e);
      });
      t.destroy();
      resolved.destroy();
      prof.set.destroy();
    })());
  }
  for (const c of copies) encoder.copyBufferToBuffer(c.src, 0, c.dst, c.dstOffset, c.bytes);
  device.queue.submit([encoder.finish()]);
  stats.submits++;
  for (const b of scratch) releaseBuffer(b);
  recycle();
}

/**
 * Runs the launches and copies the requested buffers to one staging buffer in the same submit.
 * Resolves after the submit with a function that maps the staging buffer and returns one ArrayBuffer
 * per request (so the caller may release its lock before waiting for the GPU).
 */
export async function executeAndRead(launches: Launch[], reqs: { buffer: GPUBuffer; bytes: number }[]): Promise<() => Promise<ArrayBuffer[]>> {
  const s = gpu();
  const offsets: number[] = [];
  let total = 0;
  for (const r of reqs) {
    offsets.push(total);
    total += Math.ceil(r.bytes / 4) * 4;
  }
  const staging = s.device.createBuffer({ size: Math.max(total, 4), usage: 0x01 /* MAP_READ */ | 0x08 /* COPY_DST */ });
  let errors: Promise<Error | null>;
  try {
    ({ errors } = await submit(launches, reqs.map((r, i) => ({ src: r.buffer, dst: staging, bytes: Math.ceil(r.bytes / 4) * 4, dstOffset: offsets[i]! }))));
  } catch (e) {
    staging.destroy();
    throw e;
  }
  stats.readbacks++;
  return async () => {
    const [err, mapped] = await Promise.all([errors, waiting(staging.mapAsync(1 /* READ */)).then(() => null, (e: Error) => e)]);
    // this submission's own error first, then one an earlier submission left (each is reported once)
    const fail = err ?? s.lost ?? (mapped ? new Error(`kiln: reading back from the GPU failed: ${mapped.message}`) : null) ?? takeError(s);
    if (fail) {
      staging.destroy();
      throw fail;
    }
    const range = staging.getMappedRange();
    const out = reqs.map((r, i) => range.slice(offsets[i]!, offsets[i]! + r.bytes));
    staging.unmap();
    staging.destroy();
    return out;
  };
}

/** Snapshot of the counters. */
export function runtimeStats(): RuntimeStats {
  return { ...stats };
}

/** Resets the counters (not the caches). */
export function resetStats(): void {
  for (const k of Object.keys(stats) as (keyof RuntimeStats)[]) stats[k] = 0;
}

/** Live and pooled buffer totals, and the peak of live bytes. */
export function memoryInfo(): MemoryInfo {
  return { liveBuffers, liveBytes, peakBytes, pooledBuffers, pooledBytes };
}

/** Starts measuring the peak of live bytes again from the bytes live now. */
export function resetPeakMemory(): void {
  peakBytes = liveBytes;
}

/** Drops all cached state (after the device is destroyed). */
export function resetRuntime(): void {
  ownerDevice = null;
  compiling.clear();
  uniformBuffer = null;
  pool.clear();
  pendingFree = [];
  pipelines.clear();
  layouts.clear();
  pooledBytes = pooledBuffers = liveBytes = liveBuffers = peakBytes = 0;
}
