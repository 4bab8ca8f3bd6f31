/** Registers every built-in primitive (importing this module is what makes the registry complete). */
import './elementwise.js';
import './movement.js';
import './reduce.js';
import './leaf.js';

export { opDef, elementwiseDef, hasOp, allOps, type OpDef, type OpKind, type Vjp, type MovementDef } from './registry.js';
export { defineElementwise, BASE_HELPERS, erf64, type ElementwiseSpec, type FragmentContext } from './elementwise.js';
export { factoredView, type ReduceArg } from './reduce.js';
export type { MovementArgs, MovementOp } from './movement.js';
export type { RngArg } from './leaf.js';

import { allOps as registered } from './registry.js';
/** Names of the built-in primitives (user ops registered later with `defineOp` are not among them). */
export const BUILTIN_OPS: ReadonlySet<string> = new Set([...registered()].map((d) => d.name));
