/**
 * Distillation of diffusion models into few-step and one-step students: progressive distillation,
 * consistency distillation and training, reflow, and guidance distillation (targets, losses and samplers;
 * their trainers are in `src/train/distill.ts`), and how a distilled student samples.
 */
export { affine, batchPoints, coefShape, convertCoefficients, ddimCoefficients, netModel, perSample, studentModel, type BatchModel, type BatchPoints, type DataBatch, type DistillNet, type NetForward } from './common.js';
export { progressiveLoss, progressivePaths, progressiveTarget, type ProgressiveSetup, type StepPoints, type Teacher } from './progressive.js';
export { checkConsistencyOptions, consistencyBoundary, consistencyCoefficients, consistencyGrid, consistencyLoss, consistencyOutput, consistencySample, ictGridSize, teacherStep, type ConsistencyBoundary, type ConsistencyForm, type ConsistencyOptions, type ConsistencySampleOptions, type ConsistencySetup, type StepPair } from './consistency.js';
export { reflowCouples, reflowLoss, straightness, type ReflowCouplesOptions, type StraightnessOptions } from './reflow.js';
export { atScales, checkScaleRange, drawScales, guidanceLoss, guidanceTarget, guidedModel, guidedTeacher, scaledTeacher, type GuidanceOptions, type ScaleRange, type ScaledTeacher, type GuidanceTeacher, type GuidedNet, type GuidedPoint } from './guidance.js';
export { consistencyTimes, describeStudent, studentSampling, studentSummary, type StudentSampling } from './sampling.js';
