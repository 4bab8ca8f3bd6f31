/**
 * Diffusion (exported as `k.diffusion`): noise processes, sampling paths, parameterizations, samplers, training
 * objectives, the Gaussian-mixture oracle, checkpoint loading, latent codecs and sample metrics.
 */
export { DiscreteVP, VPSDE, SubVPSDE, VESDE, EDM, RectifiedFlow, betas, alphasCumprod, rescaleZeroTerminalSnr, type NoiseProcess, type TimePoint, type BetaSchedule, type DiscreteVPOptions } from './process.js';
export { spacedTimesteps, karrasSigmas, exponentialSigmas, discreteSigmas, timestepForSigma, samplingPath, type Spacing, type PathOptions } from './timesteps.js';
export { toDenoised, target, type Prediction, type Denoised } from './predict.js';
export { sample, ddimInvert, classifierFreeGuidance, dynamicThreshold, SAMPLER_NAMES, samplersFor, samplerMismatch, type Model, type SamplerName, type SampleOptions, type SampleResult } from './samplers.js';
export { GaussianMixture, energyDistance } from './oracle.js';
export { coefficients, addNoise, sampleTimes, drawTimes, minSnrWeight, edmWeight, dropLabels, dropCaptions, objectiveSetup, denoisingLoss, type TimeSampling, type Objective, type Denoiser, type DenoisingLossOptions } from './training.js';
export { logLikelihood, bitsPerDim, type LikelihoodOptions } from './likelihood.js';
export { ToyDenoiser, TOY_DENOISER_DEFAULTS, type ToyDenoiserConfig } from './toy.js';
export { generate, generateImages, defaultSampler, defaultSampling, type Sampling, type GenerateOptions } from './generate.js';
export { featureStats, frechetDistance, inceptionScore, symmetricEigen } from './metrics.js';
export { buildDenoiser, loadDenoiser, DIFFUSION_CHECKPOINT_FORMAT, type DenoiserKind, type LatentSpec, type StudentSpec } from './checkpoint.js';
export { latentCodec } from './latent.js';
export { classify, featureSet, evaluate, evaluateSamples, type FeatureSet, type EvalResult, type EvaluateOptions, type SampleScores, type EvaluateSamplesOptions } from './evaluate.js';
export { evaluatePrompts, type PromptScores, type PromptAccuracy, type EvaluatePromptsOptions } from './evaluate-prompts.js';
export * from './distill/index.js';
