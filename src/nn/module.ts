/**
 * Modules: containers of parameters, buffers and submodules with PyTorch-style dotted names, so state
 * dicts interoperate with PyTorch/diffusers checkpoints (saved as safetensors).
 */
import { keep } from '../tensor/memory.js';
import type { DType } from '../tensor/dtype.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/index.js';
import { checkpoint } from '../autograd/index.js';

const KIND: Record<DType, 'float' | 'int' | 'bool'> = { f32: 'float', f16: 'float', i32: 'int', u32: 'int', bool: 'bool' };

/** Whether `loadStateDict` casts a value of dtype `from` into a tensor of dtype `to` (same kind, or to a float). */
function castable(from: DType, to: DType): boolean {
  return KIND[from] === KIND[to] || KIND[to] === 'float';
}

/** A trainable tensor owned by a module: requires grad and survives every scope. */
export class Parameter extends Tensor {
  constructor(value: Tensor) {
    super(value.node);
    this.requiresGrad = true;
    keep(this);
  }
}

/** Options of `loadStateDict`. */
export interface LoadOptions {
  /** Require exactly the module's keys (default true). */
  strict?: boolean;
}

/** Base class of layers and models. Subclasses assign parameters and submodules as properties. */
/**
 * `block.forward(...args)`, run through `checkpoint` when `checkpointed` (its activations are not kept for
 * backward but recomputed there): how models apply gradient checkpointing per block.
 */
export function blockForward<A extends unknown[]>(checkpointed: boolean, block: { forward(...args: A): Tensor }, ...args: A): Tensor {
  return checkpointed ? checkpoint((...a: A) => block.forward(...a), ...args) : block.forward(...args);
}

export class Module {
  /** Train mode (dropout active, batch statistics) vs eval mode. */
  training = true;
  private readonly _buffers = new Set<string>();

  /** Registers a non-trainable tensor saved in the state dict (e.g. running statistics). */
  registerBuffer(name: string, value: Tensor): Tensor {
    (this as unknown as Record<string, unknown>)[name] = keep(value);
    this._buffers.add(name);
    return value;
  }

  /** Direct submodules with their property names. */
  *namedChildren(): Generator<[string, Module]> {
    for (const [name, v] of Object.entries(this)) if (v instanceof Module) yield [name, v];
  }

  /** Direct submodules. */
  children(): Module[] {
    return [...this.namedChildren()].map(([, m]) => m);
  }

  /** This module and all submodules, with dotted names ('' for this one). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Every (name, parameter) pair, shared parameters under each of their names. */
  private *allParameters(prefix: string): Generator<[string, Parameter]> {
    for (const [name, v] of Object.entries(this)) if (v instanceof Parameter) yield [prefix ? `${prefix}.${name}` : name, v];
    for (const [name, m] of this.namedChildren()) yield* m.allParameters(prefix ? `${prefix}.${name}` : name);
  }

  /** Parameters with PyTorch-style dotted names (e.g. `layers.0.weight`); a shared parameter appears once. */
  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [n, p] of this.allParameters(prefix)) {
      if (seen.has(p)) continue;
      seen.add(p);
      yield [n, p];
    }
  }

  /** All parameters (depth first, in definition order). */
  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Buffers with dotted names. */
  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const name of this._buffers) {
      const v = (this as unknown as Record<string, unknown>)[name];
      if (v instanceof Tensor) yield [prefix ? `${prefix}.${name}` : name, v];
    }
    for (const [name, m] of this.namedChildren()) yield* m.namedBuffers(prefix ? `${prefix}.${name}` : name);
  }

  /** Sets train (default) or eval mode on this module and all submodules. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Eval mode. */
  eval(): this {
    return this.train(false);
  }

  /** Calls `fn` on every submodule (children first) and then on this module. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.children()) m.apply(fn);
    fn(this);
    return this;
  }

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.allParameters('')) out[n] = p;
    for (const [n, b] of this.namedBuffers()) out[n] = b;
    return out;
  }

  /**
   * Copies values from a state dict: every name, shape, dtype and device is checked before anything is
   * assigned, so a failed load leaves the module as it was. Dtypes are cast within a kind (f16 ↔ f32,
   * i32 ↔ u32) and from integers or bools to floats; a float into an integer or bool tensor (it would
   * truncate) is an error.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: LoadOptions = {}): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    // own properties only: a name such as `constructor` or `__proto__` is not "in" a plain object by inheritance
    const has = (o: object, k: string) => Object.hasOwn(o, k);
    const missing = Object.keys(own).filter((k) => !has(sd, k));
    const unexpected = Object.keys(sd).filter((k) => !has(own, k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(`loadStateDict: keys do not match${missing.length ? `; missing: ${missing.join(', ')}` : ''}${unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''}`);
    }
    const pairs: [Tensor, Tensor][] = [];
    const problems: string[] = [];
    for (const [name, t] of Object.entries(own)) {
      if (!has(sd, name)) continue;
      const v = sd[name];
      if (!(v instanceof Tensor)) {
        problems.push(`'${name}' is ${v === null ? 'null' : typeof v} in the state dict, not a Tensor`);
        continue;
      }
      if (v.disposed) problems.push(`'${name}' was disposed`);
      else if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) problems.push(`'${name}' has shape ${fmt(v.shape)} in the state dict but ${fmt(t.shape)} in the module`);
      else if (!castable(v.dtype, t.dtype)) problems.push(`'${name}' is ${v.dtype} in the state dict but ${t.dtype} in the module (a ${v.dtype} → ${t.dtype} cast would lose values)`);
      else if (v.device !== t.device) problems.push(`'${name}' is on ${v.device} in the state dict but on ${t.device} in the module`);
      else if (t.gradFn) problems.push(`'${name}' of the module is part of a gradient graph (non-leaf)`);
      else pairs.push([t, v]);
    }
    if (problems.length) throw new Error(`loadStateDict: ${problems.join('; ')} (nothing was loaded)`);
    for (const [t, v] of pairs) t.assign(v);
    return { missing, unexpected };
  }

  /** Clears the gradients of all parameters. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** A one-line-per-module summary. */
  toString(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const own = Object.entries(m).filter(([, v]) => v instanceof Parameter).map(([n, p]) => `${n}${fmt((p as Parameter).shape)}`);
      lines.push(`${'  '.repeat(name ? name.split('.').length : 0)}${name || '(root)'}: ${m.constructor.name}${own.length ? ` ${own.join(' ')}` : ''}`);
    }
    return lines.join('\n');
  }
}

/** A module whose forward maps one tensor to one tensor. */
export abstract class Layer extends Module {
  /** Applies the layer. */
  abstract forward(x: Tensor): Tensor;
}

/** Applies modules in order; children are named '0', '1', …. */
export class Sequential extends Layer {
  private readonly count: number;
  constructor(...layers: Layer[]) {
    super();
    layers.forEach((l, i) => ((this as unknown as Record<string, Layer>)[String(i)] = l));
    this.count = layers.length;
  }
  /** The i-th layer. */
  at(i: number): Layer {
    const l = (this as unknown as Record<string, Layer>)[String(i < 0 ? i + this.count : i)];
    if (!l) throw new RangeError(`Sequential.at: index ${i} out of range for ${this.count} layers`);
    return l;
  }
  get length(): number {
    return this.count;
  }
  forward(x: Tensor): Tensor {
    for (let i = 0; i < this.count; i++) x = this.at(i).forward(x);
    return x;
  }
}

/** A list of modules registered under '0', '1', …. */
export class ModuleList<M extends Module = Module> extends Module {
  private count = 0;
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.push(m);
  }
  /** Appends a module. */
  push(m: M): this {
    (this as unknown as Record<string, M>)[String(this.count++)] = m;
    return this;
  }
  /** The i-th module. */
  at(i: number): M {
    const m = (this as unknown as Record<string, M>)[String(i < 0 ? i + this.count : i)];
    if (!m) throw new RangeError(`ModuleList.at: index ${i} out of range for ${this.count} modules`);
    return m;
  }
  get length(): number {
    return this.count;
  }
  [Symbol.iterator](): Iterator<M> {
    let i = 0;
    return { next: () => (i < this.count ? { value: this.at(i++), done: false } : { value: undefined as unknown as M, done: true }) };
  }
}
