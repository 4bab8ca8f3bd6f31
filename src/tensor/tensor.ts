/**
 * The Tensor: a handle on a lazy graph node. Ops check shapes and dtypes at the call site and record
 * nodes; values are computed when read (`await t.data()`), when `k.realize()` is called, or when an
 * optimizer steps. Methods apply primitives from the op registry (./ops) or call composites (./composites).
 */
import { type DType, type TypedArray, checkDType, coerce, isFloat } from './dtype.js';
import type { ReduceArg } from './ops/index.js';
import { LazyNode, type Device } from './node.js';
import { contiguousStrides, fmt, normAxes, normAxis, numel, shapesEqual, type Shape } from './shape.js';
import { keep as keepTensor, scope, track } from './memory.js';
import { backward, releaseGraph, type BackwardOptions } from './tape.js';
import { widened } from './autocast.js';
import { decode, readNode } from './realize.js';
import { full, type NestedArray } from './creation.js';
import * as act from './composites/activation.js';
import * as red from './composites/reduction.js';
import * as ix from './composites/indexing.js';
import { checkIndices, unchecked } from './index-checks.js';
import { noteAccess, noteAssign, noteDispose, tracing } from './trace.js';

export type { BackwardOptions };
import { applyElementwise, assertAlive, broadcastTo, deviceOf, matmul, mk, movement, where, type TensorLike } from './apply.js';

export type { TensorLike };

// ------------------------------------------------------------------------------------------------

/** Options of reductions. */
export interface ReduceOptions {
  keepDim?: boolean;
}

let nextTensorId = 1;

/** The id the next tensor will get (tensors made later have larger ids). */
export function peekTensorId(): number {
  return nextTensorId;
}

/** A handle on a lazy tensor. Methods follow PyTorch names in camelCase. */
export class Tensor {
  /** Creation order (internal: tells a compiled function's state from its temporaries). */
  readonly id = nextTensorId++;
  private _node: LazyNode;
  private _disposed = false;
  private _requiresGrad = false;
  /** The accumulated gradient after `backward()` (leaves, and tensors that called `retainGrad()`). */
  grad: Tensor | null = null;
  /** The backward step that produced this tensor (null for leaves); set by the autograd layer. */
  gradFn: unknown = null;
  /** Keep `.grad` on this non-leaf tensor during backward. */
  retainsGrad = false;
  /** For handles the autograd layer saves: the tensor whose gradient identity this handle carries. */
  gradOwner: Tensor | null = null;

  /** A new handle on the same values that stands for this tensor in the gradient graph (internal). */
  alias(): Tensor {
    const h = new Tensor(this.node);
    h._requiresGrad = this._requiresGrad;
    h.gradFn = this.gradFn;
    h.gradOwner = this.gradOwner ?? this;
    return h;
  }

  constructor(node: LazyNode) {
    this._node = node.retain();
    track(this);
  }

  /** The graph node (internal). Inside a call being recorded for `k.compile`, reads and writes are noted. */
  get node(): LazyNode {
    if (tracing()) noteAccess(this);
    return this._node;
  }
  set node(n: LazyNode) {
    if (tracing()) noteAssign(this);
    this._node = n;
  }
  /** The node, without noting the access (internal). */
  get rawNode(): LazyNode {
    return this._node;
  }

  /** Whether gradients flow to this tensor. Only float tensors can require gradients. */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(v: boolean) {
    if (v && !isFloat(this.dtype)) throw new Error(`requiresGrad: only floating-point tensors can require gradients, got ${this.dtype}`);
    if (!v && this.gradFn) throw new Error('requiresGrad: cannot switch off gradients of a non-leaf tensor; use detach()');
    this._requiresGrad = v;
  }

  /** True for tensors not produced by a recorded op (their `.grad` is filled by backward). */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** Computes gradients of this tensor with respect to the leaves that require them (accumulating into `.grad`). */
  backward(opts: BackwardOptions | Tensor = {}): void {
    backward(this, opts instanceof Tensor ? { gradient: opts } : opts);
  }

  /**
   * Replaces the values this handle refers to with those of `value` (same shape; cast to this dtype),
   * keeping the handle — how parameters and optimizer state are updated. Not allowed on non-leaf tensors.
   */
  assign(value: Tensor): this {
    if (!(value instanceof Tensor)) throw new TypeError('assign: expected a Tensor');
    if (!shapesEqual(value.shape, this.shape)) throw new Error(`assign: value of shape ${fmt(value.shape)} does not match ${fmt(this.shape)}`);
    if (this.gradFn) throw new Error('assign: cannot overwrite a tensor that is part of a gradient graph (non-leaf); detach() it first');
    if (value.device !== this.device) throw new Error(`assign: value is on ${value.device}, this tensor on ${this.device}`);
    this.check('assign');
    const v = value.dtype === this.dtype ? value : value.cast(this.dtype);
    const old = this.node;
    this.node = v.node.retain();
    if (v !== value) v.dispose();
    old.release();
    return this;
  }

  /** A tensor sharing the values but cut from the gradient graph. */
  detach(): Tensor {
    return new Tensor(this.node);
  }

  /** Zeros of `shape` with this tensor's dtype and device (PyTorch's `new_zeros`). */
  newZeros(shape: Shape): Tensor {
    return full(shape, 0, { dtype: this.dtype, device: this.device });
  }

  /** Ones of `shape` with this tensor's dtype and device (PyTorch's `new_ones`). */
  newOnes(shape: Shape): Tensor {
    return full(shape, 1, { dtype: this.dtype, device: this.device });
  }

  /** Asks backward to keep `.grad` on this non-leaf tensor. */
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  /** Dimensions. */
  get shape(): number[] {
    return this.node.shape;
  }
  /** Element type. */
  get dtype(): DType {
    return this.node.dtype;
  }
  /** 'webgpu' or the float64 'cpu' reference. */
  get device(): Device {
    return this.node.device;
  }
  /** Number of dimensions. */
  get rank(): number {
    return this.node.shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return this.node.size;
  }
  /** True after `dispose()`. */
  get disposed(): boolean {
    return this._disposed;
  }

  /** Frees this handle's claim on the storage (the node lives on while other work needs it). */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    if (tracing()) noteDispose(this);
    releaseGraph(this);
    this._node.release();
  }

  /** `using t = …` support. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Keeps this tensor alive past the enclosing scopes. */
  keep(): this {
    return keepTensor(this);
  }

  private check(op: string): void {
    if (this._disposed) throw new Error(`${op}: the tensor was disposed`);
  }

  toString(): string {
    return `Tensor(shape=${fmt(this.shape)}, dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- readback ---------------------------------------------------------------------------------

  /** Values as a typed array (Float32Array for f32/f16, Int32Array, Uint32Array, Uint8Array for bool; Float64Array on the cpu reference). */
  async data(): Promise<TypedArray> {
    this.check('data');
    const raw = await readNode(this.node);
    return decode(raw, this.dtype, this.size);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor of shape ${fmt(this.shape)} has ${this.size} elements; expected exactly one`);
    return (await this.data())[0]!;
  }

  /** Values as nested JS arrays. */
  async tolist(): Promise<NestedArray> {
    const d = Array.from(await this.data(), (x) => (this.dtype === 'bool' ? x !== 0 : x)) as (number | boolean)[];
    if (this.rank === 0) return d[0]!;
    const build = (dim: number, off: number): NestedArray => {
      const n = this.shape[dim]!;
      const st = contiguousStrides(this.shape)[dim]!;
      return Array.from({ length: n }, (_, i) => (dim === this.rank - 1 ? d[off + i]! : build(dim + 1, off + i * st)));
    };
    return build(0, 0);
  }

  // ---- elementwise -------------------------------------------------------------------------------

  /** a + b */ add(o: TensorLike): Tensor { return applyElementwise('add', [this, o]); }
  /** a − b */ sub(o: TensorLike): Tensor { return applyElementwise('sub', [this, o]); }
  /** a · b */ mul(o: TensorLike): Tensor { return applyElementwise('mul', [this, o]); }
  /** a / b (true division; integer floor division is `floorDiv`) */
  div(o: TensorLike): Tensor { return applyElementwise('div', [this, o]); }
  /** ⌊a / b⌋ */ floorDiv(o: TensorLike): Tensor { return applyElementwise('floordiv', [this, o]); }
  /** Remainder with the sign of the divisor (Python/PyTorch `remainder`). */
  mod(o: TensorLike): Tensor { return applyElementwise('mod', [this, o]); }
  /** a^b (small integer and ½ exponents use exact multiplications / sqrt). */
  pow(o: TensorLike): Tensor {
    if (typeof o === 'number') {
      if (o === 1) return this.cast(isFloat(this.dtype) ? this.dtype : 'f32').contiguousView();
      if (o === 2) return scope(() => { const x = widened(this.float()); return x.mul(x); });
      if (o === 3) return scope(() => { const x = widened(this.float()); return x.mul(x).mul(x); });
      if (o === 0.5) return this.sqrt();
      if (o === -1) return this.recip();
    }
    return applyElementwise('pow', [this, o]);
  }
  /** −a */ neg(): Tensor { return applyElementwise('neg', [this]); }
  /** 1/a */ recip(): Tensor { return applyElementwise('recip', [this]); }
  /** |a| */ abs(): Tensor { return applyElementwise('abs', [this]); }
  /** sign(a) ∈ {−1, 0, 1} */ sign(): Tensor { return applyElementwise('sign', [this]); }
  /** eᵃ */ exp(): Tensor { return applyElementwise('exp', [this]); }
  /** ln a */ log(): Tensor { return applyElementwise('log', [this]); }
  /** ln(1+a), accurate near 0 */ log1p(): Tensor { return applyElementwise('log1p', [this]); }
  /** eᵃ−1, accurate near 0 */ expm1(): Tensor { return applyElementwise('expm1', [this]); }
  /** √a */ sqrt(): Tensor { return applyElementwise('sqrt', [this]); }
  /** 1/√a */ rsqrt(): Tensor { return scope(() => this.sqrt().recip()); }
  /** a² */ square(): Tensor { return this.mul(this); }
  /** sin a */ sin(): Tensor { return applyElementwise('sin', [this]); }
  /** cos a */ cos(): Tensor { return applyElementwise('cos', [this]); }
  /** tanh a */ tanh(): Tensor { return applyElementwise('tanh', [this]); }
  /** 1/(1+e⁻ᵃ) */ sigmoid(): Tensor { return applyElementwise('sigmoid', [this]); }
  /** erf a */ erf(): Tensor { return applyElementwise('erf', [this]); }
  /** ⌊a⌋ */ floor(): Tensor { return applyElementwise('floor', [this]); }
  /** ⌈a⌉ */ ceil(): Tensor { return applyElementwise('ceil', [this]); }
  /** round half to even */ round(): Tensor { return applyElementwise('round', [this]); }
  /** toward zero */ trunc(): Tensor { return applyElementwise('trunc', [this]); }
  /** max(a, 0) (NaN stays NaN; the gradient at 0 is 0, as in PyTorch) */ relu(): Tensor { return applyElementwise('relu', [this]); }
  /** a if a ≥ 0 else slope·a */
  leakyRelu(slope = 0.01): Tensor { return act.leakyRelu(this, slope); }
  /** a·σ(a) */ silu(): Tensor { return scope(() => this.mul(this.sigmoid())); }
  /** GELU, exact (erf) or with the tanh approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return act.gelu(this, approximate); }
  /** log(1+e^(βa))/β, linear above `threshold` (PyTorch semantics). */
  softplus(beta = 1, threshold = 20): Tensor { return act.softplus(this, beta, threshold); }
  /** Limits values to [min, max] (either may be omitted). */
  clamp(min?: TensorLike | null, max?: TensorLike | null): Tensor { return act.clamp(this, min, max); }
  /** Elementwise maximum (NaN propagates). */ maximum(o: TensorLike): Tensor { return applyElementwise('maximum', [this, o]); }
  /** Elementwise minimum (NaN propagates). */ minimum(o: TensorLike): Tensor { return applyElementwise('minimum', [this, o]); }
  /** a < b */ lt(o: TensorLike): Tensor { return applyElementwise('lt', [this, o]); }
  /** a ≤ b */ le(o: TensorLike): Tensor { return applyElementwise('le', [this, o]); }
  /** a > b */ gt(o: TensorLike): Tensor { return o instanceof Tensor ? o.lt(this) : applyElementwise('lt', [o, this]); }
  /** a ≥ b */ ge(o: TensorLike): Tensor { return o instanceof Tensor ? o.le(this) : applyElementwise('le', [o, this]); }
  /** a == b */ eq(o: TensorLike): Tensor { return applyElementwise('eq', [this, o]); }
  /** a ≠ b */ ne(o: TensorLike): Tensor { return applyElementwise('ne', [this, o]); }
  /** logical and */ logicalAnd(o: TensorLike): Tensor { return applyElementwise('logical_and', [this, o]); }
  /** logical or */ logicalOr(o: TensorLike): Tensor { return applyElementwise('logical_or', [this, o]); }
  /** logical xor */ logicalXor(o: TensorLike): Tensor { return applyElementwise('logical_xor', [this, o]); }
  /** logical not */ logicalNot(): Tensor { return applyElementwise('logical_not', [this]); }
  /** NaN test */ isnan(): Tensor { return applyElementwise('isnan', [this]); }
  /** this where cond else other (PyTorch's `x.where(cond, y)`). */
  where(cond: TensorLike, other: TensorLike): Tensor { return where(cond, this, other); }

  /** Converts to another dtype (f32→int truncates toward zero; → bool tests ≠ 0). */
  cast(dtype: DType): Tensor {
    checkDType(dtype, 'cast');
    if (dtype === this.dtype) return this;
    return mk('cast', [this], [...this.shape], dtype, this.device, dtype);
  }
  /** cast to f32 (no-op for floats). */
  float(): Tensor { return isFloat(this.dtype) ? this : this.cast('f32'); }
  /** cast to i32 */ int(): Tensor { return this.cast('i32'); }

  // ---- movement (views: no copy) -----------------------------------------------------------------

  /** A new handle on the same values (an identity view). */
  contiguousView(): Tensor {
    return movement(this, 'reshape', { shape: [...this.shape] });
  }

  /** Same values, new shape (one entry may be −1). */
  reshape(shape: Shape): Tensor {
    const s = [...shape];
    const neg = s.filter((d) => d === -1).length;
    if (neg > 1 || s.some((d) => !Number.isInteger(d) || d < -1)) throw new Error(`reshape: invalid shape ${fmt(s)} (non-negative integers and at most one -1)`);
    if (neg) {
      const known = s.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      if (known === 0 || this.size % known !== 0) throw new Error(`reshape: cannot reshape ${fmt(this.shape)} (${this.size} elements) to ${fmt(s)}`);
      s[s.indexOf(-1)] = this.size / known;
    }
    if (numel(s) !== this.size) throw new Error(`reshape: cannot reshape ${fmt(this.shape)} (${this.size} elements) to ${fmt(s)} (${numel(s)} elements)`);
    if (shapesEqual(s, this.shape)) return this;
    return movement(this, 'reshape', { shape: s });
  }
  /** Alias of reshape (never copies in kiln: views are index math). */
  view(shape: Shape): Tensor { return this.reshape(shape); }

  /** Reorders dimensions. */
  permute(perm: number[]): Tensor {
    if (perm.length !== this.rank) throw new Error(`permute: expected ${this.rank} axes for shape ${fmt(this.shape)}, got ${JSON.stringify(perm)}`);
    const p = perm.map((a) => normAxis('permute', a, this.rank));
    if (new Set(p).size !== p.length) throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of the ${this.rank} axes`);
    if (p.every((a, i) => a === i)) return this;
    return movement(this, 'permute', { perm: p });
  }
  /** Swaps two axes. */
  transpose(a = -2, b = -1): Tensor {
    const x = normAxis('transpose', a, this.rank), y = normAxis('transpose', b, this.rank);
    const p = Array.from({ length: this.rank }, (_, i) => i);
    p[x] = y; p[y] = x;
    return this.permute(p);
  }
  /** All axes reversed (the matrix transpose for 2-D). */
  get T(): Tensor { return this.permute(Array.from({ length: this.rank }, (_, i) => this.rank - 1 - i)); }
  /** The last two axes swapped (batched matrix transpose). */
  get mT(): Tensor {
    if (this.rank < 2) throw new Error(`mT: needs at least 2 dimensions, got shape ${fmt(this.shape)}`);
    return this.transpose(-2, -1);
  }
  /** Broadcasts size-1 dims (and new leading dims) to `shape`; −1 keeps a size. */
  expand(shape: Shape): Tensor {
    const s = [...shape];
    if (s.length < this.rank) throw new Error(`expand: target ${fmt(s)} has fewer dimensions than ${fmt(this.shape)}`);
    const off = s.length - this.rank;
    const out = s.map((d, i) => (d === -1 ? (i < off ? NaN : this.shape[i - off]!) : d));
    out.forEach((d, i) => {
      const cur = i < off ? 1 : this.shape[i - off]!;
      if (!Number.isInteger(d) || d < 0 || (cur !== 1 && cur !== d)) throw new Error(`expand: cannot expand ${fmt(this.shape)} to ${fmt(s)} (dimension ${i}: ${cur} → ${shape[i]})`);
    });
    return broadcastTo(this, out);
  }
  /** Broadcasts to the shape of `other`. */
  expandAs(other: Tensor): Tensor { return this.expand(other.shape); }
  /** Removes size-1 axes (all, or the given ones). */
  squeeze(axis?: number | number[]): Tensor {
    const axes = axis === undefined ? this.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normAxes('squeeze', axis, this.rank);
    for (const a of axes) if (this.shape[a] !== 1) throw new Error(`squeeze: axis ${a} of shape ${fmt(this.shape)} has size ${this.shape[a]}, not 1`);
    return this.reshape(this.shape.filter((_, i) => !axes.includes(i)));
  }
  /** Inserts a size-1 axis. */
  unsqueeze(axis: number): Tensor {
    const a = normAxis('unsqueeze', axis, this.rank + 1);
    const s = [...this.shape];
    s.splice(a, 0, 1);
    return this.reshape(s);
  }
  /** Merges axes start..end into one. */
  flatten(start = 0, end = -1): Tensor {
    if (this.rank === 0) return this.reshape([1]);
    const s = normAxis('flatten', start, this.rank), e = normAxis('flatten', end, this.rank);
    if (e < s) throw new Error(`flatten: end axis ${end} comes before start axis ${start}`);
    const shape = [...this.shape.slice(0, s), numel(this.shape.slice(s, e + 1)), ...this.shape.slice(e + 1)];
    return this.reshape(shape);
  }
  /** Elements start..end (exclusive, negatives count from the end, step ≥ 1) along one axis. */
  slice(axis: number, start = 0, end?: number, step = 1): Tensor {
    const a = normAxis('slice', axis, this.rank);
    const n = this.shape[a]!;
    const clampI = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = clampI(start), e = Math.max(s, clampI(end ?? n));
    if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
    const ranges = this.shape.map((d, i) => (i === a ? [s, e] : [0, d]) as [number, number]);
    let x = this.shrink(ranges);
    if (step > 1) {
      const len = e - s;
      const m = Math.ceil(len / step);
      const padded = x.pad(this.shape.map((_, i) => (i === a ? [0, m * step - len] : [0, 0]) as [number, number]));
      const sh = [...padded.shape];
      sh.splice(a, 1, m, step);
      x = padded.reshape(sh).slice(a + 1, 0, 1).squeeze(a + 1);
    }
    return x;
  }
  /** `length` elements from `start` along an axis (torch.narrow). */
  narrow(axis: number, start: number, length: number): Tensor {
    const a = normAxis('narrow', axis, this.rank);
    if (start < 0) start += this.shape[a]!;
    if (start < 0 || length < 0 || start + length > this.shape[a]!) throw new Error(`narrow: range [${start}, ${start + length}) is outside axis ${a} of size ${this.shape[a]}`);
    return this.slice(a, start, start + length);
  }
  private shrink(ranges: [number, number][]): Tensor {
    if (ranges.every(([a, b], i) => a === 0 && b === this.shape[i])) return this;
    return movement(this, 'shrink', { ranges });
  }
  /** Reverses the order along the given axes. */
  flip(axes: number | number[]): Tensor {
    const ax = normAxes('flip', axes, this.rank);
    if (!ax.length) return this;
    return movement(this, 'flip', { axes: ax });
  }
  /**
   * Sliding windows along `axis` as a view (torch.Tensor.unfold, plus dilation): that axis becomes the
   * number of windows ⌊(n − dilation·(size−1) − 1) / step⌋ + 1 and a new last axis of length `size` holds
   * each window, element j of window i being x[i·step + j·dilation]. Convolution and pooling are built on it.
   */
  unfold(axis: number, size: number, step = 1, dilation = 1): Tensor {
    const a = normAxis('unfold', axis, this.rank);
    for (const [name, v] of [['size', size], ['step', step], ['dilation', dilation]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`unfold: ${name} must be a positive integer, got ${v}`);
    }
    const n = this.shape[a]!;
    const span = dilation * (size - 1) + 1;
    if (span > n) throw new Error(`unfold: window of size ${size} (dilation ${dilation}, span ${span}) is larger than axis ${a} of size ${n} in shape ${fmt(this.shape)}`);
    return movement(this, 'unfold', { axis: a, size, step, dilation });
  }
  /** Pads each axis with [before, after] elements of `value` (negative amounts crop). */
  pad(pads: [number, number][], value = 0): Tensor {
    if (!Array.isArray(pads) || pads.length !== this.rank || pads.some((p) => !Array.isArray(p) || p.length !== 2 || !p.every(Number.isInteger))) {
      throw new Error(`pad: expected ${this.rank} [before, after] integer pairs for shape ${fmt(this.shape)}, got ${JSON.stringify(pads)}`);
    }
    const crop = pads.map(([b, a], i) => [Math.max(0, -b), this.shape[i]! - Math.max(0, -a)] as [number, number]);
    if (crop.some(([s, e]) => e < s)) throw new Error(`pad: negative padding ${JSON.stringify(pads)} removes more than shape ${fmt(this.shape)} has`);
    const x = this.shrink(crop);
    const pos = pads.map(([b, a]) => [Math.max(0, b), Math.max(0, a)] as [number, number]);
    if (pos.every(([b, a]) => b === 0 && a === 0)) return x;
    return movement(x, 'pad', { pads: pos, value: coerce(value, this.dtype) });
  }
  /** Materializes the values in a new contiguous buffer. */
  contiguous(): Tensor {
    return mk('contiguous', [this], [...this.shape], this.dtype, this.device);
  }
  /** Splits into pieces of `size` (or the listed sizes) along an axis. */
  split(sizes: number | number[], axis = 0): Tensor[] {
    const a = normAxis('split', axis, this.rank);
    const n = this.shape[a]!;
    if (typeof sizes === 'number' && (!Number.isInteger(sizes) || sizes < 1)) throw new Error(`split: split size must be a positive integer, got ${sizes}`);
    if (typeof sizes !== 'number' && (!Array.isArray(sizes) || sizes.some((x) => !Number.isInteger(x) || x < 0))) {
      throw new Error(`split: sizes must be a positive integer or an array of non-negative integers, got ${JSON.stringify(sizes)}`);
    }
    const list = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : sizes;
    if (list.reduce((s, x) => s + x, 0) !== n) throw new Error(`split: sizes ${JSON.stringify(sizes)} do not add up to ${n} (axis ${a} of ${fmt(this.shape)})`);
    let off = 0;
    return list.map((len) => { const t = this.slice(a, off, off + len); off += len; return t; });
  }
  /** Splits into `chunks` nearly equal pieces along an axis. */
  chunk(chunks: number, axis = 0): Tensor[] {
    const a = normAxis('chunk', axis, this.rank);
    if (!Number.isInteger(chunks) || chunks < 1) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
    if (this.shape[a] === 0) return [this];
    return this.split(Math.ceil(this.shape[a]! / chunks), a);
  }

  // ---- reductions ---------------------------------------------------------------------------------

  private reducePrim(op: 'sum' | 'max', axes: number[], keepDim: boolean): Tensor {
    const shape = this.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    let out: Tensor;
    if (!axes.length) out = this;
    else out = mk('reduce', [this], shape, this.dtype, this.device, { op, axes } satisfies ReduceArg);
    return keepDim ? out : out.reshape(this.shape.filter((_, i) => !axes.includes(i)));
  }
  /** Sum over axes (all by default). Bool sums count as i32; f16 sums are f32 under autocast. */
  sum(axis?: number | number[], opts: ReduceOptions = {}): Tensor {
    const axes = normAxes('sum', axis, this.rank);
    return scope(() => (this.dtype === 'bool' ? this.cast('i32') : widened(this)).reducePrim('sum', axes, !!opts.keepDim));
  }
  /** Mean over axes. */
  mean(axis?: number | number[], opts: ReduceOptions = {}): Tensor {
    const axes = normAxes('mean', axis, this.rank);
    const n = axes.reduce((s, a) => s * this.shape[a]!, 1);
    return scope(() => {
      const s = widened(this.float()).reducePrim('sum', axes, !!opts.keepDim);
      return n === 0 ? where(true, NaN, s) : s.div(n); // the mean of no elements is NaN, as in PyTorch
    });
  }
  /** Maximum over axes (NaN propagates). */
  max(axis?: number | number[], opts: ReduceOptions = {}): Tensor {
    const axes = normAxes('max', axis, this.rank);
    if (!this.size) throw new Error(`max: cannot reduce an empty tensor of shape ${fmt(this.shape)}`);
    return scope(() => (this.dtype === 'bool' ? this.cast('i32') : this).reducePrim('max', axes, !!opts.keepDim).cast(this.dtype));
  }
  /** Minimum over axes (NaN propagates). */
  min(axis?: number | number[], opts: ReduceOptions = {}): Tensor {
    const axes = normAxes('min', axis, this.rank);
    if (!this.size) throw new Error(`min: cannot reduce an empty tensor of shape ${fmt(this.shape)}`);
    return scope(() => {
      const x = this.dtype === 'bool' ? this.cast('i32') : this;
      if (isFloat(x.dtype)) return x.neg().reducePrim('max', axes, !!opts.keepDim).neg().cast(this.dtype);
      const c = x.dtype === 'u32' ? 0xffffffff : -1; // order-reversing without overflow: c − x
      return full([], c, { dtype: x.dtype, device: x.device }).sub(full([], c, { dtype: x.dtype, device: x.device }).sub(x).reducePrim('max', axes, !!opts.keepDim)).cast(this.dtype);
    });
  }
  /** Index of the maximum along an axis (first on ties; NaN counts as the maximum). */
  argmax(axis?: number, opts: ReduceOptions = {}): Tensor { return red.argReduce(this, 'argmax', axis, !!opts.keepDim, true); }
  /** Index of the minimum along an axis (first on ties). */
  argmin(axis?: number, opts: ReduceOptions = {}): Tensor { return red.argReduce(this, 'argmin', axis, !!opts.keepDim, false); }
  /** Variance (two-pass, `correction` 1 = unbiased like PyTorch's default). */
  var(axis?: number | number[], opts: ReduceOptions & { correction?: number } = {}): Tensor { return red.variance(this, axis, opts); }
  /** Standard deviation. */
  std(axis?: number | number[], opts: ReduceOptions & { correction?: number } = {}): Tensor { return scope(() => this.var(axis, opts).sqrt()); }
  /** log Σ exp, stable (shifted by the maximum). */
  logsumexp(axis?: number | number[], opts: ReduceOptions = {}): Tensor { return red.logsumexp(this, axis, opts); }
  /** Softmax along an axis (stable). */
  softmax(axis = -1): Tensor { return red.softmax(this, axis); }
  /** log softmax along an axis (stable). */
  logSoftmax(axis = -1): Tensor { return red.logSoftmax(this, axis); }
  /** Inclusive prefix sum along an axis (a masked reduction: O(n²) work per row, fine for n up to a few thousand). */
  cumsum(axis = 0): Tensor { return red.cumsum(this, axis); }

  // ---- indexing ----------------------------------------------------------------------------------

  /**
   * out[…i…] = this[…index[…i…]…] along `axis` (PyTorch gather; negative indices count from the end).
   * Indices outside [−n, n) are an error: at the call when the index values are on the host, else at the
   * next readback (see ./checks.ts).
   */
  gather(axis: number, index: Tensor): Tensor {
    const a = normAxis('gather', axis, this.rank);
    if (!(index instanceof Tensor)) throw new TypeError('gather: index must be a Tensor');
    if (index.dtype !== 'i32' && index.dtype !== 'u32') throw new TypeError(`gather: index must be i32 or u32, got ${index.dtype}`);
    if (index.rank !== this.rank) throw new Error(`gather: index of shape ${fmt(index.shape)} must have the same rank as input ${fmt(this.shape)}`);
    index.shape.forEach((d, i) => {
      if (i !== a && d > this.shape[i]!) throw new Error(`gather: index shape ${fmt(index.shape)} exceeds input ${fmt(this.shape)} at axis ${i}`);
    });
    deviceOf('gather', [this, index]);
    const n = this.shape[a]!;
    checkIndices(index, { op: 'gather', noun: 'index', lo: -n, hi: n, context: `for axis ${a} of size ${n}` });
    return scope(() => mk('gather', [this, index.cast('i32')], [...index.shape], this.dtype, this.device, a));
  }
  /** Selects entries of a 1-D index along an axis (negative indices count from the end; out of range is an error, as in `gather`). */
  indexSelect(axis: number, index: Tensor): Tensor {
    const a = normAxis('indexSelect', axis, this.rank);
    if (!(index instanceof Tensor)) throw new TypeError('indexSelect: index must be a Tensor');
    if (index.dtype !== 'i32' && index.dtype !== 'u32') throw new TypeError(`indexSelect: index must be i32 or u32, got ${index.dtype}`);
    if (index.rank !== 1) throw new Error(`indexSelect: index must be 1-D, got shape ${fmt(index.shape)}`);
    deviceOf('indexSelect', [this, index]);
    const n = this.shape[a]!;
    checkIndices(index, { op: 'indexSelect', noun: 'index', lo: -n, hi: n, context: `for axis ${a} of size ${n}` });
    const L = index.shape[0]!;
    const shape = this.shape.map((d, i) => (i === a ? L : d));
    return scope(() => unchecked(() => this.gather(a, index.reshape(this.shape.map((_, i) => (i === a ? L : 1))).expand(shape))));
  }
  /**
   * this + src scattered by index along axis (PyTorch scatter_add; index and src share a shape). Deterministic.
   * Indices outside [−n, n) are an error, as in `gather`.
   */
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor { return ix.scatterAdd(this, axis, index, src); }
  /** One-hot encoding along a new last axis (classes outside [0, numClasses) are an error, as in PyTorch). */
  oneHot(numClasses: number, opts: { dtype?: DType } = {}): Tensor { return ix.oneHot(this, numClasses, opts.dtype ?? 'i32'); }

  // ---- linear algebra ------------------------------------------------------------------------------

  /** Matrix product with NumPy/PyTorch semantics: 1-D operands, batch broadcasting; transposed views cost nothing. */
  matmul(other: Tensor): Tensor { return matmul(this, other); }
}

// Every method checks its receiver and tensor arguments: a disposed tensor is an error at the call site
// naming the method (`add: the tensor was disposed`), never a failure deep in planning or encoding.
const UNCHECKED_METHODS = new Set(['constructor', 'dispose', 'keep', 'toString', 'check']);
for (const name of Object.getOwnPropertyNames(Tensor.prototype)) {
  const desc = Object.getOwnPropertyDescriptor(Tensor.prototype, name)!;
  if (UNCHECKED_METHODS.has(name) || typeof desc.value !== 'function') continue;
  const method = desc.value as (...args: unknown[]) => unknown;
  const isAsync = method.constructor.name === 'AsyncFunction'; // those reject instead of throwing
  const checked = {
    [name](this: Tensor, ...args: unknown[]): unknown {
      try {
        if (this.disposed) throw new Error(`${name}: the tensor was disposed`);
        assertAlive(name, args);
      } catch (e) {
        if (isAsync) return Promise.reject(e);
        throw e;
      }
      return method.apply(this, args);
    },
  }[name]!;
  Object.defineProperty(Tensor.prototype, name, { ...desc, value: checked });
}
