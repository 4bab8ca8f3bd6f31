/**
 * A small Diffusion Transformer (DiT, Peebles & Xie): the image is cut into p×p patches (pixel
 * unshuffle), embedded as tokens with fixed 2-D sinusoidal or learned positions, and passed through
 * transformer blocks whose LayerNorms are modulated by the conditioning (adaLN-Zero: shift, scale and
 * a gate per sub-layer, all regressed from the t + class embedding and initialized to zero, so each
 * block starts as the identity). Class `numClasses` is the null class of classifier-free guidance. With
 * `text`, the model is conditioned on token ids instead (labels [N, length] i32): a text encoder, and in
 * every block a cross-attention sub-layer to the text tokens (PixArt-α style: LayerNorm, cross-attention
 * whose output projection starts at zero, added to the tokens) between self-attention and the MLP; the
 * pooled text joins the conditioning vector unless `text.pooled` is false.
 */
import { blockForward, Module, ModuleList, Parameter } from '../module.js';
import { Embedding, LayerNorm, Linear } from '../layers.js';
import { MultiheadAttention, modulate } from '../norm-attention.js';
import { pixelShuffle, pixelUnshuffle } from '../conv.js';
import { tensor, type Tensor } from '../../tensor/index.js';
import { checkDenoiserInputs, conditionVector, guidanceEmbedding, zeroInit } from './conditioning.js';
import { normal_ } from '../init.js';
import { CrossAttention, encodeText, TextEncoder, textPool, WordPool, type TextConditioning } from './text.js';

/** Sizes of a DiT. */
export interface DiTConfig {
  channels: number;
  size: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  /** MLP hidden width as a multiple of dim. */
  mlpRatio: number;
  numClasses: number;
  positions: 'sinusoidal' | 'learned';
  /** The model also takes the guidance scale w [N] (a guidance-distilled student): its embedding joins the time embedding. */
  guidanceInput: boolean;
  /** Text conditioning (absent: none, and the model is exactly a DiT without it). Requires numClasses 0. */
  text?: TextConditioning;
}

/** The default small MNIST DiT (7×7 tokens of 4×4 patches). */
export const DIT_DEFAULTS: DiTConfig = { channels: 1, size: 28, patch: 4, dim: 96, depth: 4, heads: 4, mlpRatio: 2, numClasses: 10, positions: 'sinusoidal', guidanceInput: false };

/** Fixed 2-D sin/cos position embeddings [side², dim] (half the channels per axis). */
export function sinusoidalPositions2d(side: number, dim: number): Float32Array {
  if (dim % 4) throw new Error(`sinusoidalPositions2d: dim ${dim} must be divisible by 4`);
  const out = new Float32Array(side * side * dim);
  const q = dim / 4;
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      const row = (i * side + j) * dim;
      for (let f = 0; f < q; f++) {
        const w = 1 / 10000 ** (f / q);
        out[row + f] = Math.sin(i * w);
        out[row + q + f] = Math.cos(i * w);
        out[row + 2 * q + f] = Math.sin(j * w);
        out[row + 3 * q + f] = Math.cos(j * w);
      }
    }
  }
  return out;
}

/** One transformer block with adaLN-Zero conditioning. */
export class DiTBlock extends Module {
  norm1: LayerNorm;
  attn: MultiheadAttention;
  norm2: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  ada: Linear;
  /** The cross-attention sub-layer of a text-conditioned DiT, else null. */
  cross_norm: LayerNorm | null = null;
  cross: CrossAttention | null = null;
  /** `contextDim`: the width of the text tokens, for a cross-attention sub-layer. */
  constructor(dim: number, heads: number, mlpRatio: number, contextDim?: number) {
    super();
    this.norm1 = new LayerNorm(dim, { elementwiseAffine: false, eps: 1e-6 });
    this.attn = new MultiheadAttention(dim, heads);
    this.norm2 = new LayerNorm(dim, { elementwiseAffine: false, eps: 1e-6 });
    this.fc1 = new Linear(dim, dim * mlpRatio);
    this.fc2 = new Linear(dim * mlpRatio, dim);
    this.ada = new Linear(dim, 6 * dim);
    zeroInit(this.ada);
    if (contextDim !== undefined) {
      this.cross_norm = new LayerNorm(dim, { eps: 1e-6 });
      this.cross = new CrossAttention(dim, contextDim, heads);
      zeroInit(this.cross.attn.out_proj);
    }
  }
  /** x [N, T, D], c [N, D] (after SiLU); for a block with cross-attention the text tokens [N, L, Dt] and their mask [N, L]. */
  forward(x: Tensor, c: Tensor, context?: Tensor | null, contextMask?: Tensor | null): Tensor {
    const [sa, ca, ga, sm, cm, gm] = this.ada.forward(c).chunk(6, 1) as Tensor[];
    x = x.add(this.attn.forward(modulate(this.norm1.forward(x), sa!, ca!)).mul(ga!.unsqueeze(1)));
    if (this.cross) {
      if (!context) throw new Error('DiTBlock: this block has cross-attention; pass the text tokens');
      x = x.add(this.cross.forward(this.cross_norm!.forward(x), context, contextMask));
    }
    const h = this.fc2.forward(this.fc1.forward(modulate(this.norm2.forward(x), sm!, cm!)).gelu('tanh'));
    return x.add(h.mul(gm!.unsqueeze(1)));
  }
}

/** The DiT: `forward(x, t, labels?)` predicts a tensor shaped like x. */
export class DiT extends Module {
  readonly config: DiTConfig;
  patch_embed: Linear;
  declare pos_embed: Parameter | Tensor;
  time_embed: ModuleList<Linear>;
  class_embed: Embedding | null;
  /** The guidance scale's embedding (`guidanceInput`), else null. */
  guidance_embed: ModuleList<Linear> | null;
  blocks = new ModuleList<DiTBlock>();
  /** Gradient checkpointing per transformer block while training (activations recomputed in backward). */
  gradientCheckpointing = false;
  norm_out: LayerNorm;
  ada_out: Linear;
  proj_out: Linear;
  /** The text encoder (`text`), else null. */
  text_encoder: TextEncoder | null = null;
  /** The pooled text (`text.pooled`): a projection of the mean encoder token, or word vectors (`'words'`); else null. */
  text_pool: Linear | WordPool | null = null;
  constructor(config: Partial<DiTConfig> = {}) {
    super();
    const c = (this.config = { ...DIT_DEFAULTS, ...config });
    const side = c.size / c.patch;
    if (!Number.isInteger(side)) throw new Error(`DiT: image size ${c.size} must be divisible by patch ${c.patch}`);
    if (c.dim % c.heads || c.dim % 4) throw new Error(`DiT: dim ${c.dim} must be divisible by heads ${c.heads} and by 4`);
    if (c.text && c.numClasses !== 0) throw new Error(`DiT: a text-conditioned model takes token ids, not classes; set numClasses to 0 (got ${c.numClasses})`);
    const pd = c.channels * c.patch * c.patch;
    this.patch_embed = new Linear(pd, c.dim);
    const pos = tensor(sinusoidalPositions2d(side, c.dim), { shape: [side * side, c.dim] });
    if (c.positions === 'learned') {
      this.pos_embed = new Parameter(pos.mul(0));
      normal_(this.pos_embed, 0, 0.02);
    } else this.registerBuffer('pos_embed', pos);
    this.time_embed = new ModuleList([new Linear(256, c.dim), new Linear(c.dim, c.dim)]);
    this.class_embed = c.numClasses > 0 ? new Embedding(c.numClasses + 1, c.dim) : null;
    this.guidance_embed = c.guidanceInput ? guidanceEmbedding(256, c.dim) : null;
    for (let i = 0; i < c.depth; i++) this.blocks.push(new DiTBlock(c.dim, c.heads, c.mlpRatio, c.text?.encoder.dim));
    this.norm_out = new LayerNorm(c.dim, { elementwiseAffine: false, eps: 1e-6 });
    this.ada_out = new Linear(c.dim, 2 * c.dim);
    zeroInit(this.ada_out);
    this.proj_out = new Linear(c.dim, pd);
    zeroInit(this.proj_out);
    if (c.text) {
      this.text_encoder = new TextEncoder(c.text.encoder);
      this.text_pool = textPool('DiT', c.text, c.dim);
    }
  }

  /**
   * x [N, channels, size, size], t [N], labels [N] i32 (`numClasses` = no class) or for a text model token ids
   * [N, length] i32, guidance scales w [N] (`guidanceInput`).
   */
  forward(x: Tensor, t: Tensor, labels?: Tensor | null, w?: Tensor | null): Tensor {
    const c = this.config;
    checkDenoiserInputs('DiT', c, x, t, labels, w);
    const N = x.shape[0]!, side = c.size / c.patch, T = side * side;
    const text = this.text_encoder ? encodeText('DiT', this.text_encoder, this.text_pool, labels!) : null;
    const cond = conditionVector(this.time_embed, this.class_embed, t, text ? null : labels, 256, this.guidance_embed && w ? { mlp: this.guidance_embed, w } : null, text?.pooled);
    // [N, C·p², side, side] → tokens [N, T, C·p²]
    const patches = pixelUnshuffle(x, c.patch).reshape([N, -1, T]).transpose(1, 2);
    let h = this.patch_embed.forward(patches).add(this.pos_embed);
    const ck = this.gradientCheckpointing && this.training;
    for (let i = 0; i < c.depth; i++) h = text ? blockForward(ck, this.blocks.at(i), h, cond, text.context, text.mask) : blockForward(ck, this.blocks.at(i), h, cond);
    const [shift, scale] = this.ada_out.forward(cond).chunk(2, 1) as [Tensor, Tensor];
    h = this.proj_out.forward(modulate(this.norm_out.forward(h), shift, scale));
    return pixelShuffle(h.transpose(1, 2).reshape([N, -1, side, side]), c.patch);
  }
}
