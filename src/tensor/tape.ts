/**
 * Reverse-mode autograd as a tape over the lazy graph. Each recorded primitive keeps handles on its
 * inputs and output; `backward()` walks the steps in reverse topological order calling each op's
 * vector-Jacobian product, which is written with Tensor ops — so gradients are lazy, fuse like the
 * forward pass, and are themselves differentiable when `createGraph` is set.
 */
import type { Tensor } from './tensor.js';
import { keep, scope } from './memory.js';
import { asyncContextSlot, markTurn, turns } from './context.js';
import { fmt } from './shape.js';
import { isFloat, type DType } from './dtype.js';
import type { OpDef } from './ops/registry.js';

/** A primitive application, as the tape sees it. */
export interface PrimitiveCall {
  def: OpDef;
  inputs: Tensor[];
  out: Tensor;
  arg: unknown;
}

/** Options of `backward()`. */
export interface BackwardOptions {
  /** The gradient of the output (default 1 for a scalar). */
  gradient?: Tensor;
  /** Keep the graph for another backward pass. */
  retainGraph?: boolean;
  /** Record the backward computation so gradients are differentiable (double backward). */
  createGraph?: boolean;
}

/** One recorded primitive application. */
export interface Step {
  def: OpDef;
  arg: unknown;
  /** The tensors the op was applied to (for graph identity: leaves and their steps). */
  inputs: Tensor[];
  /** Handles on the inputs' and output's values, valid even if the user disposes the originals. */
  saved: Tensor[];
  savedOut: Tensor;
  /** The output tensor (for retainGrad). */
  out: Tensor;
  freed: boolean;
  /** Live owners: the output handle plus the steps that consume this step's output. */
  refs: number;
}

/**
 * Grad mode and autocast, per context: inside `withGradMode`'s function (synchronously) `mode` is its frame; after an
 * await, Node's AsyncLocalStorage says which call the continuation belongs to, so overlapping async
 * `noGrad` calls never switch recording for each other, and recording is on again once all have ended.
 * Browsers (no async context) take the most recently suspended open call; every call removes only its own
 * frame when it ends, so overlapping calls cannot leave the mode stuck.
 */
interface ModeFrame {
  enabled: boolean;
  /** The autocast dtype of matmuls (null: autocast off). */
  autocast: DType | null;
  parent: ModeFrame | null;
  closed: boolean;
  /** Browsers: the microtask turn it opened in (see ./context.ts). */
  turn: number;
}
let mode: ModeFrame | null = null;
let pendingModes = 0;
const modeSlot = asyncContextSlot<ModeFrame>();
const suspendedModes: ModeFrame[] = [];

function asyncMode(): ModeFrame | null {
  if (pendingModes === 0) return null;
  const ctx = modeSlot.ctx;
  if (ctx) {
    let f: ModeFrame | null | undefined = ctx.getStore();
    while (f && f.closed) f = f.parent;
    return f ?? null;
  }
  for (let i = suspendedModes.length - 1; i >= 0; i--) {
    const f = suspendedModes[i]!;
    if (!f.closed && f.turn !== turns.turn) return f;
  }
  return null;
}

/** True when ops are being recorded for backward. */
export function isGradEnabled(): boolean {
  const m = mode ?? asyncMode();
  return m ? m.enabled : true;
}

/** The dtype matmuls and convolutions run in under `k.autocast` (null outside it). */
export function autocastDtype(): DType | null {
  const m = mode ?? asyncMode();
  return m ? m.autocast : null;
}

/** Runs `fn` without recording gradients (sync or async). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with recording switched on or off (sync or async; overlapping async calls stay apart). */
export function withGradMode<T>(enabled: boolean, fn: () => T): T {
  return withMode({ enabled }, fn);
}

/** Runs `fn` with the autocast dtype set (null: off); grad mode is inherited. Internal: see `k.autocast`. */
export function withAutocastDtype<T>(dtype: DType | null, fn: () => T): T {
  return withMode({ autocast: dtype }, fn);
}

/** Runs `fn` in a mode frame that changes `change` and inherits the rest from the current frame. */
function withMode<T>(change: Partial<Pick<ModeFrame, 'enabled' | 'autocast'>>, fn: () => T): T {
  const ctx = modeSlot.ctx;
  const prev = mode;
  const parent = prev ?? asyncMode();
  const f: ModeFrame = { enabled: parent?.enabled ?? true, autocast: parent?.autocast ?? null, ...change, parent, closed: false, turn: ctx ? 0 : markTurn() };
  mode = f;
  let r: T;
  try {
    r = ctx ? ctx.run(f, fn) : fn();
  } catch (e) {
    f.closed = true;
    throw e;
  } finally {
    mode = prev;
  }
  if (r instanceof Promise) {
    pendingModes++;
    if (!ctx) suspendedModes.push(f);
    return r.finally(() => {
      pendingModes--;
      f.closed = true;
      if (!ctx) suspendedModes.splice(suspendedModes.indexOf(f), 1);
    }) as T;
  }
  f.closed = true;
  return r;
}

function handle(t: Tensor): Tensor {
  return keep(t.alias());
}

const released = new FinalizationRegistry<Tensor[]>((saved) => {
  for (const t of saved) t.dispose();
});

/** While `readTensors` runs: the tensors that require grad which its ops read. */
let reading: Set<Tensor> | null = null;

/**
 * Runs `fn` and returns, with its result, the tensors requiring grad that ops inside it read (recorded or
 * not: under `noGrad` too). Nested calls also count towards the enclosing one.
 */
export function readTensors<T>(fn: () => T): { value: T; read: Set<Tensor> } {
  const outer = reading;
  const read = (reading = new Set<Tensor>());
  try {
    return { value: fn(), read };
  } finally {
    reading = outer;
    if (outer) for (const t of read) outer.add(t);
  }
}

/** Records a primitive application when gradients are needed (called for every op with inputs). */
export function record(call: PrimitiveCall): void {
  if (reading) for (const t of call.inputs) if (t.requiresGrad) reading.add(t);
  if (!isGradEnabled() || !isFloat(call.out.dtype) || !call.inputs.some((t) => t.requiresGrad)) return;
  const saved = call.inputs.map(handle);
  const step = { def: call.def, arg: call.arg, inputs: call.inputs, saved, out: call.out, freed: false, refs: 1 } as Omit<Step, 'savedOut'> as Step;
  for (const t of new Set(call.inputs.map((x) => x.gradFn as Step | null))) if (t) t.refs++;
  call.out.gradFn = step;
  call.out.requiresGrad = true;
  // saved after gradFn is set, so VJPs that use the output stay differentiable
  step.savedOut = handle(call.out);
  released.register(step, [...saved, step.savedOut], step);
}

function freeStep(step: Step): void {
  if (step.freed) return;
  step.freed = true;
  released.unregister(step);
  for (const t of step.saved) t.dispose();
  step.savedOut.dispose();
  for (const t of new Set(step.inputs.map((x) => x.gradFn as Step | null))) if (t) releaseStep(t);
}

function releaseStep(step: Step): void {
  if (--step.refs <= 0) freeStep(step);
}

/** True when `t` was produced by recorded steps that backward has not yet consumed (its gradient graph is live). */
export function hasLiveGraph(t: Tensor): boolean {
  const step = t.gradFn as Step | null;
  return !!step && !step.freed;
}

/** Disposing a tensor that owns a recorded step frees the graph behind it once nothing else uses it. */
export function releaseGraph(t: Tensor): void {
  const step = t.gradFn as Step | null;
  if (step && !t.gradOwner && step.out === t) releaseStep(step);
}

function topoSteps(root: Step): Step[] {
  const order: Step[] = [];
  const seen = new Set<Step>();
  const stack: [Step, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [step, i] = top;
    if (i < step.inputs.length) {
      top[1]++;
      const child = step.inputs[i]!.gradFn as Step | null;
      if (child && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(step);
    }
  }
  return order.reverse();
}

function accumulate(prev: Tensor | undefined, g: Tensor): Tensor {
  return prev ? prev.add(g) : g;
}

/**
 * The core of backward: propagates `gradient` from `root` through the recorded steps. Calls
 * `onLeaf(tensor, grad)` for leaves that require grad and returns the gradients of `wanted` tensors.
 */
export function propagate(root: Tensor, gradient: Tensor, opts: { retainGraph: boolean; createGraph: boolean; wanted?: Tensor[]; onLeaf?: (t: Tensor, g: Tensor) => void }): Map<Tensor, Tensor> {
  const rootStep = root.gradFn as Step | null;
  const wantedSet = new Set(opts.wanted ?? []);
  const result = new Map<Tensor, Tensor>();
  if (!rootStep) {
    if (wantedSet.has(root)) result.set(root, gradient);
    opts.onLeaf?.(root, gradient.contiguousView());
    return result;
  }
  const steps = topoSteps(rootStep);
  for (const s of steps) {
    if (s.freed) throw new Error('backward: the graph was already freed by an earlier backward(); pass { retainGraph: true } to the first call to backward twice');
  }
  // everything made here is freed at the end except the results (returned) and leaf grads (kept)
  const out = scope(() => withGradMode(opts.createGraph, () => {
    const grads = new Map<Step, Tensor>([[rootStep, gradient]]);
    const leafGrads = new Map<Tensor, Tensor>();
    for (const step of steps) {
      const g = grads.get(step);
      grads.delete(step);
      if (!g) continue;
      const o = step.out;
      if (o.retainsGrad || wantedSet.has(o)) {
        if (wantedSet.has(o)) result.set(o, accumulate(result.get(o), g.contiguousView()));
        if (o.retainsGrad) o.grad = keep(accumulate(o.grad ?? undefined, g.contiguousView()));
      }
      const needs = step.inputs.map((t) => t.requiresGrad);
      // (inputs may be saved handles from an earlier backward: their gradient goes to their owner)
      const vjp = step.def.vjp;
      if (!vjp) throw new Error(`backward: op '${step.def.name}' has no gradient (define a vjp for it with defineOp)`);
      const ins = scope(() => vjp(g, step.saved, step.savedOut, step.arg, needs));
      ins.forEach((gi, i) => {
        if (!gi || !needs[i]) return;
        const input = step.inputs[i]!.gradOwner ?? step.inputs[i]!;
        const gc = gi.dtype === input.dtype ? gi : gi.cast(input.dtype);
        const child = input.gradFn as Step | null;
        if (child) grads.set(child, accumulate(grads.get(child), gc));
        else leafGrads.set(input, accumulate(leafGrads.get(input), gc));
      });
    }
    for (const [leaf, g] of leafGrads) {
      if (wantedSet.has(leaf)) result.set(leaf, accumulate(result.get(leaf), g.contiguousView()));
      opts.onLeaf?.(leaf, g.contiguousView());
    }
    return result;
  }));
  if (!opts.retainGraph) for (const s of steps) freeStep(s);
  return out;
}

/** The gradient backward starts from: `gradient`, or 1 for a scalar output (checked against `t`). */
export function seedGradient(op: string, t: Tensor, gradient: Tensor | undefined): Tensor {
  if (!t.requiresGrad) throw new Error(`${op}: the tensor does not require grad (none of the inputs of its computation has requiresGrad set)`);
  if (gradient) {
    if (gradient.shape.length !== t.shape.length || gradient.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`${op}: gradient of shape ${fmt(gradient.shape)} does not match the output shape ${fmt(t.shape)}`);
    }
    return gradient;
  }
  if (t.size !== 1) throw new Error(`${op}: the output has shape ${fmt(t.shape)}; a gradient argument is needed for a non-scalar output (or reduce it to a scalar first)`);
  return t.newOnes(t.shape);
}

/** `t.backward()`: accumulates gradients into the `.grad` of the leaves that require them. */
export function backward(t: Tensor, opts: BackwardOptions): void {
  const g = seedGradient('backward', t, opts.gradient);
  const own = g !== opts.gradient;
  propagate(t, g, {
    retainGraph: opts.retainGraph ?? !!opts.createGraph,
    createGraph: !!opts.createGraph,
    onLeaf: (leaf, lg) => {
      const prev = leaf.grad;
      leaf.grad = keep(prev ? prev.add(lg) : lg);
      if (prev) prev.dispose();
    },
  });
  if (own) g.dispose();
}
