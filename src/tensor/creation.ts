/** Creating tensors: from host data, constants, ranges, identity; and the default device. */
import { type DType, type TypedArray, checkDType, coerce, floatToHalf, isFloat } from './dtype.js';
import { LazyNode, checkIndexable, type Device } from './node.js';
import { checkShape, fmt, numel, type Shape } from './shape.js';
import { scope } from './memory.js';
import { Tensor } from './tensor.js';
import { broadcastTo, constNode, mk, where } from './apply.js';
import { gpu } from '../wgsl/device.js';
import { uploadBuffer } from '../wgsl/runtime.js';
import { noteUpload, tracing } from './trace.js';
import { HOST_COPY_MAX } from './checks.js';

/** Nested JS arrays of numbers or booleans. */
export type NestedArray = number | boolean | NestedArray[];

/** Options of creation functions. */
export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  /** Make the new tensor a leaf whose gradient `backward()` fills. */
  requiresGrad?: boolean;
}

export function leaf(t: Tensor, opts: { requiresGrad?: boolean }): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

let defaultDevice: Device = 'webgpu';

/** Sets the device new tensors are created on ('webgpu' or the float64 'cpu' reference). */
export function setDefaultDevice(d: Device): void {
  if (d !== 'webgpu' && d !== 'cpu') throw new Error(`setDefaultDevice: unknown device '${d}'; expected 'webgpu' or 'cpu'`);
  defaultDevice = d;
}

/** The device a creation function puts its tensor on (its `device` option, else the default). */
export function defaultDeviceOf(opts: CreateOptions): Device {
  return opts.device ?? defaultDevice;
}

/** The device new tensors are created on. */
export function getDefaultDevice(): Device {
  return defaultDevice;
}

/** Runs `fn` with new tensors created on `device`. */
export function withDevice<T>(device: Device, fn: () => T): T {
  const prev = defaultDevice;
  setDefaultDevice(device);
  try {
    const r = fn();
    if (r instanceof Promise) return r.finally(() => (defaultDevice = prev)) as T;
    defaultDevice = prev;
    return r;
  } catch (e) {
    defaultDevice = prev;
    throw e;
  }
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let d: NestedArray = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    d = d[0] as NestedArray;
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new Error(`tensor: ragged nested array (expected a scalar at depth ${depth})`);
    if (typeof data !== 'number' && typeof data !== 'boolean') throw new TypeError(`tensor: expected numbers or booleans, got ${typeof data}`);
    out.push(Number(data));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) throw new Error(`tensor: ragged nested array (expected length ${shape[depth]} at depth ${depth})`);
  for (const x of data) flatten(x, shape, out, depth + 1);
}

/** The typed array a GPU buffer of `dtype` holds for `values` (what an upload writes). */
export function hostArray(values: ArrayLike<number>, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'f32': return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'i32': return values instanceof Int32Array ? values : Int32Array.from(values, (v) => coerce(v, 'i32'));
    case 'u32': return values instanceof Uint32Array ? values : Uint32Array.from(values, (v) => coerce(v, 'u32'));
    case 'bool': return Uint32Array.from(values, (v) => (v ? 1 : 0));
    case 'f16': return Uint16Array.from(values, (v) => floatToHalf(v));
  }
}

/** The values an integer dtype holds (i32, u32), else null. */
function intRange(dtype: DType): [number, number] | null {
  return dtype === 'i32' ? [-2147483648, 2147483647] : dtype === 'u32' ? [0, 4294967295] : null;
}

/** Rejects values an integer dtype cannot hold (they would wrap); fractions truncate toward zero, as in PyTorch. */
function checkIntValues(op: string, values: ArrayLike<number>, dtype: DType): void {
  const r = intRange(dtype);
  if (!r || (dtype === 'i32' && values instanceof Int32Array) || (dtype === 'u32' && values instanceof Uint32Array)) return;
  for (let i = 0; i < values.length; i++) {
    const t = Math.trunc(Number(values[i]));
    if (!(t >= r[0] && t <= r[1])) throw new RangeError(`${op}: value ${values[i]} cannot be held by ${dtype} without overflow (range ${r[0]} to ${r[1]})`);
  }
}

function fromHost(values: ArrayLike<number>, shape: number[], dtype: DType, device: Device): Tensor {
  checkIntValues('tensor', values, dtype);
  const node = new LazyNode('buffer', [], shape, dtype, device);
  if (device === 'cpu') {
    // the float64 reference keeps float inputs exact (it computes in float64 throughout)
    const h = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) h[i] = isFloat(dtype) ? Number(values[i]) : coerce(values[i]!, dtype);
    node.host = h;
  } else {
    if (dtype === 'f16' && !gpu().f16) throw new Error("tensor: dtype 'f16' needs the adapter feature 'shader-f16', which this adapter lacks");
    const host = hostArray(values, dtype);
    const b = uploadBuffer(host);
    if (tracing()) noteUpload(node, host);
    node.buffer = b.buffer;
    node.bufferBytes = b.bytes;
    // small integer tensors keep their values on the host too, so index checks happen at the call
    if ((host instanceof Int32Array || host instanceof Uint32Array) && dtype !== 'bool' && host.length <= HOST_COPY_MAX) node.hostValues = host.slice();
  }
  return new Tensor(node);
}

/** Creates a tensor from nested arrays, a typed array or a number (copying the data). */
export function tensor(data: NestedArray | TypedArray | ArrayLike<number>, opts: CreateOptions & { shape?: number[] } = {}): Tensor {
  const device = opts.device ?? defaultDevice;
  let values: ArrayLike<number>;
  let shape: number[];
  let inferred: DType = 'f32';
  if (ArrayBuffer.isView(data)) {
    values = data as ArrayLike<number>;
    shape = opts.shape ?? [values.length];
    if (data instanceof Int32Array) inferred = 'i32';
    else if (data instanceof Uint32Array) inferred = 'u32';
  } else {
    shape = inferShape(data as NestedArray);
    const flat: number[] = [];
    flatten(data as NestedArray, shape, flat);
    values = flat;
    let d: unknown = data;
    while (Array.isArray(d)) d = d[0];
    if (typeof d === 'boolean') inferred = 'bool';
    if (opts.shape) {
      if (numel(opts.shape) !== flat.length) throw new Error(`tensor: shape ${fmt(opts.shape)} does not match ${flat.length} values`);
      shape = opts.shape;
    }
  }
  checkShape('tensor', shape);
  if (numel(shape) !== values.length) throw new Error(`tensor: shape ${fmt(shape)} needs ${numel(shape)} values, got ${values.length}`);
  const dtype = opts.dtype ? checkDType(opts.dtype, 'tensor') : inferred;
  return leaf(fromHost(values, shape, dtype, device), opts);
}

/** A tensor filled with `value`. */
export function full(shape: Shape, value: number | boolean, opts: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  if ((opts.device ?? defaultDevice) === 'webgpu') checkIndexable('full', shape);
  const dtype = opts.dtype ? checkDType(opts.dtype, 'full') : typeof value === 'boolean' ? 'bool' : 'f32';
  checkIntValues('full', [Number(value)], dtype);
  const c = constNode(Number(value), dtype, opts.device ?? defaultDevice);
  return leaf(broadcastTo(c, [...shape]), opts);
}

/** Zeros. */
export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  checkShape('zeros', shape);
  if ((opts.device ?? defaultDevice) === 'webgpu') checkIndexable('zeros', shape);
  return full(shape, 0, opts);
}

/** Ones. */
export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  checkShape('ones', shape);
  if ((opts.device ?? defaultDevice) === 'webgpu') checkIndexable('ones', shape);
  return full(shape, 1, opts);
}

/** Zeros with the shape, dtype and device of `t`. */
export function zerosLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, device: t.device, ...opts });
}

/** Ones with the shape, dtype and device of `t`. */
export function onesLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, device: t.device, ...opts });
}

/** 0, 1, …, n−1 as a leaf of the graph (no storage). */
export function iota(n: number, dtype: DType, device: Device): Tensor {
  return mk('iota', [], [n], dtype, device);
}

/** Values start, start+step, … below end (like torch.arange); `arange(n)` counts 0..n-1. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) { end = start; start = 0; }
  if (step === 0 || !Number.isFinite(step)) throw new Error(`arange: step must be a non-zero finite number, got ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const allInt = [start, end, step].every(Number.isInteger);
  const dtype = opts.dtype ?? (allInt ? 'i32' : 'f32');
  const device = opts.device ?? defaultDevice;
  return scope(() => {
    const i = iota(n, isFloat(dtype) ? 'f32' : dtype === 'u32' ? 'u32' : 'i32', device);
    return (step === 1 ? i : i.mul(step)).add(start).cast(dtype);
  });
}

/** `steps` evenly spaced values from start to end inclusive (endpoints exact). */
export function linspace(start: number, end: number, steps: number, opts: CreateOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`linspace: steps must be a non-negative integer, got ${steps}`);
  const device = opts.device ?? defaultDevice;
  const dtype = opts.dtype ?? 'f32';
  if (steps <= 1) return full([steps], start, { dtype, device });
  const step = (end - start) / (steps - 1);
  return scope(() => {
    const i = iota(steps, 'f32', device);
    const half = Math.floor(steps / 2);
    return where(i.lt(half), i.mul(step).add(start), i.sub(steps - 1).mul(step).add(end)).cast(dtype);
  });
}

/** Identity matrix n×m. */
export function eye(n: number, m = n, opts: CreateOptions = {}): Tensor {
  for (const [name, v] of [['n', n], ['m', m]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`eye: ${name} must be a non-negative integer, got ${v}`);
  }
  const device = opts.device ?? defaultDevice;
  return scope(() => iota(n, 'i32', device).reshape([n, 1]).eq(iota(m, 'i32', device).reshape([1, m])).cast(opts.dtype ?? 'f32'));
}
