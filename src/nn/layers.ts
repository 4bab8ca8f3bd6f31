/** Basic layers with PyTorch parameter names, shapes and default initialization. */
import { fmt } from '../tensor/shape.js';
import { ones, zeros, type Tensor } from '../tensor/index.js';
import { kaimingUniform_, normal_, uniform_ } from './init.js';
import { Layer, Parameter } from './module.js';
import * as F from './functional.js';

/** y = x·Wᵀ + b, W: [out, in] (kaiming-uniform with a = √5 and a uniform bias, as PyTorch). */
export class Linear extends Layer {
  weight: Parameter;
  bias: Parameter | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures < 1 || outFeatures < 1) {
      throw new Error(`Linear: feature counts must be positive integers, got ${inFeatures} → ${outFeatures}`);
    }
    this.weight = new Parameter(zeros([outFeatures, inFeatures]));
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    this.bias = opts.bias === false ? null : new Parameter(zeros([outFeatures]));
    if (this.bias) uniform_(this.bias, -1 / Math.sqrt(inFeatures), 1 / Math.sqrt(inFeatures));
  }
  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) throw new Error(`Linear: input of shape ${fmt(x.shape)} has ${x.shape[x.rank - 1]} features, expected ${this.inFeatures}`);
    return F.linear(x, this.weight, this.bias);
  }
}

/**
 * A lookup table [num, dim] indexed by integer ids (N(0, 1) init). Ids outside [0, num) are an error: at
 * the call when the ids are on the host, else at the next readback (device-side check).
 */
export class Embedding extends Layer {
  weight: Parameter;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    if (!Number.isInteger(numEmbeddings) || !Number.isInteger(embeddingDim) || numEmbeddings < 1 || embeddingDim < 1) {
      throw new Error(`Embedding: numEmbeddings and embeddingDim must be positive integers, got ${numEmbeddings} and ${embeddingDim}`);
    }
    this.weight = new Parameter(zeros([numEmbeddings, embeddingDim]));
    normal_(this.weight);
  }
  forward(ids: Tensor): Tensor {
    return F.embedding(ids, this.weight);
  }
}

/** Zeroes elements with probability p in training (scaling the rest by 1/(1−p)); identity in eval. */
export class Dropout extends Layer {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

/** Layer normalization over the trailing `normalizedShape` dims, with optional affine weight and bias. */
export class LayerNorm extends Layer {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], readonly opts: { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape)) : null;
    this.bias = affine && opts.bias !== false ? new Parameter(zeros(this.normalizedShape)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.opts.eps ?? 1e-5);
  }
}

/** max(x, 0). */
export class ReLU extends Layer { forward(x: Tensor): Tensor { return x.relu(); } }
/** x·σ(x). */
export class SiLU extends Layer { forward(x: Tensor): Tensor { return x.silu(); } }
/** tanh. */
export class Tanh extends Layer { forward(x: Tensor): Tensor { return x.tanh(); } }
/** σ(x). */
export class Sigmoid extends Layer { forward(x: Tensor): Tensor { return x.sigmoid(); } }
/** GELU (exact or tanh approximation). */
export class GELU extends Layer {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') { super(); }
  forward(x: Tensor): Tensor { return x.gelu(this.approximate); }
}
/** Leaky ReLU. */
export class LeakyReLU extends Layer {
  constructor(readonly negativeSlope = 0.01) { super(); }
  forward(x: Tensor): Tensor { return x.leakyRelu(this.negativeSlope); }
}
/** Identity. */
export class Identity extends Layer { forward(x: Tensor): Tensor { return x; } }
/** Flattens dims start..end (default: all but the batch dim). */
export class Flatten extends Layer {
  constructor(readonly start = 1, readonly end = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.start, this.end); }
}

