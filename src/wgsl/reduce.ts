/**
 * The reduction kernel template: a loop over the reduced elements, split in two passes when there are few
 * outputs (the second by one invocation or one workgroup per output).
 */
import { Emitter, type Expr, fixedOverFour, IndexConstants, litMultipleOf4, loadsAsArguments, slotsWhereEveryLoad, type VT, vtText } from './ir.js';
import type { KernelConfig, Pass, ReduceKernel } from './kernels.js';
import { constantsOf, ENTRY, fnOf, grid, prelude, readUniformsDirectly, storeText, WG } from './kernel-source.js';
import { UNROLL_MAX_CHARS } from './elementwise.js';

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

/** Renders a reduction (and the further reductions fused with it) as one pass, or two (partials, then their reduction and the epilogues). */
export function renderReduce(k: ReduceKernel, cfg: KernelConfig): Pass[] {
  const t = k.accType;
  const tt = t === 'vec4u' ? 'u32' : t;
  const S = reduceSplit(k.outSize, k.redSize, cfg);
  const C = constantsOf(k, k.outSize * k.redSize);
  const outs = [{ body: k.body, epilogue: k.epilogue, dtype: k.outDtype }, ...(k.extra ?? [])];
  const n = outs.length;
  // output i: its accumulator, epilogue function and binding
  const acc = (i: number) => (n === 1 ? 'acc' : `acc${i}`);
  const epiName = (i: number) => (i === 0 ? 'epilogue' : `epilogue${i}`);
  const outName = (i: number) => (i === 0 ? 'OUT' : `OUT${i}`);
  // an epilogue may use the values of the outputs before it (PREV_OUTPUT vars, e.g. a variance from both moments):
  // then each output's value is kept in prev<i> as it is stored
  const chained = n > 1 && outs.some((o) => usesPrevOutputs(o.epilogue));
  const prevArgs = (i: number) => (chained ? outs.slice(0, i).map((o, j) => `, ${PREV_OUTPUT}${j}: ${vtText(o.epilogue.t)}`).join('') : '');
  const epi = outs.map((o, i) => fnOf(epiName(i), `gid: u32, acc: ${tt}${prevArgs(i)}`, o.epilogue.t, o.epilogue, C)).join('\n');
  const value = (i: number, gid: string, acc: string) => `${epiName(i)}(${gid}, ${acc}${chained ? outs.slice(0, i).map((_, j) => `, ${PREV_OUTPUT}${j}`).join('') : ''})`;
  // `declared`: prev<i> is a var declared before (the tree form, where only invocation 0 stores)
  const store = (i: number, gid: string, acc: string, declared = false) => chained
    ? `${declared ? '' : 'let '}${PREV_OUTPUT}${i} = ${value(i, gid, acc)}; ${outName(i)}[${gid}] = ${storeText(outs[i]!.dtype, `${PREV_OUTPUT}${i}`)};`
    : `${outName(i)}[${gid}] = ${storeText(outs[i]!.dtype, value(i, gid, acc))};`;
  const declare = (indent: string) => outs.map((_, i) => `${indent}var ${acc(i)}: ${tt} = ${identity(k.op, t)};`).join('\n');
  const single = S === 1;
  // vectorized: the partials of a split reduction over contiguous chunks (a long reduction on a CPU driver);
  // fused reductions are the short ones of normalizations' backwards, and stay scalar
  const vec4 = cfg.vectorWidth === 4 && !single && cfg.reduceMapping === 'chunk' && n === 1 ? vec4Inputs(k) : null;
  const vecSlots = new Set(vec4?.keys());
  const slots = [...vecSlots];
  // one body computes every output's term, so what they read in common is loaded once
  const body = n === 1
    ? fnOf('body', `o: u32, r: u32${slots.map((s) => `, x${s}: f32`).join('')}`, t, vec4 ? loadsAsArguments(k.body, vecSlots, new Map()) : k.body, C)
    : bodyOfAll(outs.map((o) => o.body), t, C);
  // the loop step over r: one element, or 4 read as one vec4 per vectorized input (`o` and `r` in scope)
  // the four elements of a vec4 by constant component, in order, when the body is short (a loop indexing the
  // vectors by a variable summed 16M floats at 1.32 GB/s on SwiftShader, against 2.24–2.48 this way; lavapipe
  // the same); a long body keeps the loop (see UNROLL_MAX_CHARS)
  const step = (indent: string) => vec4 && body.length > UNROLL_MAX_CHARS ? `${vec4Loads(vec4, C, indent)}
${indent}for (var c = 0u; c < 4u; c++) {
${indent}  let x = body(o, r + c${slots.map((s) => `, l${s}[c]`).join('')});
${indent}  ${combine(k.op, t, 'acc', 'x')}
${indent}}` : vec4 ? `${vec4Loads(vec4, C, indent)}
${['x', 'y', 'z', 'w'].map((c, j) => `${indent}{
${indent}  let x = body(o, r + ${j}u${slots.map((s) => `, l${s}.${c}`).join('')});
${indent}  ${combine(k.op, t, 'acc', 'x')}
${indent}}`).join('\n')}` : n === 1 ? `${indent}let x = body(o, r);
${indent}${combine(k.op, t, 'acc', 'x')}` : `${indent}let x = body(o, r);
${outs.map((_, i) => `${indent}${combine(k.op, t, acc(i), `x[${i}]`)}`).join('\n')}`;
  // vec4 steps per loop iteration (see VEC4_STEPS_PER_ITERATION)
  const U = vec4 && body.length <= UNROLL_MAX_CHARS / VEC4_STEPS_PER_ITERATION ? VEC4_STEPS_PER_ITERATION : 1;
  const by = vec4 ? ` += ${4 * U}u` : '++';
  if (single) {
    const { wg, nx } = grid(k.outSize, WG, cfg);
    const main = `${body}
${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  let o = gid;
${declare('  ')}
  for (var r = 0u; r < ${C.u32(k.redSize)}; r++) {
${step('    ')}
  }
${outs.map((_, i) => `  ${store(i, 'gid', acc(i))}`).join('\n')}
}`;
    const { text, bindings } = prelude(k, C, main);
    return [{ code: `${text}\n${main}`, workgroups: wg, bindings, params: C.words }];
  }
  // pass 1: S partials per output, each over a chunk of `chunk` elements (whole groups of U vec4s when
  // vectorized); the partials of output i follow those of output i − 1 in the scratch buffer
  const chunk = vec4 ? 4 * U * Math.ceil(k.redSize / S / 4 / U) : Math.ceil(k.redSize / S);
  const g1 = grid(k.outSize * S, WG, cfg);
  const rExpr = cfg.reduceMapping === 'chunk' ? `s * ${C.u32(chunk)} + j` : `j * ${C.u32(S, 'S')} + s`;
  const partials = (i: number) => (i === 0 ? '' : `${C.u32(i * k.outSize * S)} + `);
  const main1 = `${body}
${ENTRY}
  let t = (wid.y * ${C.u32(g1.nx)} + wid.x) * ${WG}u + lid;
  if (t >= ${C.u32(k.outSize * S)}) { return; }
  let o = ${C.div('t', S, 'S')};
  let s = t - o * ${C.u32(S, 'S')};
  let redSize = ${C.u32(k.redSize, 'R')};
${declare('  ')}
  for (var j = 0u; j < ${C.u32(chunk)}; j${by}) {
    let r = ${rExpr};
    if (r >= redSize) { break; }
${step('    ')}${Array.from({ length: U - 1 }, (_, u) => `
    if (r + ${4 * (u + 1)}u < redSize) {
      let r = r + ${4 * (u + 1)}u;
${step('      ')}
    }`).join('')}
  }
${outs.map((_, i) => `  S_out[${partials(i)}t] = ${acc(i)};`).join('\n')}
}`;
  // pass 2: reduce the partials and apply the epilogue, one invocation per output, or one workgroup (a tree
  // in workgroup memory over the partials its invocations read side by side)
  const g2 = grid(cfg.reduceTree ? k.outSize * WG : k.outSize, WG, cfg);
  const main2 = cfg.reduceTree ? `var<workgroup> partial: array<${tt}, ${WG}>;
${epi}
${ENTRY}
  let gid = wid.y * ${C.u32(g2.nx)} + wid.x;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  let S = ${C.u32(S, 'S')};
${chained ? outs.map((o, i) => `  var ${PREV_OUTPUT}${i}: ${vtText(o.epilogue.t)};\n`).join('') : ''}${outs.map((_, i) => `  {
    var acc: ${tt} = ${identity(k.op, t)};
    for (var s = lid; s < S; s += ${WG}u) {
      let x = S_in[${partials(i)}gid * S + s];
      ${combine(k.op, t, 'acc', 'x')}
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var w = ${WG / 2}u; w > 0u; w >>= 1u) {
      if (lid < w) {
        var a = partial[lid];
        let x = partial[lid + w];
        ${combine(k.op, t, 'a', 'x')}
        partial[lid] = a;
      }
      workgroupBarrier();
    }
    if (lid == 0u) { ${store(i, 'gid', 'partial[0]', true)} }${i < n - 1 ? '\n    workgroupBarrier();' : ''}
  }`).join('\n')}
}` : `${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(g2.nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  let S = ${C.u32(S, 'S')};
${declare('  ')}
  for (var s = 0u; s < S; s++) {
${outs.map((_, i) => `    {
      let x = S_in[${partials(i)}gid * S + s];
      ${combine(k.op, t, acc(i), 'x')}
    }`).join('\n')}
  }
${outs.map((_, i) => `  ${store(i, 'gid', acc(i))}`).join('\n')}
}`;
  const p1 = prelude(k, C, main1, { scratchOut: true, scratchType: tt, ...(vec4 ? { vec4Inputs: vecSlots } : {}) });
  const p2 = prelude(k, C, main2, { scratchIn: true, scratchType: tt });
  const scratchBytes = n * k.outSize * S * 4;
  return [
    { code: `${p1.text}\n${main1}`, workgroups: g1.wg, bindings: p1.bindings, scratchBytes, params: C.words },
    { code: cfg.reduceTree ? readUniformsDirectly(`${p2.text}\n${main2}`) : `${p2.text}\n${main2}`, workgroups: g2.wg, bindings: p2.bindings, scratchBytes, params: C.words },
  ];
}

/** The variable name prefix by which the epilogue of a fused reduction's output reads an earlier output's value (`prev0`, …). */
export const PREV_OUTPUT = 'prev';

function usesPrevOutputs(e: Expr, seen = new Set<Expr>()): boolean {
  if (seen.has(e)) return false;
  seen.add(e);
  if (e.k === 'var') return e.name.startsWith(PREV_OUTPUT);
  if (e.k === 'load') return usesPrevOutputs(e.idx, seen);
  return e.k === 'call' && e.args.some((a) => usesPrevOutputs(a, seen));
}

/** `fn body(o, r) -> array<T, n>`: the terms of n fused reductions, emitted together so common subexpressions are computed once. */
function bodyOfAll(bodies: Expr[], t: VT, C: IndexConstants): string {
  const em = new Emitter(C);
  const names = bodies.map((b) => em.emit(b));
  const T = `array<${vtText(t)}, ${bodies.length}>`;
  return `fn body(o: u32, r: u32) -> ${T} {\n${em.lines.join('\n')}\n  return ${T}(${names.join(', ')});\n}`;
}

/**
 * The vec4 steps of one iteration of a vectorized partial's loop, when its body is short enough that the
 * copies stay under UNROLL_MAX_CHARS: fewer loop tests and index updates per element. A sum of 16M floats, one
 * process per setting, alternating: SwiftShader 2.53 GB/s with one step, 3.73–3.85 with four, 4.08–4.18 with
 * eight; lavapipe 10.7–14.0, 14.6–15.5 and 14.5–15.6.
 */
const VEC4_STEPS_PER_ITERATION = 4;

/**
 * The shortest reduction read as vec4. Shorter ones keep the scalar pipeline they share with
 * same-structure reductions whose sizes are not multiples of 4: with every reduction vectorized, the
 * default UNet step compiled 123 pipelines instead of 118 (a normalization's statistics, bias gradients,
 * the loss and a gradient norm each in two variants) to gain ~2% of its kernel time.
 */
const VEC4_MIN_REDUCTION = 65536;

/**
 * The inputs a reduction reads as vec4 (by slot, with their one load), 4 steps of r at a time: f32 inputs whose one load reads 4
 * consecutive elements from a multiple of 4 at every r that is a multiple of 4 (see alongR). Null when the
 * reduced size is not a multiple of 4, is under VEC4_MIN_REDUCTION, or no input qualifies. lavapipe loads
 * lane by lane, and a vec4 costs about half of its four scalars: a sum of 16M floats ran at 6.1 against
 * 3.2–4.7 GB/s.
 */
function vec4Inputs(k: ReduceKernel): Map<number, Expr> | null {
  if (k.redSize % 4 !== 0 || k.redSize < VEC4_MIN_REDUCTION) return null;
  // a slot qualifies when it is loaded by one load node (so one vec4 stands for all its reads)
  const node = new Map<number, Expr>();
  const slots = slotsWhereEveryLoad([k.body], (e) => {
    const first = node.get(e.slot) ?? e;
    node.set(e.slot, e);
    return first === e && !e.half && !e.bool && k.inputs[e.slot] === 'f32' && alongR(e.idx);
  });
  return slots.size ? new Map([...slots].map((slot) => [slot, node.get(slot)!])) : null;
}

/**
 * Whether an index reads 4 consecutive elements at r, r+1, r+2, r+3 from a multiple of 4, for every r that
 * is a multiple of 4: a sum of one term that steps with r (r, or r mod D with D a multiple of 4) and terms
 * that are multiples of 4 and do not change over the 4 steps (no r, or r only as r / D).
 */
function alongR(idx: Expr): boolean {
  const terms = (e: Expr): Expr[] => (e.k === 'call' && e.key === '+' ? e.args.flatMap(terms) : [e]);
  const all = terms(idx);
  const stepping = all.filter(stepsWithR);
  return stepping.length === 1 && all.every((t) => stepsWithR(t) || (multipleOf4(t) && fixedOverFour(t, 'r')));
}

const isR = (e: Expr): boolean => e.k === 'var' && e.name === 'r';

/** r, or r mod D with D a multiple of 4 (which steps with r inside an aligned group of 4). */
function stepsWithR(e: Expr): boolean {
  return isR(e) || (e.k === 'call' && e.key === '%' && isR(e.args[0]!) && litMultipleOf4(e.args[1]!));
}

/** Whether an index term is a multiple of 4 whatever its variables. */
function multipleOf4(e: Expr): boolean {
  if (e.k === 'lit') return litMultipleOf4(e);
  if (e.k !== 'call') return false;
  if (e.key === '+') return e.args.every(multipleOf4);
  return e.key === '*' && e.args.some(litMultipleOf4);
}

/** WGSL loading the vec4 of each vectorized input at the current r (a multiple of 4): `let l<slot> = …;`. */
function vec4Loads(loads: Map<number, Expr>, C: IndexConstants, indent: string): string {
  const em = new Emitter(C, { n: 0 }, undefined, indent);
  const lines = [...loads].map(([slot, load]) => `${indent}let l${slot} = B${slot}[${em.emit((load as Extract<Expr, { k: 'load' }>).idx)} >> 2u];`);
  return [...em.lines, ...lines].join('\n');
}
