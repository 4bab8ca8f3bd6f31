/**
 * Horizontal fusion: elementwise kernels of the same size planned close together that read a tensor of
 * that size in common (or one reads what the other writes) become one pass with several outputs (e.g. an
 * optimizer's parameter and moment updates, which all read the gradient), so shared subexpressions are
 * computed and shared data read once; so do reductions of the same sizes over a tensor they both read.
 * Kernels that share at most a broadcast scalar stay apart (e.g. the updates of two parameters of the same
 * size): merged, every count and order of them would be a pipeline of its own, while apart they share one
 * pipeline across sizes.
 */
import type { LazyNode } from './node.js';
import type { PlannedKernel } from './plan.js';
import * as ir from '../wgsl/ir.js';
import { slotsWhereEveryLoad, type Expr } from '../wgsl/ir.js';
import type { ElementwiseKernel, ReduceKernel } from '../wgsl/kernels.js';
import { PREV_OUTPUT } from '../wgsl/reduce.js';

/**
 * How far ahead (in kernels) a related kernel is looked for: far enough to pair each parameter's update
 * with its clipped gradient, which are made in two passes over all the parameters. Further on, only a kernel
 * that reads what the first one writes is looked for (e.g. the update of a parameter's moving average, made
 * after every update and planned apart from its own by the backward kernels between them): looking that far
 * for any related kernel merged unrelated passes of large graphs (a VAE step planned minutes of kernels).
 */
const WINDOW = 256;

/** Merges each elementwise kernel with the following related ones of the same size that it can absorb (in place). */
export function fuseHorizontally(ks: PlannedKernel[], maxInputs: number): PlannedKernel[] {
  // where each kernel was planned (merging keeps the order), and the kernels reading each node: the far
  // candidates of the kernel that writes it
  const pos = new Map<PlannedKernel, number>(ks.map((k, i) => [k, i]));
  const readers = new Map<LazyNode, PlannedKernel[]>();
  for (const k of ks) if (k.kernel.kind === 'elementwise') for (const x of k.inputs) {
    const list = readers.get(x);
    if (list) list.push(k);
    else readers.set(x, [k]);
  }
  for (let i = 0; i < ks.length; i++) {
    let a = ks[i]!;
    if (a.kernel.kind === 'reduce') {
      fuseReductions(ks, i, maxInputs);
      continue;
    }
    if (a.kernel.kind !== 'elementwise') continue;
    const size = a.kernel.size;
    const produced = new Set<LazyNode>(a.outs);
    const far = new Set<PlannedKernel>();
    let farEnd = -1;
    const readersOf = (outs: LazyNode[]) => {
      for (const k of outs.flatMap((o) => readers.get(o) ?? [])) if (k.kernel.kind === 'elementwise' && k.kernel.size === size) {
        far.add(k);
        farEnd = Math.max(farEnd, pos.get(k)!);
      }
    };
    readersOf(a.outs);
    for (let j = i + 1; j < ks.length; j++) {
      const b = ks[j]!;
      const near = j < i + WINDOW;
      if (!near && pos.get(b)! > farEnd) break;
      // b may read a's own outputs (substituted by their expressions), not outputs of kernels in between
      const ok = (near || far.has(b)) && b.kernel.kind === 'elementwise' && b.kernel.size === size && !b.inputs.some((x) => produced.has(x) && !a.outs.includes(x))
        && b.inputs.some((x) => x.size === size && (a.inputs.includes(x) || a.outs.includes(x)));
      if (ok) {
        const merged = mergeElementwise(a, b);
        if (merged && merged.inputs.length + merged.outs.length <= maxInputs + 1) {
          pos.set(merged, pos.get(a)!);
          ks[i] = a = merged;
          ks.splice(j, 1);
          j--;
          for (const o of b.outs) produced.add(o);
          readersOf(b.outs);
          continue;
        }
      }
      for (const o of b.outs) produced.add(o);
    }
  }
  return ks;
}

/**
 * Drops the outputs of merged elementwise kernels that nothing reads any more: a node stored because two
 * kernels read it needs no store once those kernels are one, which computes it in registers. `keep` are
 * the nodes that must be written all the same (the targets, and nodes stored on request).
 */
export function dropUnreadOutputs(ks: PlannedKernel[], keep: (n: LazyNode) => boolean): void {
  const read = new Set<LazyNode>(ks.flatMap((k) => k.inputs));
  ks.forEach((k, i) => {
    if (k.kernel.kind !== 'elementwise' || k.outs.length < 2) return;
    const kk = k.kernel;
    const outputs = [{ value: kk.value, dtype: kk.outDtype }, ...(kk.extra ?? [])].map((o, j) => ({ ...o, node: k.outs[j]! }));
    const left = outputs.filter((o) => read.has(o.node) || keep(o.node));
    if (left.length === outputs.length || left.length === 0) return;
    const [first, ...rest] = left;
    const kernel: ElementwiseKernel = { ...kk, value: first!.value, outDtype: first!.dtype, extra: rest.length ? rest.map(({ value, dtype }) => ({ value, dtype })) : undefined };
    ks[i] = { ...k, kernel, outs: left.map((o) => o.node) };
  });
}

/**
 * Merges the reduction at `i` with the following ones (within WINDOW) of the same op, sizes and f32
 * accumulator that read a tensor of all their elements in common, and its outputs at most in their epilogues
 * (a reduction's output cannot be substituted inside the loop): e.g. the two sums of a normalization's
 * backward over the upstream gradient, one loop reading it once, or the sums of d and d² of its forward,
 * whose variance E[d²] − E[d]² reads the first. The merged kernel runs where the first one did when the second's
 * inputs are ready there, else where the second one did when nothing in between reads the first's outputs.
 */
function fuseReductions(ks: PlannedKernel[], i: number, maxInputs: number): void {
  let at = i;
  let a = ks[at]!;
  const ka = a.kernel as ReduceKernel;
  if (ka.accType !== 'f32') return;
  const elements = ka.outSize * ka.redSize;
  // what the kernels after `at` make, and whether any of them reads what `a` makes
  let produced = new Set<LazyNode>();
  let outsRead = false;
  for (let j = at + 1; j < ks.length && j < at + WINDOW; j++) {
    const b = ks[j]!;
    const kb = b.kernel;
    const ok = kb.kind === 'reduce' && kb.op === ka.op && kb.accType === 'f32' && kb.outSize === ka.outSize && kb.redSize === ka.redSize
      && onlyEpilogueReads(b, a.outs) && b.inputs.some((x) => x.size === elements && a.inputs.includes(x));
    const here = ok && !b.inputs.some((x) => produced.has(x)), there = ok && !here && !outsRead;
    const merged = here || there ? mergeReduce(a, b) : null;
    if (merged && merged.inputs.length + merged.outs.length <= maxInputs + 1) {
      a = merged;
      if (here) {
        ks[at] = merged;
        ks.splice(j, 1);
        j--;
      } else {
        ks[j] = merged;
        ks.splice(at, 1);
        at = --j;
        produced = new Set();
      }
      continue;
    }
    for (const o of b.outs) produced.add(o);
    if (b.inputs.some((x) => a.outs.includes(x))) outsRead = true;
  }
}

/**
 * The inputs and uniform sources of b merged into a's: a's, then b's that a lacks. `slots` maps each input
 * slot of b to its merged slot (−1 where `subst` replaces its loads), `pslots` each parameter of b.
 */
function joinOperands(a: PlannedKernel, b: PlannedKernel, subst: Map<number, Expr>): { inputs: LazyNode[]; slots: number[]; sources: PlannedKernel['sources']; pslots: number[] } {
  const inputs = [...a.inputs];
  const slots = b.inputs.map((n, slot) => {
    if (subst.has(slot)) return -1;
    const at = inputs.indexOf(n);
    if (at >= 0) return at;
    inputs.push(n);
    return inputs.length - 1;
  });
  // parameters are appended, not matched by value (see KernelBuilder.param)
  const sources = [...a.sources, ...b.sources];
  const pslots = b.sources.map((_, i) => a.sources.length + i);
  return { inputs, slots, sources, pslots };
}

/** Whether the reduction b reads the nodes `outs` only in its epilogues (not in the loop's body). */
function onlyEpilogueReads(b: PlannedKernel, outs: LazyNode[]): boolean {
  if (!b.inputs.some((x) => outs.includes(x))) return true;
  const kb = b.kernel as ReduceKernel;
  const inBody = slotsWhereEveryLoad([kb.body, ...(kb.extra ?? []).map((o) => o.body)], () => true);
  return b.inputs.every((x, slot) => !outs.includes(x) || !inBody.has(slot));
}

/**
 * One reduction kernel computing the outputs of both (inputs de-duplicated). Where b's epilogue reads an
 * output of a (at its own index), it takes that output's value in the kernel instead (PREV_OUTPUT).
 */
function mergeReduce(a: PlannedKernel, b: PlannedKernel): PlannedKernel | null {
  const ka = a.kernel as ReduceKernel, kb = b.kernel as ReduceKernel;
  const aOuts = [{ epilogue: ka.epilogue, dtype: ka.outDtype }, ...(ka.extra ?? [])];
  const subst = new Map<number, Expr>();
  for (const [slot, n] of b.inputs.entries()) {
    const o = a.outs.indexOf(n);
    if (o < 0) continue;
    const { epilogue, dtype } = aOuts[o]!;
    if (epilogue.t !== 'f32' || (dtype !== 'f32' && dtype !== 'f16')) return null;
    subst.set(slot, asStored(ir.v(`${PREV_OUTPUT}${o}`, 'f32'), dtype));
  }
  const none = new Map<number, Expr>();
  const { inputs, slots, sources, pslots } = joinOperands(a, b, subst);
  const memo = new Map<Expr, Expr | null>(), epilogueMemo = new Map<Expr, Expr | null>();
  const bOuts = [{ body: kb.body, epilogue: kb.epilogue, dtype: kb.outDtype }, ...(kb.extra ?? [])].map((o) => ({
    body: remap(o.body, slots, pslots, memo, none), epilogue: remap(o.epilogue, slots, pslots, epilogueMemo, subst, a.outs.length), dtype: o.dtype,
  }));
  if (bOuts.some((o) => !o.body || !o.epilogue)) return null;
  const extra = [...(ka.extra ?? []), ...bOuts.map((o) => ({ body: o.body!, epilogue: o.epilogue!, dtype: o.dtype }))];
  const helpers = [...new Set([...ka.helpers, ...kb.helpers])];
  const kernel: ReduceKernel = { ...ka, inputs: inputs.map((n) => n.dtype), nParams: sources.length, helpers, extra, ops: [...(ka.ops ?? []), ...(kb.ops ?? [])] };
  return { kernel, inputs, sources, outs: [...a.outs, ...b.outs] };
}

/**
 * Rewrites an expression with input and parameter slots renumbered; loads of `subst` slots at the loop
 * index are replaced by the expression computing that value (null when such a load is not at the index).
 * `prevShift`: an epilogue moved behind that many outputs, whose PREV_OUTPUT references move with it.
 */
function remap(e: Expr, slots: number[], params: number[], memo: Map<Expr, Expr | null>, subst: Map<number, Expr>, prevShift?: number): Expr | null {
  if (memo.has(e)) return memo.get(e)!;
  let r: Expr | null;
  switch (e.k) {
    case 'lit': r = e; break;
    case 'var': r = prevShift !== undefined && e.name.startsWith(PREV_OUTPUT) ? ir.v(`${PREV_OUTPUT}${Number(e.name.slice(PREV_OUTPUT.length)) + prevShift}`, e.t) : e; break;
    case 'param': r = { ...e, slot: params[e.slot]! }; break;
    case 'load': {
      const sub = subst.get(e.slot);
      if (sub) r = e.idx.k === 'var' && e.idx.name === 'gid' ? sub : null;
      else {
        const idx = remap(e.idx, slots, params, memo, subst, prevShift);
        r = idx && { ...e, slot: slots[e.slot]!, idx };
      }
      break;
    }
    case 'call': {
      const args = e.args.map((x) => remap(x, slots, params, memo, subst, prevShift));
      r = args.every((x) => x) ? { ...e, args: args as Expr[] } : null;
      break;
    }
  }
  memo.set(e, r);
  return r;
}

/** The value `e` of an output as a kernel reading it back would see it: an f16 output is rounded when stored. */
function asStored(e: Expr, dtype: LazyNode['dtype']): Expr {
  return dtype === 'f16' ? ir.call('f16round', ([x]) => `f32(f16(${x}))`, [e], 'f32') : e;
}

/** One elementwise kernel computing the outputs of both (inputs de-duplicated). */
function mergeElementwise(a: PlannedKernel, b: PlannedKernel): PlannedKernel | null {
  const ka = a.kernel as ElementwiseKernel, kb = b.kernel as ElementwiseKernel;
  const aValues = [ka.value, ...(ka.extra ?? []).map((x) => x.value)];
  const subst = new Map<number, Expr>();
  b.inputs.forEach((n, slot) => {
    const o = a.outs.indexOf(n);
    if (o >= 0) subst.set(slot, asStored(aValues[o]!, n.dtype));
  });
  const { inputs, slots, sources, pslots } = joinOperands(a, b, subst);
  const memo = new Map<Expr, Expr | null>();
  const bValues = [kb.value, ...(kb.extra ?? []).map((x) => x.value)].map((v) => remap(v, slots, pslots, memo, subst));
  if (bValues.some((v) => !v)) return null;
  const bTypes = [kb.outDtype, ...(kb.extra ?? []).map((x) => x.dtype)];
  const extra = [...(ka.extra ?? []), ...bValues.map((v, i) => ({ value: v!, dtype: bTypes[i]! }))];
  const helpers = [...new Set([...ka.helpers, ...kb.helpers])];
  const kernel: ElementwiseKernel = { ...ka, inputs: inputs.map((n) => n.dtype), nParams: sources.length, helpers, extra };
  return { kernel, inputs, sources, outs: [...a.outs, ...b.outs] };
}
