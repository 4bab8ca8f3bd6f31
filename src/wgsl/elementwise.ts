/** The elementwise kernel template: one output element per loop step, or 4 (vec4) where the operands allow. */
import type { DType } from './dtype.js';
import { Emitter, type Expr, loadsAsArguments, slotsWhereEveryLoad } from './ir.js';
import type { ElementwiseKernel, KernelConfig, Pass } from './kernels.js';
import { constantsOf, ENTRY, grid, prelude, storeText, WG } from './kernel-source.js';

/**
 * The longest body (WGSL characters of its function) whose four vec4 elements are computed by constant
 * component rather than in a loop: a StyleGAN training step's long fused bodies, copied four times, took a
 * cold `kiln train-gan` test from 53 s to over 120 s on lavapipe; the chain's body is 263.
 */
export const UNROLL_MAX_CHARS = 1200;

/** Renders an elementwise kernel (and the further outputs computed with it) as one pass. */
export function renderElementwise(k: ElementwiseKernel, cfg: KernelConfig): Pass {
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
  const outName = (i: number) => `OUT${i === 0 ? '' : i}`;
  const compute = vec4
    ? `fn compute(gid: u32${args}) -> array<f32, ${n}> {
${em.lines.join('\n')}
  return array<f32, ${n}>(${names.join(', ')});
}`
    : `fn compute(gid: u32) {
${em.lines.join('\n')}
${outs.map((o, i) => `  ${outName(i)}[gid] = ${storeText(o.dtype, names[i]!)};`).join('\n')}
}`;
  // a vectorized item with a short body computes its four elements with constant component indices (x, y,
  // z, w): a loop over them indexed its vectors by a variable, and ran the chain relu(x·a+b)·σ(x) 0.72–0.83×
  // as fast as the hand-written vec4 kernel on SwiftShader (now 1.17×) and ~15 % slower on lavapipe; a long
  // body keeps the loop, since four copies of it take lavapipe much longer to compile (bench/README.md)
  const item = vec4 && compute.length > UNROLL_MAX_CHARS ? `{
      ${[...vec4].map((s) => `let l${s} = B${s}[g];`).join(' ')}
      ${outs.map((_, i) => `var o${i}: vec4<f32>;`).join(' ')}
      for (var c = 0u; c < 4u; c++) {
        let r = compute(g * 4u + c${[...vec4].map((s) => `, l${s}[c]`).join('')});
        ${outs.map((_, i) => `o${i}[c] = r[${i}];`).join(' ')}
      }
      ${outs.map((_, i) => `${outName(i)}[g] = o${i};`).join(' ')}
    }` : vec4
    ? `{
      ${[...vec4].map((s) => `let l${s} = B${s}[g];`).join(' ')}
      ${['x', 'y', 'z', 'w'].map((c, j) => `let r${c} = compute(g * 4u + ${j}u${[...vec4].map((s) => `, l${s}.${c}`).join('')});`).join('\n      ')}
      ${outs.map((_, i) => `${outName(i)}[g] = vec4<f32>(rx[${i}], ry[${i}], rz[${i}], rw[${i}]);`).join(' ')}
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
  const { text, bindings } = prelude(k, C, body, vec4 ? { vec4Inputs: vec4, vec4Outputs: true } : {});
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
  return slotsWhereEveryLoad(outs.map((o) => o.value), (e) => e.idx.k === 'var' && e.idx.name === 'gid' && !e.half && !e.bool && k.inputs[e.slot] === 'f32');
}
