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

/** A strided window onto a contiguous buffer: element at coords c is buffer[offset + Σ c·strides]. */
export interface StridedView {
  shape: number[];
  strides: number[];
  offset: number;
}

/**
 * Tries to express `reshape(newShape)` of a strided view as another strided view without copying
 * (NumPy's no-copy reshape). Returns null when the layout does not allow it.
 */
export function reshapeStrided(v: StridedView, newShape: Shape): StridedView | null {
  // drop size-1 dims of the old view
  const oldDims: number[] = [];
  const oldStr: number[] = [];
  for (let i = 0; i < v.shape.length; i++) {
    if (v.shape[i] !== 1) {
      oldDims.push(v.shape[i]!);
      oldStr.push(v.strides[i]!);
    }
  }
  if (numel(newShape) === 0) return { shape: [...newShape], strides: contiguousStrides(newShape), offset: v.offset };
  const newStr = new Array<number>(newShape.length).fill(0);
  let oi = 0;
  let ni = 0;
  while (ni < newShape.length && oi < oldDims.length) {
    if (newShape[ni] === 1) { newStr[ni] = 0; ni++; continue; }
    let np = newShape[ni]!;
    let op = oldDims[oi]!;
    const ns = ni;
    const os = oi;
    while (np !== op) {
      if (np < op) np *= newShape[++ni]!;
      else op *= oldDims[++oi]!;
    }
    for (let k = os; k < oi; k++) {
      if (oldStr[k] !== oldStr[k + 1]! * oldDims[k + 1]!) return null;
    }
    newStr[ni] = oldStr[oi]!;
    for (let k = ni - 1; k >= ns; k--) newStr[k] = newStr[k + 1]! * newShape[k + 1]!;
    ni++;
    oi++;
  }
  for (; ni < newShape.length; ni++) newStr[ni] = 0;
  return { shape: [...newShape], strides: newStr, offset: v.offset };
}
