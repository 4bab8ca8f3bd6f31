/**
 * Trainers: one shape (`Trainer`: `trainStep`, a per-step history read back one step late, atomic
 * checkpoints with metadata, resume) for diffusion models, the 2D toy denoiser, the VAE (+ PatchGAN), GANs and classifiers.
 */
export { Trainer, NonFiniteLossError, optimizerState, restoreOptimizer, warmupCosine, type Precision, type TrainerState, type CheckpointFormat, type OptimizerMeta } from './trainer.js';
export { DiffusionTrainer, TRAIN_DEFAULTS, type TrainConfig } from './diffusion.js';
export { VAETrainer, VAE_TRAIN_DEFAULTS, VAE_METRICS, type VAETrainConfig } from './vae.js';
export { GANTrainer, GAN_TRAIN_DEFAULTS, GAN_CHECKPOINT_FORMAT, type GANTrainConfig, type GANPlayer } from './gan.js';
export { ClassifierTrainer, CLASSIFIER_CHECKPOINT_FORMAT, trainClassifier, trainMlp, trainLeNet, mlp, layoutOf, accuracy, type ClassifierOptions } from './classifier.js';
export { ToyTrainer, trainToy, toyProcess, TOY_CHECKPOINT_FORMAT, TOY_TRAIN_DEFAULTS, type ToyTrainConfig, type ToyTrainOptions } from './toy.js';
export * from './distill.js';
export { PixelCNNTrainer, PIXELCNN_TRAIN_DEFAULTS, evaluateNll, type PixelCNNTrainConfig, type NllReport } from './pixelcnn.js';
