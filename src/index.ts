/**
 * kiln — a WebGPU tensor engine: lazy tensors fused into WGSL kernels, the same in the browser and in Node.
 *
 *   import * as k from 'kiln-gpu';
 *   await k.init();
 *   const y = k.tensor([[1, 2], [3, 4]]).matmul(k.randn([2, 3])).relu();
 *   console.log(await y.tolist());
 */
import { loadAsyncContext } from './tensor/context.js';
import { init as initDevice, deviceInfo, destroyDevice, type DeviceInfo, type InitOptions } from './wgsl/device.js';
import { memoryInfo, profileKernels, resetPeakMemory, resetRuntime, resetStats as resetRuntimeStats, runtimeStats, trimPool, type KernelProfile, type MemoryInfo, type RuntimeStats } from './wgsl/runtime.js';
import { applyElementwise, compileCounters, defineElementwise, syncDeviceLimits, Tensor, type ElementwiseSpec, type TensorLike } from './tensor/index.js';
import { dropChecks } from './tensor/checks.js';

export type { DeviceInfo, InitOptions, MemoryInfo, RuntimeStats };
export {
  Tensor, tensor, full, zeros, ones, zerosLike, onesLike, arange, linspace, eye,
  manualSeed, getRngState, setRngState, rand, randn, randint, randomHost, Generator,
  where, cat, stack, matmul, realize, synchronize, setFusion, setProgramCache, setDefaultDevice, getDefaultDevice, withDevice,
  scope, keep, noGrad, isGradEnabled, autocast, isAutocastEnabled, compile, setCompile, perCall, PerCall,
  type TensorLike, type NestedArray, type CreateOptions, type RandomOptions, type ReduceOptions, type BackwardOptions, type CompileOptions, type CompiledFunction, type CompileStats, type AutocastOptions, type DType, type TypedArray, type Device,
} from './tensor/index.js';
export { grad, valueAndGrad, gradients, gradcheck, checkpoint, type GradOptions, type GradcheckInput, type GradcheckResult } from './autograd/index.js';
export * as nn from './nn/index.js';
export * as F from './nn/functional.js';
export * as optim from './nn/optim-index.js';
export * as data from './data/index.js';
export * as diffusion from './diffusion/index.js';
export * as train from './train/index.js';
export * as io from './io/index.js';
export { save, load, loadWithMetadata, loadHeader, serialize, deserialize, NonFiniteTensorError, type Metadata, type SafetensorsHeader, type SaveOptions } from './nn/safetensors.js';
export { deviceInfo };
export { philox4x32 } from './wgsl/rng.js';

/** Acquires the WebGPU device: navigator.gpu in browsers; Dawn in Node (hardware, else lavapipe, else SwiftShader). */
export async function init(opts: InitOptions = {}): Promise<DeviceInfo> {
  await loadAsyncContext();
  const info = await initDevice(opts);
  syncDeviceLimits();
  return info;
}

/** Releases the device and all GPU memory (lets Node exit). */
export function destroy(): void {
  trimPool();
  destroyDevice();
  resetRuntime();
  dropChecks();
}

/** What `k.stats()` counts: the runtime's counters and the replays of compiled functions. */
export interface Stats extends RuntimeStats {
  /** Calls of compiled functions (`k.compile`) that replayed a trace. */
  replays: number;
}

/** Counters: kernels, dispatches, submits, pipelines compiled, bytes allocated, readbacks, replays. */
export function stats(): Stats {
  return { ...runtimeStats(), replays: compileCounters.replays };
}

/** Resets the counters of `stats()`. */
export function resetStats(): void {
  resetRuntimeStats();
  compileCounters.replays = 0;
}

/** GPU time per kind of kernel while `fn` runs (timestamp queries; sorted, largest first). */
export const profile: (fn: () => Promise<void>) => Promise<KernelProfile[]> = profileKernels;
export type { KernelProfile };

/** Live and pooled GPU buffers and bytes, and the peak of live bytes since `resetPeakMemory()`. */
export function memory(): MemoryInfo {
  return memoryInfo();
}

/** Makes `memory().peakBytes` measure from now (PyTorch's reset_peak_memory_stats). */
export { resetPeakMemory };

/** Frees pooled GPU buffers that no tensor uses. */
export { trimPool };

/**
 * Registers a user elementwise op: a WGSL expression over `$0`, `$1`… (or a builder), a float64 reference,
 * and optionally a dtype rule, helper WGSL functions and a VJP. It fuses like built-in ops.
 * Returns a function applying it with broadcasting.
 *
 *   const swish = k.defineOp({ name: 'swish', arity: 1, float: true,
 *     wgsl: '$0 / (1.0 + exp(-$0))', ref: (x) => x / (1 + Math.exp(-x)) });
 *   swish(x)
 */
export function defineOp(spec: ElementwiseSpec): (...inputs: TensorLike[]) => Tensor {
  const def = defineElementwise(spec);
  return (...inputs: TensorLike[]) => applyElementwise(def.name, inputs);
}
