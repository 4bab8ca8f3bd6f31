/**
 * Index range checks. Ops that read at positions taken from an index tensor (gather, indexSelect,
 * scatterAdd, oneHot, Embedding, class targets of nllLoss / crossEntropy) reject out-of-range indices,
 * naming the op, the offending value and the valid range. Where the check happens:
 *
 * - **On the host, at the call**, when the index values are known there: integer tensors made by
 *   `k.tensor(...)` from host data keep a host copy of their values (up to HOST_COPY_MAX elements;
 *   index tensors are small), also seen through `reshape`; tensors on the 'cpu' reference device that
 *   are already computed. The error names the first offending value.
 * - **On the device, reported at the next readback** otherwise (indices computed on the GPU: `randint`,
 *   `argmax`, arithmetic, `where`…): the op records a tiny lazy reduction computing the smallest and
 *   largest index in use. Every later realization computes the pending checks in the same program and
 *   submit as the user's work, and the next readback (`data`, `item`, `tolist`) copies their 8 bytes into
 *   the staging buffer it maps anyway — no extra submit and no extra wait. If an index was out of range
 *   that readback rejects with the error (the offending value is then the extreme one: the smallest if it
 *   is below the range, else the largest). Until then, the op's result holds the values of indices
 *   clamped into range. Realizations without a readback keep their computed checks until the next one;
 *   when more than CHECK_BATCH pile up (a loop that never reads), they are read with the next submit and
 *   settled in the background, and a failure is reported by the next readback.
 *
 * This module keeps the pending device checks; building them is ./index-checks.ts.
 */
import type { DType } from './dtype.js';
import type { Device, LazyNode } from './node.js';

/** What an index must satisfy: an integer in [lo, hi), or equal to `ignore`. */
export interface IndexRange {
  /** The op named in the error (`gather`, `Embedding`, `crossEntropy`…). */
  op: string;
  /** What an index is called in that op (`index`, `id`, `class`, `target`). */
  noun: string;
  lo: number;
  hi: number;
  /** A value that is always allowed (a loss's `ignoreIndex`). */
  ignore?: number;
  /** The range in words, e.g. `for axis 1 of size 3` or `for 10 embeddings`. */
  context: string;
}

/** The error for an out-of-range index `value`. */
export function rangeError(r: IndexRange, value: number, onDevice: boolean): RangeError {
  const valid = r.hi > r.lo ? `valid: ${r.lo} to ${r.hi - 1}` : 'there is no valid index';
  const ignore = r.ignore === undefined ? '' : `, or the ignoreIndex ${r.ignore}`;
  const where = onDevice ? '; found by the device-side index check, reported at this readback' : '';
  return new RangeError(`${r.op}: ${r.noun} ${value} is out of range ${r.context} (${valid}${ignore})${where}`);
}

/** True when `v` is the ignored value (u32 values compare as the i32 the ops cast them to). */
function ignored(r: IndexRange, v: number): boolean {
  return r.ignore !== undefined && (v === r.ignore || (v | 0) === r.ignore);
}

/** Checks index values known on the host; throws at the first offending one. */
export function checkHostValues(values: ArrayLike<number>, r: IndexRange): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if ((v < r.lo || v >= r.hi) && !ignored(r, v)) throw rangeError(r, v, false);
  }
}

/** Integer tensors made from host data keep a copy of their values when they have at most this many. */
export const HOST_COPY_MAX = 1 << 16;

/** The index values of a node when they are known on the host (else null). */
export function hostValuesOf(node: LazyNode): ArrayLike<number> | null {
  let n = node;
  // a view reading its source at its own flat index (a reshape) has exactly the source's elements
  while (n.def.kind === 'movement' && n.def.sameIndex && n.src.length === 1 && n.src[0]!.size === n.size) n = n.src[0]!;
  if (n.hostValues) return n.hostValues;
  if (n.device === 'cpu' && n.realized && n.host) return n.host;
  return null;
}

/**
 * A pending device-side check: `node` is a lazy [2] vector of the index dtype holding
 * [max, c − min] (c = −1 for i32, 2³²−1 for u32: both fit the dtype without overflow).
 */
interface DeviceCheck {
  node: LazyNode;
  range: IndexRange;
}

const pending: DeviceCheck[] = [];
let deferred: Error | null = null;

/** Unread computed checks that make a realization without readback read them anyway. */
export const CHECK_BATCH = 64;

/** Registers a device-side check whose [max, c − min] vector is `node` (a reference is taken). */
export function addDeviceCheck(node: LazyNode, range: IndexRange): void {
  node.retain();
  pending.push({ node, range });
}

/** The pending checks on `device` not computed yet (targets to add to the next realization). */
export function uncomputedChecks(device: Device): LazyNode[] {
  return pending.filter((c) => c.node.device === device && !c.node.realized).map((c) => c.node);
}

/** Number of pending checks on `device`. */
export function pendingChecks(device: Device): number {
  let n = 0;
  for (const c of pending) if (c.node.device === device) n++;
  return n;
}

/** Removes and returns the pending checks on `device` (the caller reads them and calls `settleChecks`). */
export function takeChecks(device: Device): DeviceCheck[] {
  const taken: DeviceCheck[] = [];
  for (let i = 0; i < pending.length;) {
    if (pending[i]!.node.device === device) taken.push(...pending.splice(i, 1));
    else i++;
  }
  return taken;
}

function decodePair(raw: ArrayBuffer | Float64Array, dtype: DType): [number, number] {
  const v = raw instanceof Float64Array ? raw : dtype === 'u32' ? new Uint32Array(raw, 0, 2) : new Int32Array(raw, 0, 2);
  const c = dtype === 'u32' ? 0xffffffff : -1;
  return [c - v[1]!, v[0]!];
}

/**
 * Settles taken checks from their read values (one per check, or null when they could not be read) and
 * releases them; returns the error of the first that failed, else null.
 */
export function settleChecks(checks: DeviceCheck[], raws: (ArrayBuffer | Float64Array)[] | null): Error | null {
  let failure: Error | null = null;
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    const raw = raws?.[i];
    if (raw && failure === null) {
      const [min, max] = decodePair(raw, c.node.dtype);
      if (min < c.range.lo && !ignored(c.range, min)) failure = rangeError(c.range, min, true);
      else if (max >= c.range.hi && !ignored(c.range, max)) failure = rangeError(c.range, max, true);
    }
    c.node.release();
  }
  return failure;
}

let background: Promise<void> = Promise.resolve();

/** Settles taken checks once `read` resolves (in the background); a failure waits for the next readback. */
export function settleInBackground(checks: DeviceCheck[], read: () => Promise<(ArrayBuffer | Float64Array)[]>): void {
  const settled = read().then(
    (raws) => {
      const e = settleChecks(checks, raws);
      if (e && !deferred) deferred = e;
    },
    () => void settleChecks(checks, null),
  );
  background = background.then(() => settled);
}

/**
 * The failure found in the background since the last readback (cleared), once the background reads
 * requested so far have settled (they were submitted before the caller's read, so this adds no wait of its own).
 */
export async function takeDeferredFailure(): Promise<Error | null> {
  await background;
  const e = deferred;
  deferred = null;
  return e;
}

/** Drops every pending check (their storage is gone with the device). */
export function dropChecks(): void {
  pending.length = 0;
  deferred = null;
}

let suppressed = 0;

/** True inside `unchecked` (composites whose indices were checked by their caller, or are valid by construction). */
export function checksSuppressed(): boolean {
  return suppressed > 0;
}

/** Runs `fn` (synchronous) without index checks: for composites that checked their indices once already. */
export function unchecked<T>(fn: () => T): T {
  suppressed++;
  try {
    return fn();
  } finally {
    suppressed--;
  }
}
