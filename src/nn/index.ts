/** Neural-network building blocks: modules, layers, initialization and functional ops. */
export { Module, Layer, Parameter, Sequential, ModuleList, type LoadOptions } from './module.js';
export { Linear, Embedding, Dropout, LayerNorm, ReLU, SiLU, Tanh, Sigmoid, GELU, LeakyReLU, Identity, Flatten } from './layers.js';
export * as init from './init.js';
export * as functional from './functional.js';
export { timestepEmbedding, fourierFeatures } from './embeddings.js';
export { setConvGradientChunkBytes, convGradientChunkBytes, conv1d, conv2d, convTranspose2d, avgPool2d, maxPool2d, adaptiveAvgPool2d, interpolate, pixelShuffle, pixelUnshuffle, type InterpolateOptions, type Conv1dOptions, type Conv2dOptions, type ConvTranspose2dOptions, type Pool2dOptions } from './conv.js';
export * from './models/index.js';
export { adaIN, AdaIN, groupNorm, rmsNorm, modulate, GroupNorm, RMSNorm, BatchNorm2d, Conv2d, ConvTranspose2d, scaledDotProductAttention, MultiheadAttention } from './norm-attention.js';
export { readCheckpointMeta, withPrefix, withoutPrefix } from './checkpoint.js';
