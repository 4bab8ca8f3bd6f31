/** Optimizers, clipping, schedules and parameter averaging (exported as `k.optim`). */
export { Optimizer, SGD, Adam, AdamW, clipGradNorm, squaredSum, LRScheduler, warmup, cosine, stepDecay, EMA, type Schedule, type SGDOptions, type AdamOptions } from './optim.js';
export { GradScaler, type GradScalerOptions } from './grad-scaler.js';
