/**
 * Gradient checkpointing (PyTorch's `torch.utils.checkpoint`): a function's activations are not kept for
 * the backward pass, which runs the function's forward again and backpropagates through that.
 */
import { cat, getRngState, perCall, setRngState, Tensor } from '../tensor/index.js';
import type { OpDef } from '../tensor/ops/index.js';
import { autocastDtype, isGradEnabled, propagate, readTensors, record, withAutocastDtype, withGradMode } from '../tensor/tape.js';
import { fmt } from '../tensor/shape.js';

/**
 * Runs `fn(...inputs)` without keeping its intermediate tensors for backward; the backward pass runs `fn`
 * again (with the same draws of the global random generator, so dropout and noise repeat exactly) and then
 * its backward. Gradients reach the tensor `inputs` and the leaves `fn` reads (a module's parameters); a
 * tensor computed outside `fn` that requires grad must be passed as an input. `fn` is synchronous and
 * returns a float tensor or an array of them. Second-order gradients through a checkpoint are refused.
 * Without gradient recording (`noGrad`, or no input or parameter requiring grad) it is just `fn(...inputs)`.
 */
export function checkpoint<A extends unknown[], R extends Tensor | Tensor[]>(fn: (...inputs: A) => R, ...inputs: A): R {
  if (!isGradEnabled()) return fn(...inputs);
  const tensors = inputs.flatMap((x, i) => (x instanceof Tensor ? [[i, x] as const] : []));
  const detached = () => {
    const args = inputs.slice() as unknown[];
    for (const [i, t] of tensors) args[i] = t.detach();
    return args as A;
  };
  // the state of the global generator before fn's draws, for the replay in backward (per call in k.compile)
  const rng: { start?: ReturnType<typeof getRngState>; resume?: ReturnType<typeof getRngState> } = {};
  perCall(() => void (rng.start = getRngState()));
  // the replay runs in the precision of the forward pass (backward usually runs outside autocast)
  const precision = autocastDtype();
  const { value: result, read } = readTensors(() => withGradMode(false, () => fn(...detached())));
  const outs = checkOutputs(result);
  for (const t of read) {
    if (t.gradFn) throw new Error(`checkpoint: the function reads a tensor of shape ${fmt(t.shape)} that requires grad and was computed outside it; pass it as one of the inputs so that its gradient can flow`);
  }
  const leaves = [...read];
  const stepInputs = [...tensors.map(([, t]) => t), ...leaves];
  if (!stepInputs.some((t) => t.requiresGrad)) return result;
  const flat = outs.length === 1 ? outs[0]! : withGradMode(false, () => cat(outs.map((o) => o.reshape([o.size]))));
  const vjp = (g: Tensor, saved: Tensor[], _out: Tensor, _arg: unknown, needs: boolean[]): (Tensor | null)[] => {
    if (isGradEnabled()) throw new Error('checkpoint: second-order gradients (createGraph) through a checkpoint are not supported; call the function without checkpoint');
    // the forward again, recorded this time, on leaves standing for the inputs
    const args = inputs.slice() as unknown[];
    const wanted: Tensor[] = [];
    tensors.forEach(([i], j) => {
      const x = saved[j]!.detach();
      x.requiresGrad = needs[j]!;
      args[i] = x;
      wanted.push(x);
    });
    wanted.push(...leaves);
    perCall(() => {
      rng.resume = getRngState();
      setRngState(rng.start!);
    });
    const again = withAutocastDtype(precision, () => withGradMode(true, () => {
      const o = checkOutputs(fn(...(args as A)));
      return o.length === 1 ? o[0]! : cat(o.map((x) => x.reshape([x.size])));
    }));
    perCall(() => setRngState(rng.resume!));
    if (!again.requiresGrad) return stepInputs.map(() => null);
    const grads = propagate(again, g, { retainGraph: false, createGraph: false, wanted });
    return wanted.map((w, i) => (needs[i] ? grads.get(w) ?? null : null));
  };
  record({ def: { name: 'checkpoint', vjp } as unknown as OpDef, inputs: stepInputs, out: flat, arg: null });
  if (outs.length === 1) return result;
  // each output is a view of the recorded one, so their gradients meet in its step (fn's own outputs, which
  // only that one reads now, are freed)
  let at = 0;
  const views = outs.map((o) => {
    const v = flat.slice(0, at, at + o.size).reshape(o.shape);
    at += o.size;
    return v;
  });
  for (const o of new Set(outs)) o.dispose();
  return views as R;
}

/** The function's result as a list of float tensors (an error otherwise). */
function checkOutputs(r: unknown): Tensor[] {
  const outs = r instanceof Tensor ? [r] : Array.isArray(r) && r.length && r.every((t) => t instanceof Tensor) ? (r as Tensor[]) : null;
  if (!outs) throw new TypeError(`checkpoint: the function must return a tensor or a non-empty array of tensors, got ${r instanceof Promise ? 'a promise (it must be synchronous)' : typeof r}`);
  for (const o of outs) if (o.dtype !== 'f32' && o.dtype !== 'f16') throw new TypeError(`checkpoint: the function's outputs must be float tensors, got ${o.dtype}`);
  return outs;
}
