/**
 * Building index checks (see ./checks.ts for where they run and how failures are reported): on the host
 * when the values are known there, else a lazy reduction recorded as a device-side check.
 */
import { scope } from './memory.js';
import { noGrad } from './tape.js';
import { where } from './apply.js';
import { full } from './creation.js';
import type { Tensor } from './tensor.js';
import type { LazyNode } from './node.js';
import { addDeviceCheck, checkHostValues, checksSuppressed, hostValuesOf, type IndexRange } from './checks.js';

export { unchecked, type IndexRange } from './checks.js';

/** Ranges each graph node was checked against (passed on the host, or a device-side check recorded). */
const checked = new WeakMap<LazyNode, Set<string>>();

/**
 * Checks that every value of the integer tensor `index` lies in [range.lo, range.hi) (or equals
 * `range.ignore`): at once when the values are on the host, else at the next readback.
 */
export function checkIndices(index: Tensor, range: IndexRange): void {
  if (checksSuppressed() || index.size === 0) return;
  // a tensor used again with the same range (labels reused every sampling step) is checked once
  const key = `${range.lo}:${range.hi}:${range.ignore ?? ''}`;
  let seen = checked.get(index.node);
  if (seen?.has(key)) return;
  const host = hostValuesOf(index.node);
  if (host) checkHostValues(host, range);
  if (!seen) checked.set(index.node, (seen = new Set()));
  seen.add(key);
  if (host) return;
  noGrad(() => scope(() => {
    const m = minMaxVector(index, range);
    addDeviceCheck(m.node, range);
    return undefined;
  }));
}

/** [max, c − min] of the index values (ignored values replaced by `lo`) in one reduction: c = −1 (i32) or 2³²−1 (u32). */
function minMaxVector(index: Tensor, range: IndexRange): Tensor {
  let x = index.reshape([1, index.size]);
  if (range.ignore !== undefined) {
    const cmp = x.dtype === 'u32' && range.ignore < 0 ? x.cast('i32') : x;
    x = where(cmp.ne(range.ignore), x, Math.max(range.lo, 0));
  }
  const c = full([], x.dtype === 'u32' ? 0xffffffff : -1, { dtype: x.dtype, device: x.device });
  const rows = x.pad([[0, 1], [0, 0]]).add(c.sub(x).pad([[1, 0], [0, 0]])); // [[x], [c − x]]
  return rows.max(1);
}
