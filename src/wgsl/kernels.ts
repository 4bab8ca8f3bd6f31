/**
 * Kernel descriptions and their rendering to WGSL passes. Three shapes of kernel cover every primitive:
 * elementwise (./elementwise.ts), reduce (./reduce.ts: a loop over the reduced elements, split in two passes
 * when there are few outputs) and matmul (./matmul.ts: register-blocked tiles); ./kernel-source.ts holds what
 * they share. Each takes an elementwise epilogue so the surrounding elementwise work fuses into it.
 */
import { type DType, wgslType } from './dtype.js';
import type { Expr, VT } from './ir.js';
import { renderElementwise } from './elementwise.js';
import { renderMatmul } from './matmul.js';
import { renderReduce } from './reduce.js';

export { indexLifting } from './kernel-source.js';
export { reduceSplit } from './reduce.js';
export { matmulSplitK } from './matmul.js';

/** A sub-dimension of an operand axis: [size, stride]. */
export type Atom = [size: number, stride: number];

/** Parts every kernel has. */
export interface KernelBase {
  /** dtypes of the input buffers, by binding slot. */
  inputs: DType[];
  outDtype: DType;
  /** Number of 32-bit uniform parameters. */
  nParams: number;
  /** WGSL helper declarations the bodies call (each emitted once). */
  helpers: string[];
  /** The ops fused into the kernel (for error messages). */
  ops?: string[];
  /**
   * The largest number of elements of any tensor the kernel indexes (its inputs, outputs and the views
   * between): index constants are lifted into uniforms only below LIFT_LIMIT. Unknown: baked.
   */
  indexBound?: number;
}

/** out[gid] = value(gid), plus optional further outputs of the same size computed in the same pass. */
export interface ElementwiseKernel extends KernelBase {
  kind: 'elementwise';
  size: number;
  value: Expr; // vars: gid
  /** More outputs (horizontal fusion): OUT1, OUT2, … */
  extra?: { value: Expr; dtype: DType }[];
}

/** out[gid] = epilogue(gid, reduce_{r < redSize} body(o = gid, r)). */
export interface ReduceKernel extends KernelBase {
  kind: 'reduce';
  op: 'sum' | 'max';
  outSize: number;
  redSize: number;
  accType: VT;
  body: Expr; // vars: o, r
  epilogue: Expr; // vars: gid, acc
  /**
   * More reductions of the same op, sizes and accumulator over the same loop (horizontal fusion): OUT1, OUT2, …
   * (e.g. the two sums of a normalization's backward, which both read the upstream gradient).
   */
  extra?: { body: Expr; epilogue: Expr; dtype: DType }[];
}

/** A strided operand of a matmul. */
export interface MatmulOperand {
  slot: number;
  offset: number;
  /** strides over the (broadcast) batch dims */
  batchStrides: number[];
  /** the row and column axes as [size, stride] sub-dimensions, outermost first (empty: size 1) */
  rows: Atom[];
  cols: Atom[];
}

/** out[b, m, n] = epilogue(gid, Σ_k A[b, m, k] · B[b, k, n]). */
export interface MatmulKernel extends KernelBase {
  kind: 'matmul';
  batchShape: number[];
  M: number;
  N: number;
  K: number;
  a: MatmulOperand;
  b: MatmulOperand;
  epilogue: Expr; // vars: gid, acc
}

/** Any kernel description. */
export type Kernel = ElementwiseKernel | ReduceKernel | MatmulKernel;

/** A binding of one pass. */
export type Binding =
  | { kind: 'in'; slot: number }
  | { kind: 'out'; index: number }
  | { kind: 'scratch'; write: boolean }
  | { kind: 'params' };

/** One compute dispatch. */
export interface Pass {
  code: string;
  workgroups: [number, number, number];
  bindings: Binding[];
  /** Bytes of the scratch buffer shared by the passes of one kernel. */
  scratchBytes?: number;
  /** Words the pass appends to its kernel's parameters (sizes it reads at run time instead of baking in). */
  params?: number[];
}

/** Tuning knobs chosen per adapter. */
export interface KernelConfig {
  maxWorkgroupsPerDim: number;
  /** The device's subgroup size when its subgroups are consecutive invocations (`DeviceInfo.subgroupSize`), else 0. */
  subgroupSize: number;
  /** Target number of partial sums for a split reduction. */
  reducePartials: number;
  /** Minimum elements one invocation reduces before a split is worth it. */
  reduceMinChunk: number;
  /** Partial r mapping: 'chunk' (contiguous per invocation) or 'stride' (interleaved). */
  reduceMapping: 'chunk' | 'stride';
  /** The partials of a split reduction are reduced by a workgroup per output (a tree in workgroup memory), not one invocation. */
  reduceTree: boolean;
  /**
   * 'registers': each invocation reads A and B from their buffers into a register tile (CPU drivers, where
   * workgroup memory is no faster than a buffer); 'shared': workgroups stage blocks of A and B in workgroup
   * memory (GPUs).
   */
  matmulKernel: 'registers' | 'shared';
  /** Matmul outputs per invocation (rows × cols). */
  matmulTile: [number, number];
  /**
   * Steps of k per loop iteration of a register-tile matmul: with 2, each accumulator takes two products
   * between being loaded and stored (an 8×8 tile's 64 accumulators live in memory on a CPU driver), in the
   * same order as one at a time.
   */
  matmulUnrollK: 1 | 2 | 4;
  /**
   * Register-tile matmuls share the loads of A within a subgroup (on devices whose `subgroupSize` is not
   * 0): the invocations of a subgroup compute tiles of the same rows, each loads 1/S of those rows' values
   * and takes the others by subgroupBroadcast. On CPU drivers a load costs far more than a broadcast
   * (the 1024³ matmul ran 1.1–1.5× as fast on lavapipe, 1.2–1.3× on SwiftShader; see src/wgsl/tuning.ts).
   */
  matmulShareRows: boolean;
  /** Elements one elementwise invocation computes (strided by the invocation count, so lanes stay contiguous). */
  elementsPerInvocation: number;
  /**
   * 4: kernels read and write 4 consecutive f32 elements at a time (vec4) where operands are aligned for
   * it — elementwise operands read at the element's own index and outputs, long reductions' rows, matmuls'
   * B columns; 1: one element at a time.
   */
  vectorWidth: 1 | 4;
}

/** Largest count a kernel may index with u32 arithmetic (sizes, flat indices and loop bounds). */
export const MAX_U32_INDEX = 0xffffffff;

/** The sizes a kernel bakes in or passes as u32, each checked against u32 indexing before any WGSL is made. */
function checkRange(k: Kernel): void {
  const sizes: [string, number][] =
    k.kind === 'elementwise' ? [['elements', k.size]]
    : k.kind === 'reduce' ? [['outputs', k.outSize], ['reduced elements', k.redSize], ['elements read', k.outSize * k.redSize]]
    : [['rows', k.M], ['columns', k.N], ['inner size', k.K], ['outputs', k.batchShape.reduce((a, b) => a * b, 1) * k.M * k.N]];
  for (const [what, n] of sizes) {
    if (!Number.isSafeInteger(n) || n > MAX_U32_INDEX) {
      const ops = k.ops?.length ? k.ops.map((o) => `'${o}'`).join(', ') : k.kind;
      throw new RangeError(`${ops}: a ${k.kind} kernel with ${n} ${what} is beyond u32 indexing (at most ${MAX_U32_INDEX}); split the work into smaller tensors`);
    }
  }
}

/**
 * Makes a pass's main copy the uniforms into the private `p` first: a read of the uniform buffer itself
 * may not move past a store to a storage buffer, so software drivers would read every constant again for
 * every element an invocation computes.
 */
function copyParams(p: Pass): Pass {
  if (!p.code.includes('var<private> p: Params;')) return p;
  return { ...p, code: p.code.replace(/(\nfn main\(.*\) \{\n)/, '$1  p = P;\n') };
}

/** Renders a kernel description to its compute passes. */
export function render(k: Kernel, cfg: KernelConfig): Pass[] {
  checkRange(k);
  try {
    return renderPasses(k, cfg).map(copyParams);
  } catch (e) {
    // name the ops (e.g. a dispatch beyond the device's workgroup limits)
    if (e instanceof Error && k.ops?.length && !e.message.startsWith("'")) e.message = `${k.ops.map((o) => `'${o}'`).join(', ')}: ${e.message}`;
    throw e;
  }
}

function renderPasses(k: Kernel, cfg: KernelConfig): Pass[] {
  switch (k.kind) {
    case 'elementwise': return [renderElementwise(k, cfg)];
    case 'reduce': return renderReduce(k, cfg);
    case 'matmul': return renderMatmul(k, cfg);
  }
}

/** The WGSL type of a dtype inside expressions (re-exported for the scheduler). */
export { wgslType };
