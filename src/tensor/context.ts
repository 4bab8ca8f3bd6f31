/**
 * Async context for memory scopes and grad mode. In Node, `AsyncLocalStorage` carries the innermost open
 * frame into the continuations of an async function, so two async scopes whose awaits interleave each see
 * their own. Browsers have no async context yet: there `asyncContext` is null and the callers fall back to
 * tracking frames by the order they were suspended in, detecting interleavings they cannot attribute.
 *
 * The module is bundled for browsers too, so `node:async_hooks` is never named by a static import: Node
 * ≥ 20.16 hands it over synchronously through `process.getBuiltinModule`, older releases through
 * `loadAsyncContext()` (called by `init()`).
 */

/** The part of `AsyncLocalStorage` kiln uses. */
export interface AsyncContext<T> {
  getStore(): T | undefined;
  run<R>(store: T, fn: () => R): R;
}

type ALSClass = new <T>() => AsyncContext<T>;

interface NodeProcess {
  versions?: { node?: string };
  getBuiltinModule?: (id: string) => { AsyncLocalStorage?: ALSClass } | undefined;
}

const proc = (globalThis as { process?: NodeProcess }).process;
const isNode = !!proc?.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined';

let ALS: ALSClass | null = null;
try {
  ALS = (isNode && proc!.getBuiltinModule?.(['node', 'async_hooks'].join(':'))?.AsyncLocalStorage) || null;
} catch {
  ALS = null;
}

/** One async context per user (memory scopes, grad mode); `null` where the platform has none. */
const contexts: { ctx: AsyncContext<unknown> | null }[] = [];

/** A slot that receives an `AsyncLocalStorage` when the platform has one (now, or after `loadAsyncContext`). */
export function asyncContextSlot<T>(): { ctx: AsyncContext<T> | null } {
  const slot = { ctx: ALS ? new ALS<T>() : null };
  contexts.push(slot as { ctx: AsyncContext<unknown> | null });
  return slot;
}

/** Loads `AsyncLocalStorage` on Node releases without `process.getBuiltinModule` (a no-op elsewhere). */
export async function loadAsyncContext(): Promise<void> {
  if (ALS || !isNode) return;
  try {
    const mod = (await import(/* @vite-ignore */ ['node', 'async_hooks'].join(':'))) as { AsyncLocalStorage: ALSClass };
    ALS = mod.AsyncLocalStorage;
  } catch {
    return;
  }
  for (const slot of contexts) slot.ctx ??= new ALS!();
}

/** True when async scopes are told apart by the platform (Node), false in browsers. */
export function hasAsyncContext(): boolean {
  return ALS !== null;
}

/**
 * Browsers: a counter of microtask turns. `markTurn()` queues (at most one) microtask that advances it; a
 * frame opened in turn n is known not to have resumed from an await while `turn === n`, because that
 * microtask was queued before any of its continuations.
 */
export const turns = { turn: 0, queued: false };
const advance = () => {
  turns.turn++;
  turns.queued = false;
};
export function markTurn(): number {
  if (!turns.queued) {
    turns.queued = true;
    queueMicrotask(advance);
  }
  return turns.turn;
}
