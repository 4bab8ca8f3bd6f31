/**
 * The parts of kiln checkpoints that every reader and writer shares: a checkpoint is one safetensors file
 * whose tensors are grouped by name prefix (`model.`, `ema.`, `optim.`, `vae.`, …) and whose metadata key
 * `kiln` holds JSON with a `format` tag and whatever the writer stored beside it.
 */
import type { Tensor } from '../tensor/index.js';

/** The tensors stored under `prefix`, with the prefix removed from their names. */
export function withoutPrefix(tensors: Record<string, Tensor>, prefix: string): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(tensors).filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n.slice(prefix.length), t]));
}

/** The tensors of `tensors` renamed to `prefix` + name. */
export function withPrefix(prefix: string, tensors: Record<string, Tensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(tensors).map(([n, t]) => [`${prefix}${n}`, t]));
}

/** The JSON metadata of a kiln checkpoint (its `kiln` metadata key), or an error naming `source` and what is wrong. */
export function parseCheckpointMeta(source: string, metadata: Record<string, string>): Record<string, unknown> {
  if (!Object.hasOwn(metadata, 'kiln') || !metadata.kiln) throw new Error(`${source} is not a kiln checkpoint (no 'kiln' metadata)`);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(metadata.kiln) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${source}: its 'kiln' metadata is not valid JSON (${(e as Error).message})`);
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new Error(`${source}: its 'kiln' metadata is not a JSON object`);
  return meta;
}

/** The JSON metadata of a kiln checkpoint of the given `format`, or an error naming what `source` is instead. */
export function readCheckpointMeta(source: string, metadata: Record<string, string>, format: string): Record<string, unknown> {
  const meta = parseCheckpointMeta(source, metadata);
  if (meta.format !== format) throw new Error(`${source}: expected a checkpoint of format ${format}, got format ${JSON.stringify(meta.format)}`);
  return meta;
}
