/**
 * Device acquisition for the browser (navigator.gpu) and Node (Dawn through the `webgpu` package).
 * In Node with no hardware adapter, kiln prefers Mesa's lavapipe (Dawn finds it by itself once installed)
 * and falls back to the SwiftShader Vulkan driver shipped with Debian's chromium.
 */

import { tuningFor, type TuningChoice } from './tuning.js';
import type { KernelConfig } from './kernels.js';

/** Which kind of adapter kiln is running on. */
export type DriverKind = 'hardware' | 'lavapipe' | 'swiftshader' | 'software';

/** What `deviceInfo()` reports. */
export interface DeviceInfo {
  platform: 'node' | 'browser';
  driver: DriverKind;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  limits: {
    maxStorageBuffersPerShaderStage: number;
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeWorkgroupsPerDimension: number;
    maxUniformBufferBindingSize: number;
  };
  /** Set when a software Vulkan driver was chosen through VK_ICD_FILENAMES. */
  icd?: string;
  /** The kernel tuning in use: a row of the tuning table ('software', 'hardware', …), '+custom' when knobs changed it. */
  tuning: string;
  /**
   * The size of the device's subgroups when every subgroup of a 1-D workgroup is that many consecutive
   * invocations (measured at init); 0 without the 'subgroups' feature or with any other layout. Kernels
   * that share loads across a subgroup need this layout.
   */
  subgroupSize: number;
}

/** Options of `init()`. */
export interface InitOptions {
  /** Use this device instead of acquiring one (kiln does not destroy it). */
  device?: GPUDevice;
  powerPreference?: GPUPowerPreference;
  /**
   * The kernel tuning: 'auto' (by adapter, the default), a row of the tuning table by name, e.g.
   * 'hardware' to run the GPU kernels on a software adapter, or knobs that change the adapter's row (e.g.
   * `{ matmulTile: [4, 8] }`; `npm run bench -- --tune` measures them). In Node the KILN_TUNING variable
   * names a row too.
   */
  tuning?: TuningChoice;
}

/** The live device state. */
export interface DeviceState {
  device: GPUDevice;
  info: DeviceInfo;
  f16: boolean;
  /** Set when the device is lost: every later operation fails with it until `init()` acquires a new device. */
  lost: Error | null;
  /**
   * A WebGPU error that no call captured (kiln captures its own in error scopes): reported once, at the
   * next readback, then cleared, so one bad command never poisons the work after it.
   */
  error: Error | null;
  owned: boolean;
  /** The kernel configuration for this adapter. */
  kernels: KernelConfig;
}

let state: DeviceState | null = null;
/** Dawn's GPU objects must stay referenced while any adapter or device lives (GC of them crashes Dawn). */
const dawnInstances: GPU[] = [];
let initPromise: Promise<DeviceState> | null = null;

/** SwiftShader's Vulkan ICD as installed by Debian's chromium package. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const INSTALL_HINT =
  'No WebGPU adapter found. On Debian 12 as root run `bash scripts/setup-system.sh` from the kiln repository, or:\n' +
  "  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list\n" +
  '  apt-get update && apt-get install -y libvulkan1 chromium && apt-get install -y -t bookworm-backports mesa-vulkan-drivers\n' +
  '(lavapipe from Mesa >= 24 is the software adapter; Mesa 22 is rejected by Dawn; chromium provides the SwiftShader fallback).';

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined';

/**
 * The driver kind from the adapter's description. Browsers may describe nothing (the spec allows empty
 * strings): such an adapter is a GPU unless it says it is a fallback adapter.
 */
export function classify(info: Partial<GPUAdapterInfo> | undefined, fallback: boolean): DriverKind {
  const text = info ? `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.device ?? ''} ${info.description ?? ''}`.toLowerCase() : '';
  if (text.includes('swiftshader')) return 'swiftshader';
  if (text.includes('llvmpipe') || text.includes('lavapipe')) return 'lavapipe';
  if (text.includes('software') || text.includes('warp') || fallback) return 'software';
  return 'hardware';
}

/** How long a wait for Dawn's events polls back to back before it polls once per timer tick. */
const DAWN_SPIN_MS = 1;

/**
 * Dawn for Node (the `webgpu` package) waits for GPU work (mapAsync, onSubmittedWorkDone) by re-queuing a
 * native callback with `setImmediate` until nothing is pending: a busy loop that keeps a CPU core fully
 * busy for as long as the GPU works. On a software adapter that core is one the driver computes on (on 2
 * cores a UNet training step took about twice as long). This lets a wait poll back to back for its first
 * `DAWN_SPIN_MS` (short reads stay fast) and then once per millisecond with a timer. Dawn looks
 * `setImmediate` up on the global object each time; its callback is the only native, unnamed function
 * queued there, so other callers are passed through unchanged. Setting `globalThis.__kilnDawnPolling = true`
 * before `init` keeps Dawn's own loop (`npm run bench:train -- --dawn-busy-poll` compares the two).
 */
function throttleDawnPolling(): void {
  const g = globalThis as unknown as { setImmediate: (fn: (...a: unknown[]) => void, ...args: unknown[]) => unknown; __kilnDawnPolling?: true };
  if (g.__kilnDawnPolling) return;
  g.__kilnDawnPolling = true;
  const immediate = g.setImmediate;
  let waitStart = 0, last = -Infinity, polling = false;
  const throttled = function (this: unknown, fn: (...a: unknown[]) => void, ...args: unknown[]): unknown {
    if (typeof fn === 'function' && fn.name === '' && Function.prototype.toString.call(fn).endsWith('{ [native code] }')) {
      const now = performance.now();
      // a tick more than 2 ms after the last one starts a new wait, unless it comes from a timed poll of the
      // current wait (on a busy machine the timer fires late, and restarting the wait there spun again)
      if (!polling && now - last > 2 * DAWN_SPIN_MS) waitStart = now;
      last = now;
      if (now - waitStart > DAWN_SPIN_MS) {
        return setTimeout(() => {
          polling = true;
          try {
            fn(...args);
          } finally {
            polling = false;
          }
        }, 1);
      }
    }
    return immediate.call(this, fn, ...args);
  };
  // keep util.promisify(setImmediate) working
  const custom = Symbol.for('nodejs.util.promisify.custom');
  (throttled as unknown as Record<symbol, unknown>)[custom] = (immediate as unknown as Record<symbol, unknown>)[custom];
  g.setImmediate = throttled;
}

async function nodeAdapter(powerPreference: GPUPowerPreference | undefined): Promise<{ adapter: GPUAdapter; icd?: string }> {
  const modName = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ modName);
  } catch (e) {
    throw new Error(`kiln.init: cannot load the 'webgpu' package (Dawn for Node): ${(e as Error).message}. Install it: \`npm install webgpu\`.`);
  }
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  throttleDawnPolling();
  const tryCreate = async (): Promise<GPUAdapter | null> => {
    try {
      const instance = mod.create([]);
      dawnInstances.push(instance);
      return await instance.requestAdapter(powerPreference ? { powerPreference } : undefined);
    } catch {
      return null;
    }
  };
  const userIcd = process.env.VK_ICD_FILENAMES;
  const adapter = await tryCreate();
  if (adapter) return { adapter, icd: userIcd };
  if (!userIcd) {
    const fs: typeof import('node:fs') = await import(/* @vite-ignore */ ['node', 'fs'].join(':')); // built at run time: bundlers leave it alone
    if (fs.existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      const fallback = await tryCreate();
      if (fallback) return { adapter: fallback, icd: SWIFTSHADER_ICD };
      delete process.env.VK_ICD_FILENAMES;
    }
  }
  throw new Error(`kiln.init: ${INSTALL_HINT}`);
}

/** The tuning asked for: the option, else KILN_TUNING in Node. */
function tuningOption(opts: InitOptions): TuningChoice | undefined {
  return opts.tuning ?? (isNode ? process.env.KILN_TUNING || undefined : undefined);
}

async function acquire(opts: InitOptions): Promise<DeviceState> {
  if (opts.device) {
    return finish(opts.device, null, undefined, false, tuningOption(opts), await subgroupLayout(opts.device));
  }
  let adapter: GPUAdapter | null;
  let icd: string | undefined;
  if (isNode) {
    ({ adapter, icd } = await nodeAdapter(opts.powerPreference));
  } else {
    const gpu = (globalThis as { navigator?: Navigator }).navigator?.gpu;
    if (!gpu) throw new Error('kiln.init: WebGPU is not available in this browser (navigator.gpu is undefined). Use a browser with WebGPU enabled (Chrome/Edge 113+, Firefox 141+, Safari 26+).');
    adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    if (!adapter) throw new Error('kiln.init: navigator.gpu.requestAdapter() returned no adapter; WebGPU may be disabled or blocklisted for this GPU.');
  }
  const a = adapter!.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: a.maxComputeWorkgroupsPerDimension,
  };
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter!.features.has('shader-f16')) requiredFeatures.push('shader-f16');
  if (adapter!.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  if (adapter!.features.has('subgroups' as GPUFeatureName)) requiredFeatures.push('subgroups' as GPUFeatureName);
  const device = await adapter!.requestDevice({ requiredLimits, requiredFeatures });
  return finish(device, adapter!, icd, true, tuningOption(opts), await subgroupLayout(device));
}

/**
 * The subgroup size S when every subgroup of a 64-invocation workgroup is S consecutive invocations
 * (invocation i is lane i mod S of the subgroup that starts at i − i mod S), else 0. WebGPU leaves the
 * layout to the implementation, so it is checked on the device: a kernel reads each invocation's
 * subgroup size, lane and the index broadcast from lane 0.
 */
async function subgroupLayout(device: GPUDevice): Promise<number> {
  if (!device.features.has('subgroups' as GPUFeatureName)) return 0;
  const n = 64, bytes = 3 * n * 4;
  let buf: GPUBuffer | undefined, read: GPUBuffer | undefined;
  let scoped = false;
  try {
    // synchronous calls inside one error scope, so a device that cannot run the probe reports nothing elsewhere
    device.pushErrorScope('validation');
    scoped = true;
    const module = device.createShaderModule({
      code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32, ${3 * n}>;
@compute @workgroup_size(${n})
fn main(@builtin(local_invocation_index) i: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
  out[3u * i] = size;
  out[3u * i + 1u] = lane;
  out[3u * i + 2u] = subgroupBroadcast(i, 0u);
}`,
    });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    buf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] }));
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, bytes);
    device.queue.submit([enc.finish()]);
    scoped = false;
    if (await device.popErrorScope()) return 0;
    await read.mapAsync(GPUMapMode.READ);
    const v = new Uint32Array(read.getMappedRange().slice(0));
    read.unmap();
    const size = v[0]!;
    if (!(size >= 1 && n % size === 0)) return 0;
    for (let i = 0; i < n; i++) {
      if (v[3 * i] !== size || v[3 * i + 1] !== i % size || v[3 * i + 2] !== i - (i % size)) return 0;
    }
    return size;
  } catch {
    return 0;
  } finally {
    if (scoped) void device.popErrorScope().catch(() => null);
    buf?.destroy();
    read?.destroy();
  }
}

function finish(device: GPUDevice, adapter: GPUAdapter | null, icd: string | undefined, owned: boolean, tuning: TuningChoice | undefined, subgroupSize: number): DeviceState {
  const ai = (adapter?.info ?? (device as unknown as { adapterInfo?: GPUAdapterInfo }).adapterInfo) as GPUAdapterInfo | undefined;
  const fallback = !!((ai as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean } | null)?.isFallbackAdapter);
  const l = device.limits;
  const info: DeviceInfo = {
    platform: isNode ? 'node' : 'browser',
    driver: classify(ai, fallback),
    vendor: ai?.vendor ?? '',
    architecture: ai?.architecture ?? '',
    device: ai?.device ?? '',
    description: ai?.description ?? '',
    features: [...device.features].sort(),
    limits: {
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxUniformBufferBindingSize: l.maxUniformBufferBindingSize,
    },
    tuning: '',
    subgroupSize,
  };
  if (icd) info.icd = icd;
  const row = tuningFor(info, tuning);
  info.tuning = row.name;
  const kernels: KernelConfig = { maxWorkgroupsPerDim: l.maxComputeWorkgroupsPerDimension, subgroupSize, ...row.config };
  const s: DeviceState = { device, info, f16: device.features.has('shader-f16'), lost: null, error: null, owned, kernels };
  device.addEventListener('uncapturederror', (ev) => {
    const e = (ev as GPUUncapturedErrorEvent).error;
    s.error ??= new Error(`kiln: WebGPU error: ${e.message}`);
  });
  void device.lost.then((li) => {
    // k.destroy() drops the state before destroying: a loss seen while the state is current is unexpected
    if (state === s) {
      s.lost = new Error(
        `kiln: the WebGPU device was lost (${li.reason || 'unknown'}${li.message ? `: ${li.message}` : ''}). ` +
          'Tensors on it are gone; call `await k.init()` to acquire a new device and continue (no restart needed).',
      );
    }
  });
  return s;
}

/** Acquires the WebGPU device (idempotent; a `tuning` given again switches the kernels). In Node picks hardware, then lavapipe, then SwiftShader. */
export async function init(opts: InitOptions = {}): Promise<DeviceInfo> {
  // a lost device is replaced: the runtime notices the new device and drops its pools and pipelines
  if (state?.lost) state = null;
  if (state) {
    // the device stays; a tuning asked for anew applies to the kernels built from now on
    if (opts.tuning !== undefined) {
      const row = tuningFor(state.info, opts.tuning);
      state.info.tuning = row.name;
      state.kernels = { maxWorkgroupsPerDim: state.kernels.maxWorkgroupsPerDim, subgroupSize: state.kernels.subgroupSize, ...row.config };
    }
    return state.info;
  }
  initPromise ??= acquire(opts);
  try {
    state = await initPromise;
  } finally {
    initPromise = null;
  }
  return state.info;
}

/** The active device state; throws a clear error before `init()`. */
export function gpu(): DeviceState {
  if (!state) throw new Error('kiln: no device; call `await k.init()` first');
  if (state.lost) throw state.lost;
  return state;
}

/** Takes (and clears) the error no call captured, if any: it is reported once. */
export function takeError(s: DeviceState): Error | null {
  const e = s.lost ?? s.error;
  s.error = null;
  return e;
}

/**
 * Runs `fn` (synchronous WebGPU calls) inside validation and out-of-memory error scopes; the promise
 * resolves to the first error those calls raised, so it belongs to the operation that caused it.
 */
export function captureErrors<T>(device: GPUDevice, fn: () => T): { value: T; errors: Promise<GPUError | null> } {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  const pop = () => {
    const validation = device.popErrorScope();
    const oom = device.popErrorScope();
    return Promise.all([validation, oom]).then(([v, o]) => v ?? o ?? null, () => null);
  };
  let value: T;
  try {
    value = fn();
  } catch (e) {
    void pop();
    throw e;
  }
  return { value, errors: pop() };
}

/** True once `init()` has succeeded (and the device was not lost since). */
export function hasDevice(): boolean {
  return state !== null && !state.lost;
}

/** Describes the adapter in use (driver kind, names, features, limits). */
export function deviceInfo(): DeviceInfo {
  return gpu().info;
}

/** Releases the device (Dawn's threads then let Node exit). Tensors on it become unusable. */
export function destroyDevice(): void {
  if (!state) return;
  const s = state;
  state = null;
  if (s.owned) s.device.destroy();
}
