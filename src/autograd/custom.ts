/**
 * Composites with a gradient of their own: the forward is computed without recording its inner ops, and
 * backward calls the given vector-Jacobian product instead of walking them. The VJP is written with Tensor
 * ops, so with `createGraph` it is recorded and can be differentiated again.
 */
import { Tensor } from '../tensor/index.js';
import type { OpDef } from '../tensor/ops/index.js';
import { isGradEnabled, record, withGradMode } from '../tensor/tape.js';

/** The gradients of the inputs (null where not needed) from the output's gradient and the saved inputs. */
export type CustomVjp = (g: Tensor, inputs: Tensor[], needs: boolean[]) => (Tensor | null)[];

/**
 * `forward(...inputs)`, differentiated by `vjp` instead of through the ops `forward` uses (which then keep
 * none of their intermediates for backward). Without gradient recording it is just the forward.
 */
export function withGradient(name: string, inputs: Tensor[], forward: (...inputs: Tensor[]) => Tensor, vjp: CustomVjp): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return forward(...inputs);
  const out = withGradMode(false, () => forward(...inputs));
  const def = { name, vjp: (g: Tensor, saved: Tensor[], _out: Tensor, _arg: unknown, needs: boolean[]) => vjp(g, saved, needs) } as unknown as OpDef;
  record({ def, inputs, out, arg: null });
  return out;
}
