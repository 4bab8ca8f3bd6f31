/**
 * The planner: cuts the pending graph into kernels. Elementwise chains, views (as index math), random
 * numbers and gathers fuse into one kernel; a reduction or matmul becomes the core of a kernel whose
 * elementwise consumer fuses in as its epilogue; a node is stored only when it must be (a target, several
 * consumers, a broadcast of computed values, a matmul operand, or the storage-binding limit). Planning
 * decides everything first; each kernel is then lowered from its plan (./lower.ts).
 */
import type { LazyNode } from './node.js';
import type { CoreDef, MovementDef } from './ops/registry.js';
import { lowerKernel, storageBytes, type KernelPlan, type ParamSource } from './lower.js';
import { dropUnreadOutputs, fuseHorizontally } from './fuse.js';
import type { Kernel } from '../wgsl/kernels.js';
import { gpu, hasDevice } from '../wgsl/device.js';

/** Scheduler switches (fusion can be turned off to test that it does not change results). */
export const scheduleConfig = {
  fusion: true,
  /** Inputs one kernel may bind (the device limit minus the output), set at init. */
  maxInputs: 9,
};

/** Turns fusion on or off (off: every op is its own kernel), for tests and debugging. */
export function setFusion(on: boolean): void {
  scheduleConfig.fusion = on;
}

/** Takes the storage-binding limit per kernel from the device. */
export function syncDeviceLimits(): void {
  if (hasDevice()) scheduleConfig.maxInputs = gpu().info.limits.maxStorageBuffersPerShaderStage - 2; // the output, and the scratch buffer of two-pass kernels
}

/**
 * Every stored node must fit one storage binding of the adapter: checked when the graph is planned (before
 * anything is allocated or encoded), with an error naming the op rather than a WebGPU validation error.
 */
function checkStorage(stored: LazyNode[]): void {
  if (!hasDevice()) return;
  const limit = gpu().info.limits.maxStorageBufferBindingSize;
  for (const n of stored) {
    const bytes = storageBytes(n);
    if (bytes > limit) {
      throw new RangeError(`${n.op}: its result of shape [${n.shape.join(', ')}] (${n.dtype}) needs ${bytes} bytes, more than this adapter's largest storage buffer binding (maxStorageBufferBindingSize = ${limit} bytes, ${gpu().info.driver}); split it into smaller tensors`);
    }
  }
}

/** A kernel to launch and the nodes it reads and writes. */
export interface PlannedKernel {
  kernel: Kernel;
  inputs: LazyNode[];
  /** Where each uniform parameter word comes from. */
  sources: ParamSource[];
  /** The nodes written (several for horizontally fused kernels). */
  outs: LazyNode[];
}

/**
 * Largest fused subtree cost recomputed in several kernels instead of stored. A normalized activation's
 * sigmoid (about 10) is recomputed by the backward pass from the stored input of its norm: stored, it kept
 * another activation live from the forward pass to the backward.
 */
const RECOMPUTE_MAX = 16;
/** Largest cost recomputed for every element of a broadcast instead of stored. */
const EXPAND_RECOMPUTE_MAX = 4;
/** Deepest chain of ops fused into one kernel before an intermediate is stored. */
const MAX_FUSED_DEPTH = 48;
/**
 * Largest work one kernel may repeat by evaluating a fused node at several positions (reading it through
 * several views): (positions − 1) × cost. Above it the node is stored and read at each position instead.
 */
const REPEAT_MAX = 64;
/** Fewest positions at which a fused node is stored for that reason (two stay fused: a node and its neighbour). */
const REPEAT_POSITIONS = 3;

const isCore = (n: LazyNode) => n.kind === 'reduce' || n.kind === 'matmul';
/** A node the program asked to be stored (`contiguous` with a store), whatever the planner would choose. */
const storedOnRequest = (n: LazyNode) => n.def.kind === 'contiguous' && !!n.def.store;
/** Ops that compute (as opposed to views and leaves): the ones a store can cut after. */
const computes = (n: LazyNode) => n.kind !== 'movement' && n.kind !== 'leaf';
/** Fused work that may be recomputed in several kernels, or stored instead. */
const recomputable = (n: LazyNode) => n.kind === 'elementwise' || n.kind === 'gather';

/** Whether source `i` of `n` is read at `n`'s own flat index. */
function sameIndex(n: LazyNode, i: number): boolean {
  const d = n.def;
  if (d.kind === 'elementwise') return true;
  if (d.kind === 'movement') return d.sameIndex;
  return d.kind === 'gather' || d.kind === 'leaf' || d.kind === 'contiguous' ? d.sameIndex[i]! : false;
}

/** Plans the kernels that realize a set of target nodes. */
export class Scheduler {
  readonly planned: PlannedKernel[];
  private readonly plans: KernelPlan[] = [];
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
      if (storedOnRequest(n)) this.materialize.add(n);
      if (!scheduleConfig.fusion && computes(n)) this.materialize.add(n);
    }
    if (scheduleConfig.fusion) this.chooseStores(seen);
    for (const t of targets) if (!t.realized) this.plan(t);
    // kernels run in the order their nodes were made (a topological order: a node is newer than its
    // sources), the order the program was written in: a backward pass runs block by block, and a
    // checkpointed block is recomputed right before its backward instead of wherever a depth-first walk
    // from the targets first reaches it (all recomputed activations live at once). A kernel whose core was
    // made long before its root (a weight gradient's matmul fused into the loss scaler's unscaling, made
    // after the whole backward pass) runs as soon as its core and inputs allow, or the activations it
    // reads would stay live until then.
    const byRoot = new Map(this.plans.map((p) => [p.root, p]));
    const at = new Map<KernelPlan, number>();
    const position = (p: KernelPlan): number => {
      let v = at.get(p);
      if (v !== undefined) return v;
      v = p.core ? p.core.id : p.root.id;
      for (const i of p.inputs) {
        const q = byRoot.get(i);
        if (q) v = Math.max(v, position(q));
      }
      at.set(p, v);
      return v;
    };
    this.plans.sort((a, b) => position(a) - position(b) || a.root.id - b.root.id);
    checkStorage(this.plans.map((p) => p.root));
    const planned = this.plans.map((p) => ({ ...lowerKernel(p), inputs: p.inputs, outs: [p.root] }));
    this.planned = scheduleConfig.fusion ? fuseHorizontally(planned, scheduleConfig.maxInputs) : planned;
    const wanted = new Set(targets);
    if (scheduleConfig.fusion) dropUnreadOutputs(this.planned, (n) => wanted.has(n) || storedOnRequest(n));
  }

  /**
   * Stores a node when recomputing it would cost more than storing it: when kernels of two different
   * stored roots would both contain it, or when it is broadcast, unless it is cheap to recompute.
   */
  private chooseStores(nodes: Set<LazyNode>): void {
    // the depth bound makes new stored roots, whose kernels may share fused work in turn: decide again
    for (let round = 0; round < 8; round++) {
      this.storeShared(nodes);
      const repeated = this.storeRepeated(nodes);
      if (!this.boundDepth() && !repeated) break;
    }
  }

  /**
   * Stores the costly nodes that one kernel would evaluate at many positions: a node read through several
   * views (the shifted windows whose gradient the backward of `unfold` sums, k·k of them, as a pooling op's
   * or a second-order convolution gradient's does; nested, k⁴) is lowered once per position, so fused it
   * repeats its whole subtree in the kernel's code and work. Positions are counted per kernel: a view
   * multiplies them (each position of the view is a new one of its source), an op at its own index takes
   * the most of its consumers' (a lower bound: consumers at different positions need their union).
   * Reductions and matmuls below the root end the walk: the kernel reads them, stored, as loads. Returns
   * whether any node was stored.
   */
  private storeRepeated(nodes: Set<LazyNode>): boolean {
    const before = this.materialize.size;
    // the work of one evaluation of n's fused subtree (each node once), counted up to `cap`
    const workOf = (n: LazyNode, cap: number): number => {
      const seen = new Set<LazyNode>();
      const stack = [n];
      let work = 0;
      while (stack.length && work <= cap) {
        const m = stack.pop()!;
        if (seen.has(m)) continue;
        seen.add(m);
        if (isCore(m) && m !== n) continue;
        work += m.def.cost;
        if (m.kind !== 'leaf') for (const s of m.src) if (!s.realized && !this.materialize.has(s)) stack.push(s);
      }
      return work;
    };
    for (const root of [...this.materialize]) {
      if (!nodes.has(root) || root.realized) continue;
      // the nodes the kernel of root fuses, newest first: every consumer of a node comes before it
      const region = new Set<LazyNode>([root]);
      const stack = [root];
      while (stack.length) {
        const n = stack.pop()!;
        if (n !== root && isCore(n)) continue;
        for (const s of n.src) if (!s.realized && !this.materialize.has(s) && !region.has(s)) {
          region.add(s);
          stack.push(s);
        }
      }
      const moved = new Map<LazyNode, number>(), same = new Map<LazyNode, number>();
      for (const n of [...region].sort((a, b) => b.id - a.id)) {
        const at = n === root ? 1 : (moved.get(n) ?? 0) + (same.get(n) ?? 0);
        if (n !== root && isCore(n)) continue;
        if (n !== root && at >= REPEAT_POSITIONS && recomputable(n) && (at - 1) * workOf(n, REPEAT_MAX) > REPEAT_MAX) {
          this.materialize.add(n);
          continue;
        }
        n.src.forEach((s, i) => {
          if (!region.has(s) || this.materialize.has(s)) return;
          if (sameIndex(n, i)) same.set(s, Math.max(same.get(s) ?? 0, at));
          else moved.set(s, (moved.get(s) ?? 0) + at);
        });
      }
    }
    return this.materialize.size > before;
  }

  /** Stores the costly nodes that kernels of two stored roots would both compute, or that are broadcast. */
  private storeShared(nodes: Set<LazyNode>): void {
    for (let iter = 0; iter < 64; iter++) {
      // the work of recomputing a node: a stored node (or one this pass stores) is a load. Storing a node
      // makes its consumers cheaper, so the costs are taken again after each store (a normalization's
      // output, over its broadcast statistics, costs little once they are stored)
      const store = new Set<LazyNode>();
      const cost = new Map<LazyNode, number>();
      const costOf = (n: LazyNode): number => {
        if (n.realized || this.materialize.has(n) || store.has(n)) return 0;
        const c = cost.get(n);
        if (c !== undefined) return c;
        let v = n.def.cost;
        if (Number.isFinite(v) && n.kind !== 'leaf') for (const s of n.src) v += costOf(s);
        cost.set(n, v);
        return v;
      };
      // a fused node read by two stored roots is computed twice: store it when that is costly. A node
      // already known to be stored is not descended into again (its sources will be reached from it alone)
      const owner = new Map<LazyNode, LazyNode>();
      const stores = (n: LazyNode) => {
        store.add(n);
        cost.clear();
      };
      // the fused node nearest to a reduction or matmul that makes n's cost unbounded (n when none is
      // below it): the output of that core's kernel
      const nearestCore = (n: LazyNode, seen = new Set<LazyNode>()): LazyNode => {
        for (const q of n.src) {
          if (seen.has(q) || costOf(q) !== Infinity) continue;
          seen.add(q);
          if (recomputable(q) || q.kind === 'movement') {
            const low = nearestCore(q, seen);
            if (low !== q || recomputable(q)) return low;
          }
        }
        return n;
      };
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
            else if (first !== root && recomputable(s) && costOf(s) > RECOMPUTE_MAX) {
              // a reduction or matmul fused below would run in both kernels. Storing the nodes nearest to
              // them instead keeps s fused when the work left above is cheap (s may be wider: an f32
              // normalization of an f16 activation); else s is stored
              const lows: LazyNode[] = [];
              for (let low = nearestCore(s); low !== s && costOf(s) === Infinity; low = nearestCore(s)) {
                lows.push(low);
                stores(low);
              }
              if (costOf(s) > RECOMPUTE_MAX) {
                for (const low of lows) store.delete(low);
                stores(s);
                continue;
              }
            }
            if (recomputable(s) && this.expanded.has(s) && costOf(s) >= EXPAND_RECOMPUTE_MAX) {
              stores(s);
              continue;
            }
            dfs(s);
          }
        };
        dfs(root);
      }
      for (const n of store) this.materialize.add(n);
      if (!store.size) break;
    }
  }

  /** Bounds the size of one kernel: stores a node when its fused expression gets too deep. Returns whether any was. */
  private boundDepth(): boolean {
    const before = this.materialize.size;
    const depth = new Map<LazyNode, number>();
    const depthOf = (n: LazyNode): number => {
      if (n.realized || this.materialize.has(n)) return 0;
      const hit = depth.get(n);
      if (hit !== undefined) return hit;
      let d = 0;
      for (const s of n.src) d = Math.max(d, depthOf(s));
      d += n.kind === 'movement' ? 0 : 1;
      if (d > MAX_FUSED_DEPTH && computes(n)) {
        this.materialize.add(n);
        d = 0;
      }
      depth.set(n, d);
      return d;
    };
    for (const root of [...this.materialize]) for (const s of root.src) depthOf(s);
    return this.materialize.size > before;
  }

  private walk(n: LazyNode): { base: LazyNode; expands: boolean } {
    let expands = false;
    while (n.kind === 'movement' && !n.realized) {
      if ((n.def as MovementDef).expands(n.src[0]!.shape, n.arg)) expands = true;
      n = n.src[0]!;
    }
    return { base: n, expands };
  }

  /** Distinct consumer nodes of `n` in the pending graph (targets count as one more). */
  private consumerCount(n: LazyNode): number {
    return (this.consumers.get(n)?.size ?? 0) + (this.materialize.has(n) && !this.consumers.has(n) ? 1 : 0);
  }

  /** Plans the kernel computing `n`, after the kernels it depends on. */
  private plan(n: LazyNode): void {
    if (this.done.has(n) || n.realized) return;
    this.done.add(n);
    this.materialize.add(n);
    let k = this.visit(n);
    // respect the storage-buffer limit: store the widest fused input subtree and plan again
    let guard = 0;
    while (k.inputs.length > scheduleConfig.maxInputs && guard++ < 64) {
      const victim = this.widestFused(n, k.core);
      if (!victim) {
        // nested plans may have stored nodes this walk fused: walking again can already fit
        const again = this.visit(n);
        if (again.inputs.length < k.inputs.length) {
          k = again;
          continue;
        }
        throw new Error(`kiln: an op reads ${k.inputs.length} tensors at once, more than this device's ${scheduleConfig.maxInputs} storage bindings per kernel`);
      }
      this.materialize.add(victim);
      k = this.visit(n);
    }
    this.plans.push(k);
  }

  /**
   * Walks what the kernel of `root` would fuse, in the order lowering reads it: decides its core (the first
   * reduction or matmul reached at the kernel's own index with no other consumer), stores the reductions
   * and matmuls it cannot fuse, plans the stored nodes it reads, and lists them as its inputs.
   */
  private visit(root: LazyNode): KernelPlan {
    const inputs = new Set<LazyNode>();
    let core: LazyNode | null = isCore(root) ? root : null;
    // a node is walked once per kind of position (at the kernel's index, or elsewhere), however many paths reach it
    const seen = [new Set<LazyNode>(), new Set<LazyNode>()];
    const go = (n: LazyNode, atGid: boolean): void => {
      const visited = seen[atGid ? 0 : 1]!;
      if (visited.has(n)) return;
      visited.add(n);
      if (n.realized) { inputs.add(n); return; }
      if (n !== root && this.materialize.has(n)) {
        this.plan(n);
        inputs.add(n);
        return;
      }
      if (isCore(n)) {
        if (n === root || ((core === null || core === n) && atGid && this.consumerCount(n) <= 1)) {
          core = n;
          return;
        }
        this.materialize.add(n);
        this.plan(n);
        inputs.add(n);
        return;
      }
      n.src.forEach((s, i) => go(s, atGid && sameIndex(n, i)));
    };
    go(root, true);
    const c = core as LazyNode | null;
    if (c) {
      if (c.kind === 'reduce') go(c.src[0]!, false);
      for (const base of (c.def as CoreDef).operands(c)) {
        if (!base.realized) {
          this.materialize.add(base);
          this.plan(base);
        }
        inputs.add(base);
      }
    }
    return { root, core: c, inputs: [...inputs] };
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
      if (n !== root && n !== core && !this.materialize.has(n) && !n.realized && computes(n) && s.size > bestCount) {
        best = n;
        bestCount = s.size;
      }
      return s;
    };
    leaves(root);
    return best;
  }
}
