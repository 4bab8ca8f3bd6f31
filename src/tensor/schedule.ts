/**
 * The scheduler: cuts the pending graph into kernels. Elementwise chains, views (as index math),
 * random numbers and gathers fuse into one kernel; a reduction or matmul becomes the core of a kernel
 * whose elementwise consumer fuses in as its epilogue; a node is stored only when it must be (a target,
 * several consumers, a broadcast of computed values, a matmul operand, or the storage-binding limit).
 */
import { type DType, byteSize, wgslType } from './dtype.js';
import { elementwiseDef, BASE_HELPERS, RNG_HELPERS } from './ops.js';
import { LazyNode, baseOf, type MovementArg } from './node.js';
import { contiguousStrides, contiguousView, moveFactored, numel, type FactoredView } from './shape.js';
import * as ir from '../wgsl/ir.js';
import type { Expr, VT } from '../wgsl/ir.js';
import type { ElementwiseKernel, Kernel, MatmulOperand } from '../wgsl/kernels.js';

/** Scheduler switches (fusion can be turned off to test that it does not change results). */
export const scheduleConfig = {
  fusion: true,
  /** Inputs one kernel may bind (the device limit minus the output), set at init. */
  maxInputs: 9,
};

/** A kernel to launch and the nodes it reads and writes. */
export interface PlannedKernel {
  kernel: Kernel;
  inputs: LazyNode[];
  params: Uint32Array;
  /** The nodes written (several for horizontally fused elementwise kernels). */
  outs: LazyNode[];
}

interface Index {
  flat?: Expr;
  coords?: Expr[];
  shape: readonly number[];
}

const GID: Expr = ir.v('gid');
/** Largest fused subtree cost recomputed in several kernels instead of stored. */
const RECOMPUTE_MAX = 8;
/** Largest cost recomputed for every element of a broadcast instead of stored. */
const EXPAND_RECOMPUTE_MAX = 4;
/** Deepest chain of ops fused into one kernel before an intermediate is stored. */
const MAX_FUSED_DEPTH = 48;
/** Cost estimate of one Philox evaluation. */
const RNG_COST = 6;

function flatOf(idx: Index): Expr {
  if (idx.flat) return idx.flat;
  const st = contiguousStrides(idx.shape);
  let e: Expr = ir.int(0);
  idx.coords!.forEach((c, i) => {
    if (idx.shape[i] !== 1) e = ir.add(e, ir.mul(c, ir.int(st[i]!)));
  });
  return e;
}

function coordsOf(idx: Index): Expr[] {
  if (idx.coords) return idx.coords;
  const st = contiguousStrides(idx.shape);
  const f = idx.flat!;
  return idx.shape.map((d, i) => {
    if (d === 1) return ir.int(0);
    const q = ir.div(f, st[i]!);
    return i === 0 ? q : ir.mod(q, d);
  });
}

const vt = (dt: DType): VT => wgslType(dt) as VT;

const f32 = new Float32Array(1);
const f32u = new Uint32Array(f32.buffer);
function paramBits(value: number, dt: DType): number {
  switch (dt) {
    case 'f32': case 'f16': f32[0] = value; return f32u[0]!;
    case 'i32': return (value | 0) >>> 0;
    case 'u32': return value >>> 0;
    case 'bool': return value ? 1 : 0;
  }
}

/** Builds the expression bodies of one kernel. */
class KernelBuilder {
  inputs: LazyNode[] = [];
  private slots = new Map<LazyNode, number>();
  params: number[] = [];
  private paramSlots = new Map<string, number>();
  helpers = new Set<string>();
  core: LazyNode | null = null;

  constructor(private readonly sched: Scheduler, readonly root: LazyNode) {}

  slot(n: LazyNode): number {
    let s = this.slots.get(n);
    if (s === undefined) {
      s = this.inputs.length;
      this.inputs.push(n);
      this.slots.set(n, s);
    }
    return s;
  }

  /**
   * A run-time scalar. Slots are keyed by where the value comes from (`key`), never by the value: two scalars
   * that happen to be equal in one step (a bias correction and a decay, two RNG key words) differ in the next,
   * and a kernel's source must not change with them, or every step would compile new pipelines.
   */
  param(key: string, value: number, dt: DType): Expr {
    const bits = paramBits(value, dt);
    const t = vt(dt);
    let s = this.paramSlots.get(key);
    if (s === undefined) {
      s = this.params.length;
      this.params.push(bits);
      this.paramSlots.set(key, s);
    }
    return { k: 'param', slot: s, t };
  }

  load(n: LazyNode, idx: Index): Expr {
    return { k: 'load', slot: this.slot(n), idx: flatOf(idx), t: vt(n.dtype), half: n.dtype === 'f16', bool: n.dtype === 'bool' };
  }

  /** The value of node `n` at index `idx` (in n's shape). */
  value(n: LazyNode, idx: Index): Expr {
    if (n.realized) return this.load(n, idx);
    if (n !== this.root && this.sched.isMaterialized(n)) {
      this.sched.plan(n);
      return this.load(n, idx);
    }
    switch (n.kind) {
      case 'movement': return this.movement(n, idx);
      case 'leaf': return this.leaf(n, idx);
      case 'elementwise': {
        const def = elementwiseDef(n.op);
        for (const h of def.helpers) this.helpers.add(h);
        const args = n.src.map((s) => this.value(s, idx));
        const ctx = { inDtypes: n.src.map((s) => s.dtype), outDtype: n.dtype, arg: n.arg };
        return ir.call(`${n.op}:${JSON.stringify(n.arg ?? null)}:${ctx.inDtypes.join(',')}`, (a) => def.wgsl(a, ctx), args, vt(n.dtype));
      }
      case 'gather': {
        const [x, index] = n.src as [LazyNode, LazyNode];
        const axis = n.arg as number;
        const c = coordsOf(idx).slice();
        const size = x.shape[axis]!;
        // negative indices count from the end; the rest clamp into range (in i32, then to an index)
        const raw = this.value(index, idx);
        c[axis] = ir.call(`gidx${size}`, (x) => `u32(clamp(select(${x[0]}, ${x[0]} + ${size}, ${x[0]} < 0), 0, ${Math.max(size - 1, 0)}))`, [raw], 'u32');
        return this.value(x, { coords: c, shape: x.shape });
      }
      case 'contiguous': return this.value(n.src[0]!, idx);
      case 'reduce':
      case 'matmul': {
        if ((this.core === null || this.core === n) && idx.flat === GID && this.sched.consumerCount(n) <= 1) {
          this.core = n;
          return ir.v('acc', n.kind === 'matmul' ? 'f32' : vt(n.dtype));
        }
        this.sched.forceMaterialize(n);
        this.sched.plan(n);
        return this.load(n, idx);
      }
    }
  }

  private leaf(n: LazyNode, idx: Index): Expr {
    if (n.op === 'const') return this.param(`${n.id}`, n.arg as number, n.dtype);
    if (n.op === 'rng') {
      this.helpers.add(RNG_HELPERS);
      const a = n.arg as { key: [number, number]; ctr: number; word: number };
      const k0 = this.param(`${n.id}.k0`, a.key[0], 'u32');
      const k1 = this.param(`${n.id}.k1`, a.key[1], 'u32');
      const ctr = this.param(`${n.id}.ctr`, a.ctr, 'u32');
      const words = ir.call('philox', (x) => `kiln_philox(vec4<u32>(${x[0]}, ${x[1]}, 0u, 0u), vec2<u32>(${x[2]}, ${x[3]}))`, [flatOf(idx), ctr, k0, k1], 'vec4u');
      return ir.call(`word${a.word}`, (x) => `${x[0]}.${'xyzw'[a.word]}`, [words], 'u32');
    }
    if (n.op === 'iota') {
      const f = flatOf(idx);
      return n.dtype === 'u32' ? f : ir.call(`to_${n.dtype}`, (x) => `${vt(n.dtype)}(${x[0]})`, [f], vt(n.dtype));
    }
    throw new Error(`kiln internal error: unknown leaf op '${n.op}'`);
  }

  private movement(n: LazyNode, idx: Index): Expr {
    const src = n.src[0]!;
    const m = n.arg as MovementArg;
    switch (m.op) {
      case 'reshape': return this.value(src, { flat: flatOf(idx), shape: src.shape });
      case 'permute': {
        const c = coordsOf(idx);
        const sc = new Array<Expr>(src.shape.length);
        m.perm.forEach((p, i) => (sc[p] = c[i]!));
        return this.value(src, { coords: sc, shape: src.shape });
      }
      case 'expand': {
        const c = coordsOf(idx);
        return this.value(src, { coords: c.map((e, i) => (src.shape[i] === 1 ? ir.int(0) : e)), shape: src.shape });
      }
      case 'shrink': {
        const c = coordsOf(idx);
        return this.value(src, { coords: c.map((e, i) => ir.add(e, ir.int(m.ranges[i]![0]))), shape: src.shape });
      }
      case 'flip': {
        const c = coordsOf(idx);
        return this.value(src, { coords: c.map((e, i) => (m.axes.includes(i) ? ir.sub(ir.int(src.shape[i]! - 1), e) : e)), shape: src.shape });
      }
      case 'unfold': {
        const c = coordsOf(idx);
        const sc = c.slice(0, -1);
        sc[m.axis] = ir.add(ir.mul(c[m.axis]!, ir.int(m.step)), ir.mul(c[c.length - 1]!, ir.int(m.dilation)));
        return this.value(src, { coords: sc, shape: src.shape });
      }
      case 'pad': {
        const c = coordsOf(idx);
        let valid: Expr = ir.lit(true, 'bool');
        const sc = c.map((e, i) => {
          const [before, after] = m.pads[i]!;
          if (before === 0 && after === 0) return e;
          // u32: a position before the data wraps to a huge value, so one comparison tests both ends
          const s = ir.sub(e, ir.int(before));
          const size = src.shape[i]!;
          valid = ir.and(valid, ir.lt(s, ir.int(size)));
          return ir.clampIdx(s, size);
        });
        const inner = this.value(src, { coords: sc, shape: src.shape });
        return ir.select(ir.lit(m.value, vt(n.dtype)), inner, valid);
      }
    }
  }
}

/** Plans the kernels that realize a set of target nodes. */
export class Scheduler {
  readonly planned: PlannedKernel[] = [];
  private materialize = new Set<LazyNode>();
  private done = new Set<LazyNode>();
  private consumers = new Map<LazyNode, Set<LazyNode>>();
  private expanded = new Set<LazyNode>();

  constructor(targets: LazyNode[]) {
    const seen = new Set<LazyNode>();
    const stack = [...targets];
    while (stack.length) {
      const n = stack.pop()!;
      if (seen.has(n) || n.realized) continue;
      seen.add(n);
      if (n.kind !== 'movement') {
        for (const s of n.src) {
          const { base, expands } = this.walk(s);
          if (base.realized) continue;
          let set = this.consumers.get(base);
          if (!set) this.consumers.set(base, (set = new Set()));
          set.add(n);
          if (expands) this.expanded.add(base);
        }
      }
      for (const s of n.src) stack.push(s);
    }
    for (const t of targets) if (!t.realized) this.materialize.add(t);
    for (const n of seen) {
      if (n.kind === 'contiguous') this.materialize.add(n);
      if (!scheduleConfig.fusion && n.kind !== 'movement' && n.kind !== 'leaf') this.materialize.add(n);
    }
    if (scheduleConfig.fusion) this.chooseStores(seen);
    for (const t of targets) if (!t.realized) this.plan(t);
    if (scheduleConfig.fusion) this.fuseHorizontally();
  }

  /**
   * Merges elementwise kernels of the same size into one pass with several outputs (e.g. an optimizer's
   * parameter and moment updates), so shared subexpressions are computed once and dispatches are saved.
   */
  private fuseHorizontally(): void {
    const ks = this.planned;
    for (let i = 0; i < ks.length; i++) {
      let a = ks[i]!;
      if (a.kernel.kind !== 'elementwise') continue;
      const produced = new Set<LazyNode>(a.outs);
      for (let j = i + 1; j < ks.length && j < i + 64; j++) {
        const b = ks[j]!;
        // b may read a's own outputs (substituted by their expressions), not outputs of kernels in between
        const ok = b.kernel.kind === 'elementwise' && b.kernel.size === (a.kernel as ElementwiseKernel).size && !b.inputs.some((x) => produced.has(x) && !a.outs.includes(x));
        if (ok) {
          const merged = mergeElementwise(a, b);
          if (merged && merged.inputs.length + merged.outs.length <= scheduleConfig.maxInputs + 1) {
            ks[i] = a = merged;
            ks.splice(j, 1);
            j--;
            for (const o of b.outs) produced.add(o);
            continue;
          }
        }
        for (const o of b.outs) produced.add(o);
      }
    }
  }

  /**
   * Stores a node when recomputing it would cost more than storing it: when kernels of two different
   * stored roots would both contain it, or when it is broadcast, unless it is cheap to recompute.
   */
  private chooseStores(nodes: Set<LazyNode>): void {
    for (let iter = 0; iter < 64; iter++) {
      const cost = new Map<LazyNode, number>();
      const costOf = (n: LazyNode): number => {
        if (n.realized || this.materialize.has(n)) return 0;
        const c = cost.get(n);
        if (c !== undefined) return c;
        let v: number;
        if (n.kind === 'reduce' || n.kind === 'matmul') v = Infinity;
        else if (n.kind === 'leaf') v = n.op === 'rng' ? RNG_COST : 0;
        else {
          v = n.kind === 'elementwise' ? elementwiseDef(n.op).cost : n.kind === 'gather' ? 2 : 0;
          for (const s of n.src) v += costOf(s);
        }
        cost.set(n, v);
        return v;
      };
      // a fused node read by two stored roots is computed twice: store it when that is costly. A node
      // already known to be stored is not descended into again (its sources will be reached from it alone)
      const eligible = (n: LazyNode) => n.kind === 'elementwise' || n.kind === 'gather';
      const owner = new Map<LazyNode, LazyNode>();
      const store = new Set<LazyNode>();
      for (const root of this.materialize) {
        if (!nodes.has(root)) continue;
        const visited = new Set<LazyNode>();
        const dfs = (n: LazyNode) => {
          for (const s of n.src) {
            if (s.realized || visited.has(s)) continue;
            visited.add(s);
            if (this.materialize.has(s) || store.has(s)) continue;
            const first = owner.get(s);
            if (first === undefined) owner.set(s, root);
            else if (first !== root && eligible(s) && costOf(s) > RECOMPUTE_MAX) {
              store.add(s);
              continue;
            }
            if (eligible(s) && this.expanded.has(s) && costOf(s) >= EXPAND_RECOMPUTE_MAX) {
              store.add(s);
              continue;
            }
            dfs(s);
          }
        };
        dfs(root);
      }
      for (const n of store) this.materialize.add(n);
      const changed = store.size > 0;
      if (!changed) break;
    }
    // bound the size of one kernel: store a node when its fused expression gets too deep
    const depth = new Map<LazyNode, number>();
    const depthOf = (n: LazyNode): number => {
      if (n.realized || this.materialize.has(n)) return 0;
      const hit = depth.get(n);
      if (hit !== undefined) return hit;
      let d = 0;
      for (const s of n.src) d = Math.max(d, depthOf(s));
      d += n.kind === 'movement' ? 0 : 1;
      if (d > MAX_FUSED_DEPTH && n.kind !== 'movement' && n.kind !== 'leaf') {
        this.materialize.add(n);
        d = 0;
      }
      depth.set(n, d);
      return d;
    };
    for (const root of [...this.materialize]) for (const s of root.src) depthOf(s);
  }

  private walk(n: LazyNode): { base: LazyNode; expands: boolean } {
    let expands = false;
    while (n.kind === 'movement' && !n.realized) {
      const m = n.arg as MovementArg;
      if (m.op === 'expand' && numel(m.shape) > n.src[0]!.size) expands = true;
      n = n.src[0]!;
    }
    return { base: n, expands };
  }

  /** Distinct consumer nodes of `n` in the pending graph (targets count as one more). */
  consumerCount(n: LazyNode): number {
    return (this.consumers.get(n)?.size ?? 0) + (this.materialize.has(n) && !this.consumers.has(n) ? 1 : 0);
  }

  isMaterialized(n: LazyNode): boolean {
    return this.materialize.has(n);
  }

  forceMaterialize(n: LazyNode): void {
    this.materialize.add(n);
  }

  /** Plans the kernel computing `n` (after the kernels it depends on). */
  plan(n: LazyNode): void {
    if (this.done.has(n) || n.realized) return;
    this.done.add(n);
    this.materialize.add(n);
    let kernel = this.build(n);
    // respect the storage-buffer limit: store the widest fused input subtree and rebuild
    let guard = 0;
    while (kernel.b.inputs.length > scheduleConfig.maxInputs && guard++ < 64) {
      const victim = this.widestFused(n, kernel.b.core);
      if (!victim) {
        // nested plans may have stored nodes this build fused: building again can already fit
        const again = this.build(n);
        if (again.b.inputs.length < kernel.b.inputs.length) {
          kernel = again;
          continue;
        }
        throw new Error(`kiln: an op reads ${kernel.b.inputs.length} tensors at once, more than this device's ${scheduleConfig.maxInputs} storage bindings per kernel`);
      }
      this.materialize.add(victim);
      kernel = this.build(n);
    }
    this.planned.push({ kernel: kernel.k, inputs: kernel.b.inputs, params: new Uint32Array(kernel.b.params), outs: [n] });
  }

  private widestFused(root: LazyNode, core: LazyNode | null): LazyNode | null {
    let best: LazyNode | null = null;
    let bestCount = 1;
    const leafCount = new Map<LazyNode, Set<LazyNode>>();
    const leaves = (n: LazyNode): Set<LazyNode> => {
      let s = leafCount.get(n);
      if (s) return s;
      s = new Set();
      if (n.realized || (n !== root && this.materialize.has(n))) s.add(n);
      else for (const c of n.src) for (const l of leaves(c)) s.add(l);
      leafCount.set(n, s);
      if (n !== root && n !== core && !this.materialize.has(n) && !n.realized && n.kind !== 'leaf' && n.kind !== 'movement' && s.size > bestCount) {
        best = n;
        bestCount = s.size;
      }
      return s;
    };
    leaves(root);
    return best;
  }

  private build(n: LazyNode): { k: Kernel; b: KernelBuilder } {
    const b = new KernelBuilder(this, n);
    let epilogue: Expr;
    if (n.kind === 'reduce' || n.kind === 'matmul') {
      b.core = n;
      epilogue = ir.v('acc', n.kind === 'matmul' ? 'f32' : vt(n.dtype));
    } else {
      epilogue = b.value(n, { flat: GID, shape: n.shape });
    }
    const base = () => ({ inputs: b.inputs.map((x) => x.dtype), outDtype: n.dtype, nParams: b.params.length, helpers: [BASE_HELPERS, ...b.helpers] });
    const core = b.core;
    if (!core) return { k: { kind: 'elementwise', size: n.size, value: epilogue, ...base() }, b };
    if (core.kind === 'reduce') {
      const { op, axes } = core.arg as { op: 'sum' | 'max'; axes: number[] };
      const src = core.src[0]!;
      const inShape = src.shape;
      const redShape = axes.map((a) => inShape[a]!);
      const R = numel(redShape);
      const O = core.size;
      const o = ir.v('o');
      const r = ir.v('r');
      const trailing = axes.every((a, i) => a === inShape.length - axes.length + i);
      let idx: Index;
      if (trailing) idx = { flat: ir.add(ir.mul(o, ir.int(R)), r), shape: inShape };
      else {
        const oc = coordsOf({ flat: o, shape: core.shape });
        const rc = coordsOf({ flat: r, shape: redShape });
        idx = { coords: inShape.map((_, i) => (axes.includes(i) ? rc[axes.indexOf(i)]! : oc[i]!)), shape: inShape };
      }
      const body = b.value(src, idx);
      return { k: { kind: 'reduce', op, outSize: O, redSize: R, accType: vt(core.dtype), body, epilogue, ...base() }, b };
    }
    // matmul: both operands must be strided views of stored buffers
    const [A, B] = core.src as [LazyNode, LazyNode];
    const batchShape = core.shape.slice(0, -2);
    const M = A.shape[A.shape.length - 2]!;
    const K = A.shape[A.shape.length - 1]!;
    const N = B.shape[B.shape.length - 1]!;
    const opA = this.operand(A, b);
    const opB = this.operand(B, b);
    return { k: { kind: 'matmul', batchShape, M, N, K, a: opA, b: opB, epilogue, ...base() }, b };
  }

  private operand(x: LazyNode, b: KernelBuilder): MatmulOperand {
    let fv = factoredView(x);
    const r = x.shape.length;
    // batch axes are indexed with one stride each; anything else is read through a stored copy
    if (fv.view.axes.slice(0, r - 2).some((a) => a.length > 1)) fv = { base: x, view: contiguousView(x.shape) };
    if (!fv.base.realized) {
      this.materialize.add(fv.base);
      this.plan(fv.base);
    }
    const { axes, offset } = fv.view;
    return {
      slot: b.slot(fv.base),
      offset,
      batchStrides: axes.slice(0, r - 2).map((a) => a[0]?.[1] ?? 0),
      rows: axes[r - 2]!,
      cols: axes[r - 1]!,
    };
  }
}

/**
 * Rewrites an expression with input and parameter slots renumbered; loads of `subst` slots at the loop
 * index are replaced by the expression computing that value (null when such a load is not at the index).
 */
function remap(e: Expr, slots: number[], params: number[], memo: Map<Expr, Expr | null>, subst: Map<number, Expr>): Expr | null {
  if (memo.has(e)) return memo.get(e)!;
  let r: Expr | null;
  switch (e.k) {
    case 'lit': case 'var': r = e; break;
    case 'param': r = { ...e, slot: params[e.slot]! }; break;
    case 'load': {
      const sub = subst.get(e.slot);
      if (sub) r = e.idx.k === 'var' && e.idx.name === 'gid' ? sub : null;
      else {
        const idx = remap(e.idx, slots, params, memo, subst);
        r = idx && { ...e, slot: slots[e.slot]!, idx };
      }
      break;
    }
    case 'call': {
      const args = e.args.map((x) => remap(x, slots, params, memo, subst));
      r = args.every((x) => x) ? { ...e, args: args as Expr[] } : null;
      break;
    }
  }
  memo.set(e, r);
  return r;
}

/** One elementwise kernel computing the outputs of both (inputs de-duplicated). */
function mergeElementwise(a: PlannedKernel, b: PlannedKernel): PlannedKernel | null {
  const ka = a.kernel as ElementwiseKernel, kb = b.kernel as ElementwiseKernel;
  const aValues = [ka.value, ...(ka.extra ?? []).map((x) => x.value)];
  const subst = new Map<number, Expr>();
  b.inputs.forEach((n, slot) => {
    const o = a.outs.indexOf(n);
    // an f16 output is rounded when stored: re-reading it differs from its f32 expression
    if (o >= 0 && n.dtype !== 'f16') subst.set(slot, aValues[o]!);
  });
  const inputs = [...a.inputs];
  const slots = b.inputs.map((n, slot) => {
    if (subst.has(slot)) return -1;
    const at = inputs.indexOf(n);
    if (at >= 0) return at;
    inputs.push(n);
    return inputs.length - 1;
  });
  // parameters are appended, not matched by value (see KernelBuilder.param)
  const params = [...a.params, ...b.params];
  const pslots = Array.from(b.params, (_, i) => a.params.length + i);
  const memo = new Map<Expr, Expr | null>();
  const bValues = [kb.value, ...(kb.extra ?? []).map((x) => x.value)].map((v) => remap(v, slots, pslots, memo, subst));
  if (bValues.some((v) => !v)) return null;
  const bTypes = [kb.outDtype, ...(kb.extra ?? []).map((x) => x.dtype)];
  const extra = [...(ka.extra ?? []), ...bValues.map((v, i) => ({ value: v!, dtype: bTypes[i]! }))];
  const helpers = [...new Set([...ka.helpers, ...kb.helpers])];
  const kernel: ElementwiseKernel = { ...ka, inputs: inputs.map((n) => n.dtype), nParams: params.length, helpers, extra };
  return { kernel, inputs, params: new Uint32Array(params), outs: [...a.outs, ...b.outs] };
}

/**
 * Expresses a node as a factored view of a stored (or to-be-stored) base: the longest chain of movement
 * ops above it that views can express. A pad in the chain makes the padded node the base.
 */
export function factoredView(n: LazyNode): { base: LazyNode; view: FactoredView } {
  const chain: LazyNode[] = [];
  let base = n;
  while (base.kind === 'movement' && !base.realized) {
    chain.push(base);
    base = base.src[0]!;
  }
  let view = contiguousView(base.shape);
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i]!;
    const next = moveFactored(view, node.src[0]!.shape, node.arg as MovementArg);
    if (next) view = next;
    else {
      base = node;
      view = contiguousView(node.shape);
    }
  }
  return { base, view };
}

/** Bytes of the stored form of a node. */
export function storageBytes(n: LazyNode): number {
  return Math.max(4, Math.ceil((n.size * byteSize(n.dtype)) / 4) * 4);
}

export { baseOf };
