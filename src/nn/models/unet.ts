/**
 * A small time- and class-conditioned UNet for diffusion (DDPM/ADM style): residual blocks of
 * GroupNorm–SiLU–conv with the conditioning embedding added per block (or, with `scaleShift`, scaling and
 * shifting the block's second normalization, as ADM's scale-shift norm does), self-attention at the chosen
 * resolutions, stride-2 convolutions down and nearest-neighbour ×2 + conv up, one skip connection per
 * block. An optional pixel-unshuffle stem runs the network at half resolution (4× cheaper convs).
 * Class `numClasses` is the null class that classifier-free guidance uses. With `text`, the model is
 * conditioned on token ids instead (labels [N, length] i32): a text encoder, Stable Diffusion's transformer
 * blocks (self-, cross-attention, feed-forward) after the residual blocks of `text.levels`, and optionally the
 * pooled text added to the time embedding; the empty caption's ids are the null condition.
 */
import { blockForward, Layer, Module, ModuleList } from '../module.js';
import { Embedding, Linear } from '../layers.js';
import { Conv2d, GroupNorm, MultiheadAttention } from '../norm-attention.js';
import { interpolate, pixelShuffle, pixelUnshuffle } from '../conv.js';
import { cat, type Tensor } from '../../tensor/index.js';
import { checkDenoiserInputs, conditionVector, guidanceEmbedding, zeroInit } from './conditioning.js';
import { encodeText, SpatialTransformer, TextEncoder, textPool, WordPool, type TextConditioning } from './text.js';

/** Text conditioning of a UNet: the encoder, and where its transformer blocks go. */
export interface UNetTextConfig extends TextConditioning {
  /** Levels (indices into `widths`) with a text transformer block after each residual block. */
  levels: number[];
  /** A text transformer block between the two middle residual blocks too (default false). */
  mid?: boolean;
}

/** Sizes of a UNet. */
export interface UNetConfig {
  /** Image channels in and out. */
  channels: number;
  /** Image side (square images). */
  size: number;
  /** Feature channels per resolution level (each level after the first halves the resolution). */
  widths: number[];
  /** Residual blocks per level on the way down (the way up has one more). */
  depth: number;
  /** Levels (indices into `widths`) with self-attention after each residual block. */
  attention: number[];
  /** Self-attention between the two middle residual blocks (lowest resolution). */
  midAttention: boolean;
  heads: number;
  /** Number of classes (0: unconditional); the class id `numClasses` means "no class". */
  numClasses: number;
  /** Pixel-unshuffle factor of the stem (1: none). */
  patch: number;
  groups: number;
  /** The model also takes the guidance scale w [N] (a guidance-distilled student): its embedding joins the time embedding. */
  guidanceInput: boolean;
  /**
   * Each residual block's conditioning scales and shifts its second normalization, h·(1 + s) + b (ADM's
   * `use_scale_shift_norm`), instead of being added before it (default false).
   */
  scaleShift?: boolean;
  /**
   * Text conditioning (absent: none; then the config, the parameters and every output are those of a UNet
   * without it). Requires numClasses 0: labels are token ids.
   */
  text?: UNetTextConfig;
}

/** The default small MNIST UNet. */
export const UNET_DEFAULTS: UNetConfig = { channels: 1, size: 28, widths: [32, 64], depth: 1, attention: [1], midAttention: true, heads: 4, numClasses: 10, patch: 2, groups: 8, guidanceInput: false };

/**
 * GroupNorm–SiLU–conv3 twice, the conditioning projected to a per-channel shift added between them — or, with
 * `scaleShift`, to a scale and a shift of the second GroupNorm's output; 1×1 skip when widths differ.
 */
export class ResBlock extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  emb: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  skip: Conv2d | null;
  readonly scaleShift: boolean;
  constructor(inCh: number, outCh: number, embDim: number, groups: number, scaleShift = false) {
    super();
    this.scaleShift = scaleShift;
    this.norm1 = new GroupNorm(Math.min(groups, inCh), inCh);
    this.conv1 = new Conv2d(inCh, outCh, 3, { padding: 1 });
    this.emb = new Linear(embDim, scaleShift ? 2 * outCh : outCh);
    this.norm2 = new GroupNorm(Math.min(groups, outCh), outCh);
    this.conv2 = new Conv2d(outCh, outCh, 3, { padding: 1 });
    zeroInit(this.conv2);
    this.skip = inCh === outCh ? null : new Conv2d(inCh, outCh, 1);
  }
  /** x [N, C, H, W], emb [N, E] (already passed through SiLU). */
  forward(x: Tensor, emb: Tensor): Tensor {
    let h = this.conv1.forward(this.norm1.forward(x).silu());
    const e = this.emb.forward(emb).reshape([emb.shape[0]!, -1, 1, 1]);
    if (this.scaleShift) {
      const [scale, shift] = e.chunk(2, 1) as [Tensor, Tensor];
      h = this.norm2.forward(h).mul(scale.add(1)).add(shift);
    } else h = this.norm2.forward(h.add(e));
    h = this.conv2.forward(h.silu());
    return (this.skip ? this.skip.forward(x) : x).add(h);
  }
}

/** Self-attention over the positions of a feature map, with a residual connection. */
export class AttentionBlock extends Layer {
  norm: GroupNorm;
  attn: MultiheadAttention;
  constructor(ch: number, heads: number, groups: number) {
    super();
    this.norm = new GroupNorm(Math.min(groups, ch), ch);
    this.attn = new MultiheadAttention(ch, heads);
    zeroInit(this.attn.out_proj);
  }
  forward(x: Tensor): Tensor {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const tokens = this.norm.forward(x).reshape([N, C, H * W]).transpose(1, 2);
    return x.add(this.attn.forward(tokens).transpose(1, 2).reshape([N, C, H, W]));
  }
}

/** Residual blocks (and attention, and text transformer blocks) of one level of the UNet. */
class Level extends Module {
  blocks = new ModuleList<ResBlock>();
  attns = new ModuleList<AttentionBlock>();
  xattns = new ModuleList<SpatialTransformer>();
}

/** The UNet: `forward(x, t, labels?)` predicts a tensor shaped like x (ε, v, x₀ or velocity). */
export class UNet extends Module {
  readonly config: UNetConfig;
  time_embed: ModuleList<Linear>;
  class_embed: Embedding | null;
  /** The guidance scale's embedding (`guidanceInput`), else null. */
  guidance_embed: ModuleList<Linear> | null;
  conv_in: Conv2d;
  down = new ModuleList<Level>();
  downsample = new ModuleList<Conv2d>();
  mid: Level;
  up = new ModuleList<Level>();
  upsample = new ModuleList<Conv2d>();
  norm_out: GroupNorm;
  conv_out: Conv2d;
  /** The text encoder (`text`), else null. */
  text_encoder: TextEncoder | null = null;
  /** The pooled text (`text.pooled`): a projection of the mean encoder token, or word vectors (`'words'`); else null. */
  text_pool: Linear | WordPool | null = null;
  /**
   * Gradient checkpointing per residual and attention block while training (diffusers'
   * enable_gradient_checkpointing): less memory for activations, one more forward pass of each block.
   */
  gradientCheckpointing = false;
  constructor(config: Partial<UNetConfig> = {}) {
    super();
    const c = (this.config = { ...UNET_DEFAULTS, ...config });
    const side = c.size / c.patch;
    if (!Number.isInteger(side) || side % 2 ** (c.widths.length - 1)) {
      throw new Error(`UNet: image size ${c.size} with patch ${c.patch} must be divisible by 2^${c.widths.length - 1} for ${c.widths.length} levels`);
    }
    if (c.widths.some((w) => w % Math.min(c.groups, w) || w % c.heads)) throw new Error(`UNet: widths ${JSON.stringify(c.widths)} must be divisible by groups ${c.groups} and heads ${c.heads}`);
    if (c.scaleShift !== undefined && typeof c.scaleShift !== 'boolean') throw new Error(`UNet: scaleShift must be true or false, got ${JSON.stringify(c.scaleShift)}`);
    const tx = c.text;
    if (tx) {
      if (c.numClasses !== 0) throw new Error(`UNet: a text-conditioned model takes token ids, not classes; set numClasses to 0 (got ${c.numClasses})`);
      if (!Array.isArray(tx.levels) || tx.levels.some((l) => !Number.isInteger(l) || l < 0 || l >= c.widths.length)) throw new Error(`UNet: text.levels must be indices into widths (0…${c.widths.length - 1}), got ${JSON.stringify(tx.levels)}`);
    }
    const w0 = c.widths[0]!;
    const emb = 4 * w0;
    const xattn = (ch: number) => new SpatialTransformer(ch, tx!.encoder.dim, c.heads, c.groups);
    this.time_embed = new ModuleList([new Linear(w0, emb), new Linear(emb, emb)]);
    this.class_embed = c.numClasses > 0 ? new Embedding(c.numClasses + 1, emb) : null;
    this.guidance_embed = c.guidanceInput ? guidanceEmbedding(w0, emb) : null;
    const inCh = c.channels * c.patch * c.patch;
    this.conv_in = new Conv2d(inCh, w0, 3, { padding: 1 });
    const skips: number[] = [w0];
    let ch = w0;
    c.widths.forEach((w, l) => {
      const level = new Level();
      for (let i = 0; i < c.depth; i++) {
        level.blocks.push(new ResBlock(ch, w, emb, c.groups, c.scaleShift));
        ch = w;
        if (c.attention.includes(l)) level.attns.push(new AttentionBlock(ch, c.heads, c.groups));
        if (tx?.levels.includes(l)) level.xattns.push(xattn(ch));
        skips.push(ch);
      }
      this.down.push(level);
      if (l < c.widths.length - 1) {
        this.downsample.push(new Conv2d(ch, ch, 3, { stride: 2, padding: 1 }));
        skips.push(ch);
      }
    });
    this.mid = new Level();
    this.mid.blocks.push(new ResBlock(ch, ch, emb, c.groups, c.scaleShift)).push(new ResBlock(ch, ch, emb, c.groups, c.scaleShift));
    if (c.midAttention) this.mid.attns.push(new AttentionBlock(ch, c.heads, c.groups));
    if (tx?.mid) this.mid.xattns.push(xattn(ch));
    for (let l = c.widths.length - 1; l >= 0; l--) {
      const w = c.widths[l]!;
      const level = new Level();
      for (let i = 0; i <= c.depth; i++) {
        level.blocks.push(new ResBlock(ch + skips.pop()!, w, emb, c.groups, c.scaleShift));
        ch = w;
        if (c.attention.includes(l)) level.attns.push(new AttentionBlock(ch, c.heads, c.groups));
        if (tx?.levels.includes(l)) level.xattns.push(xattn(ch));
      }
      this.up.push(level);
      if (l > 0) this.upsample.push(new Conv2d(ch, ch, 3, { padding: 1 }));
    }
    this.norm_out = new GroupNorm(Math.min(c.groups, ch), ch);
    this.conv_out = new Conv2d(ch, inCh, 3, { padding: 1 });
    zeroInit(this.conv_out);
    if (tx) {
      this.text_encoder = new TextEncoder(tx.encoder);
      this.text_pool = textPool('UNet', tx, emb);
    }
  }

  /** The conditioning vector (after SiLU) of timesteps t [N], class ids [N] (i32; `numClasses` = none) and guidance scales w [N] (`guidanceInput`). */
  embed(t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor {
    return this.condition(t, labels, w).emb;
  }

  /** The conditioning vector, and for a text model the text tokens and their padding mask (labels = token ids). */
  private condition(t: Tensor, labels?: Tensor | null, w?: Tensor | null): { emb: Tensor; text: { context: Tensor; mask: Tensor } | null } {
    const text = this.text_encoder ? encodeText('UNet', this.text_encoder, this.text_pool, labels!) : null;
    const emb = conditionVector(this.time_embed, this.class_embed, t, text ? null : labels, this.config.widths[0]!, this.guidance_embed && w ? { mlp: this.guidance_embed, w } : null, text?.pooled);
    return { emb, text };
  }

  /**
   * x [N, channels, size, size], t [N] (the process's time, e.g. 0…999 or 0…1), labels [N] i32, and for a
   * model with `guidanceInput` the guidance scales w [N]; a text-conditioned model takes token ids [N, length]
   * i32 as labels.
   */
  forward(x: Tensor, t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor {
    const c = this.config;
    checkDenoiserInputs('UNet', c, x, t, labels, w);
    const { emb, text } = this.condition(t, labels, w);
    const ck = this.gradientCheckpointing && this.training;
    const xattn = (level: Level, i: number, h: Tensor) => (text ? blockForward(ck, level.xattns.at(i), h, text.context, text.mask) : h);
    let h = this.conv_in.forward(c.patch > 1 ? pixelUnshuffle(x, c.patch) : x);
    const skips = [h];
    c.widths.forEach((_, l) => {
      const level = this.down.at(l);
      for (let i = 0; i < c.depth; i++) {
        h = blockForward(ck, level.blocks.at(i), h, emb);
        if (c.attention.includes(l)) h = blockForward(ck, level.attns.at(i), h);
        if (c.text?.levels.includes(l)) h = xattn(level, i, h);
        skips.push(h);
      }
      if (l < c.widths.length - 1) {
        h = this.downsample.at(l).forward(h);
        skips.push(h);
      }
    });
    h = blockForward(ck, this.mid.blocks.at(0), h, emb);
    if (c.midAttention) h = blockForward(ck, this.mid.attns.at(0), h);
    if (c.text?.mid) h = xattn(this.mid, 0, h);
    h = blockForward(ck, this.mid.blocks.at(1), h, emb);
    c.widths.forEach((_, j) => {
      const l = c.widths.length - 1 - j;
      const level = this.up.at(j);
      for (let i = 0; i <= c.depth; i++) {
        h = blockForward(ck, level.blocks.at(i), catChannels(h, skips.pop()!), emb);
        if (c.attention.includes(l)) h = blockForward(ck, level.attns.at(i), h);
        if (c.text?.levels.includes(l)) h = xattn(level, i, h);
      }
      if (l > 0) h = this.upsample.at(j).forward(interpolate(h, { scaleFactor: 2, mode: 'nearest' }));
    });
    h = this.conv_out.forward(this.norm_out.forward(h).silu());
    return c.patch > 1 ? pixelShuffle(h, c.patch) : h;
  }
}

function catChannels(a: Tensor, b: Tensor): Tensor {
  return cat([a, b], 1);
}
