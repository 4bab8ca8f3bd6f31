/** Gradients as functions and their numerical check, over the tape of the tensor layer. */
export { grad, valueAndGrad, gradients, type GradOptions } from './grad.js';
export { gradcheck, type GradcheckInput, type GradcheckResult } from './gradcheck.js';
export { checkpoint } from './checkpoint.js';
