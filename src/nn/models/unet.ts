/**
 * A small time- and class-conditioned UNet for diffusion (DDPM/ADM style): residual blocks of
 * GroupNorm–SiLU–conv with the conditioning embedding added per block, self-attention at the chosen
 * resolutions, stride-2 convolutions down and nearest-neighbour ×2 + conv up, one skip connection per
 * block. An optional pixel-unshuffle stem runs the network at half resolution (4× cheaper convs).
 * Class `numClasses` is the null class that classifier-free guidance uses.
 */
import { blockForward, Layer, Module, ModuleList } from '../module.js';
import { Embedding, Linear } from '../layers.js';
import { Conv2d, GroupNorm, MultiheadAttention } from '../norm-attention.js';
import { interpolate, pixelShuffle, pixelUnshuffle } from '../conv.js';
import { cat, type Tensor } from '../../tensor/index.js';
import { checkDenoiserInputs, conditionVector, guidanceEmbedding, zeroInit } from './conditioning.js';

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
}

/** The default small MNIST UNet. */
export const UNET_DEFAULTS: UNetConfig = { channels: 1, size: 28, widths: [32, 64], depth: 1, attention: [1], midAttention: true, heads: 4, numClasses: 10, patch: 2, groups: 8, guidanceInput: false };

/** GroupNorm–SiLU–conv3, plus the conditioning projected to a per-channel shift, twice; 1×1 skip when widths differ. */
export class ResBlock extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  emb: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  skip: Conv2d | null;
  constructor(inCh: number, outCh: number, embDim: number, groups: number) {
    super();
    this.norm1 = new GroupNorm(Math.min(groups, inCh), inCh);
    this.conv1 = new Conv2d(inCh, outCh, 3, { padding: 1 });
    this.emb = new Linear(embDim, outCh);
    this.norm2 = new GroupNorm(Math.min(groups, outCh), outCh);
    this.conv2 = new Conv2d(outCh, outCh, 3, { padding: 1 });
    zeroInit(this.conv2);
    this.skip = inCh === outCh ? null : new Conv2d(inCh, outCh, 1);
  }
  /** x [N, C, H, W], emb [N, E] (already passed through SiLU). */
  forward(x: Tensor, emb: Tensor): Tensor {
    let h = this.conv1.forward(this.norm1.forward(x).silu());
    h = h.add(this.emb.forward(emb).reshape([emb.shape[0]!, -1, 1, 1]));
    h = this.conv2.forward(this.norm2.forward(h).silu());
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

/** Residual blocks (and attention) of one level of the UNet. */
class Level extends Module {
  blocks = new ModuleList<ResBlock>();
  attns = new ModuleList<AttentionBlock>();
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
    const w0 = c.widths[0]!;
    const emb = 4 * w0;
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
        level.blocks.push(new ResBlock(ch, w, emb, c.groups));
        ch = w;
        if (c.attention.includes(l)) level.attns.push(new AttentionBlock(ch, c.heads, c.groups));
        skips.push(ch);
      }
      this.down.push(level);
      if (l < c.widths.length - 1) {
        this.downsample.push(new Conv2d(ch, ch, 3, { stride: 2, padding: 1 }));
        skips.push(ch);
      }
    });
    this.mid = new Level();
    this.mid.blocks.push(new ResBlock(ch, ch, emb, c.groups)).push(new ResBlock(ch, ch, emb, c.groups));
    if (c.midAttention) this.mid.attns.push(new AttentionBlock(ch, c.heads, c.groups));
    for (let l = c.widths.length - 1; l >= 0; l--) {
      const w = c.widths[l]!;
      const level = new Level();
      for (let i = 0; i <= c.depth; i++) {
        level.blocks.push(new ResBlock(ch + skips.pop()!, w, emb, c.groups));
        ch = w;
        if (c.attention.includes(l)) level.attns.push(new AttentionBlock(ch, c.heads, c.groups));
      }
      this.up.push(level);
      if (l > 0) this.upsample.push(new Conv2d(ch, ch, 3, { padding: 1 }));
    }
    this.norm_out = new GroupNorm(Math.min(c.groups, ch), ch);
    this.conv_out = new Conv2d(ch, inCh, 3, { padding: 1 });
    zeroInit(this.conv_out);
  }

  /** The conditioning vector (after SiLU) of timesteps t [N], class ids [N] (i32; `numClasses` = none) and guidance scales w [N] (`guidanceInput`). */
  embed(t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor {
    return conditionVector(this.time_embed, this.class_embed, t, labels, this.config.widths[0]!, this.guidance_embed && w ? { mlp: this.guidance_embed, w } : null);
  }

  /**
   * x [N, channels, size, size], t [N] (the process's time, e.g. 0…999 or 0…1), labels [N] i32, and for a
   * model with `guidanceInput` the guidance scales w [N].
   */
  forward(x: Tensor, t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor {
    const c = this.config;
    checkDenoiserInputs('UNet', c, x, t, labels, w);
    const emb = this.embed(t, labels, w);
    const ck = this.gradientCheckpointing && this.training;
    let h = this.conv_in.forward(c.patch > 1 ? pixelUnshuffle(x, c.patch) : x);
    const skips = [h];
    c.widths.forEach((_, l) => {
      const level = this.down.at(l);
      for (let i = 0; i < c.depth; i++) {
        h = blockForward(ck, level.blocks.at(i), h, emb);
        if (c.attention.includes(l)) h = blockForward(ck, level.attns.at(i), h);
        skips.push(h);
      }
      if (l < c.widths.length - 1) {
        h = this.downsample.at(l).forward(h);
        skips.push(h);
      }
    });
    h = blockForward(ck, this.mid.blocks.at(0), h, emb);
    if (c.midAttention) h = blockForward(ck, this.mid.attns.at(0), h);
    h = blockForward(ck, this.mid.blocks.at(1), h, emb);
    c.widths.forEach((_, j) => {
      const l = c.widths.length - 1 - j;
      const level = this.up.at(j);
      for (let i = 0; i <= c.depth; i++) {
        h = blockForward(ck, level.blocks.at(i), catChannels(h, skips.pop()!), emb);
        if (c.attention.includes(l)) h = blockForward(ck, level.attns.at(i), h);
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
