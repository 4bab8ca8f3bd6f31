/**
 * Convolution and pooling in NCHW with PyTorch semantics, as composites of views and a matmul.
 * The input windows are an `unfold` view of the padded input, which the matmul kernel reads in place
 * (implicit GEMM: no im2col buffer); one matmul per group covers the whole batch, so the weight
 * gradient is a single matmul too. The input gradient of a stride-1 convolution is a convolution of the
 * upstream gradient (implicit GEMM again, no gradient of the windows), and a strided one's (dilation 1, up
 * to 9 phases) is one such convolution per phase of the input positions; any other strided one's goes
 * through the windows' gradient, in batch chunks when it is large. Second-order gradients, convTranspose2d and every
 * pooling op differentiate the composites of primitives, twice if needed.
 */
import { fmt } from '../tensor/shape.js';
import { scope } from '../tensor/memory.js';
import { toAutocast } from '../tensor/autocast.js';
import { assertAlive, cat, isGradEnabled, stack, tensor, Tensor, withGradMode, zeros } from '../tensor/index.js';
import { autocastDtype, propagate, record, withAutocastDtype } from '../tensor/tape.js';
import type { OpDef } from '../tensor/ops/registry.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** A size option (stride, dilation, padding, kernel…) as a pair of integers ≥ `min`; the error names the op. */
function intPair(op: string, name: string, v: Pair, min: 0 | 1): [number, number] {
  const p: unknown = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < min)) {
    throw new Error(`${op}: ${name} must be a ${min ? 'positive' : 'non-negative'} integer or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p as [number, number];
}

/** Checks the input of a 2-D op ([N, C, H, W], not disposed). */
function input4d(op: string, x: Tensor): void {
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: input must be a Tensor`);
  assertAlive(op, [x]);
  if (x.rank !== 4) throw new Error(`${op}: input must be [N, C, H, W], got ${fmt(x.shape)}`);
}

/** Options of conv2d. */
export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

/** Output size of a convolution along one axis. */
function outSize(op: string, n: number, k: number, s: number, p0: number, p1: number, d: number): number {
  const o = Math.floor((n + p0 + p1 - d * (k - 1) - 1) / s) + 1;
  if (o < 1) throw new Error(`${op}: kernel ${k} (dilation ${d}) is larger than the padded input ${n + p0 + p1}`);
  return o;
}

/** The [N, C, Ho, Wo, kh, kw] windows of x padded with `value` (a view: no copy of the windows). */
function windows(op: string, x: Tensor, k: [number, number], s: [number, number], pads: [[number, number], [number, number]], d: [number, number], value = 0): { cols: Tensor; Ho: number; Wo: number } {
  const [, , H, W] = x.shape as [number, number, number, number];
  const Ho = outSize(op, H, k[0], s[0], pads[0][0], pads[0][1], d[0]);
  const Wo = outSize(op, W, k[1], s[1], pads[1][0], pads[1][1], d[1]);
  const xp = x.pad([[0, 0], [0, 0], pads[0], pads[1]], value);
  return { cols: xp.unfold(2, k[0], s[0], d[0]).unfold(3, k[1], s[1], d[1]), Ho, Wo };
}

function resolvePadding(op: string, padding: Conv2dOptions['padding'], k: [number, number], d: [number, number], s: [number, number]): [[number, number], [number, number]] {
  if (padding === undefined || padding === 'valid') return [[0, 0], [0, 0]];
  if (padding === 'same') {
    if (s[0] !== 1 || s[1] !== 1) throw new Error(`${op}: padding 'same' needs stride 1, got [${s}]`);
    return [0, 1].map((a) => {
      const total = d[a]! * (k[a]! - 1);
      return [Math.floor(total / 2), total - Math.floor(total / 2)] as [number, number];
    }) as [[number, number], [number, number]];
  }
  if (typeof padding === 'string') throw new Error(`${op}: padding must be 'same', 'valid' or non-negative integers, got ${JSON.stringify(padding)}`);
  const p = intPair(op, 'padding', padding, 0);
  return [[p[0], p[0]], [p[1], p[1]]];
}

/** 2-D convolution: x [N, C, H, W], weight [O, C/groups, kh, kw], optional bias [O]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  input4d(op, x);
  assertAlive(op, [weight, bias]);
  if (weight.rank !== 4) throw new Error(`${op}: weight must be [out, in/groups, kh, kw], got ${fmt(weight.shape)}`);
  const g = opts.groups ?? 1;
  const [N, C] = x.shape as [number, number];
  const [O, Cg, kh, kw] = weight.shape as [number, number, number, number];
  if (!Number.isInteger(g) || g < 1 || C % g || O % g) throw new Error(`${op}: groups ${g} must divide input channels ${C} and output channels ${O}`);
  if (Cg * g !== C) throw new Error(`${op}: input has ${C} channels but weight ${fmt(weight.shape)} expects ${Cg * g} (in/groups = ${Cg}, groups = ${g})`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== O)) throw new Error(`${op}: bias must be [${O}], got ${fmt(bias.shape)}`);
  const s = intPair(op, 'stride', opts.stride ?? 1, 1), d = intPair(op, 'dilation', opts.dilation ?? 1, 1);
  const pads = resolvePadding(op, opts.padding, [kh, kw], d, s);
  const core = (x: Tensor, weight: Tensor, bias?: Tensor | null) => scope(() => {
    // under autocast the input is cast before its windows are taken (after, the matmul would read a cast copy of every window)
    const { cols, Ho, Wo } = windows(op, toAutocast(x), [kh, kw], s, pads, d);
    const n = x.shape[0]!;
    // implicit GEMM: weight [g, O/g, (C/g)·kh·kw] times the windows viewed as [g, (C/g)·kh·kw, N·Ho·Wo];
    // the matmul reads the windows straight from the padded input, and the weight gradient is one matmul
    const K = Cg * kh * kw;
    const a = cols.reshape([n, g, Cg, Ho, Wo, kh, kw]).permute([1, 2, 5, 6, 0, 3, 4]).reshape([g, K, n * Ho * Wo]);
    let y = weight.reshape([g, O / g, K]).matmul(a);
    if (bias) y = y.add(toAutocast(bias).reshape([g, O / g, 1]));
    y = y.reshape([g, O / g, n, Ho, Wo]).permute([2, 0, 1, 3, 4]).reshape([n, O, Ho, Wo]);
    return y;
  });
  if (!isGradEnabled() || !x.requiresGrad) return core(x, weight, bias);
  // stride 1: the input gradient is itself a convolution (implicit GEMM on the upstream gradient), so the
  // gradient of the windows, Cg·kh·kw values per output position, is never formed
  if (s[0] === 1 && s[1] === 1) return withInputGradient(core, x, weight, bias ?? null, (_x, w, gy) => stride1InputGradient(gy, w, pads, d, g));
  // strided, dilation 1 (up to 3 × 3): per phase of the input positions, a stride-1 convolution of the upstream gradient
  if (d[0] === 1 && d[1] === 1 && s[0] * s[1] <= MAX_GRADIENT_PHASES) return withInputGradient(core, x, weight, bias ?? null, (xl, w, gy) => stridedInputGradient(gy, w, xl.shape, s, pads, g));
  const [Ho, Wo] = [0, 1].map((a) => outSize(op, x.shape[2 + a]!, [kh, kw][a]!, s[a]!, pads[a]![0], pads[a]![1], d[a]!)) as [number, number];
  // strided and dilated (or a stride over 9 phases): the input gradient goes through the gradient of every
  // window, in batch chunks when it is large
  const colBytes = C * kh * kw * N * Ho * Wo * ((autocastDtype() ?? x.dtype) === 'f16' ? 2 : 4);
  if (N < 2 || colBytes <= CONV_COLUMN_BYTES) return core(x, weight, bias);
  const size = Math.ceil(N / Math.min(N, Math.ceil(colBytes / CONV_COLUMN_BYTES)));
  return withInputGradient(core, x, weight, bias ?? null, (xl, w, gy) => {
    const chunks: Tensor[] = [];
    for (let lo = 0; lo < N; lo += size) {
      const hi = Math.min(N, lo + size);
      const xc = xl.slice(0, lo, hi);
      xc.requiresGrad = true;
      const gc = propagate(withGradMode(true, () => core(xc, w)), gy.slice(0, lo, hi), { retainGraph: false, createGraph: false, wanted: [xc] });
      // stored now: the next chunk's window gradient can then take this one's buffer
      chunks.push(gc.get(xc)!.contiguous());
    }
    return cat(chunks, 0);
  });
}

/**
 * The input gradient of a stride-1 convolution with weight w [O, C/g, kh, kw]: the upstream gradient gy
 * [N, O, Ho, Wo] padded by d·(k − 1) less the forward padding on each side (a negative amount crops),
 * convolved with w transposed per group and flipped in space: [N, C, H, W].
 */
function stride1InputGradient(gy: Tensor, w: Tensor, pads: [[number, number], [number, number]], d: [number, number], g: number): Tensor {
  const [, , kh, kw] = w.shape as [number, number, number, number];
  const ext = [d[0] * (kh - 1), d[1] * (kw - 1)];
  return transposedConv(gy, w, null, [[ext[0]! - pads[0][0], ext[0]! - pads[0][1]], [ext[1]! - pads[1][0], ext[1]! - pads[1][1]]], d, g);
}

/** Most phases (stride h × stride w) for which a strided convolution's input gradient is taken per phase. */
const MAX_GRADIENT_PHASES = 9;

/**
 * The input gradient [N, C, H, W] of a strided convolution with dilation 1 and weight w [O, C/g, kh, kw], with
 * no gradient of the windows: a padded input position P = q·s + φ receives only the taps φ, φ + s, φ + 2s, …
 * So per phase pair (φh, φw) it is a stride-1 transposed convolution of the upstream gradient gy [N, O, Ho, Wo]
 * with the sub-kernel w[:, :, φh::s, φw::s] (a phase with no taps is zero). The s·s results, each the size of
 * gy plus the longest sub-kernel less one, interleave into the padded input, which is cropped to [H, W] (or
 * extended with zeros where no window reaches).
 */
function stridedInputGradient(gy: Tensor, w: Tensor, xShape: readonly number[], s: [number, number], pads: [[number, number], [number, number]], g: number): Tensor {
  const [O, Cg, kh, kw] = w.shape as [number, number, number, number];
  const [N, , H, W] = xShape as [number, number, number, number];
  const [Ho, Wo] = [gy.shape[2]!, gy.shape[3]!];
  const T = [Math.ceil(kh / s[0]), Math.ceil(kw / s[1])] as [number, number];
  const [Q0, Q1] = [Ho + T[0] - 1, Wo + T[1] - 1];
  // the weight's taps by phase ([O, Cg, T0, s0, T1, s1], zero taps past the kernel) and the upstream
  // gradient padded once for every phase's full correlation
  const phases = w.pad([[0, 0], [0, 0], [0, T[0] * s[0] - kh], [0, T[1] * s[1] - kw]]).reshape([O, Cg, T[0], s[0], T[1], s[1]]);
  const gp = toAutocast(gy).pad([[0, 0], [0, 0], [T[0] - 1, T[0] - 1], [T[1] - 1, T[1] - 1]]);
  const part = (ph: number, pw: number): Tensor | null => {
    const [th, tw] = [Math.ceil((kh - ph) / s[0]), Math.ceil((kw - pw) / s[1])];
    if (th <= 0 || tw <= 0) return null;
    const sub = phases.narrow(3, ph, 1).narrow(5, pw, 1).reshape([O, Cg, T[0], T[1]]).narrow(2, 0, th).narrow(3, 0, tw);
    // out[j] = Σ_t gp[j + t]·sub[th − 1 − t] is the phase's correlation at q = j − (T − th)
    return transposedConv(gp, sub, null, [[0, 0], [0, 0]], [1, 1], g).narrow(2, T[0] - th, Q0).narrow(3, T[1] - tw, Q1);
  };
  const first = part(0, 0)!;
  const rows: Tensor[] = [];
  for (let ph = 0; ph < s[0]; ph++) {
    const row: Tensor[] = [];
    for (let pw = 0; pw < s[1]; pw++) row.push((ph || pw ? part(ph, pw) : first) ?? zeros(first.shape, { dtype: first.dtype }));
    rows.push(stack(row, 4));
  }
  const padded = stack(rows, 3).reshape([N, Cg * g, Q0 * s[0], Q1 * s[1]]);
  return padded.pad([[0, 0], [0, 0], [-pads[0][0], H + pads[0][0] - Q0 * s[0]], [-pads[1][0], W + pads[1][0] - Q1 * s[1]]]);
}

/**
 * The convolution of x [N, Cin, H, W] padded by `pads` (negative amounts crop) with weight [Cin, Cout/g, kh, kw]
 * transposed per group and flipped in space: what a transposed convolution computes on its (zero-dilated) input.
 */
function transposedConv(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, pads: [[number, number], [number, number]], d: [number, number], g: number): Tensor {
  const [Cin, Og, kh, kw] = weight.shape as [number, number, number, number];
  const w = weight.reshape([g, Cin / g, Og, kh, kw]).permute([0, 2, 1, 3, 4]).reshape([Og * g, Cin / g, kh, kw]).flip([2, 3]);
  return conv2d(x.pad([[0, 0], [0, 0], pads[0], pads[1]]), w, bias, { groups: g, dilation: d });
}

/**
 * Above this many bytes (default 8 MiB) the gradient of a strided convolution's windows (dilated, or of
 * strides over 9 phases in all) is computed for a part of the batch at a time (each part folded into its
 * input gradient before the next), so a backward pass never holds it whole. Smaller parts save memory and cost kernels; `Infinity` turns it off.
 * Other convolutions never form it (their input gradient is made of convolutions of the upstream gradient).
 */
export function setConvGradientChunkBytes(bytes: number): void {
  if (!(bytes > 0)) throw new Error(`setConvGradientChunkBytes: bytes must be positive (Infinity: no chunks), got ${bytes}`);
  CONV_COLUMN_BYTES = bytes;
}
let CONV_COLUMN_BYTES = 8 * 2 ** 20;

/** The current chunk size of `setConvGradientChunkBytes`. */
export function convGradientChunkBytes(): number {
  return CONV_COLUMN_BYTES;
}

/**
 * `core(x, weight, bias)` recorded as one step whose backward takes the weight and bias gradients in one
 * pass, as the composite would, and the input gradient from `inputGradient(x, weight, gy)` (x and weight
 * detached). Second-order gradients (createGraph) go through the composite whole.
 */
function withInputGradient(core: (x: Tensor, w: Tensor, b?: Tensor | null) => Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, inputGradient: (x: Tensor, w: Tensor, gy: Tensor) => Tensor): Tensor {
  const precision = autocastDtype();
  const y = withGradMode(false, () => core(x, weight, bias));
  const vjp = (gy: Tensor, saved: Tensor[], _out: Tensor, _arg: unknown, needs: boolean[]): (Tensor | null)[] => withAutocastDtype(precision, () => {
    if (isGradEnabled()) {
      // differentiable gradients (createGraph): the composite on the saved inputs themselves, so that the
      // gradients depend on them as the composite's own would (its upstream graph is walked, not freed)
      const owners = saved.map((t) => t.gradOwner ?? t);
      const g = propagate(core(saved[0]!, saved[1]!, saved[2]), gy, { retainGraph: true, createGraph: true, wanted: owners });
      return owners.map((o, i) => (needs[i] ? g.get(o) ?? null : null));
    }
    const leaves = saved.map((t, i) => {
      const l = t.detach();
      l.requiresGrad = needs[i]!;
      return l;
    });
    const [xl, wl, bl] = leaves as [Tensor, Tensor, Tensor | undefined];
    // weight and bias: one pass over the whole batch (the forward matmul it records is never computed)
    const params = [wl, bl].filter((t): t is Tensor => !!t && t.requiresGrad);
    const pg = params.length ? propagate(withGradMode(true, () => core(xl.detach(), wl, bl)), gy, { retainGraph: false, createGraph: false, wanted: params }) : new Map<Tensor, Tensor>();
    let gx: Tensor | null = null;
    if (needs[0]) {
      gx = inputGradient(xl.detach(), wl.detach(), gy);
      if (gx.dtype !== xl.dtype) gx = gx.cast(xl.dtype);
    }
    return [gx, needs[1] ? pg.get(wl) ?? null : null, ...(bl ? [needs[2] ? pg.get(bl) ?? null : null] : [])];
  });
  record({ def: { name: 'conv2d', vjp } as unknown as OpDef, inputs: bias ? [x, weight, bias] : [x, weight], out: y, arg: null });
  return y;
}

/** Options of conv1d. */
export interface Conv1dOptions {
  stride?: number;
  padding?: number | 'same' | 'valid';
  dilation?: number;
  groups?: number;
}

/** 1-D convolution: x [N, C, L], weight [O, C/groups, k], optional bias [O] (conv2d over a height of 1). */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv1dOptions = {}): Tensor {
  assertAlive('conv1d', [x, weight, bias]);
  if (x.rank !== 3) throw new Error(`conv1d: input must be [N, C, L], got ${fmt(x.shape)}`);
  if (weight.rank !== 3) throw new Error(`conv1d: weight must be [out, in/groups, k], got ${fmt(weight.shape)}`);
  const p = opts.padding ?? 0;
  for (const [name, v, min] of [['stride', opts.stride ?? 1, 1], ['dilation', opts.dilation ?? 1, 1], ['padding', typeof p === 'number' ? p : 0, 0]] as const) {
    if (!Number.isInteger(v) || v < min) throw new Error(`conv1d: ${name} must be a ${min ? 'positive' : 'non-negative'} integer, got ${v}`);
  }
  return scope(() => conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, {
    stride: [1, opts.stride ?? 1], dilation: [1, opts.dilation ?? 1], groups: opts.groups,
    padding: typeof p === 'number' ? [0, p] : p,
  }).squeeze(2));
}

/** Options of convTranspose2d. */
export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/**
 * Transposed convolution (the input gradient of conv2d): x [N, Cin, H, W], weight [Cin, Cout/groups, kh, kw]
 * (PyTorch's layout), output [N, Cout, (H−1)·s − 2p + d·(k−1) + outputPadding + 1, …].
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  input4d(op, x);
  assertAlive(op, [weight, bias]);
  if (weight.rank !== 4) throw new Error(`${op}: weight must be [in, out/groups, kh, kw], got ${fmt(weight.shape)}`);
  const g = opts.groups ?? 1;
  const [N, Cin, H, W] = x.shape as [number, number, number, number];
  const [Cw, Og, kh, kw] = weight.shape as [number, number, number, number];
  if (Cw !== Cin) throw new Error(`${op}: input has ${Cin} channels but weight ${fmt(weight.shape)} expects ${Cw}`);
  if (!Number.isInteger(g) || g < 1 || Cin % g) throw new Error(`${op}: groups ${g} must divide input channels ${Cin}`);
  const s = intPair(op, 'stride', opts.stride ?? 1, 1), p = intPair(op, 'padding', opts.padding ?? 0, 0);
  const op2 = intPair(op, 'outputPadding', opts.outputPadding ?? 0, 0), d = intPair(op, 'dilation', opts.dilation ?? 1, 1);
  for (const a of [0, 1]) {
    if (op2[a]! >= Math.max(s[a]!, d[a]!)) throw new Error(`${op}: outputPadding ${op2[a]} must be smaller than stride ${s[a]} or dilation ${d[a]}`);
  }
  return scope(() => {
    // insert stride−1 zeros between input elements: [N, C, H, 1, W, 1] padded to [.., s, .., s] then cropped
    let xd = toAutocast(x);
    if (s[0] > 1 || s[1] > 1) {
      xd = xd.reshape([N, Cin, H, 1, W, 1]).pad([[0, 0], [0, 0], [0, 0], [0, s[0] - 1], [0, 0], [0, s[1] - 1]]).reshape([N, Cin, H * s[0], W * s[1]]);
      xd = xd.slice(2, 0, (H - 1) * s[0] + 1).slice(3, 0, (W - 1) * s[1] + 1);
    }
    // negative padding crops (pad handles it)
    return transposedConv(xd, weight, bias, [
      [d[0] * (kh - 1) - p[0], d[0] * (kh - 1) - p[0] + op2[0]],
      [d[1] * (kw - 1) - p[1], d[1] * (kw - 1) - p[1] + op2[1]],
    ], d, g);
  });
}

/** Options of the pooling ops. */
export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
}

/** Kernel, stride and padding of a pooling op (padding at most half the kernel, as in PyTorch). */
function poolSizes(op: string, x: Tensor, kernel: Pair, opts: Pool2dOptions): [[number, number], [number, number], [number, number]] {
  input4d(op, x);
  const k = intPair(op, 'kernel size', kernel, 1), s = intPair(op, 'stride', opts.stride ?? kernel, 1), p = intPair(op, 'padding', opts.padding ?? 0, 0);
  for (const a of [0, 1]) {
    if (p[a]! > k[a]! / 2) throw new Error(`${op}: padding ${p[a]} must be at most half the kernel size ${k[a]}`);
  }
  return [k, s, p];
}

/** Average pooling (PyTorch's count_include_pad = true). */
export function avgPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  const [k, s, p] = poolSizes('avgPool2d', x, kernel, opts);
  return scope(() => windows('avgPool2d', x, k, s, [[p[0], p[0]], [p[1], p[1]]], [1, 1]).cols.mean([4, 5]));
}

/** Max pooling (padding counts as −∞). */
export function maxPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  const [k, s, p] = poolSizes('maxPool2d', x, kernel, opts);
  return scope(() => windows('maxPool2d', x, k, s, [[p[0], p[0]], [p[1], p[1]]], [1, 1], -Infinity).cols.max([4, 5]));
}

/** [N, C·r², H, W] → [N, C, H·r, W·r] (sub-pixel upsampling). */
export function pixelShuffle(x: Tensor, r: number): Tensor {
  input4d('pixelShuffle', x);
  if (!Number.isInteger(r) || r < 1) throw new Error(`pixelShuffle: upscale factor must be a positive integer, got ${r}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  if (x.rank !== 4 || C % (r * r)) throw new Error(`pixelShuffle: channels ${C} of ${fmt(x.shape)} must be divisible by ${r}² = ${r * r}`);
  return scope(() => x.reshape([N, C / (r * r), r, r, H, W]).permute([0, 1, 4, 2, 5, 3]).reshape([N, C / (r * r), H * r, W * r]));
}

/** [N, C, H·r, W·r] → [N, C·r², H, W] (patchify). */
export function pixelUnshuffle(x: Tensor, r: number): Tensor {
  input4d('pixelUnshuffle', x);
  if (!Number.isInteger(r) || r < 1) throw new Error(`pixelUnshuffle: downscale factor must be a positive integer, got ${r}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  if (x.rank !== 4 || H % r || W % r) throw new Error(`pixelUnshuffle: spatial size ${H}×${W} of ${fmt(x.shape)} must be divisible by ${r}`);
  return scope(() => x.reshape([N, C, H / r, r, W / r, r]).permute([0, 1, 3, 5, 2, 4]).reshape([N, C * r * r, H / r, W / r]));
}

/** Adaptive average pooling to `size` (PyTorch's bins: start ⌊i·n/o⌋, end ⌈(i+1)·n/o⌉). */
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  input4d('adaptiveAvgPool2d', x);
  const [oh, ow] = intPair('adaptiveAvgPool2d', 'output size', size, 1);
  const [, , H, W] = x.shape as [number, number, number, number];
  return scope(() => {
    const bins = (n: number, o: number) => Array.from({ length: o }, (_, i) => [Math.floor((i * n) / o), Math.ceil(((i + 1) * n) / o)] as [number, number]);
    if (H % oh === 0 && W % ow === 0) return x.reshape([x.shape[0]!, x.shape[1]!, oh, H / oh, ow, W / ow]).mean([3, 5]);
    const rows = bins(H, oh).map(([a, b]) => x.slice(2, a, b).mean(2, { keepDim: true }));
    const xr = rows.length === 1 ? rows[0]! : catAxis(rows, 2);
    const cols = bins(W, ow).map(([a, b]) => xr.slice(3, a, b).mean(3, { keepDim: true }));
    return cols.length === 1 ? cols[0]! : catAxis(cols, 3);
  });
}

function catAxis(ts: Tensor[], axis: number): Tensor {
  return stack(ts, axis).reshape(ts[0]!.shape.map((d, i) => (i === axis ? d * ts.length : d)));
}

/** Options of `interpolate`. */
export interface InterpolateOptions {
  size?: [number, number];
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'bilinear';
  alignCorners?: boolean;
}

/**
 * Resizes [N, C, H, W] by nearest neighbour or bilinear interpolation, with PyTorch's source coordinates:
 * the scale from output to input is 1/scaleFactor when a scale factor is given (PyTorch's default, without
 * recompute_scale_factor), else in/out. 'nearest' reads row ⌊dst·scale⌋ computed in float32 as PyTorch does
 * (out = in copies, out = 2·in reads ⌊dst/2⌋); 'bilinear' samples at (dst + ½)·scale − ½, or at
 * dst·(in − 1)/(out − 1) with alignCorners.
 */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  input4d('interpolate', x);
  const [, , H, W] = x.shape as [number, number, number, number];
  const sf = opts.scaleFactor === undefined ? null : pair(opts.scaleFactor as Pair);
  if (sf && !sf.every((v) => Number.isFinite(v) && v > 0)) throw new Error(`interpolate: scaleFactor must be positive, got ${JSON.stringify(opts.scaleFactor)}`);
  const [oh, ow] = opts.size ? intPair('interpolate', 'size', opts.size, 1) : sf ? [Math.floor(H * sf[0]), Math.floor(W * sf[1])] : (() => { throw new Error('interpolate: give size or scaleFactor'); })();
  if (oh < 1 || ow < 1) throw new Error(`interpolate: scaleFactor ${JSON.stringify(opts.scaleFactor)} gives an empty output ${oh}×${ow} from ${H}×${W}`);
  const mode = opts.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'bilinear') throw new Error(`interpolate: mode must be 'nearest' or 'bilinear', got ${JSON.stringify(mode)}`);
  // output-to-input scale per axis (a given size wins over a scale factor)
  const scale = (a: 0 | 1, n: number, o: number) => (sf && !opts.size ? 1 / sf[a]! : n / o);
  return scope(() => {
    if (mode === 'nearest') {
      const source = (a: 0 | 1, n: number, o: number) => {
        const s = Math.fround(scale(a, n, o));
        return Int32Array.from({ length: o }, (_, i) => (o === n ? i : o === 2 * n ? i >> 1 : Math.min(Math.floor(Math.fround(i * s)), n - 1)));
      };
      const [rows, cols] = [source(0, H, oh), source(1, W, ow)];
      // an integer upsampling (row i reads ⌊i / k⌋) is a broadcast: its gradient is a sum over k×k blocks, not a scatter
      const repeats = (src: Int32Array, n: number) => (src.length % n === 0 && src.every((v, i) => v === Math.floor(i / (src.length / n))) ? src.length / n : 0);
      const [kh, kw] = [repeats(rows, H), repeats(cols, W)];
      const [N, C] = x.shape as [number, number];
      if (kh && kw) return x.reshape([N, C, H, 1, W, 1]).expand([N, C, H, kh, W, kw]).reshape([N, C, oh, ow]);
      return x.indexSelect(2, tensor(rows)).indexSelect(3, tensor(cols));
    }
    // bilinear: separable, along H then W
    const axis = (t: Tensor, ax: 2 | 3, n: number, o: number): Tensor => {
      const lo: number[] = [], hi: number[] = [], fr: number[] = [];
      const s = scale(ax === 2 ? 0 : 1, n, o);
      for (let i = 0; i < o; i++) {
        let src = opts.alignCorners ? (o > 1 ? (i * (n - 1)) / (o - 1) : 0) : Math.max((i + 0.5) * s - 0.5, 0);
        src = Math.min(src, n - 1);
        const a = Math.floor(src);
        lo.push(a);
        hi.push(Math.min(a + 1, n - 1));
        fr.push(src - a);
      }
      const shape = ax === 2 ? [1, 1, o, 1] : [1, 1, 1, o];
      const f = tensor(fr, { shape });
      return t.indexSelect(ax, tensor(Int32Array.from(lo))).mul(f.neg().add(1)).add(t.indexSelect(ax, tensor(Int32Array.from(hi))).mul(f));
    };
    return axis(axis(x, 2, H, oh), 3, W, ow);
  });
}
