/**
 * Kernel templates: turn a kernel description (IR bodies + sizes) into WGSL passes.
 * Three shapes of kernel cover every primitive: elementwise (one output per invocation), reduce (a loop
 * over the reduced elements, split in two passes when there are few outputs) and matmul (register-blocked
 * tiles). Each takes an elementwise epilogue so the surrounding elementwise work fuses into it.
 */
import { type DType, wgslStorageType, wgslType } from './dtype.js';
import { Emitter, type Expr, IndexConstants, LIFT_LIMIT, type VT, v } from './ir.js';

/** A sub-dimension of an operand axis: [size, stride]. */
type Atom = [size: number, stride: number];

/** Parts every kernel has. */
interface KernelBase {
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
  /** Target number of partial sums for a split reduction. */
  reducePartials: number;
  /** Minimum elements one invocation reduces before a split is worth it. */
  reduceMinChunk: number;
  /** Partial r mapping: 'chunk' (contiguous per invocation) or 'stride' (interleaved). */
  reduceMapping: 'chunk' | 'stride';
  /** Matmul register tile (rows × cols per invocation). */
  matmulTile: [number, number];
  /** Elements one elementwise invocation computes (strided by the invocation count, so lanes stay contiguous). */
  elementsPerInvocation: number;
  /**
   * 4: an elementwise kernel of f32 outputs whose size is a multiple of 4 reads and writes 4 consecutive
   * elements at a time (vec4) where an operand is read at the element's own index; 1: one at a time.
   */
  vectorWidth: 1 | 4;
}

const WG = 256;
/**
 * The entry point of every kernel: a 1-D workgroup of WG invocations; `wid` is the workgroup and `lid` the
 * invocation inside it. `lid` is local_invocation_id.x, equal to local_invocation_index in a 1-D workgroup
 * but cheaper on CPU drivers: lavapipe derives the index from all three ids with divisions per invocation
 * (an elementwise kernel of 4 elements per invocation ran 1.2× faster, of 1 element 1.75×).
 */
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;`;

function grid(invocations: number, perWg: number, cfg: KernelConfig): { wg: [number, number, number]; nx: number } {
  const groups = Math.max(1, Math.ceil(invocations / perWg));
  const nx = Math.min(groups, cfg.maxWorkgroupsPerDim);
  const ny = Math.ceil(groups / nx);
  if (ny > cfg.maxWorkgroupsPerDim) throw new Error(`kiln: kernel of ${invocations} invocations exceeds the dispatch limits of this device`);
  return { wg: [nx, ny, 1], nx };
}

function header(k: KernelBase, extra: HeaderOptions = {}): { text: string; bindings: Binding[] } {
  const lines: string[] = [];
  const bindings: Binding[] = [];
  if (k.inputs.includes('f16') || k.outDtype === 'f16' || (k as ElementwiseKernel).extra?.some((x) => x.dtype === 'f16')) lines.push('enable f16;');
  k.inputs.forEach((dt, slot) => {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read> B${slot}: array<${extra.vec4?.has(slot) ? 'vec4<f32>' : wgslStorageType(dt)}>;`);
    bindings.push({ kind: 'in', slot });
  });
  if (extra.scratchIn) {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read> S_in: array<SCRATCH_T>;`);
    bindings.push({ kind: 'scratch', write: false });
  }
  if (extra.scratchOut) {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> S_out: array<SCRATCH_T>;`);
    bindings.push({ kind: 'scratch', write: true });
  } else {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT: array<${extra.vec4 ? 'vec4<f32>' : wgslStorageType(k.outDtype)}>;`);
    bindings.push({ kind: 'out', index: 0 });
    (k as ElementwiseKernel).extra?.forEach((x, i) => {
      lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT${i + 1}: array<${extra.vec4 ? 'vec4<f32>' : wgslStorageType(x.dtype)}>;`);
      bindings.push({ kind: 'out', index: i + 1 });
    });
  }
  if (k.nParams > 0) {
    lines.push(`struct Params { v: array<vec4<u32>, ${Math.ceil(k.nParams / 4)}> };`);
    lines.push(`@group(0) @binding(${bindings.length}) var<uniform> P: Params;`);
    // kernels read their uniforms through a private copy made at the start of main (see copyParams)
    lines.push('var<private> p: Params;');
    bindings.push({ kind: 'params' });
  }
  return { text: lines.join('\n'), bindings };
}

function storeText(dt: DType, value: string): string {
  if (dt === 'bool') return `select(0u, 1u, ${value})`;
  if (dt === 'f16') return `f16(${value})`;
  return value;
}

/** Prints `fn name(args) -> T { … return expr; }`. */
function fnOf(name: string, args: string, ret: VT, body: Expr, consts: IndexConstants): string {
  const em = new Emitter(consts);
  const r = em.emit(body);
  return `fn ${name}(${args}) -> ${ret === 'vec4u' ? 'vec4<u32>' : ret} {\n${em.lines.join('\n')}\n  return ${r};\n}`;
}

/** Kernels index up to `limit` elements with lifted constants (at most LIFT_LIMIT; 0 bakes every kernel's, for tests). */
export const indexLifting = { limit: LIFT_LIMIT };

/**
 * The index constants of a kernel: lifted into its uniforms when every index it divides stays below
 * LIFT_LIMIT (its largest tensor and its invocation count), baked into its source otherwise.
 */
function constantsOf(k: Kernel, invocations: number): IndexConstants {
  const bound = Math.max(k.indexBound ?? Infinity, invocations);
  return new IndexConstants(k.nParams, bound < Math.min(indexLifting.limit, LIFT_LIMIT), bound);
}

/** The first lines of a pass: bindings, the uniform block sized for every word, and the helpers. */
/** Binding options: scratch buffers, and (vectorized elementwise kernels) the inputs read as vec4 with every output. */
interface HeaderOptions { scratchIn?: boolean; scratchOut?: boolean; scratchType?: string; vec4?: Set<number> }

function prelude(k: Kernel, consts: IndexConstants, body: string, extra: HeaderOptions = {}): { text: string; bindings: Binding[] } {
  const h = header({ ...k, nParams: k.nParams + consts.words.length }, extra);
  const text = extra.scratchType ? h.text.replace('SCRATCH_T', extra.scratchType) : h.text;
  return { text: `${text}\n${k.helpers.join('\n')}\n${consts.helperFor(body)}`, bindings: h.bindings };
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

function renderElementwise(k: ElementwiseKernel, cfg: KernelConfig): Pass {
  const outs = [{ value: k.value, dtype: k.outDtype }, ...(k.extra ?? [])];
  const vec4 = cfg.vectorWidth === 4 ? vec4Inputs(k, outs) : null;
  // several elements per invocation amortize the per-invocation cost of CPU drivers
  const items = vec4 ? k.size / 4 : k.size;
  const E = items >= WG * cfg.elementsPerInvocation * 4 ? cfg.elementsPerInvocation : 1;
  const T = Math.ceil(items / E);
  const { wg, nx } = grid(T, WG, cfg);
  const C = constantsOf(k, k.size);
  // all outputs are emitted in one body so they share common subexpressions; a vectorized kernel's body
  // takes the elements of its vec4 inputs as arguments and returns its outputs
  const memo = new Map<Expr, Expr>();
  const em = new Emitter(C);
  const names = outs.map((o) => em.emit(vec4 ? loadsAsArguments(o.value, vec4, memo) : o.value));
  const args = vec4 ? [...vec4].map((s) => `, x${s}: f32`).join('') : '';
  const n = outs.length;
  const compute = vec4
    ? `fn compute(gid: u32${args}) -> array<f32, ${n}> {
${em.lines.join('\n')}
  return array<f32, ${n}>(${names.join(', ')});
}`
    : `fn compute(gid: u32) {
${em.lines.join('\n')}
${outs.map((o, i) => `  OUT${i === 0 ? '' : i}[gid] = ${storeText(o.dtype, names[i]!)};`).join('\n')}
}`;
  const outName = (i: number) => `OUT${i === 0 ? '' : i}`;
  const item = vec4
    ? `{
      ${[...vec4].map((s) => `let l${s} = B${s}[g];`).join(' ')}
      ${outs.map((_, i) => `var o${i}: vec4<f32>;`).join(' ')}
      for (var c = 0u; c < 4u; c++) {
        let r = compute(g * 4u + c${[...vec4].map((s) => `, l${s}[c]`).join('')});
        ${outs.map((_, i) => `o${i}[c] = r[${i}];`).join(' ')}
      }
      ${outs.map((_, i) => `${outName(i)}[g] = o${i};`).join(' ')}
    }`
    : '{ compute(g); }';
  // the element loop's bounds (the element count E per invocation too) are constants, so kernels whose body
  // does not depend on the shape (e.g. an optimizer update, one per parameter tensor) share one pipeline
  // across sizes; a loop, not E inlined copies of the body: software drivers compile each pipeline at its
  // first dispatch
  const body = `${compute}
${ENTRY}
  let T = ${C.u32(T)};
  let t = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (t >= T) { return; }
  let size = ${C.u32(items)};
  for (var e = 0u; e < ${C.u32(E, 'E')}; e++) {
    let g = t + e * T;
    if (g < size) ${item}
  }
}`;
  const { text, bindings } = prelude(k, C, body, vec4 ? { vec4 } : {});
  return { code: `${text}\n${body}`, workgroups: wg, bindings, params: C.words };
}

/**
 * The inputs a vectorized elementwise kernel reads as vec4: f32 inputs read only at the element's own index.
 * Null when the kernel is not vectorized: an output not f32 or a size not a multiple of 4 (a kernel of
 * any size qualifies, so same-structure kernels of different sizes, such as parameter updates, still share
 * one pipeline). lavapipe loads and stores lane by lane, and a vec4 costs about half of its four scalars:
 * the fused chain relu(x·a+b)·σ(x) over 4M elements ran 1.8× faster (6.1 against 3.4 GB/s, one run).
 */
function vec4Inputs(k: ElementwiseKernel, outs: { value: Expr; dtype: DType }[]): Set<number> | null {
  if (k.size % 4 !== 0 || outs.some((o) => o.dtype !== 'f32')) return null;
  const own = new Map<number, boolean>();
  const seen = new Set<Expr>();
  const walk = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    if (e.k === 'load') {
      const whole = e.idx.k === 'var' && e.idx.name === 'gid' && !e.half && !e.bool && k.inputs[e.slot] === 'f32';
      own.set(e.slot, (own.get(e.slot) ?? true) && whole);
      walk(e.idx);
    } else if (e.k === 'call') e.args.forEach(walk);
  };
  outs.forEach((o) => walk(o.value));
  return new Set([...own].filter(([, whole]) => whole).map(([slot]) => slot));
}

/** `e` with the loads of the `slots` replaced by the arguments x<slot>. */
function loadsAsArguments(e: Expr, slots: Set<number>, memo: Map<Expr, Expr>): Expr {
  let r = memo.get(e);
  if (r) return r;
  if (e.k === 'load' && slots.has(e.slot)) r = v(`x${e.slot}`, 'f32');
  else if (e.k === 'call') {
    const args = e.args.map((a) => loadsAsArguments(a, slots, memo));
    r = args.every((a, i) => a === e.args[i]) ? e : { ...e, args };
  } else r = e;
  memo.set(e, r);
  return r;
}

function identity(op: 'sum' | 'max', t: VT): string {
  if (op === 'sum') return t === 'f32' ? '0.0' : t === 'u32' ? '0u' : '0';
  return t === 'f32' ? '(-kiln_inf())' : t === 'u32' ? '0u' : 'i32(-2147483647 - 1)';
}

function combine(op: 'sum' | 'max', t: VT, acc: string, x: string): string {
  if (op === 'sum') return `${acc} = ${acc} + ${x};`;
  // max propagates NaN like PyTorch
  return t === 'f32' ? `${acc} = select(max(${acc}, ${x}), kiln_nan(), kiln_isnan(${x}) || kiln_isnan(${acc}));` : `${acc} = max(${acc}, ${x});`;
}

/** Chooses how many partial sums a reduction is split into (1 = a single pass). */
export function reduceSplit(outSize: number, redSize: number, cfg: KernelConfig): number {
  if (outSize >= cfg.reducePartials / 4 || redSize < 2 * cfg.reduceMinChunk) return 1;
  const want = Math.ceil(cfg.reducePartials / outSize);
  return Math.max(1, Math.min(want, Math.floor(redSize / cfg.reduceMinChunk)));
}

function renderReduce(k: ReduceKernel, cfg: KernelConfig): Pass[] {
  const t = k.accType;
  const tt = t === 'vec4u' ? 'u32' : t;
  const S = reduceSplit(k.outSize, k.redSize, cfg);
  const C = constantsOf(k, k.outSize * k.redSize);
  const epi = fnOf('epilogue', `gid: u32, acc: ${tt}`, k.epilogue.t, k.epilogue, C);
  const body = fnOf('body', 'o: u32, r: u32', t, k.body, C);
  if (S === 1) {
    const { wg, nx } = grid(k.outSize, WG, cfg);
    const main = `${body}
${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  var acc: ${tt} = ${identity(k.op, t)};
  for (var r = 0u; r < ${C.u32(k.redSize)}; r++) {
    let x = body(gid, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
    const { text, bindings } = prelude(k, C, main);
    return [{ code: `${text}\n${main}`, workgroups: wg, bindings, params: C.words }];
  }
  // pass 1: S partials per output, each over a chunk of `chunk` elements
  const chunk = Math.ceil(k.redSize / S);
  const g1 = grid(k.outSize * S, WG, cfg);
  const rExpr = cfg.reduceMapping === 'chunk' ? `s * ${C.u32(chunk)} + j` : `j * ${C.u32(S, 'S')} + s`;
  const main1 = `${body}
${ENTRY}
  let t = (wid.y * ${C.u32(g1.nx)} + wid.x) * ${WG}u + lid;
  if (t >= ${C.u32(k.outSize * S)}) { return; }
  let o = ${C.div('t', S, 'S')};
  let s = t - o * ${C.u32(S, 'S')};
  let redSize = ${C.u32(k.redSize, 'R')};
  var acc: ${tt} = ${identity(k.op, t)};
  for (var j = 0u; j < ${C.u32(chunk)}; j++) {
    let r = ${rExpr};
    if (r >= redSize) { break; }
    let x = body(o, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  S_out[t] = acc;
}`;
  // pass 2: reduce the partials and apply the epilogue
  const g2 = grid(k.outSize, WG, cfg);
  const main2 = `${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(g2.nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  let S = ${C.u32(S, 'S')};
  var acc: ${tt} = ${identity(k.op, t)};
  for (var s = 0u; s < S; s++) {
    let x = S_in[gid * S + s];
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
  const p1 = prelude(k, C, main1, { scratchOut: true, scratchType: tt });
  const p2 = prelude(k, C, main2, { scratchIn: true, scratchType: tt });
  const scratchBytes = k.outSize * S * 4;
  return [
    { code: `${p1.text}\n${main1}`, workgroups: g1.wg, bindings: p1.bindings, scratchBytes, params: C.words },
    { code: `${p2.text}\n${main2}`, workgroups: g2.wg, bindings: p2.bindings, scratchBytes, params: C.words },
  ];
}

/** WGSL for the batch offset of operand `op` from the batch index `b`. */
function operandIndex(op: MatmulOperand, batchShape: number[], C: IndexConstants, name: string): string {
  let off = C.u32(op.offset);
  let rem = 'b';
  for (let i = batchShape.length - 1; i >= 0; i--) {
    const d = batchShape[i]!;
    const st = op.batchStrides[i]!;
    // negative strides of flipped views wrap; the sums come out right mod 2³²
    if (st !== 0 && d > 1) off += ` + ${C.mod(`(${rem})`, d, `${name}b${i}`)} * ${C.u32(st)}`;
    rem = C.div(`(${rem})`, d, `${name}b${i}`);
  }
  return off;
}

/** WGSL for the buffer offset of coordinate `i` along an axis made of sub-dimensions. */
function axisOffset(i: string, atoms: Atom[], C: IndexConstants, name: string): string {
  if (!atoms.length) return '0u';
  const terms: string[] = [];
  let inner = 1;
  for (let a = atoms.length - 1; a >= 0; a--) {
    const [n, s] = atoms[a]!;
    let digit = inner === 1 ? i : C.div(i, inner, `${name}i${a}`);
    if (a > 0) digit = C.mod(digit, n, `${name}n${a}`);
    terms.push(`${digit} * ${C.u32(s, `${name}s${a}`)}`);
    inner *= n;
  }
  return terms.join(' + ');
}

/**
 * The k offset of an operand as a loop variable: set once from the loop's first k, then stepped. An axis
 * of several sub-dimensions keeps its digits and carries instead of dividing k at every step.
 */
function axisStepper(v: string, atoms: Atom[], C: IndexConstants, start: string): { init: string[]; step: string[] } {
  if (!atoms.length) return { init: [`  let ${v} = 0u;`], step: [] };
  const L = atoms.length - 1;
  const init = [`  var ${v} = ${axisOffset(start, atoms, C, v)};`];
  let inner = atoms[L]![0];
  for (let a = L - 1; a >= 1; a--) {
    init.push(`  var ${v}${a} = ${C.mod(C.div(start, inner, `${v}i${a}`), atoms[a]![0], `${v}n${a}`)};`);
    inner *= atoms[a]![0];
  }
  if (L >= 1) init.push(`  var ${v}${L} = ${C.mod(start, atoms[L]![0], `${v}n${L}`)};`);
  // step the innermost digit; a digit that reaches its size wraps to 0 and carries into the next one out
  let step = [`${v} += ${C.u32(atoms[L]![1], `${v}s${L}`)};`];
  if (L >= 1) {
    let carry: string[] = [];
    for (let a = 1; a <= L; a++) {
      const [n, s] = atoms[a]!;
      const delta = C.u32(atoms[a - 1]![1] - n * s);
      carry = [`${v}${a} += 1u;`, `if (${v}${a} == ${C.u32(n, `${v}n${a}`)}) {`, `  ${v}${a} = 0u;`, `  ${v} += ${delta};`, ...carry.map((l) => `  ${l}`), '}'];
    }
    step = [...step, ...carry];
  }
  return { init, step: step.map((l) => `    ${l}`) };
}

/**
 * Number of slices the k loop is split into when there are too few output tiles to keep the device busy
 * (e.g. weight gradients: a small output, a reduction over the whole batch); 1 when not worth it.
 */
export function matmulSplitK(tiles: number, K: number, cfg: KernelConfig): number {
  const want = Math.ceil(cfg.reducePartials / 2 / tiles);
  return Math.max(1, Math.min(want, Math.floor(K / 128)));
}

function renderMatmul(k: MatmulKernel, cfg: KernelConfig): Pass[] {
  const [TM, TN] = cfg.matmulTile;
  const tilesM = Math.ceil(k.M / TM);
  const tilesN = Math.ceil(k.N / TN);
  const batch = k.batchShape.reduce((a, b) => a * b, 1);
  const S = matmulSplitK(batch * tilesM * tilesN, k.K, cfg);
  const chunk = Math.ceil(k.K / S);
  const outSize = batch * k.M * k.N;
  // a workgroup computes a block of BM × BN tiles, so the rows of A and columns of B it reads stay in cache
  const BM = 2 ** Math.floor(Math.log2(Math.min(tilesM, 16))), BN = WG / BM;
  const blocksN = Math.ceil(tilesN / BN), blocksM = Math.ceil(tilesM / BM);
  const perSlice = batch * blocksM * blocksN * WG;
  const { wg, nx } = grid(perSlice * S, WG, cfg);
  const C = constantsOf(k, Math.max(perSlice * S, outSize * S, batch * k.M * k.K, batch * k.K * k.N));
  const epi = fnOf('epilogue', 'gid: u32, acc: f32', k.epilogue.t, k.epilogue, C);
  // row and column offsets are computed once per tile; only the k offsets change inside the loop
  const setup: string[] = [`  let lastM = ${C.u32(k.M - 1)};`, `  let lastN = ${C.u32(k.N - 1)};`];
  for (let i = 0; i < TM; i++) setup.push(`  let mr${i} = min(m0 + ${i}u, lastM);`, `  let ar${i} = aBase + ${axisOffset(`mr${i}`, k.a.rows, C, 'ar')};`);
  for (let j = 0; j < TN; j++) setup.push(`  let nc${j} = min(n0 + ${j}u, lastN);`, `  let bc${j} = bBase + ${axisOffset(`nc${j}`, k.b.cols, C, 'bc')};`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) setup.push(`  var c${i}_${j} = 0.0;`);
  const ak = axisStepper('ak', k.a.cols, C, 'kStart'), bk = axisStepper('bk', k.b.rows, C, 'kStart');
  const body: string[] = [];
  for (let i = 0; i < TM; i++) body.push(`    let a${i} = f32(B${k.a.slot}[ar${i} + ak]);`);
  for (let j = 0; j < TN; j++) body.push(`    let b${j} = f32(B${k.b.slot}[bk + bc${j}]);`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) body.push(`    c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  // the tile is stored by a loop over an array, so the epilogue (often a long fused chain) is emitted once,
  // not once per element of the tile: a software driver compiles a much smaller pipeline
  const cs = Array.from({ length: TM * TN }, (_, e) => `c${Math.floor(e / TN)}_${e % TN}`);
  const store = S === 1 ? `OUT[g] = ${storeText(k.outDtype, 'epilogue(g, tile[i * ' + TN + 'u + j])')};` : `S_out[slice * outSize + g] = tile[i * ${TN}u + j];`;
  const stores: string[] = [
    `  let M = ${C.u32(k.M)};`,
    `  let N = ${C.u32(k.N)};`,
    `  var tile = array<f32, ${TM * TN}>(${cs.join(', ')});`,
    `  for (var i = 0u; i < ${TM}u; i++) {`,
    `    if (m0 + i >= M) { break; }`,
    `    for (var j = 0u; j < ${TN}u; j++) {`,
    `      if (n0 + j < N) { let g = (b * M + m0 + i) * N + n0 + j; ${store} }`,
    '    }',
    '  }',
  ];
  // BN is a power of two: the position inside a block is a shift and a mask
  const main = `${S === 1 ? epi : ''}
${ENTRY}
  let t0 = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (t0 >= ${C.u32(perSlice * S)}) { return; }
  ${S === 1 ? 'let slice = 0u;\n  let t = t0;' : `let slice = ${C.div('t0', perSlice, 'perSlice')};\n  let t = t0 - slice * ${C.u32(perSlice, 'perSlice')};\n  let outSize = ${C.u32(outSize)};`}
  let blk = t / ${WG}u;
  let within = t % ${WG}u;
  let blocksN = ${C.u32(blocksN, 'blocksN')};
  let bmn = ${C.div('blk', blocksN, 'blocksN')};
  let tn = (blk - bmn * blocksN) * ${C.u32(BN)} + (within & ${C.u32(BN - 1)});
  let b = ${C.div('bmn', blocksM, 'blocksM')};
  let tm = (bmn - b * ${C.u32(blocksM, 'blocksM')}) * ${C.u32(BM)} + (within >> ${C.u32(Math.log2(BN))});
  if (tn >= ${C.u32(tilesN)} || tm >= ${C.u32(tilesM)}) { return; }
  let m0 = tm * ${TM}u;
  let n0 = tn * ${TN}u;
  let aBase = ${operandIndex(k.a, k.batchShape, C, 'a')};
  let bBase = ${operandIndex(k.b, k.batchShape, C, 'b')};
${setup.join('\n')}
  let chunk = ${C.u32(chunk)};
  let kStart = slice * chunk;
  let kEnd = min(kStart + chunk, ${C.u32(k.K)});
${[...ak.init, ...bk.init].join('\n')}
  for (var kk = kStart; kk < kEnd; kk++) {
${body.join('\n')}
${[...ak.step, ...bk.step].join('\n')}
  }
${stores.join('\n')}
}`;
  if (S === 1) {
    const h1 = prelude(k, C, main);
    return [{ code: `${h1.text}\n${main}`, workgroups: wg, bindings: h1.bindings, params: C.words }];
  }
  // pass 2: sum the slices and apply the epilogue
  const g2 = grid(outSize, WG, cfg);
  const main2 = `${epi}
${ENTRY}
  let g = (wid.y * ${C.u32(g2.nx)} + wid.x) * ${WG}u + lid;
  let outSize = ${C.u32(outSize, 'outSize')};
  if (g >= outSize) { return; }
  var acc = 0.0;
  for (var s = 0u; s < ${C.u32(S)}; s++) { acc += S_in[s * outSize + g]; }
  OUT[g] = ${storeText(k.outDtype, 'epilogue(g, acc)')};
}`;
  const h1 = prelude(k, C, main, { scratchOut: true, scratchType: 'f32' });
  const h2 = prelude(k, C, main2, { scratchIn: true, scratchType: 'f32' });
  const scratchBytes = S * outSize * 4;
  return [
    { code: `${h1.text}\n${main}`, workgroups: wg, bindings: h1.bindings, scratchBytes, params: C.words },
    { code: `${h2.text}\n${main2}`, workgroups: g2.wg, bindings: h2.bindings, scratchBytes, params: C.words },
  ];
}

/** The WGSL type of a dtype inside expressions (re-exported for the scheduler). */
export { wgslType };
