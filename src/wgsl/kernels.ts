/**
 * Kernel templates: turn a kernel description (IR bodies + sizes) into WGSL passes.
 * Three shapes of kernel cover every primitive: elementwise (one output per invocation), reduce (a loop
 * over the reduced elements, split in two passes when there are few outputs) and matmul (register-blocked
 * tiles). Each takes an elementwise epilogue so the surrounding elementwise work fuses into it.
 */
import { type DType, wgslStorageType, wgslType } from './dtype.js';
import { Emitter, type Expr, type VT } from './ir.js';

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
}

const WG = 256;

function grid(invocations: number, perWg: number, cfg: KernelConfig): { wg: [number, number, number]; nx: number } {
  const groups = Math.max(1, Math.ceil(invocations / perWg));
  const nx = Math.min(groups, cfg.maxWorkgroupsPerDim);
  const ny = Math.ceil(groups / nx);
  if (ny > cfg.maxWorkgroupsPerDim) throw new Error(`kiln: kernel of ${invocations} invocations exceeds the dispatch limits of this device`);
  return { wg: [nx, ny, 1], nx };
}

function header(k: KernelBase, extra: { scratchIn?: boolean; scratchOut?: boolean } = {}): { text: string; bindings: Binding[] } {
  const lines: string[] = [];
  const bindings: Binding[] = [];
  if (k.inputs.includes('f16') || k.outDtype === 'f16' || (k as ElementwiseKernel).extra?.some((x) => x.dtype === 'f16')) lines.push('enable f16;');
  k.inputs.forEach((dt, slot) => {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read> B${slot}: array<${wgslStorageType(dt)}>;`);
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
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT: array<${wgslStorageType(k.outDtype)}>;`);
    bindings.push({ kind: 'out', index: 0 });
    (k as ElementwiseKernel).extra?.forEach((x, i) => {
      lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT${i + 1}: array<${wgslStorageType(x.dtype)}>;`);
      bindings.push({ kind: 'out', index: i + 1 });
    });
  }
  if (k.nParams > 0) {
    lines.push(`struct Params { v: array<vec4<u32>, ${Math.ceil(k.nParams / 4)}> };`);
    lines.push(`@group(0) @binding(${bindings.length}) var<uniform> P: Params;`);
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
function fnOf(name: string, args: string, ret: VT, body: Expr): string {
  const em = new Emitter();
  const r = em.emit(body);
  return `fn ${name}(${args}) -> ${ret === 'vec4u' ? 'vec4<u32>' : ret} {\n${em.lines.join('\n')}\n  return ${r};\n}`;
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

/** Renders a kernel description to its compute passes. */
export function render(k: Kernel, cfg: KernelConfig): Pass[] {
  checkRange(k);
  try {
    switch (k.kind) {
      case 'elementwise': return [renderElementwise(k, cfg)];
      case 'reduce': return renderReduce(k, cfg);
      case 'matmul': return renderMatmul(k, cfg);
    }
  } catch (e) {
    // name the ops (e.g. a dispatch beyond the device's workgroup limits)
    if (e instanceof Error && k.ops?.length && !e.message.startsWith("'")) e.message = `${k.ops.map((o) => `'${o}'`).join(', ')}: ${e.message}`;
    throw e;
  }
}

function renderElementwise(k: ElementwiseKernel, cfg: KernelConfig): Pass {
  // the size and grid are parameters, not constants: kernels whose body does not depend on the shape
  // (e.g. an optimizer update, one per parameter tensor) share one pipeline across sizes
  const { text, bindings } = header({ ...k, nParams: k.nParams + 3 });
  const word = (i: number) => `P.v[${(k.nParams + i) >> 2}].${'xyzw'[(k.nParams + i) & 3]}`;
  // several elements per invocation amortize the per-invocation cost of CPU drivers
  const E = k.size >= WG * cfg.elementsPerInvocation * 4 ? cfg.elementsPerInvocation : 1;
  const T = Math.ceil(k.size / E);
  const { wg, nx } = grid(T, WG, cfg);
  // all outputs are emitted in one body so they share common subexpressions
  const outs = [{ value: k.value, dtype: k.outDtype }, ...(k.extra ?? [])];
  const em = new Emitter();
  const names = outs.map((o) => em.emit(o.value));
  const stores = outs.map((o, i) => `  OUT${i === 0 ? '' : i}[gid] = ${storeText(o.dtype, names[i]!)};`);
  // a loop, not E inlined copies of the body: software drivers compile each pipeline at its first dispatch
  const calls = E === 1 ? ['  compute(t);'] : [`  for (var e = 0u; e < ${E}u; e++) {`, `    let g = t + e * ${word(0)};`, `    if (g < ${word(1)}) { compute(g); }`, '  }'];
  const code = `${text}
${k.helpers.join('\n')}
fn compute(gid: u32) {
${em.lines.join('\n')}
${stores.join('\n')}
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.y * ${word(2)} + wid.x) * ${WG}u + lid;
  if (t >= ${word(0)}) { return; }
${calls.join('\n')}
}`;
  return { code, workgroups: wg, bindings, params: [T, k.size, nx] };
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
  const epi = fnOf('epilogue', `gid: u32, acc: ${tt}`, k.epilogue.t, k.epilogue);
  const body = fnOf('body', 'o: u32, r: u32', t, k.body);
  const S = reduceSplit(k.outSize, k.redSize, cfg);
  if (S === 1) {
    const { text, bindings } = header(k);
    const { wg, nx } = grid(k.outSize, WG, cfg);
    const code = `${text}
${k.helpers.join('\n')}
${body}
${epi}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.y * ${nx}u + wid.x) * ${WG}u + lid;
  if (gid >= ${k.outSize}) { return; }
  var acc: ${tt} = ${identity(k.op, t)};
  for (var r = 0u; r < ${k.redSize}u; r++) {
    let x = body(gid, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
    return [{ code, workgroups: wg, bindings }];
  }
  // pass 1: S partials per output, each over a chunk of C elements
  const C = Math.ceil(k.redSize / S);
  const p1 = header(k, { scratchOut: true });
  const g1 = grid(k.outSize * S, WG, cfg);
  const rExpr = cfg.reduceMapping === 'chunk' ? `s * ${C} + j` : `j * ${S} + s`;
  const code1 = `${p1.text.replace('SCRATCH_T', tt)}
${k.helpers.join('\n')}
${body}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.y * ${g1.nx}u + wid.x) * ${WG}u + lid;
  if (t >= ${k.outSize * S}) { return; }
  let o = t / ${S};
  let s = t % ${S};
  var acc: ${tt} = ${identity(k.op, t)};
  for (var j = 0u; j < ${C}u; j++) {
    let r = ${rExpr};
    if (r >= ${k.redSize}) { break; }
    let x = body(o, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  S_out[t] = acc;
}`;
  // pass 2: reduce the partials and apply the epilogue
  const p2 = header({ ...k, nParams: k.nParams }, { scratchIn: true });
  const g2 = grid(k.outSize, WG, cfg);
  const code2 = `${p2.text.replace('SCRATCH_T', tt)}
${k.helpers.join('\n')}
${epi}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.y * ${g2.nx}u + wid.x) * ${WG}u + lid;
  if (gid >= ${k.outSize}) { return; }
  var acc: ${tt} = ${identity(k.op, t)};
  for (var s = 0u; s < ${S}u; s++) {
    let x = S_in[gid * ${S} + s];
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
  const scratchBytes = k.outSize * S * 4;
  return [
    { code: code1, workgroups: g1.wg, bindings: p1.bindings, scratchBytes },
    { code: code2, workgroups: g2.wg, bindings: p2.bindings, scratchBytes },
  ];
}

/** A stride as a u32 literal (negative strides of flipped views wrap; the sums come out right mod 2³²). */
function u(n: number): string {
  return `${n >>> 0}u`;
}

function operandIndex(op: MatmulOperand, batchShape: number[]): string {
  // batch offset from the batch index `b`
  let off = u(op.offset);
  let rem = 'b';
  for (let i = batchShape.length - 1; i >= 0; i--) {
    const d = batchShape[i]!;
    const st = op.batchStrides[i]!;
    if (st !== 0 && d > 1) off += ` + ((${rem}) % ${d}u) * ${u(st)}`;
    rem = `(${rem}) / ${d}u`;
  }
  return off;
}

/** WGSL for the buffer offset of coordinate `i` along an axis made of sub-dimensions. */
function axisOffset(i: string, atoms: Atom[]): string {
  if (!atoms.length) return '0u';
  const terms: string[] = [];
  let inner = 1;
  for (let a = atoms.length - 1; a >= 0; a--) {
    const [n, s] = atoms[a]!;
    let digit = inner === 1 ? i : `(${i} / ${inner}u)`;
    if (a > 0) digit = `(${digit} % ${n}u)`;
    terms.push(`${digit} * ${u(s)}`);
    inner *= n;
  }
  return terms.join(' + ');
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
  const epi = fnOf('epilogue', 'gid: u32, acc: f32', k.epilogue.t, k.epilogue);
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
  // row and column offsets are computed once per tile; only the k offsets change inside the loop
  const setup: string[] = [];
  for (let i = 0; i < TM; i++) setup.push(`  let ar${i} = aBase + ${axisOffset(`min(m0 + ${i}u, ${k.M - 1}u)`, k.a.rows)};`);
  for (let j = 0; j < TN; j++) setup.push(`  let bc${j} = bBase + ${axisOffset(`min(n0 + ${j}u, ${k.N - 1}u)`, k.b.cols)};`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) setup.push(`  var c${i}_${j} = 0.0;`);
  const body: string[] = [`    let ak = ${axisOffset('kk', k.a.cols)};`, `    let bk = ${axisOffset('kk', k.b.rows)};`];
  for (let i = 0; i < TM; i++) body.push(`    let a${i} = f32(B${k.a.slot}[ar${i} + ak]);`);
  for (let j = 0; j < TN; j++) body.push(`    let b${j} = f32(B${k.b.slot}[bk + bc${j}]);`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) body.push(`    c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  const stores: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) {
      const g = `(b * ${k.M}u + m0 + ${i}u) * ${k.N}u + n0 + ${j}u`;
      const store = S === 1 ? `OUT[g] = ${storeText(k.outDtype, `epilogue(g, c${i}_${j})`)};` : `S_out[slice * ${outSize}u + g] = c${i}_${j};`;
      stores.push(`  if (m0 + ${i}u < ${k.M}u && n0 + ${j}u < ${k.N}u) { let g = ${g}; ${store} }`);
    }
  }
  const h1 = header(k, { scratchOut: S > 1 });
  const code = `${h1.text.replace('SCRATCH_T', 'f32')}
${k.helpers.join('\n')}
${S === 1 ? epi : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t0 = (wid.y * ${nx}u + wid.x) * ${WG}u + lid;
  if (t0 >= ${perSlice * S}u) { return; }
  let slice = t0 / ${perSlice}u;
  let t = t0 % ${perSlice}u;
  let blk = t / ${WG}u;
  let within = t % ${WG}u;
  let tn = (blk % ${blocksN}u) * ${BN}u + within % ${BN}u;
  let tm = ((blk / ${blocksN}u) % ${blocksM}u) * ${BM}u + within / ${BN}u;
  let b = blk / ${blocksN * blocksM}u;
  if (tn >= ${tilesN}u || tm >= ${tilesM}u) { return; }
  let m0 = tm * ${TM};
  let n0 = tn * ${TN};
  let aBase = ${operandIndex(k.a, k.batchShape)};
  let bBase = ${operandIndex(k.b, k.batchShape)};
${setup.join('\n')}
  let kEnd = min(slice * ${chunk}u + ${chunk}u, ${k.K}u);
  for (var kk = slice * ${chunk}u; kk < kEnd; kk++) {
${body.join('\n')}
  }
${stores.join('\n')}
}`;
  if (S === 1) return [{ code, workgroups: wg, bindings: h1.bindings }];
  // pass 2: sum the slices and apply the epilogue
  const h2 = header(k, { scratchIn: true });
  const g2 = grid(outSize, WG, cfg);
  const code2 = `${h2.text.replace('SCRATCH_T', 'f32')}
${k.helpers.join('\n')}
${epi}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = (wid.y * ${g2.nx}u + wid.x) * ${WG}u + lid;
  if (g >= ${outSize}u) { return; }
  var acc = 0.0;
  for (var s = 0u; s < ${S}u; s++) { acc += S_in[s * ${outSize}u + g]; }
  OUT[g] = ${storeText(k.outDtype, 'epilogue(g, acc)')};
}`;
  const scratchBytes = S * outSize * 4;
  return [
    { code, workgroups: wg, bindings: h1.bindings, scratchBytes },
    { code: code2, workgroups: g2.wg, bindings: h2.bindings, scratchBytes },
  ];
}

/** The WGSL type of a dtype inside expressions (re-exported for the scheduler). */
export { wgslType };
