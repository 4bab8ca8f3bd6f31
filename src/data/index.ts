/** Datasets and batching (exported as `k.data`). */
export { loadMnist, batches, StepBatches, permutation, parseIdx, clearMnistCache, type MnistSplit, type BatchOptions } from './mnist.js';
export { toy2d, toy2dDistance, toy2dNear, type Toy2D } from './toy2d.js';
export { pixelsOf, PixelBatches, evalPixelBatches, TEST_BINARIZATION_SEED, type Binarization, type PixelFormat } from './binarize.js';
export {
  CaptionBatches, PHRASINGS, HELD_OUT_COMBOS, SIZE_FACTORS, captionText, isHeldOut, allCaptions, trainCaptions, evalCaptions, evalPrompts, drawCaption, renderAttributes, renderCaptionedDigits, captionedSplit, attributeScore,
  type CaptionSpec, type AttributeScore, type CaptionBatch, type Phrasing, type SizeAttribute, type StrokeAttribute,
} from './captions.js';
export { WordTokenizer, splitWords, type TokenizerSpec } from './tokenizer.js';
export {
  boundingBox, rescaleDigit, erode, dilate, skeletonize, strokeWidth, relativeStrokeWidth, thinStroke, boldStroke, measureDigit,
  INK_THRESHOLD, MNIST_DIGIT_SIZE, SIZE_SPLIT, STROKE_SPLIT, type BoundingBox, type Footprint, type StrokeOptions,
} from './digit-attributes.js';
