/**
 * The lazy graph. A LazyNode is one op applied to source nodes; nothing runs until a value is needed.
 * Realized nodes hold a contiguous buffer (GPU) or a float64 array (CPU reference) and drop their sources.
 * Reference counts (tensor handles + unrealized consumers + saved tensors) decide when storage is freed.
 */
import type { DType } from './dtype.js';
import { numel } from './shape.js';

/** Where a node's values live and which executor realizes them. */
export type Device = 'webgpu' | 'cpu';

/** Broad classes of ops the scheduler treats differently. */
export type OpKind = 'leaf' | 'elementwise' | 'movement' | 'reduce' | 'matmul' | 'gather' | 'contiguous';

/** Arguments of movement ops. */
export type MovementArg =
  | { op: 'reshape'; shape: number[] }
  | { op: 'permute'; perm: number[] }
  | { op: 'expand'; shape: number[] }
  | { op: 'pad'; pads: [number, number][]; value: number }
  | { op: 'shrink'; ranges: [number, number][] }
  | { op: 'flip'; axes: number[] }
  /** sliding windows along `axis`: that axis becomes the window count, a new last axis of `size` is added */
  | { op: 'unfold'; axis: number; size: number; step: number; dilation: number };

/** Frees device storage; installed by the runtime so this module stays device-agnostic. */
export const storageHooks = {
  release(_node: LazyNode): void {},
};

let nextId = 1;

/** One node of the lazy graph. */
export class LazyNode {
  readonly id = nextId++;
  /** Storage once realized: a GPU buffer (webgpu) or float64 values (cpu). */
  buffer: GPUBuffer | null = null;
  host: Float64Array | null = null;
  /** Bytes of `buffer` (its size class). */
  bufferBytes = 0;
  refs = 0;
  freed = false;

  constructor(
    public op: string,
    public kind: OpKind,
    public src: LazyNode[],
    public readonly shape: number[],
    public readonly dtype: DType,
    public readonly device: Device,
    public arg: unknown = undefined,
  ) {
    for (const s of src) s.refs++;
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
    storageHooks.release(this);
    this.buffer = null;
    this.host = null;
    const src = this.src;
    this.src = [];
    for (const s of src) s.release();
  }

  /** Turns this node into a realized leaf holding the given storage, dropping its sources. */
  becomeBuffer(storage: { buffer?: GPUBuffer; bytes?: number; host?: Float64Array }): void {
    this.op = 'buffer';
    this.kind = 'leaf';
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
