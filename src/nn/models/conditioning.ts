/** What the diffusion backbones share: input checks, the t + class conditioning vector, zero init. */
import { noGrad } from '../../tensor/index.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/index.js';
import { zeros_ } from '../init.js';
import type { Embedding, Linear } from '../layers.js';
import type { ModuleList } from '../module.js';
import { timestepEmbedding } from '../embeddings.js';

/** Sets a layer's weight and bias to zero (so a residual branch or an output starts silent). */
export function zeroInit(l: { weight: Tensor; bias: Tensor | null }): void {
  noGrad(() => {
    zeros_(l.weight);
    if (l.bias) zeros_(l.bias);
  });
}

/** Checks x [N, channels, size, size], t [N] and labels [N] (required when the model has classes). */
export function checkDenoiserInputs(model: string, c: { channels: number; size: number; numClasses: number }, x: Tensor, t: Tensor, labels?: Tensor | null): void {
  if (x.rank !== 4 || x.shape[1] !== c.channels || x.shape[2] !== c.size || x.shape[3] !== c.size) {
    throw new Error(`${model}: expected x of shape [N, ${c.channels}, ${c.size}, ${c.size}], got ${fmt(x.shape)}`);
  }
  const N = x.shape[0]!;
  if (t.rank !== 1 || t.shape[0] !== N) throw new Error(`${model}: expected t of shape [${N}], got ${fmt(t.shape)}`);
  if (c.numClasses > 0 && !labels) throw new Error(`${model}: this model is class-conditional (${c.numClasses} classes); pass labels (use ${c.numClasses} for "no class")`);
  if (labels && (labels.rank !== 1 || labels.shape[0] !== N)) throw new Error(`${model}: expected labels of shape [${N}], got ${fmt(labels.shape)}`);
}

/** SiLU(MLP(sinusoidal(t)) + class embedding): the vector every block of a backbone is conditioned on. */
export function conditionVector(timeMlp: ModuleList<Linear>, classEmbed: Embedding | null, t: Tensor, labels: Tensor | null | undefined, freqDim: number): Tensor {
  let e = timeMlp.at(1).forward(timeMlp.at(0).forward(timestepEmbedding(t, freqDim)).silu());
  if (classEmbed && labels) e = e.add(classEmbed.forward(labels));
  return e.silu();
}
