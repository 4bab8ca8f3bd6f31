/**
 * The pieces every kernel template prints: the entry point, the dispatch grid, the bindings and uniform
 * block, stores of each dtype, and the index constants a kernel bakes or lifts into uniforms.
 */
import { type DType, wgslStorageType } from './dtype.js';
import { type Expr, IndexConstants, LIFT_LIMIT, type VT, Emitter } from './ir.js';
import type { Binding, Kernel, KernelBase, KernelConfig } from './kernels.js';

/** Invocations per workgroup of every kernel. */
export const WG = 256;
/**
 * The entry point of every kernel: a 1-D workgroup of WG invocations; `wid` is the workgroup and `lid` the
 * invocation inside it. `lid` is local_invocation_id.x, equal to local_invocation_index in a 1-D workgroup
 * but cheaper on CPU drivers: lavapipe derives the index from all three ids with divisions per invocation
 * (the fused chain of `npm run bench` ran 1.12× faster in one run alternating the two).
 */
export const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;`;

/** The 2-D dispatch grid of `invocations` in workgroups of `perWg` (x capped at the device limit), and its x size. */
export function grid(invocations: number, perWg: number, cfg: KernelConfig): { wg: [number, number, number]; nx: number } {
  const groups = Math.max(1, Math.ceil(invocations / perWg));
  const nx = Math.min(groups, cfg.maxWorkgroupsPerDim);
  const ny = Math.ceil(groups / nx);
  if (ny > cfg.maxWorkgroupsPerDim) throw new Error(`kiln: kernel of ${invocations} invocations exceeds the dispatch limits of this device`);
  return { wg: [nx, ny, 1], nx };
}

/** The further outputs of a horizontally fused kernel (elementwise or reduce), after OUT. */
function extraOutputs(k: KernelBase): { dtype: DType }[] {
  return (k as { extra?: { dtype: DType }[] }).extra ?? [];
}

/** The binding declarations and uniform block of a pass, and the bindings in order. */
export function header(k: KernelBase, extra: HeaderOptions = {}): { text: string; bindings: Binding[] } {
  const lines: string[] = [];
  const bindings: Binding[] = [];
  if (k.inputs.includes('f16') || k.outDtype === 'f16' || extraOutputs(k).some((x) => x.dtype === 'f16')) lines.push('enable f16;');
  k.inputs.forEach((dt, slot) => {
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read> B${slot}: array<${extra.vec4Inputs?.has(slot) ? 'vec4<f32>' : wgslStorageType(dt)}>;`);
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
    lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT: array<${extra.vec4Outputs ? 'vec4<f32>' : wgslStorageType(k.outDtype)}>;`);
    bindings.push({ kind: 'out', index: 0 });
    extraOutputs(k).forEach((x, i) => {
      lines.push(`@group(0) @binding(${bindings.length}) var<storage, read_write> OUT${i + 1}: array<${extra.vec4Outputs ? 'vec4<f32>' : wgslStorageType(x.dtype)}>;`);
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

/**
 * A pass with workgroup barriers reads its uniforms from the uniform buffer itself: WGSL's uniformity
 * analysis takes a read of the private copy (see copyParams in ./kernels.ts) as possibly non-uniform, and a
 * barrier after a branch on one is rejected.
 */
export function readUniformsDirectly(code: string): string {
  return code.replace('var<private> p: Params;\n', '').replace(/\bp\.v\[/g, 'P.v[');
}

/** WGSL storing `value` as a buffer element of dtype `dt` (bool as u32, f16 converted). */
export function storeText(dt: DType, value: string): string {
  if (dt === 'bool') return `select(0u, 1u, ${value})`;
  if (dt === 'f16') return `f16(${value})`;
  return value;
}

/** Prints `fn name(args) -> T { … return expr; }`. */
export function fnOf(name: string, args: string, ret: VT, body: Expr, consts: IndexConstants): string {
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
export function constantsOf(k: Kernel, invocations: number): IndexConstants {
  const bound = Math.max(k.indexBound ?? Infinity, invocations);
  return new IndexConstants(k.nParams, bound < Math.min(indexLifting.limit, LIFT_LIMIT), bound);
}

/** Binding options: scratch buffers, and the inputs and outputs a vectorized kernel reads and writes as vec4. */
export interface HeaderOptions {
  scratchIn?: boolean;
  scratchOut?: boolean;
  scratchType?: string;
  /** Input slots declared as array<vec4<f32>>. */
  vec4Inputs?: Set<number>;
  /** Outputs declared as array<vec4<f32>>. */
  vec4Outputs?: boolean;
}

/** The first lines of a pass: bindings, the uniform block sized for every word, and the helpers. */
export function prelude(k: Kernel, consts: IndexConstants, body: string, extra: HeaderOptions = {}): { text: string; bindings: Binding[] } {
  const h = header({ ...k, nParams: k.nParams + consts.words.length }, extra);
  const text = extra.scratchType ? h.text.replace('SCRATCH_T', extra.scratchType) : h.text;
  return { text: `${text}\n${k.helpers.join('\n')}\n${consts.helperFor(body)}`, bindings: h.bindings };
}
