/** Ready-made networks: the MNIST classifier of the metrics, the diffusion backbones, the VAE and the GAN pieces. */
export { LeNet, type LeNetConfig } from './lenet.js';
export { UNet, ResBlock, AttentionBlock, UNET_DEFAULTS, type UNetConfig } from './unet.js';
export { DiT, DiTBlock, DIT_DEFAULTS, sinusoidalPositions2d, type DiTConfig } from './dit.js';
export {
  VAE, VAEEncoder, VAEDecoder, VAEResBlock, VAE_DEFAULTS, VAETrainer, VAE_TRAIN_DEFAULTS, VAE_METRICS, LatentCodec,
  reparameterize, vaeLoss, interpolateLatents, latentNormalization, vaeFromTensors, loadVAE, readVAEMeta,
  type VAEConfig, type VAEOutput, type VAELossTerms, type VAELossOptions, type VAETrainConfig, type Reconstruction,
} from './vae.js';
export {
  PatchDiscriminator, PATCH_DISCRIMINATOR_DEFAULTS, MLPGenerator, MLPDiscriminator, GANTrainer, GAN_TRAIN_DEFAULTS,
  discriminatorLoss, generatorLoss, adaptiveWeight, r1Penalty, startAt,
  type GanLoss, type PatchDiscriminatorConfig, type AdaptiveWeightOptions, type GANTrainConfig,
} from './gan.js';
