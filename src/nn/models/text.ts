/**
 * Text conditioning, Stable Diffusion in miniature: a small pre-LN transformer text encoder over token ids,
 * cross-attention from image features to its tokens, and the transformer block (self-attention,
 * cross-attention, feed-forward) that a UNet puts at chosen levels. Padding (id 0) is masked out of every
 * attention over the text, so padded positions never change an output; sequences start with a <bos> token
 * (id 1) that is never padding, so the empty caption still has a token to attend to.
 */
import { fmt } from '../../tensor/shape.js';
import { scope } from '../../tensor/memory.js';
import { noGrad, tensor, type Tensor } from '../../tensor/index.js';
import { LayerNorm, Linear, Embedding } from '../layers.js';
import { Module, ModuleList, Parameter } from '../module.js';
import { GroupNorm, MultiheadAttention } from '../norm-attention.js';
import { normal_, zeros_ } from '../init.js';
import { zeroInit } from './conditioning.js';

/** The id of padding in token sequences (the tokenizer's <pad>). */
export const TEXT_PAD_ID = 0;
/** The id that starts every token sequence (the tokenizer's <bos>); never padding. */
export const TEXT_BOS_ID = 1;

/** The ids of the empty caption, classifier-free guidance's "no text": [<bos>, <pad>, …] of `length`. */
export function unconditionalTokens(length: number): Int32Array {
  if (!Number.isInteger(length) || length < 1) throw new Error(`unconditionalTokens: length must be a positive integer, got ${length}`);
  const ids = new Int32Array(length);
  ids[0] = TEXT_BOS_ID;
  return ids;
}

/** Sizes of a `TextEncoder`. */
export interface TextEncoderConfig {
  /** Number of token ids (the tokenizer's vocabulary, special tokens included). */
  vocabSize: number;
  /** Tokens per sequence. */
  length: number;
  /** Token embedding width D. */
  dim: number;
  /** Transformer blocks. */
  depth: number;
  heads: number;
  /** Feed-forward hidden width as a multiple of dim. */
  mlpRatio: number;
}

/** Defaults of a text encoder for MNIST captions (vocabSize and length come from the tokenizer). */
export const TEXT_ENCODER_DEFAULTS: Omit<TextEncoderConfig, 'vocabSize' | 'length'> = { dim: 64, depth: 2, heads: 4, mlpRatio: 2 };

/** Checks token ids [N, length] i32 and returns the padding mask [N, length] (true: a real token). */
export function tokenMask(op: string, ids: Tensor, length: number): Tensor {
  if (ids.rank !== 2 || ids.shape[1] !== length || ids.dtype !== 'i32') throw new Error(`${op}: expected token ids of shape [N, ${length}] and dtype i32, got ${fmt(ids.shape)} ${ids.dtype}`);
  return ids.ne(TEXT_PAD_ID);
}

/** A pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (GELU). */
export class TextEncoderBlock extends Module {
  norm1: LayerNorm;
  attn: MultiheadAttention;
  norm2: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  constructor(dim: number, heads: number, mlpRatio: number) {
    super();
    this.norm1 = new LayerNorm(dim);
    this.attn = new MultiheadAttention(dim, heads);
    this.norm2 = new LayerNorm(dim);
    this.fc1 = new Linear(dim, dim * mlpRatio);
    this.fc2 = new Linear(dim * mlpRatio, dim);
  }
  /** x [N, L, D], mask [N, L] bool (true: a real token). */
  forward(x: Tensor, mask: Tensor): Tensor {
    const h = this.norm1.forward(x);
    x = x.add(this.attn.forward(h, h, h, { keyMask: mask }));
    return x.add(this.fc2.forward(this.fc1.forward(this.norm2.forward(x)).gelu('tanh')));
  }
}

/**
 * The text encoder: token embedding + learned positions, pre-LN transformer blocks whose self-attention
 * ignores padding, a final LayerNorm. `forward(ids)` gives token embeddings [N, L, D] (rows at padded
 * positions are defined but meaningless: every consumer masks them).
 */
export class TextEncoder extends Module {
  readonly config: TextEncoderConfig;
  token_embed: Embedding;
  pos_embed: Parameter;
  blocks = new ModuleList<TextEncoderBlock>();
  norm_out: LayerNorm;
  constructor(config: TextEncoderConfig) {
    super();
    const c = (this.config = { ...config });
    for (const k of ['vocabSize', 'length', 'dim', 'depth', 'heads', 'mlpRatio'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < (k === 'depth' ? 0 : 1)) throw new Error(`TextEncoder: ${k} must be a ${k === 'depth' ? 'non-negative' : 'positive'} integer, got ${c[k]}`);
    }
    if (c.dim % c.heads) throw new Error(`TextEncoder: dim ${c.dim} must be divisible by heads ${c.heads}`);
    this.token_embed = new Embedding(c.vocabSize, c.dim);
    normal_(this.token_embed.weight, 0, 0.02);
    this.pos_embed = new Parameter(tensor(new Float32Array(c.length * c.dim), { shape: [c.length, c.dim] }));
    normal_(this.pos_embed, 0, 0.02);
    for (let i = 0; i < c.depth; i++) this.blocks.push(new TextEncoderBlock(c.dim, c.heads, c.mlpRatio));
    this.norm_out = new LayerNorm(c.dim);
  }
  /** ids [N, length] i32 → token embeddings [N, length, dim]; `mask` [N, length] bool overrides ids ≠ <pad>. */
  forward(ids: Tensor, mask?: Tensor): Tensor {
    const m = mask ?? tokenMask('TextEncoder', ids, this.config.length);
    if (mask) tokenMask('TextEncoder', ids, this.config.length);
    let h = this.token_embed.forward(ids).add(this.pos_embed);
    for (let i = 0; i < this.config.depth; i++) h = this.blocks.at(i).forward(h, m);
    return this.norm_out.forward(h);
  }
}

/** The sum of the real (unmasked) tokens of x [N, L, D]: [N, D]. */
export function maskedSum(x: Tensor, mask: Tensor): Tensor {
  return scope(() => x.mul(maskWeights('maskedSum', x, mask)).sum(1));
}

/** The mean of the real (unmasked) tokens of x [N, L, D]: [N, D]. */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return scope(() => maskedSum(x, mask).div(maskWeights('maskedMean', x, mask).sum(1)));
}

/** mask [N, L] as weights [N, L, 1] for x [N, L, D] (checked). */
function maskWeights(op: string, x: Tensor, mask: Tensor): Tensor {
  if (x.rank !== 3 || mask.rank !== 2 || mask.shape[0] !== x.shape[0] || mask.shape[1] !== x.shape[1]) throw new Error(`${op}: expected x [N, L, D] and mask [N, L], got ${fmt(x.shape)} and ${fmt(mask.shape)}`);
  return mask.float().unsqueeze(2);
}

/** Image features [N, C, H, W] as tokens [N, H·W, C]; tokens [N, T, C] pass through. */
function asTokens(op: string, x: Tensor, C: number): Tensor {
  if (x.rank === 4 && x.shape[1] === C) return x.reshape([x.shape[0]!, C, -1]).transpose(1, 2);
  if (x.rank === 3 && x.shape[2] === C) return x;
  throw new Error(`${op}: expected image features [N, ${C}, H, W] or tokens [N, T, ${C}], got ${fmt(x.shape)}`);
}

/**
 * Cross-attention from image features to text tokens: queries from x ([N, C, H, W], flattened to H·W tokens,
 * or tokens [N, T, C]), keys and values from context [N, L, D]; keys where `contextMask` [N, L] is false
 * (padding) are ignored. Returns the attention output shaped like x (no residual). Parameters are PyTorch's
 * MultiheadAttention with kdim = vdim = D (attn.q_proj_weight, attn.k_proj_weight, …).
 */
export class CrossAttention extends Module {
  attn: MultiheadAttention;
  constructor(readonly queryDim: number, readonly contextDim: number, heads: number) {
    super();
    this.attn = new MultiheadAttention(queryDim, heads, { kdim: contextDim, vdim: contextDim });
  }
  forward(x: Tensor, context: Tensor, contextMask?: Tensor | null): Tensor {
    const C = this.queryDim;
    const q = asTokens('CrossAttention', x, C);
    if (context.rank !== 3 || context.shape[0] !== x.shape[0] || context.shape[2] !== this.contextDim) throw new Error(`CrossAttention: expected context of shape [${x.shape[0]}, L, ${this.contextDim}], got ${fmt(context.shape)}`);
    const o = this.attn.forward(q, context, context, contextMask ? { keyMask: contextMask } : {});
    return x.rank === 4 ? o.transpose(1, 2).reshape(x.shape) : o;
  }
}

/**
 * Stable Diffusion's transformer block on tokens [N, T, C], pre-norm: self-attention, cross-attention to the
 * text, feed-forward (GELU, 4× wide), each added to the residual stream.
 */
export class CrossTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: MultiheadAttention;
  norm2: LayerNorm;
  attn2: CrossAttention;
  norm3: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  constructor(dim: number, contextDim: number, heads: number) {
    super();
    this.norm1 = new LayerNorm(dim);
    this.attn1 = new MultiheadAttention(dim, heads);
    this.norm2 = new LayerNorm(dim);
    this.attn2 = new CrossAttention(dim, contextDim, heads);
    this.norm3 = new LayerNorm(dim);
    this.fc1 = new Linear(dim, 4 * dim);
    this.fc2 = new Linear(4 * dim, dim);
  }
  /** x [N, T, C], context [N, L, D], contextMask [N, L] bool. */
  forward(x: Tensor, context: Tensor, contextMask?: Tensor | null): Tensor {
    x = x.add(this.attn1.forward(this.norm1.forward(x)));
    x = x.add(this.attn2.forward(this.norm2.forward(x), context, contextMask));
    return x.add(this.fc2.forward(this.fc1.forward(this.norm3.forward(x)).gelu('tanh')));
  }
}

/**
 * The UNet's text block (Stable Diffusion's SpatialTransformer): GroupNorm, the feature map as tokens,
 * a linear projection in, one `CrossTransformerBlock`, a projection out (zero-initialized, so the block starts
 * as the identity), added to the input.
 */
export class SpatialTransformer extends Module {
  norm: GroupNorm;
  proj_in: Linear;
  block: CrossTransformerBlock;
  proj_out: Linear;
  constructor(ch: number, contextDim: number, heads: number, groups: number) {
    super();
    this.norm = new GroupNorm(Math.min(groups, ch), ch);
    this.proj_in = new Linear(ch, ch);
    this.block = new CrossTransformerBlock(ch, contextDim, heads);
    this.proj_out = new Linear(ch, ch);
    zeroInit(this.proj_out);
  }
  /** x [N, C, H, W], context [N, L, D], contextMask [N, L] bool. */
  forward(x: Tensor, context: Tensor, contextMask?: Tensor | null): Tensor {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const h = this.proj_in.forward(asTokens('SpatialTransformer', this.norm.forward(x), C));
    const o = this.proj_out.forward(this.block.forward(h, context, contextMask));
    return x.add(o.transpose(1, 2).reshape([N, C, H, W]));
  }
}

/** Text conditioning of a denoiser: its text encoder, and whether the mean text token also joins the time embedding. */
export interface TextConditioning {
  encoder: TextEncoderConfig;
  /**
   * Add pooled text to the t embedding: true (default) adds a projection of the mean of the encoder's output
   * tokens (SDXL's pooled text); 'words' adds the sum of a vector per token of the caption (<bos> included, so
   * the empty caption has a learned vector of its own), a bag of words at the time embedding's width (see
   * `wordScale` for its start), which carries the words straight to every block — the encoder's shared,
   * small-initialized weights learn rarer distinctions, such as ten digits in twenty spellings, slowly. A
   * sum, not a mean: a word adds the same vector whatever else the caption says, so "small thin zero" is
   * small + thin + zero, each seen in training with the others left out; under a mean the
   * digit's share would shrink with every attribute and filler word. false adds none.
   */
  pooled?: boolean | 'words';
  /**
   * With pooled 'words': the word vectors start at zero and their sum is multiplied by `wordScale` (Adam
   * then moves them `wordScale` times as fast). A vector then holds only what training put there: words
   * that say nothing about the image ("a", "handwritten") stay small, and a numeral and its word learn the
   * same direction, so a phrasing never seen in training reads like the seen ones. Unset (checkpoints saved
   * before it): N(0, 1) vectors, unscaled — whose random offsets never leave them, so that "a small thin
   * handwritten 6" drew 27% sixes where "the small thin number six" drew 100% (`kiln eval`, one run).
   */
  wordScale?: number;
}

/** Whether a text config pools, and from what (checked: an unknown `pooled` is an error naming the model). */
export function pooledSource(model: string, text: TextConditioning): 'encoder' | 'words' | null {
  const p = text.pooled ?? true;
  if (p !== true && p !== false && p !== 'words') throw new Error(`${model}: text.pooled must be true, false or 'words', got ${JSON.stringify(p)}`);
  const s = text.wordScale;
  if (s !== undefined && (p !== 'words' || typeof s !== 'number' || !(s > 0) || !Number.isFinite(s))) throw new Error(`${model}: text.wordScale must be a positive number and needs pooled 'words', got wordScale ${JSON.stringify(s)} with pooled ${JSON.stringify(p)}`);
  return p === 'words' ? 'words' : p ? 'encoder' : null;
}

/**
 * The pooled words of a text model (`TextConditioning.pooled` 'words'): a vector per token id, and `pool`, the
 * sum of a caption's vectors times `scale`. With a scale (`wordScale`) the vectors start at zero; without it,
 * at N(0, 1), unscaled (checkpoints saved before `wordScale`).
 */
export class WordPool extends Embedding {
  constructor(numEmbeddings: number, embeddingDim: number, readonly scale?: number) {
    super(numEmbeddings, embeddingDim);
    if (scale !== undefined) noGrad(() => zeros_(this.weight));
  }
  /** ids [N, L] i32, mask [N, L] bool → the scaled sum of the vectors of the real tokens [N, dim]. */
  pool(ids: Tensor, mask: Tensor): Tensor {
    const sum = maskedSum(this.forward(ids), mask);
    return this.scale === undefined ? sum : sum.mul(this.scale);
  }
}

/**
 * What a text-conditioned backbone computes from token ids once per forward: tokens, mask, and the pooled text
 * — a projection (`Linear`) of the mean encoder token, or the pooled words (`WordPool`).
 */
export function encodeText(model: string, encoder: TextEncoder, pool: Linear | WordPool | null, ids: Tensor): { context: Tensor; mask: Tensor; pooled: Tensor | null } {
  const mask = tokenMask(model, ids, encoder.config.length);
  const context = encoder.forward(ids, mask);
  const pooled = pool instanceof WordPool ? pool.pool(ids, mask) : pool ? pool.forward(maskedMean(context, mask)) : null;
  return { context, mask, pooled };
}

/** The module of a backbone's pooled text (`TextConditioning.pooled`) for a time embedding of width `emb`, or null. */
export function textPool(model: string, text: TextConditioning, emb: number): Linear | WordPool | null {
  const from = pooledSource(model, text);
  return from === 'words' ? new WordPool(text.encoder.vocabSize, emb, text.wordScale) : from ? new Linear(text.encoder.dim, emb) : null;
}
