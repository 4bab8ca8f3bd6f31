/** Shape utilities: sizes, strides, broadcasting and axis normalization. */

export type Shape = readonly number[];

/** Number of elements of a shape. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C-contiguous) strides of a shape. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Formats a shape as `[2, 3]` for error messages. */
export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** True when both shapes have the same rank and sizes. */
export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting of several shapes; throws a message naming `op` and the shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (let i = 0; i < rank; i++) {
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (out[i] === 1) out[i] = d;
      else if (out[i] !== d) {
        throw new Error(`${op}: shapes ${shapes.map(fmt).join(' and ')} cannot be broadcast together (dimension ${i - rank} is ${out[i]} vs ${d})`);
      }
    }
  }
  return out;
}

/** Normalizes a possibly negative axis; throws a message naming `op` when out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank} (expected an integer in [${-Math.max(rank, 1)}, ${Math.max(rank, 1) - 1}])`);
  }
  return axis < 0 ? axis + Math.max(rank, 1) : axis;
}

/** Normalizes an axis list (undefined = all axes), sorted and de-duplicated. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => normAxis(op, a, rank));
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in ${JSON.stringify(list)}`);
  return out.sort((a, b) => a - b);
}

/** Checks that every entry is a non-negative integer. */
export function checkShape(op: string, shape: Shape): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`${op}: invalid shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
  }
}

/** One sub-dimension of a view axis: [size, stride]. */
export type Atom = [size: number, stride: number];

/**
 * A view onto a contiguous buffer whose every axis is a product of strided sub-dimensions (outermost
 * first; an empty list is an axis of size 1): coordinate c of an axis with atoms (n₀,s₀)…(n_k,s_k)
 * decomposes into digits of base n and lands at Σ digit·s. Plain strided views have one atom per axis;
 * several appear when a reshape merges axes that are not adjacent in memory, such as the
 * (channel, ky, kx) axis of convolution windows, so a matmul can read them without a copy.
 */
export interface FactoredView {
  axes: Atom[][];
  offset: number;
}

/** The factored view of a contiguous buffer of `shape`. */
export function contiguousView(shape: Shape): FactoredView {
  const st = contiguousStrides(shape);
  return { axes: shape.map((d, i) => (d === 1 ? [] : [[d, st[i]!] as Atom])), offset: 0 };
}

/** Merges adjacent atoms that are contiguous with each other and drops size-1 atoms. */
export function simplifyAtoms(atoms: Atom[]): Atom[] {
  const out: Atom[] = [];
  for (const [n, s] of atoms) {
    if (n === 1) continue;
    const prev = out[out.length - 1];
    if (prev && prev[1] === s * n) out[out.length - 1] = [prev[0] * n, s];
    else out.push([n, s]);
  }
  return out;
}

/** Regroups the atoms of a view under a new shape, splitting atoms where needed; null when sizes do not divide. */
export function reshapeFactored(v: FactoredView, newShape: Shape): FactoredView | null {
  const queue = v.axes.flat().filter(([n]) => n !== 1);
  const axes: Atom[][] = [];
  for (const d of newShape) {
    if (d === 0) return null;
    const axis: Atom[] = [];
    let need = d;
    while (need > 1) {
      const head = queue[0];
      if (!head) return null;
      const [n, s] = head;
      if (need % n === 0) {
        axis.push(head);
        queue.shift();
        need /= n;
      } else if (n % need === 0) {
        axis.push([need, s * (n / need)]);
        queue[0] = [n / need, s];
        need = 1;
      } else return null;
    }
    axes.push(simplifyAtoms(axis));
  }
  return queue.length ? null : { axes, offset: v.offset };
}
