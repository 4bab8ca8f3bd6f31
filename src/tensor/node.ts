/**
 * The lazy graph. A LazyNode is one op applied to source nodes; nothing runs until a value is needed.
 * Realized nodes hold a contiguous buffer (GPU) or a float64 array (CPU reference) and drop their sources.
 * Reference counts (tensor handles + unrealized consumers + saved tensors) decide when storage is freed.
 */
import type { DType } from './dtype.js';
import { numel } from './shape.js';
import { opDef, type OpDef, type OpKind } from './ops/registry.js';
import { releaseBuffer } from '../wgsl/runtime.js';

export type { OpKind };

/** Where a node's values live and which executor realizes them. */
export type Device = 'webgpu' | 'cpu';

let nextId = 1;

/** Most elements a GPU tensor may have: kernels index with u32 (a wider count would wrap, or not compile). */
export const MAX_ELEMENTS = 0xffffffff;

/** Throws at graph-build time, naming the op, when a GPU tensor's elements cannot be indexed. */
export function checkIndexable(op: string, shape: readonly number[]): void {
  let n = 1;
  for (const d of shape) n *= d;
  if (n > MAX_ELEMENTS) throw new RangeError(`${op}: a tensor of shape [${shape.join(', ')}] has ${n} elements, beyond what kiln's GPU kernels can index (at most ${MAX_ELEMENTS} = 2^32 - 1 elements); split it into smaller tensors`);
}

/** The id the next node will get (nodes made later have larger ids). */
export function nextNodeId(): number {
  return nextId;
}

/** One node of the lazy graph. */
export class LazyNode {
  readonly id = nextId++;
  /** Storage once realized: a GPU buffer (webgpu) or float64 values (cpu). */
  buffer: GPUBuffer | null = null;
  host: Float64Array | null = null;
  /** A host copy of the values of a small integer tensor made from host data (for index checks at the call). */
  hostValues: Int32Array | Uint32Array | null = null;
  /** Bytes of `buffer` (its size class). */
  bufferBytes = 0;
  refs = 0;
  freed = false;

  /** The op's definition (shape rule, lowering, reference, VJP). */
  def: OpDef;

  constructor(
    public op: string,
    public src: LazyNode[],
    public readonly shape: number[],
    public readonly dtype: DType,
    public readonly device: Device,
    public arg: unknown = undefined,
  ) {
    this.def = opDef(op);
    if (device === 'webgpu' && shape.length) checkIndexable(op, shape);
    for (const s of src) s.refs++;
  }

  /** The op's kind. */
  get kind(): OpKind {
    return this.def.kind;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** True when the node's values are stored (no computation pending). */
  get realized(): boolean {
    return this.op === 'buffer';
  }

  /** Adds a reference (a tensor handle, a consumer or a saved tensor). */
  retain(): this {
    if (this.freed) throw new Error('kiln: use of a disposed tensor');
    this.refs++;
    return this;
  }

  /** Drops a reference; at zero frees storage and releases the sources. */
  release(): void {
    if (--this.refs > 0) return;
    this.free();
  }

  private free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.buffer) releaseBuffer(this.buffer);
    this.buffer = null;
    this.host = null;
    this.hostValues = null;
    const src = this.src;
    this.src = [];
    for (const s of src) s.release();
  }

  /** Turns this node into a realized leaf holding the given storage, dropping its sources. */
  becomeBuffer(storage: { buffer?: GPUBuffer; bytes?: number; host?: Float64Array }): void {
    this.op = 'buffer';
    this.def = opDef('buffer');
    this.arg = undefined;
    if (storage.buffer) { this.buffer = storage.buffer; this.bufferBytes = storage.bytes ?? storage.buffer.size; }
    if (storage.host) this.host = storage.host;
    const src = this.src;
    this.src = [];
    for (const s of src) s.release();
  }
}

/** Follows movement ops down to the first non-movement node. */
export function baseOf(n: LazyNode): LazyNode {
  while (n.kind === 'movement') n = n.src[0]!;
  return n;
}
