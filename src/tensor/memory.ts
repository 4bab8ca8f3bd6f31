/**
 * Memory scopes. GPU memory is invisible to the JS garbage collector, so tensors created inside
 * `scope(fn)` are disposed when the scope ends, except those returned from it or `keep()`-ed.
 * A scope may be async (its function returns a promise); it then ends when the promise settles.
 *
 * Scopes form a tree of frames, not one global stack, so async scopes whose awaits interleave never free
 * each other's tensors. The frame of the code running now is `current` while a scope's function runs
 * synchronously (the fast path of every composite op); after an await, Node's `AsyncLocalStorage` says
 * which frame the continuation belongs to. Browsers have no async context: there an async scope owns the
 * tensors created while it is the most recently suspended scope, and when two async scopes are pending
 * at once without one being nested in the other, both end with a clear error and free nothing (see
 * `INTERLEAVED`), rather than guess whose tensors are whose.
 */
import { asyncContextSlot, markTurn, turns } from './context.js';

/** Anything that can be disposed and tracked by a scope. */
export interface Disposable {
  dispose(): void;
  readonly disposed: boolean;
}

interface Frame {
  own: Set<Disposable>;
  parent: Frame | null;
  closed: boolean;
  /** Browsers: the microtask turn the frame opened in (it cannot have resumed from an await during it). */
  turn: number;
  /** Browsers: the frame overlapped an unrelated async scope; it ends with an error and frees nothing. */
  interleaved: boolean;
}

/** The frame of the synchronously running scope function (null between scopes and after awaits). */
let current: Frame | null = null;
/** Async scopes not yet settled: while there are none, no continuation can belong to an open frame. */
let pendingAsync = 0;
const slot = asyncContextSlot<Frame>();
/** Browsers: open async frames in the order they suspended. */
const suspended: Frame[] = [];
/** Browsers: tensors freed at the end of a scope, to tell an interleaving from a user's own dispose(). */
const freedByScope = new WeakSet<Disposable>();
const kept = new WeakSet<Disposable>();

/** The message of an interleaving of async scopes that a platform without async context cannot attribute. */
export const INTERLEAVED =
  'k.scope: two async scopes were pending at once and their awaits interleaved (e.g. two scopes under Promise.all). ' +
  'This platform has no async context (browsers), so kiln cannot tell which of them created a tensor after an await; ' +
  'neither scope freed anything. Restructure: await each async scope before starting the next, or keep one async ' +
  'function and wrap each step that does not await in a sync k.scope(() => …) (sync scopes are always exact). ' +
  'In Node (AsyncLocalStorage) overlapping async scopes are supported.';

/** The first open frame at or above `f`. */
function openFrame(f: Frame | null | undefined): Frame | null {
  while (f && f.closed) f = f.parent;
  return f ?? null;
}

/** The frame a continuation of async code belongs to (after an await), when no scope function is running. */
function asyncFrame(): Frame | null {
  if (pendingAsync === 0) return null;
  const ctx = slot.ctx;
  if (ctx) return openFrame(ctx.getStore());
  // browsers: the most recently suspended open frame that may have resumed (opened in an earlier turn)
  for (let i = suspended.length - 1; i >= 0; i--) {
    const f = suspended[i]!;
    if (!f.closed && f.turn !== turns.turn) return f;
  }
  return null;
}

/** Registers a new tensor with the innermost open scope. */
export function track(t: Disposable): void {
  (current ?? asyncFrame())?.own.add(t);
}

/** Marks a tensor to survive every enclosing scope (until `dispose()`). */
export function keep<T extends Disposable>(t: T): T {
  kept.add(t);
  return t;
}

function isDisposable(value: unknown): value is Disposable {
  return typeof (value as Disposable).dispose === 'function' && 'disposed' in (value as object);
}

function collect(value: unknown, out: Set<Disposable>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isDisposable(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) collect(v, out, seen);
  }
}

/** The tensors a scope's result keeps alive (a single tensor without allocating a set). */
function survivorsOf(result: unknown): Disposable | Set<Disposable> | null {
  if (result === null || typeof result !== 'object') return null;
  if (isDisposable(result)) return result;
  const out = new Set<Disposable>();
  collect(result, out);
  return out;
}

function close(f: Frame, result: unknown): void {
  f.closed = true;
  const survivors = survivorsOf(result);
  const parent = openFrame(f.parent);
  for (const t of f.own) {
    if (kept.has(t)) continue;
    if (survivors !== null && (survivors === t || (survivors instanceof Set && survivors.has(t)))) {
      parent?.own.add(t);
      continue;
    }
    if (!t.disposed) {
      t.dispose();
      if (!slot.ctx) freedByScope.add(t);
    }
  }
  f.own.clear();
}

/** Browsers: an async frame suspends; two unrelated async frames pending at once cannot be told apart. */
function suspend(f: Frame): void {
  for (const g of suspended) {
    if (g.closed) continue;
    let a: Frame | null = f.parent;
    while (a && a !== g) a = a.parent;
    if (a !== g) g.interleaved = f.interleaved = true;
  }
  suspended.push(f);
}

/** Browsers: ends an async frame, or reports the interleaving that makes its ownership unknowable. */
function settleUntracked(f: Frame, result: unknown, ok: boolean): Error | null {
  const at = suspended.indexOf(f);
  if (at >= 0) suspended.splice(at, 1);
  // a scope opened after this one, presumed nested in it, is still open: this one did not await it
  for (const g of suspended) {
    let a: Frame | null = g.parent;
    while (a && a !== f) a = a.parent;
    if (a === f && !g.closed) g.interleaved = f.interleaved = true;
  }
  if (!f.interleaved && ok) {
    const survivors = new Set<Disposable>();
    collect(result, survivors);
    for (const t of survivors) if (t.disposed && freedByScope.has(t)) f.interleaved = true;
  }
  if (f.interleaved) {
    f.closed = true;
    f.own.clear();
    return new Error(INTERLEAVED);
  }
  close(f, ok ? result : undefined);
  return null;
}

/**
 * Runs `fn` and disposes every tensor it created that is not part of its result (tensors in returned
 * arrays/objects survive and belong to the enclosing scope). Works with async functions: in Node, async
 * scopes that overlap (Promise.all, concurrent requests) each free only their own tensors.
 */
export function scope<T>(fn: () => T): T {
  const ctx = slot.ctx;
  const prev = current;
  const f: Frame = { own: new Set(), parent: prev ?? asyncFrame(), closed: false, turn: ctx ? 0 : markTurn(), interleaved: false };
  current = f;
  let result: T;
  try {
    result = ctx ? ctx.run(f, fn) : fn();
  } catch (e) {
    current = prev;
    close(f, undefined);
    throw e;
  }
  current = prev;
  if (result instanceof Promise) {
    pendingAsync++;
    if (!ctx) suspend(f);
    return result.then(
      (v) => {
        pendingAsync--;
        if (!ctx) {
          const err = settleUntracked(f, v, true);
          if (err) throw err;
        } else close(f, v);
        return v;
      },
      (e) => {
        pendingAsync--;
        // the function's own error wins over an interleaving report
        if (!ctx) settleUntracked(f, undefined, false);
        else close(f, undefined);
        throw e;
      },
    ) as T;
  }
  close(f, result);
  return result;
}

/** Like `scope` but for internal composites: keeps only the returned tensor(s). */
export const tidy = scope;
