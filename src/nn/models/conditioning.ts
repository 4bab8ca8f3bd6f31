/** What the diffusion backbones share: input checks, the t + class (+ guidance scale) conditioning vector, zero init. */
import { noGrad } from '../../tensor/index.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/index.js';
import { zeros_ } from '../init.js';
import { Linear, type Embedding } from '../layers.js';
import { ModuleList } from '../module.js';
import { timestepEmbedding } from '../embeddings.js';

/** Sets a layer's weight and bias to zero (so a residual branch or an output starts silent). */
export function zeroInit(l: { weight: Tensor; bias: Tensor | null }): void {
  noGrad(() => {
    zeros_(l.weight);
    if (l.bias) zeros_(l.bias);
  });
}

/**
 * Checks x [N, channels, size, size], t [N], labels [N] (required when the model has classes; token ids
 * [N, length] i32 for a text-conditioned model) and the
 * guidance scales w [N] (required when the model takes them, refused otherwise).
 */
export function checkDenoiserInputs(model: string, c: { channels: number; size: number; numClasses: number; guidanceInput?: boolean; text?: { encoder: { length: number } } }, x: Tensor, t: Tensor, labels?: Tensor | null, w?: Tensor | null): void {
  if (x.rank !== 4 || x.shape[1] !== c.channels || x.shape[2] !== c.size || x.shape[3] !== c.size) {
    throw new Error(`${model}: expected x of shape [N, ${c.channels}, ${c.size}, ${c.size}], got ${fmt(x.shape)}`);
  }
  const N = x.shape[0]!;
  if (t.rank !== 1 || t.shape[0] !== N) throw new Error(`${model}: expected t of shape [${N}], got ${fmt(t.shape)}`);
  if (c.text) {
    const L = c.text.encoder.length;
    if (!labels || labels.rank !== 2 || labels.shape[0] !== N || labels.shape[1] !== L || labels.dtype !== 'i32') {
      throw new Error(`${model}: this model is text-conditioned; pass token ids of shape [${N}, ${L}] and dtype i32 as labels (the empty caption's ids for "no caption"), got ${labels ? `${fmt(labels.shape)} ${labels.dtype}` : 'none'}`);
    }
  } else if (c.numClasses > 0 && !labels) throw new Error(`${model}: this model is class-conditional (${c.numClasses} classes); pass labels (use ${c.numClasses} for "no class")`);
  if (!c.text && labels && (labels.rank !== 1 || labels.shape[0] !== N)) throw new Error(`${model}: expected labels of shape [${N}], got ${fmt(labels.shape)}`);
  if (c.guidanceInput && !w) throw new Error(`${model}: this model takes the guidance scale as an input (guidanceInput); pass w [${N}] (0: the conditional model)`);
  if (!c.guidanceInput && w) throw new Error(`${model}: this model takes no guidance scale (guidanceInput is off); sample it with classifier-free guidance instead of passing w`);
  if (w && (w.rank !== 1 || w.shape[0] !== N)) throw new Error(`${model}: expected guidance scales w of shape [${N}], got ${fmt(w.shape)}`);
}

/**
 * The embedding of the guidance scale w for a model that takes it (guidance distillation): sinusoidal
 * features of w through Linear–SiLU–Linear, the last layer zero (a student built from its teacher's weights
 * starts as the teacher, whatever w).
 */
export function guidanceEmbedding(freqDim: number, dim: number): ModuleList<Linear> {
  const mlp = new ModuleList([new Linear(freqDim, dim), new Linear(dim, dim)]);
  zeroInit(mlp.at(1));
  return mlp;
}

/**
 * SiLU(MLP(sinusoidal(t)) + class embedding [+ MLP(sinusoidal(w))] [+ extra]): the vector every block of a
 * backbone is conditioned on (the w term for models that take the guidance scale w; `extra` e.g. a pooled
 * text embedding).
 */
export function conditionVector(timeMlp: ModuleList<Linear>, classEmbed: Embedding | null, t: Tensor, labels: Tensor | null | undefined, freqDim: number, guidance?: { mlp: ModuleList<Linear>; w: Tensor } | null, extra?: Tensor | null): Tensor {
  const mlp = (m: ModuleList<Linear>, v: Tensor) => m.at(1).forward(m.at(0).forward(timestepEmbedding(v, freqDim)).silu());
  let e = mlp(timeMlp, t);
  if (classEmbed && labels) e = e.add(classEmbed.forward(labels));
  if (guidance) e = e.add(mlp(guidance.mlp, guidance.w));
  if (extra) e = e.add(extra);
  return e.silu();
}
