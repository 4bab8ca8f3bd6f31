/**
 * Lowering: turns one planned kernel (a stored root, the nodes it reads as buffers, and at most one
 * reduction or matmul core) into a kernel description of IR expressions, by asking each op's definition to
 * lower itself. Lowering only reads the plan; every decision about what is stored was made by the planner.
 */
import { type DType, byteSize } from './dtype.js';
import type { LazyNode } from './node.js';
import { BASE_HELPERS } from './ops/elementwise.js';
import { isCoreDef, type CoreDef } from './ops/registry.js';
import { flatOf, vt, type Index, type Lowering } from './ops/lowering.js';
import * as ir from '../wgsl/ir.js';
import type { Expr } from '../wgsl/ir.js';
import type { Kernel } from '../wgsl/kernels.js';


const f32 = new Float32Array(1);
const f32u = new Uint32Array(f32.buffer);
/** The uniform word holding `value` as a `dt`. */
function paramBits(value: number, dt: DType): number {
  switch (dt) {
    case 'f32': case 'f16': f32[0] = value; return f32u[0]!;
    case 'i32': return (value | 0) >>> 0;
    case 'u32': return value >>> 0;
    case 'bool': return value ? 1 : 0;
  }
}

/** Where a uniform parameter word comes from: run-time scalar `i` of leaf `node`, as a `dt`. */
export interface ParamSource {
  node: LazyNode;
  i: number;
  dt: DType;
}

/** The uniform word of a parameter source. */
export function paramWord(n: LazyNode, i: number, dt: DType): number {
  const def = n.def;
  if (!('params' in def) || !def.params) throw new Error(`kiln internal error: '${n.op}' has no run-time scalars`);
  return paramBits(def.params(n)[i]!, dt);
}

/** What the planner decided for one kernel. */
export interface KernelPlan {
  /** The node the kernel stores. */
  root: LazyNode;
  /** The reduction or matmul at its core (null: an elementwise kernel). */
  core: LazyNode | null;
  /** The stored nodes it reads, in binding order. */
  inputs: LazyNode[];
}

/** Builds the IR of one planned kernel. */
class KernelBuilder implements Lowering {
  private readonly slots = new Map<LazyNode, number>();
  /** Where each parameter word comes from, so a cached program can recompute them for a new graph. */
  readonly sources: ParamSource[] = [];
  private readonly paramSlots = new Map<LazyNode, number[]>();
  readonly helpers = new Set<string>();
  /** value(n, idx) per node and index object: a DAG is lowered once per distinct position, not once per path. */
  private readonly memo = new Map<LazyNode, Map<Index, Expr>>();

  constructor(private readonly plan: KernelPlan) {
    plan.inputs.forEach((n, i) => this.slots.set(n, i));
  }

  slot(n: LazyNode): number {
    const s = this.slots.get(n);
    if (s === undefined) throw new Error(`kiln internal error: '${n.op}' node read as a buffer but not planned as an input`);
    return s;
  }

  /**
   * A run-time scalar. Slots are keyed by where the value comes from (node and index), never by the value:
   * two scalars that happen to be equal in one step (a bias correction and a decay, two RNG key words) differ
   * in the next, and a kernel's source must not change with them, or every step would compile new pipelines.
   */
  param(n: LazyNode, i: number, dt: DType): Expr {
    let byNode = this.paramSlots.get(n);
    if (!byNode) this.paramSlots.set(n, (byNode = []));
    let s = byNode[i];
    if (s === undefined) {
      s = byNode[i] = this.sources.length;
      this.sources.push({ node: n, i, dt });
    }
    return { k: 'param', slot: s, t: vt(dt) };
  }

  helper(code: string): void {
    this.helpers.add(code);
  }

  /** The most elements of any tensor the kernel indexes (see Kernel.indexBound). */
  private indexBound = 1;

  load(n: LazyNode, idx: Index): Expr {
    this.indexBound = Math.max(this.indexBound, n.size);
    return { k: 'load', slot: this.slot(n), idx: flatOf(idx), t: vt(n.dtype), half: n.dtype === 'f16', bool: n.dtype === 'bool' };
  }

  value(n: LazyNode, idx: Index): Expr {
    let byIdx = this.memo.get(n);
    const hit = byIdx?.get(idx);
    if (hit) return hit;
    const e = this.compute(n, idx);
    if (!byIdx) this.memo.set(n, (byIdx = new Map()));
    byIdx.set(idx, e);
    return e;
  }

  /** The ops fused into the kernel (for error messages). */
  readonly ops = new Set<string>();

  private compute(n: LazyNode, idx: Index): Expr {
    this.indexBound = Math.max(this.indexBound, n.size);
    if (n.realized || (n !== this.plan.root && this.slots.has(n))) return this.load(n, idx);
    if (n.kind !== 'movement') this.ops.add(n.op);
    const def = n.def;
    if (isCoreDef(def)) {
      if (n !== this.plan.core) throw new Error(`kiln internal error: unplanned '${n.op}' inside a kernel`);
      return ir.v('acc', def.accType(n));
    }
    return def.lower(n, idx, this);
  }

  /** The kernel description. */
  build(): Kernel {
    const { root, core } = this.plan;
    // the flat index of the output element (of an elementwise kernel's invocation, or of the core's output)
    const epilogue = this.value(root, { flat: ir.v('gid', 'u32', root.size), shape: root.shape });
    const partial = core ? (core.def as CoreDef).kernel(core, this, epilogue) : { kind: 'elementwise' as const, size: root.size, value: epilogue };
    if (core) this.ops.add(core.op);
    return { ...partial, inputs: this.plan.inputs.map((x) => x.dtype), outDtype: root.dtype, nParams: this.sources.length, helpers: [BASE_HELPERS, ...this.helpers], ops: [...this.ops], indexBound: this.indexBound } as Kernel;
  }
}

/** Lowers a planned kernel: its description and where its uniform parameter words come from. */
export function lowerKernel(plan: KernelPlan): { kernel: Kernel; sources: ParamSource[] } {
  const b = new KernelBuilder(plan);
  const kernel = b.build();
  return { kernel, sources: b.sources };
}

/** Bytes of the stored form of a node. */
export function storageBytes(n: LazyNode): number {
  return Math.max(4, Math.ceil((n.size * byteSize(n.dtype)) / 4) * 4);
}
