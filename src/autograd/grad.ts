/**
 * Gradients as functions (JAX's `grad` / `valueAndGrad`, PyTorch's `torch.autograd.grad`), built on the
 * tape of the tensor layer.
 */
import { Tensor } from '../tensor/index.js';
import { propagate, seedGradient, withGradMode } from '../tensor/tape.js';

/** Options of `grad` / `valueAndGrad`. */
export interface GradOptions {
  /** Indices of the arguments to differentiate (default: the first). */
  argnums?: number | number[];
  /** Make the returned gradients differentiable. */
  createGraph?: boolean;
}

function argList(argnums: number | number[] | undefined): number[] {
  return argnums === undefined ? [0] : typeof argnums === 'number' ? [argnums] : argnums;
}

/**
 * Returns a function computing `[fn(...args), gradients]` where the gradients are taken with respect to
 * the chosen tensor arguments (a single tensor when `argnums` is a number, else an array). `fn` must
 * return a scalar tensor. Leaves' `.grad` fields are not touched.
 */
export function valueAndGrad<A extends unknown[]>(fn: (...args: A) => Tensor, opts: GradOptions = {}): (...args: A) => [Tensor, Tensor | Tensor[]] {
  const nums = argList(opts.argnums);
  return (...args: A) => {
    const inputs = args.slice() as unknown[];
    const wrt: Tensor[] = nums.map((i) => {
      const a = args[i];
      if (!(a instanceof Tensor)) throw new TypeError(`valueAndGrad: argument ${i} must be a Tensor to differentiate with respect to it`);
      const d = a.detach();
      d.requiresGrad = true;
      inputs[i] = d;
      return d;
    });
    const value = withGradMode(true, () => fn(...(inputs as A)));
    if (!(value instanceof Tensor)) throw new TypeError('valueAndGrad: the function must return a Tensor');
    const seed = seedGradient('valueAndGrad', value, undefined);
    const got = propagate(value, seed, { retainGraph: !!opts.createGraph, createGraph: !!opts.createGraph, wanted: wrt });
    seed.dispose();
    const grads = wrt.map((w) => got.get(w) ?? w.newZeros(w.shape));
    const out = opts.createGraph ? value : value.detach();
    return [out, typeof opts.argnums === 'object' ? grads : grads[0]!];
  };
}

/** Returns a function computing the gradient(s) of the scalar `fn` with respect to chosen arguments. */
export function grad<A extends unknown[]>(fn: (...args: A) => Tensor, opts: GradOptions = {}): (...args: A) => Tensor | Tensor[] {
  const vg = valueAndGrad(fn, opts);
  return (...args: A) => {
    const [v, g] = vg(...args);
    v.dispose();
    return g;
  };
}

/**
 * Gradients of `output` with respect to `inputs` (like torch.autograd.grad); with `createGraph` the
 * results can be differentiated again (gradient penalties, Hessian-vector products).
 */
export function gradients(output: Tensor, inputs: Tensor[], opts: { gradient?: Tensor; retainGraph?: boolean; createGraph?: boolean } = {}): Tensor[] {
  const seed = seedGradient('gradients', output, opts.gradient);
  const got = propagate(output, seed, { retainGraph: opts.retainGraph ?? !!opts.createGraph, createGraph: !!opts.createGraph, wanted: inputs });
  if (seed !== opts.gradient) seed.dispose();
  return inputs.map((x) => got.get(x) ?? x.mul(0));
}
