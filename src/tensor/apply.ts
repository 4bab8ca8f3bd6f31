/**
 * How primitives are applied: node construction and recording for backward, device checks, the dtypes of
 * JS scalars next to tensors, broadcasting, and the two free-function primitives `where` and `matmul`.
 */
import { type DType, coerce, isFloat, promote } from './dtype.js';
import { elementwiseDef, opDef, type MovementArgs, type MovementDef, type MovementOp } from './ops/index.js';
import { LazyNode, type Device } from './node.js';
import { broadcastShapes, fmt, numel, shapesEqual } from './shape.js';
import { scope } from './memory.js';
import { autocastDtype, record } from './tape.js';
import { wideDtypes } from './autocast.js';
import { getDefaultDevice } from './creation.js';
import { Tensor } from './tensor.js';

// ------------------------------------------------------------------------------------------------
// Node construction

/** Throws `<op>: the tensor was disposed` when any of `ts` was disposed (checked at the call site of every op). */
export function assertAlive(op: string, ts: readonly unknown[]): void {
  for (const t of ts) {
    if (t instanceof Tensor && t.disposed) throw new Error(`${op}: the tensor was disposed`);
    if (Array.isArray(t)) assertAlive(op, t);
  }
}

/** Applies primitive `op` to `src` (the arguments already checked), recording it for backward. */
export function mk(op: string, src: Tensor[], shape: number[], dtype: DType, device: Device, arg?: unknown): Tensor {
  for (const t of src) if (t.disposed) throw new Error(`${op}: the tensor was disposed`);
  const node = new LazyNode(op, src.map((t) => t.node), shape, dtype, device, arg);
  const out = new Tensor(node);
  if (src.length) record({ def: node.def, inputs: src, out, arg });
  return out;
}

/** The device all of `ts` are on (an error naming `op` when they differ). */
export function deviceOf(op: string, ts: Tensor[]): Device {
  const d = ts[0]?.device ?? getDefaultDevice();
  for (const t of ts) {
    if (t.device !== d) throw new Error(`${op}: tensors are on different devices (${d} and ${t.device}); move them to one device first`);
  }
  return d;
}

/** A 0-d constant of dtype on device. */
export function constNode(value: number, dtype: DType, device: Device): Tensor {
  // float constants keep their float64 value (the GPU rounds them to f32; the reference computes in float64)
  return mk('const', [], [], dtype, device, isFloat(dtype) ? value : coerce(value, dtype));
}

/** Applies a movement op; the output shape comes from its definition. */
export function movement<O extends MovementOp>(t: Tensor, op: O, arg: MovementArgs[O]): Tensor {
  const def = opDef(op) as MovementDef<MovementArgs[O]>;
  return mk(op, [t], def.shape(t.shape, arg), t.dtype, t.device, arg);
}

/** A tensor or a JS number (a "weak" scalar that adopts the tensor operands' dtype). */
export type TensorLike = Tensor | number | boolean;

/** The dtype a JS scalar takes next to tensors of these dtypes (PyTorch's weak scalar rules). */
function scalarDtype(v: number | boolean, tensorDtypes: DType[]): DType {
  const t = tensorDtypes.length ? tensorDtypes.reduce(promote) : null;
  if (typeof v === 'boolean') return t ?? 'bool';
  if (t === null) return 'f32';
  if (!Number.isInteger(v)) return isFloat(t) ? t : 'f32';
  return t === 'bool' ? 'i32' : t;
}

/** Applies a registered elementwise op with broadcasting and dtype casting. */
export function applyElementwise(op: string, inputs: TensorLike[], arg?: unknown): Tensor {
  const def = elementwiseDef(op);
  if (inputs.length !== def.arity) throw new Error(`${op}: expected ${def.arity} inputs, got ${inputs.length}`);
  const tensors = inputs.filter((x): x is Tensor => x instanceof Tensor);
  assertAlive(op, tensors);
  for (const x of inputs) {
    if (!(x instanceof Tensor) && typeof x !== 'number' && typeof x !== 'boolean') throw new TypeError(`${op}: expected tensors or numbers, got ${describe(x)}`);
  }
  const device = deviceOf(op, tensors);
  const tds = tensors.map((t) => t.dtype);
  const ts = inputs.map((x) => (x instanceof Tensor ? x : constNode(Number(x), scalarDtype(x, tds), device)));
  const inDt = def.inputs(wideDtypes(op, ts.map((t) => t.dtype)), arg);
  const shape = broadcastShapes(op, ...ts.map((t) => t.shape));
  const srcs = ts.map((t, i) => broadcastTo(t.cast(inDt[i]!), shape));
  return mk(op, srcs, shape, def.dtype(inDt, arg), device, arg);
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array (wrap it with k.tensor)';
  return typeof x;
}

/** `t` broadcast to `shape` (a view; leading axes added as needed). */
export function broadcastTo(t: Tensor, shape: number[]): Tensor {
  if (shapesEqual(t.shape, shape)) return t;
  let x = t;
  if (x.shape.length < shape.length) x = x.reshape([...new Array(shape.length - x.shape.length).fill(1), ...x.shape]);
  if (shapesEqual(x.shape, shape)) return x;
  return movement(x, 'expand', { shape });
}

// ------------------------------------------------------------------------------------------------
// Free functions

/** Elementwise choice: cond ? a : b (broadcasting). */
export function where(cond: TensorLike, a: TensorLike, b: TensorLike): Tensor {
  return applyElementwise('where', [cond, a, b]);
}

/** Matrix product with NumPy/PyTorch semantics: 1-D operands, batch broadcasting; transposed views cost nothing. */
export function matmul(x: Tensor, other: Tensor): Tensor {
  if (!(other instanceof Tensor)) throw new TypeError('matmul: expected a Tensor');
  assertAlive('matmul', [x, other]);
  if (x.rank === 0 || other.rank === 0) throw new Error(`matmul: both operands need at least 1 dimension, got ${fmt(x.shape)} and ${fmt(other.shape)}`);
  const device = deviceOf('matmul', [x, other]);
  return scope(() => {
    let a = x, b = other;
    const aVec = a.rank === 1, bVec = b.rank === 1;
    if (aVec) a = a.reshape([1, a.shape[0]!]);
    if (bVec) b = b.reshape([b.shape[0]!, 1]);
    const K = a.shape[a.rank - 1]!;
    if (b.shape[b.rank - 2] !== K) throw new Error(`matmul: shapes ${fmt(x.shape)} and ${fmt(other.shape)} are not aligned (inner dimensions ${K} and ${b.shape[b.rank - 2]})`);
    const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    const M = a.shape[a.rank - 2]!, N = b.shape[b.rank - 1]!;
    let dt = promote(a.dtype, b.dtype);
    if (!isFloat(dt)) dt = 'f32';
    dt = autocastDtype() ?? dt; // mixed precision: f16 operands and result (see ./autocast.ts)
    let out: Tensor;
    if (b.rank === 2 && a.rank > 2) {
      // a batch of rows times one matrix (a Linear layer on [B, T, C]) is one matmul of B·T rows: one kernel
      // with full tiles, and a weight gradient that sums over B·T in its k loop instead of B matmuls and a sum
      out = mk('matmul', [a.cast(dt).reshape([numel(batch) * M, K]), b.cast(dt)], [numel(batch) * M, N], dt, device).reshape([...batch, M, N]);
    } else {
      a = a.cast(dt).expand([...batch, M, K]);
      b = b.cast(dt).expand([...batch, K, N]);
      out = mk('matmul', [a, b], [...batch, M, N], dt, device);
    }
    if (aVec) out = out.squeeze(-2);
    if (bVec) out = out.squeeze(-1);
    return out;
  });
}
