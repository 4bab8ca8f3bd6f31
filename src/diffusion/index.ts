/** Diffusion: noise processes, sampling paths, parameterizations, samplers and the Gaussian-mixture oracle (exported as `k.diffusion`). */
export { DiscreteVP, VPSDE, SubVPSDE, VESDE, EDM, RectifiedFlow, betas, alphasCumprod, rescaleZeroTerminalSnr, type NoiseProcess, type TimePoint, type BetaSchedule, type DiscreteVPOptions } from './process.js';
export { spacedTimesteps, karrasSigmas, exponentialSigmas, discreteSigmas, timestepForSigma, samplingPath, type Spacing, type PathOptions } from './timesteps.js';
export { toDenoised, target, type Prediction, type Denoised } from './predict.js';
export { sample, ddimInvert, classifierFreeGuidance, dynamicThreshold, type Model, type SamplerName, type SampleOptions, type SampleResult } from './samplers.js';
export { GaussianMixture, energyDistance } from './oracle.js';
export { coefficients, addNoise, sampleTimes, minSnrWeight, edmWeight, dropLabels, type TimeSampling } from './training.js';
export { logLikelihood, bitsPerDim, type LikelihoodOptions } from './likelihood.js';
export { ToyDenoiser, trainToy, type ToyTrainOptions } from './toy.js';
export { DiffusionTrainer, objectiveSetup, readMeta, TRAIN_DEFAULTS, type Objective, type Denoiser, type TrainConfig } from './trainer.js';
export { generate, defaultSampler, type GenerateOptions } from './generate.js';
export { featureStats, frechetDistance, inceptionScore, symmetricEigen } from './metrics.js';
export { buildDenoiser, loadDenoiser, type DenoiserKind } from './checkpoint.js';
