/** Ready-made networks: the MNIST classifier of the metrics, and the diffusion backbones. */
export { LeNet, type LeNetConfig } from './lenet.js';
export { UNet, ResBlock, AttentionBlock, UNET_DEFAULTS, type UNetConfig } from './unet.js';
export { DiT, DiTBlock, DIT_DEFAULTS, sinusoidalPositions2d, type DiTConfig } from './dit.js';
