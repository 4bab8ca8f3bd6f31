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

/** A kernel as the planner sees it: the slots it reads and writes, and the bytes of its scratch buffer. */
export interface ArenaLaunch {
  inputs: readonly number[];
  outs: readonly number[];
  scratchBytes?: number;
}

/**
 * Assigns the temporaries (slot and bytes) and the kernels' scratch buffers (live during their kernel only)
 * to shared buffers: each slot's group, each kernel's scratch group, and each group's bytes.
 */
export function planArena(launches: readonly ArenaLaunch[], slots: readonly { slot: number; bytes: number }[]): { groupOf: Map<number, number>; scratchOf: Map<number, number>; sizes: number[] } {
  const first = new Map<number, number>(), last = new Map<number, number>();
  // a scratch buffer is a temporary of its kernel, numbered after every slot
  const base = Math.max(0, ...slots.map((t) => t.slot + 1), ...launches.flatMap((l) => [...l.inputs, ...l.outs].map((i) => i + 1)));
  const temps = [...slots];
  launches.forEach((l, j) => {
    const outs = l.scratchBytes ? [...l.outs, base + j] : l.outs;
    if (l.scratchBytes) temps.push({ slot: base + j, bytes: l.scratchBytes });
    for (const o of outs) if (!first.has(o)) first.set(o, j);
    for (const i of [...l.inputs, ...outs]) last.set(i, j);
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
  const scratchOf = new Map<number, number>();
  for (const [slot, g] of groupOf) {
    if (slot < base) continue;
    scratchOf.set(slot - base, g);
    groupOf.delete(slot);
  }
  return { groupOf, scratchOf, sizes: groups.map((g) => g.bytes) };
}
