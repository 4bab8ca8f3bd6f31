/**
 * Memory scopes. GPU memory is invisible to the JS garbage collector, so tensors created inside
 * `scope(fn)` are disposed when the scope ends, except those returned from it or `keep()`-ed.
 * A scope may be async (its function returns a promise); it then ends when the promise settles.
 */

/** Anything that can be disposed and tracked by a scope. */
export interface Disposable {
  dispose(): void;
  readonly disposed: boolean;
}

const stack: Set<Disposable>[] = [];
const kept = new WeakSet<Disposable>();

/** Registers a new tensor with the innermost open scope. */
export function track(t: Disposable): void {
  stack[stack.length - 1]?.add(t);
}

/** Marks a tensor to survive every enclosing scope (until `dispose()`). */
export function keep<T extends Disposable>(t: T): T {
  kept.add(t);
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === 'function' && 'disposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) collect(v, out, seen);
  }
}

function close(own: Set<Disposable>, result: unknown): void {
  const idx = stack.lastIndexOf(own);
  if (idx >= 0) stack.splice(idx, 1);
  const survivors = new Set<Disposable>();
  collect(result, survivors);
  const parent = stack[stack.length - 1];
  for (const t of own) {
    if (survivors.has(t) || kept.has(t)) {
      if (survivors.has(t)) parent?.add(t);
      continue;
    }
    if (!t.disposed) t.dispose();
  }
}

/**
 * Runs `fn` and disposes every tensor it created that is not part of its result (tensors in returned
 * arrays/objects survive and belong to the enclosing scope). Works with async functions.
 */
export function scope<T>(fn: () => T): T {
  const own = new Set<Disposable>();
  stack.push(own);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    close(own, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        close(own, v);
        return v;
      },
      (e) => {
        close(own, undefined);
        throw e;
      },
    ) as T;
  }
  close(own, result);
  return result;
}

/** Like `scope` but for internal composites: keeps only the returned tensor(s). */
export const tidy = scope;
