/**
 * The op registry: every primitive, whatever its kind, is one typed definition here — its shape or dtype
 * rule, its lowering to the kernel IR (or the kernel template it is the core of), its float64 reference
 * and its vector-Jacobian product written with Tensor methods. The planner, the lowering, the reference
 * interpreter and autograd look definitions up; none of them switches on op names.
 */
import type { DType } from '../dtype.js';
import type { LazyNode } from '../node.js';
import type { Shape, FactoredView } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { Expr } from '../../wgsl/ir.js';
import type { MatmulKernel, ReduceKernel } from '../../wgsl/kernels.js';
import type { Index, Lowering } from './lowering.js';

/** Broad classes of ops the planner treats differently. */
export type OpKind = 'leaf' | 'elementwise' | 'movement' | 'reduce' | 'matmul' | 'gather' | 'contiguous';

/**
 * A vector-Jacobian product: the output gradient, the (saved) inputs and output, the op's static argument
 * and which inputs need a gradient → one gradient (or null) per input. Written with Tensor methods, so
 * gradients are lazy, fuse, and can be differentiated again.
 */
export type Vjp = (g: Tensor, inputs: Tensor[], out: Tensor, arg: any, needs: boolean[]) => (Tensor | null)[];

/** What every definition has. */
interface OpDefBase {
  readonly name: string;
  /** Estimated cost in simple ALU ops of computing one element inside a fused kernel (not counting sources). */
  readonly cost: number;
  /** Float64 reference: the node's values from its sources' values (dense, row-major). */
  readonly reference: (n: LazyNode, srcs: Float64Array[]) => Float64Array;
  /** Gradients of the inputs (absent: the op is not differentiable). */
  vjp?: Vjp;
}

/** What an elementwise fragment builder receives. */
export interface FragmentContext {
  /** dtypes of the inputs (as stored; bool inputs arrive as WGSL bool, f16 as f32). */
  inDtypes: DType[];
  outDtype: DType;
  /** The op's static argument (e.g. the target dtype of a cast). */
  arg: unknown;
}

/** An op applied element by element after broadcasting; fuses with its neighbours. */
export interface ElementwiseDef extends OpDefBase {
  readonly kind: 'elementwise';
  readonly arity: number;
  /** WGSL expression computing the result from argument expressions. */
  readonly wgsl: (args: string[], ctx: FragmentContext) => string;
  /** Float64 reference of one element (its result is then rounded to the output dtype's values). */
  readonly ref: (xs: number[], ctx: FragmentContext) => number;
  /** The dtypes the inputs are cast to before the op (from the callers' dtypes). */
  readonly inputs: (inDtypes: DType[], arg: unknown) => DType[];
  /** Output dtype from the (already cast) input dtypes. */
  readonly dtype: (inDtypes: DType[], arg: unknown) => DType;
  /** Extra WGSL declarations (helper functions) the fragment calls (de-duplicated per kernel). */
  readonly helpers: string[];
  /** The value at `idx`: the fragment applied to the sources' values at the same index. */
  readonly lower: (n: LazyNode, idx: Index, lo: Lowering) => Expr;
}

/** A view: the output's elements are the source's elements at other coordinates (no arithmetic). */
export interface MovementDef<A = any> extends OpDefBase {
  readonly kind: 'movement';
  /** The output shape for a source of `src` (arguments are validated by the Tensor method that builds them). */
  readonly shape: (src: Shape, arg: A) => number[];
  /** The value at `idx` (in the output's shape), reading the source through `lo.value`. */
  readonly lower: (n: LazyNode, idx: Index, lo: Lowering) => Expr;
  /** The same view applied to a factored strided view of a buffer; null when it is not such a view. */
  readonly view: (v: FactoredView, src: Shape, arg: A) => FactoredView | null;
  /** True when the output has more elements than the source (the source would be recomputed per copy). */
  readonly expands: (src: Shape, arg: A) => boolean;
  /** True when the source is read at the same flat index as the output (the index passes through unchanged). */
  readonly sameIndex: boolean;
}

type KernelBaseKeys = 'inputs' | 'outDtype' | 'nParams' | 'helpers';
/** A core's kernel description without the parts the lowering adds (bindings, parameters, helpers). */
export type CoreKernel = Omit<ReduceKernel, KernelBaseKeys> | Omit<MatmulKernel, KernelBaseKeys>;

/** A reduction or contraction: the core of a kernel template, with the consumer's elementwise work as epilogue. */
export interface CoreDef extends OpDefBase {
  readonly kind: 'reduce' | 'matmul';
  /** Sources that must be stored buffers before the kernel runs (matmul operands read as strided views). */
  readonly operands: (n: LazyNode) => LazyNode[];
  /** The kernel computing `n`, its result fed to `epilogue` (the expression of the stored root, over `acc`). */
  readonly kernel: (n: LazyNode, lo: Lowering, epilogue: Expr) => CoreKernel;
  /** The type of the accumulator the epilogue reads. */
  readonly accType: (n: LazyNode) => 'f32' | 'i32' | 'u32' | 'bool';
}

/** Gathers, leaves (constants, random bits, iota, buffers) and `contiguous`: lowered by their own function. */
export interface IndexedDef extends OpDefBase {
  readonly kind: 'gather' | 'leaf' | 'contiguous';
  /** The value at `idx` (in the node's shape). */
  readonly lower: (n: LazyNode, idx: Index, lo: Lowering) => Expr;
  /** Per source: read at the node's own flat index (true) or at other coordinates (false). */
  readonly sameIndex: boolean[];
  /** Always stored, never fused into consumers (`contiguous`). */
  readonly store?: boolean;
  /** The run-time scalars of a leaf (a constant's value, a random draw's key and counter): kernel uniforms, not code. */
  readonly params?: (n: LazyNode) => number[];
  /** For a leaf with run-time scalars: the rest of its argument, which does shape the code. */
  readonly structure?: (n: LazyNode) => string;
}

/** Any op definition. */
export type OpDef = ElementwiseDef | MovementDef | CoreDef | IndexedDef;

/** True for reductions and contractions (kernel cores). */
export function isCoreDef(d: OpDef): d is CoreDef {
  return d.kind === 'reduce' || d.kind === 'matmul';
}

const registry = new Map<string, OpDef>();

/** Adds a definition (names are unique; user ops use `defineOp` in ./elementwise.ts). */
export function register<D extends OpDef>(def: D): D {
  if (registry.has(def.name)) throw new Error(`defineOp: an op named '${def.name}' is already registered`);
  registry.set(def.name, def);
  return def;
}

/** The definition of an op. */
export function opDef(name: string): OpDef {
  const d = registry.get(name);
  if (!d) throw new Error(`kiln internal error: unknown op '${name}'`);
  return d;
}

/** True when an op of that name exists. */
export function hasOp(name: string): boolean {
  return registry.has(name);
}

/** The definition of an elementwise op (throws for other kinds). */
export function elementwiseDef(name: string): ElementwiseDef {
  const d = registry.get(name);
  if (!d || d.kind !== 'elementwise') throw new Error(`kiln: unknown elementwise op '${name}'`);
  return d;
}

/** Every registered definition (for tests and tools). */
export function allOps(): IterableIterator<OpDef> {
  return registry.values();
}
