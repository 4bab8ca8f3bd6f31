/** The tensor layer's public surface: the Tensor, creation, randomness, realization, memory and the tape. */
import './ops/index.js';

export { Tensor, type TensorLike, type ReduceOptions } from './tensor.js';
export { applyElementwise, where, matmul, assertAlive } from './apply.js';
export { checkIndices, unchecked, type IndexRange } from './index-checks.js';
export { setFusion, syncDeviceLimits } from './plan.js';
export { setProgramCache } from './program.js';
export { tensor, full, zeros, ones, zerosLike, onesLike, arange, linspace, eye, setDefaultDevice, getDefaultDevice, withDevice, type NestedArray, type CreateOptions } from './creation.js';
export { manualSeed, getRngState, setRngState, rand, randn, randint, randomHost, Generator, type RandomOptions } from './random.js';
export { cat, stack } from './composites/indexing.js';
export { realize, synchronize } from './realize.js';
export { compile, setCompile, compileCounters, type CompileOptions, type CompiledFunction, type CompileStats } from './compile.js';
export { perCall, PerCall } from './percall.js';
export { scope, keep } from './memory.js';
export { noGrad, isGradEnabled, withGradMode, type BackwardOptions } from './tape.js';
export { autocast, isAutocastEnabled, type AutocastOptions } from './autocast.js';
export { defineElementwise, type ElementwiseSpec, type FragmentContext } from './ops/index.js';
export type { DType, TypedArray } from './dtype.js';
export type { Device } from './node.js';
