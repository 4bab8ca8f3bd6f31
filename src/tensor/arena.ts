/**
 * Memory planning for a recorded step: which temporaries can share one buffer.
 *
 * A temporary (a kernel result that neither leaves the step nor becomes state) is live from the kernel
 * that writes it to the last kernel that reads it, and one buffer serves temporaries whose lifetimes do
 * not overlap. Largest first, each temporary takes the smallest buffer that holds it and is free for its
 * whole lifetime, else a new one (greedy by size, as in TFLite's memory planner). Kernels run in order
 * within a submit, so a step needs about the memory of its widest point, not of all its intermediates:
 * the activations of a checkpointed block are gone once its output is written.
 */

/** A kernel as the planner sees it: the slots it reads and writes. */
export interface ArenaLaunch {
  inputs: readonly number[];
  outs: readonly number[];
}

/** Assigns the temporaries (slot and bytes) to shared buffers: each slot's group, and each group's bytes. */
export function planArena(launches: readonly ArenaLaunch[], temps: readonly { slot: number; bytes: number }[]): { groupOf: Map<number, number>; sizes: number[] } {
  const first = new Map<number, number>(), last = new Map<number, number>();
  launches.forEach((l, j) => {
    for (const o of l.outs) if (!first.has(o)) first.set(o, j);
    for (const i of [...l.inputs, ...l.outs]) last.set(i, j);
  });
  const order = [...temps].filter((t) => first.has(t.slot)).sort((a, b) => b.bytes - a.bytes || first.get(a.slot)! - first.get(b.slot)!);
  const groups: { bytes: number; spans: [number, number][] }[] = [];
  const groupOf = new Map<number, number>();
  for (const { slot, bytes } of order) {
    const from = first.get(slot)!, to = last.get(slot)!;
    // free for the whole lifetime, strictly: a kernel never binds one buffer as both an input and an output
    let best: number | undefined;
    groups.forEach((g, j) => {
      if (g.bytes < bytes || (best !== undefined && g.bytes >= groups[best]!.bytes)) return;
      if (g.spans.every(([a, b]) => b < from || to < a)) best = j;
    });
    const j = best ?? groups.push({ bytes, spans: [] }) - 1;
    groups[j]!.spans.push([from, to]);
    groupOf.set(slot, j);
  }
  return { groupOf, sizes: groups.map((g) => g.bytes) };
}
