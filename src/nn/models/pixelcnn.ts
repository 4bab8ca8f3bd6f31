/**
 * Autoregressive image models after van den Oord et al. 2016 ("Pixel Recurrent Neural Networks" and
 * "Conditional Image Generation with PixelCNN Decoders"): `MaskedConv2d` (mask 'A' excludes the centre
 * pixel, 'B' includes it), and the gated PixelCNN, whose vertical stack (a (k//2+1)×k convolution over the
 * rows above, shifted down one row before it feeds the horizontal stack) and horizontal stack (a 1×(k//2+1)
 * convolution over the pixels to the left, shifted right one pixel in the first layer) leave no blind spot.
 * Each layer gates tanh(a)·σ(b), adds a learned per-class bias to the gates when class-conditional, and
 * keeps a residual on the horizontal stack. The output is one Bernoulli logit per pixel (binarized images,
 * `bits: 1`) or 256 logits of a softmax per pixel (8-bit grey, `bits: 8`). Sampling (784 sequential steps)
 * is in `./pixelcnn-sample.ts`; training in `src/train/pixelcnn.ts`.
 */
import { fmt } from '../../tensor/shape.js';
import { scope } from '../../tensor/memory.js';
import { tensor, zeros, type Tensor } from '../../tensor/index.js';
import { conv2d } from '../conv.js';
import { binaryCrossEntropyWithLogits, pad } from '../functional.js';
import { Embedding } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { Conv2d } from '../norm-attention.js';
import { readCheckpointMeta, withoutPrefix } from '../checkpoint.js';
import { loadWithMetadata } from '../safetensors.js';

/** Which masked convolution: 'A' (first layer) sees only the pixels before the centre in raster order, 'B' the centre too. */
export type MaskType = 'A' | 'B';

/** The 0/1 mask [kh, kw] of a masked convolution: rows above the centre, and the centre row left of (A) or up to (B) the centre. */
export function convMask(type: MaskType, kh: number, kw: number): Float32Array {
  if (type !== 'A' && type !== 'B') throw new Error(`convMask: mask type must be 'A' or 'B', got ${JSON.stringify(type)}`);
  if (!Number.isInteger(kh) || !Number.isInteger(kw) || kh < 1 || kw < 1 || kh % 2 === 0 || kw % 2 === 0) throw new Error(`convMask: kernel size must be odd positive integers, got ${kh}×${kw}`);
  const m = new Float32Array(kh * kw);
  const [ci, cj] = [(kh - 1) / 2, (kw - 1) / 2];
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) m[i * kw + j] = i < ci || (i === ci && (type === 'A' ? j < cj : j <= cj)) ? 1 : 0;
  return m;
}

/**
 * A convolution whose kernel is masked so that an output pixel depends only on the input pixels before it
 * in raster order ('A'), or before it and itself ('B'): the plain PixelCNN's layer (stride 1, 'same'
 * padding, odd kernel). The weight is multiplied by the mask at every call, so masked weights get zero
 * gradient. Single-plane masks: all input channels share one causal order (grey images).
 */
export class MaskedConv2d extends Conv2d {
  declare mask: Tensor;
  constructor(readonly maskType: MaskType, inChannels: number, outChannels: number, kernelSize: number, opts: { bias?: boolean } = {}) {
    super(inChannels, outChannels, kernelSize, { padding: (kernelSize - 1) / 2, bias: opts.bias });
    if (maskType !== 'A' && maskType !== 'B') throw new Error(`MaskedConv2d: mask type must be 'A' or 'B', got ${JSON.stringify(maskType)}`);
    if (!Number.isInteger(kernelSize) || kernelSize % 2 === 0) throw new Error(`MaskedConv2d: kernel size must be an odd integer, got ${kernelSize}`);
    this.registerBuffer('mask', tensor(convMask(maskType, kernelSize, kernelSize), { shape: [1, 1, kernelSize, kernelSize] }));
  }
  forward(x: Tensor): Tensor {
    return scope(() => conv2d(x, this.weight.mul(this.mask), this.bias, this.opts));
  }
}

/** Sizes of a gated PixelCNN. */
export interface PixelCNNConfig {
  /** Image side (square grey images). */
  size: number;
  /** Channels of the vertical and horizontal stacks. */
  width: number;
  /** Gated layers, the first one (mask A) included. */
  layers: number;
  /** Kernel size k of the layers after the first (odd): vertical (k//2+1)×k, horizontal 1×(k//2+1). */
  kernel: number;
  /** Kernel size of the first layer (odd). */
  firstKernel: number;
  /** Hidden channels of the 1×1 output head. */
  head: number;
  /** 1: binarized pixels (a Bernoulli logit each); 8: grey levels 0…255 (a 256-way softmax each). */
  bits: 1 | 8;
  /** Classes of the per-class gate bias (0: unconditional). */
  numClasses: number;
}

/** The default binarized-MNIST PixelCNN of `kiln train-pixelcnn`. */
export const PIXELCNN_DEFAULTS: PixelCNNConfig = { size: 28, width: 20, layers: 8, kernel: 3, firstKernel: 7, head: 64, bits: 1, numClasses: 0 };

/** tanh(a)·σ(b) of the two halves of the channels. */
export function gate(x: Tensor): Tensor {
  const C = x.shape[1]!;
  if (x.rank !== 4 || C % 2) throw new Error(`gate: expected [N, 2C, H, W] with an even channel count, got ${fmt(x.shape)}`);
  return scope(() => {
    const [a, b] = x.chunk(2, 1) as [Tensor, Tensor];
    return a.tanh().mul(b.sigmoid());
  });
}

/**
 * One gated layer: vertical stack v → conv (k//2+1)×k over the rows above and the current one → gates;
 * horizontal stack h → conv 1×(k//2+1) over the pixels to the left (and the current one, unless mask A,
 * where the input is shifted right) + 1×1 of the vertical pre-activations shifted down one row (so the
 * horizontal stack sees only rows above) → gates → 1×1, plus h (residual, not in the first layer).
 */
export class GatedPixelBlock extends Module {
  v_conv: Conv2d;
  h_conv: Conv2d;
  v_to_h: Conv2d;
  h_out: Conv2d;
  v_embed: Embedding | null = null;
  h_embed: Embedding | null = null;
  readonly kh: number;
  readonly kw: number;
  constructor(readonly inChannels: number, readonly width: number, readonly kernel: number, readonly maskType: MaskType, numClasses = 0) {
    super();
    if (!Number.isInteger(kernel) || kernel < 1 || kernel % 2 === 0) throw new Error(`GatedPixelBlock: kernel must be an odd positive integer, got ${kernel}`);
    this.kh = this.kw = (kernel - 1) / 2 + 1;
    this.v_conv = new Conv2d(inChannels, 2 * width, [this.kh, kernel]);
    this.h_conv = new Conv2d(inChannels, 2 * width, [1, this.kw]);
    this.v_to_h = new Conv2d(2 * width, 2 * width, 1);
    this.h_out = new Conv2d(width, width, 1);
    if (numClasses > 0) {
      this.v_embed = new Embedding(numClasses, 2 * width);
      this.h_embed = new Embedding(numClasses, 2 * width);
      this.v_embed.weight.assign(zeros([numClasses, 2 * width]));
      this.h_embed.weight.assign(zeros([numClasses, 2 * width]));
    }
  }

  /** The per-class bias [N, 2C, 1, 1] of a stack's gates (null when unconditional). */
  classBias(which: 'v' | 'h', labels: Tensor | null): Tensor | null {
    const e = which === 'v' ? this.v_embed : this.h_embed;
    return e && labels ? e.forward(labels).reshape([labels.shape[0]!, 2 * this.width, 1, 1]) : null;
  }

  /**
   * Vertical pre-activations [N, 2C, H', W] of v; `topPad` zero rows are added above (kh − 1 for a whole
   * image, so row r sees rows r − kh + 1 … r; 0 for a window of kh rows, giving one row).
   */
  verticalPre(v: Tensor, labels: Tensor | null, topPad: number): Tensor {
    return scope(() => {
      const half = (this.kernel - 1) / 2;
      const y = this.v_conv.forward(pad(v, [half, half, topPad, 0]));
      const c = this.classBias('v', labels);
      return c ? y.add(c) : y;
    });
  }

  /** The horizontal stack's output for input h and the link (1×1 of the vertical pre-activations of the row above), [N, C, H, W]. */
  horizontal(h: Tensor, link: Tensor, labels: Tensor | null): Tensor {
    return scope(() => {
      const kw = this.kw;
      // mask A: shift right by one (output column c sees columns c − kw … c − 1); B: columns c − kw + 1 … c
      const hp = this.maskType === 'A' ? pad(h, [kw, -1, 0, 0]) : pad(h, [kw - 1, 0, 0, 0]);
      let pre = this.h_conv.forward(hp).add(link);
      const c = this.classBias('h', labels);
      if (c) pre = pre.add(c);
      const out = this.h_out.forward(gate(pre));
      return this.maskType === 'A' ? out : out.add(h);
    });
  }

  /** One layer on whole images: (v, h) → (v', h'). */
  forward(v: Tensor, h: Tensor, labels: Tensor | null): [Tensor, Tensor] {
    const r = scope(() => {
      const vPre = this.verticalPre(v, labels, this.kh - 1);
      const link = this.v_to_h.forward(pad(vPre, [0, 0, 1, -1])); // shifted down one row
      return [gate(vPre), this.horizontal(h, link, labels)];
    });
    return [r[0]!, r[1]!];
  }
}

/**
 * The gated PixelCNN: `layers` gated layers (the first with mask A on the image), then ReLU → 1×1 → ReLU →
 * 1×1 giving logits: [N, 1, H, W] Bernoulli logits (`bits: 1`), or [N, 256, H, W] (`bits: 8`). Images are
 * [N, 1, size, size] of 0/1 (bits 1) or grey levels 0…255 (bits 8), as floats.
 */
export class PixelCNN extends Module {
  readonly config: PixelCNNConfig;
  blocks = new ModuleList<GatedPixelBlock>();
  out1: Conv2d;
  out2: Conv2d;
  constructor(config: Partial<PixelCNNConfig> = {}) {
    super();
    const c = (this.config = { ...PIXELCNN_DEFAULTS, ...config });
    for (const [name, v, min] of [['size', c.size, 1], ['width', c.width, 1], ['layers', c.layers, 1], ['head', c.head, 1], ['numClasses', c.numClasses, 0]] as const) {
      if (!Number.isInteger(v) || v < min) throw new Error(`PixelCNN: ${name} must be an integer ≥ ${min}, got ${v}`);
    }
    for (const [name, v] of [['kernel', c.kernel], ['firstKernel', c.firstKernel]] as const) {
      if (!Number.isInteger(v) || v < 3 || v % 2 === 0) throw new Error(`PixelCNN: ${name} must be an odd integer ≥ 3, got ${v}`);
    }
    if (c.bits !== 1 && c.bits !== 8) throw new Error(`PixelCNN: bits must be 1 (binarized) or 8 (grey levels), got ${c.bits}`);
    for (let l = 0; l < c.layers; l++) {
      this.blocks.push(new GatedPixelBlock(l === 0 ? 1 : c.width, c.width, l === 0 ? c.firstKernel : c.kernel, l === 0 ? 'A' : 'B', c.numClasses));
    }
    this.out1 = new Conv2d(c.width, c.head, 1);
    this.out2 = new Conv2d(c.head, c.bits === 1 ? 1 : 256, 1);
  }

  /** Logits per pixel value class: 1 (a Bernoulli logit) or 256. */
  get outChannels(): number {
    return this.config.bits === 1 ? 1 : 256;
  }

  /** Checks images [N, 1, size, size] and labels (i32 [N] in [0, numClasses), required iff conditional). */
  check(op: string, x: Tensor, labels?: Tensor | null): void {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== 1 || x.shape[2] !== c.size || x.shape[3] !== c.size) throw new Error(`${op}: expected images [N, 1, ${c.size}, ${c.size}], got ${fmt(x.shape)}`);
    if (c.numClasses > 0 && !labels) throw new Error(`${op}: this PixelCNN is class-conditional (${c.numClasses} classes): pass labels [N]`);
    if (c.numClasses === 0 && labels) throw new Error(`${op}: this PixelCNN is unconditional; it takes no labels`);
    if (labels && (labels.rank !== 1 || labels.shape[0] !== x.shape[0] || labels.dtype !== 'i32')) throw new Error(`${op}: labels must be i32 [${x.shape[0]}], got ${labels.dtype} ${fmt(labels.shape)}`);
  }

  /** Pixel values as the network sees them: 0/1 → −1/1, or 0…255 → [−1, 1]. */
  normalize(x: Tensor): Tensor {
    return this.config.bits === 1 ? x.mul(2).sub(1) : x.div(127.5).sub(1);
  }

  /** The 1×1 head: horizontal features [N, C, H, W] → logits [N, outChannels, H, W]. */
  head(h: Tensor): Tensor {
    return scope(() => this.out2.forward(this.out1.forward(h.relu()).relu()));
  }

  /** Logits of every pixel given the pixels before it (teacher forcing). */
  forward(x: Tensor, labels: Tensor | null = null): Tensor {
    this.check('PixelCNN.forward', x, labels);
    return scope(() => {
      let v = this.normalize(x), h = v;
      for (const b of this.blocks) [v, h] = b.forward(v, h, labels);
      return this.head(h);
    });
  }

  /**
   * The exact negative log-likelihood of each image in nats, [N], from one teacher-forced pass: Σ over
   * pixels of BCE-with-logits (bits 1), or of −log softmax at the pixel's grey level (bits 8).
   * `target` (bits 1): scores each pixel against the probability that it is 1 instead of against x
   * itself, given x drawn pixel by pixel from those probabilities — the NLL's expectation over the draw of
   * the pixel it scores (see `PixelCNNTrainConfig.softTargets`).
   */
  nll(x: Tensor, labels: Tensor | null = null, target: Tensor | null = null): Tensor {
    if (target && this.config.bits !== 1) throw new Error('PixelCNN.nll: probability targets apply to binarized images (bits 1) only');
    if (target && (target.rank !== 4 || target.shape.some((d, i) => d !== x.shape[i]))) throw new Error(`PixelCNN.nll: target must have the shape of the images ${fmt(x.shape)}, got ${fmt(target.shape)}`);
    return scope(() => pixelNll(this.forward(x, labels), x, this.config.bits, target));
  }

  /** The training loss: mean over the batch of the NLL in nats per image (against `target`: see `nll`). */
  loss(x: Tensor, labels: Tensor | null = null, target: Tensor | null = null): Tensor {
    return scope(() => this.nll(x, labels, target).mean());
  }
}

/**
 * The NLL in nats per image [N] of images x [N, 1, H, W] under per-pixel logits: bits 1: logits [N, 1, H, W]
 * and x in {0, 1}, Σ log(1 + e^−l)·x + log(1 + e^l)·(1 − x) (x replaced by `target`, probabilities in
 * [0, 1], when given); bits 8: logits [N, 256, H, W] and x grey levels 0…255, Σ −log softmax(l)[x].
 */
export function pixelNll(logits: Tensor, x: Tensor, bits: 1 | 8, target: Tensor | null = null): Tensor {
  const [N, , H, W] = x.shape as [number, number, number, number];
  const K = bits === 1 ? 1 : 256;
  if (x.rank !== 4 || x.shape[1] !== 1) throw new Error(`pixelNll: expected images [N, 1, H, W], got ${fmt(x.shape)}`);
  if (logits.rank !== 4 || logits.shape[0] !== N || logits.shape[1] !== K || logits.shape[2] !== H || logits.shape[3] !== W) throw new Error(`pixelNll: expected logits [${N}, ${K}, ${H}, ${W}] for ${bits}-bit images ${fmt(x.shape)}, got ${fmt(logits.shape)}`);
  return scope(() => {
    if (bits === 1) return binaryCrossEntropyWithLogits(logits, target ?? x, { reduction: 'none' }).reshape([N, -1]).sum(1);
    const lp = logits.logSoftmax(1).gather(1, x.cast('i32'));
    return lp.reshape([N, -1]).sum(1).neg();
  });
}

/** Builds a PixelCNN from its config and loads weights stored under `prefix` (eval mode). */
export function pixelcnnFromTensors(config: Partial<PixelCNNConfig>, tensors: Record<string, Tensor>, prefix = 'model.'): PixelCNN {
  const m = new PixelCNN(config);
  m.loadStateDict(withoutPrefix(tensors, prefix));
  return m.eval();
}

/** The `format` tag in the metadata of PixelCNN checkpoints. */
export const PIXELCNN_CHECKPOINT_FORMAT = 'kiln-pixelcnn-checkpoint/1';

/**
 * Loads the PixelCNN of a checkpoint written by `PixelCNNTrainer.save` (a path in Node, or its bytes), in eval
 * mode, with its metadata: with the average of the weights (`ema.`) when the checkpoint has one, unless `ema`
 * is false; `ema` in the result says which weights were loaded.
 */
export async function loadPixelCNN(src: string | Uint8Array | ArrayBuffer | Blob, opts: { ema?: boolean } = {}): Promise<{ model: PixelCNN; meta: Record<string, unknown>; ema: boolean }> {
  const name = typeof src === 'string' ? src : 'checkpoint';
  const { tensors, metadata } = await loadWithMetadata(src);
  try {
    const meta = readCheckpointMeta(name, metadata, PIXELCNN_CHECKPOINT_FORMAT);
    const avg = withoutPrefix(tensors, 'ema.');
    const ema = (opts.ema ?? true) && Object.keys(avg).length > 0;
    // the average covers the parameters; buffers are those of `model.`
    const model = new PixelCNN(meta.pixelcnn as PixelCNNConfig);
    model.loadStateDict(ema ? { ...withoutPrefix(tensors, 'model.'), ...avg } : withoutPrefix(tensors, 'model.'));
    return { model: model.eval(), meta, ema };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
