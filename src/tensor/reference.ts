/**
 * The float64 CPU reference: interprets the same lazy graph op by op on dense arrays, with each op
 * definition's own reference function. It shares no index math with the WGSL lowering, so the
 * conformance suite compares two independent implementations.
 */
import type { LazyNode } from './node.js';

function evalNode(n: LazyNode, memo: Map<LazyNode, Float64Array>): Float64Array {
  if (n.realized) return n.def.reference(n, []);
  const hit = memo.get(n);
  if (hit) return hit;
  const out = n.def.reference(n, n.src.map((s) => evalNode(s, memo)));
  memo.set(n, out);
  return out;
}

/** Realizes CPU-reference nodes in float64. */
export function realizeReference(targets: LazyNode[]): void {
  const memo = new Map<LazyNode, Float64Array>();
  for (const t of targets) {
    if (t.realized) continue;
    t.becomeBuffer({ host: evalNode(t, memo) });
  }
}
