/** Ready-made networks: the MNIST classifier of the metrics, the diffusion backbones, the VAE, the GAN pieces, the style-based generator and the PixelCNN. */
export { LeNet, loadLeNet, type LeNetConfig } from './lenet.js';
export { UNet, ResBlock, AttentionBlock, UNET_DEFAULTS, type UNetConfig, type UNetTextConfig } from './unet.js';
export { DiT, DiTBlock, DIT_DEFAULTS, sinusoidalPositions2d, type DiTConfig } from './dit.js';
export {
  VAE, VAEEncoder, VAEDecoder, VAEResBlock, VAE_DEFAULTS, VAE_CHECKPOINT_FORMAT, LatentCodec,
  reparameterize, vaeLoss, interpolateLatents, latentNormalization, vaeFromTensors, loadVAE,
  type VAEConfig, type VAEOutput, type VAELossTerms, type VAELossOptions, type Reconstruction,
} from './vae.js';
export {
  PatchDiscriminator, PATCH_DISCRIMINATOR_DEFAULTS, MLPGenerator, MLPDiscriminator, GAN_CHECKPOINT_FORMAT,
  discriminatorLoss, generatorLoss, adaptiveWeight, r1Penalty, startAt,
  type GanLoss, type PatchDiscriminatorConfig, type AdaptiveWeightOptions,
} from './gan.js';
export {
  PixelCNN, GatedPixelBlock, MaskedConv2d, PIXELCNN_DEFAULTS, PIXELCNN_CHECKPOINT_FORMAT, convMask, gate, pixelNll,
  pixelcnnFromTensors, loadPixelCNN, type PixelCNNConfig, type MaskType,
} from './pixelcnn.js';
export { samplePixelCNN, type PixelCNNSampleOptions } from './pixelcnn-sample.js';
export {
  TextEncoder, TextEncoderBlock, CrossAttention, CrossTransformerBlock, SpatialTransformer, TEXT_ENCODER_DEFAULTS, TEXT_PAD_ID, TEXT_BOS_ID, unconditionalTokens,
  tokenMask, maskedMean, maskedSum, encodeText, WordPool, type TextEncoderConfig, type TextConditioning,
} from './text.js';
export {
  StyleGenerator, MappingNetwork, StyleLayer, NoiseInjection, STYLE_GENERATOR_DEFAULTS, STYLEGAN_META_KEY, loadStyleGenerator,
  type StyleGeneratorConfig, type NoiseMode, type GenerateOptions as StyleGenerateOptions,
} from './stylegan.js';
