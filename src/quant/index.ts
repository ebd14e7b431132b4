export {
  bitsProblem, checkBitsList, CODE_BITS, CODEBOOK_BITS, FULL_PRECISION_BITS, NAIVE_BITS, SUPPORTED_BITS, within, type BitRange,
} from './bits.js';
export { gridBits, quantRange, type QuantRange, type Signedness } from './range.js';
export { roundSte, truncSte, gradScale } from './ste.js';
export {
  codebookCode, dequantize, fakeQuantize, fakeQuantizeUnfused, integerFormProblem, uniformCodes, useFakeQuantizeKernel,
  type FakeQuantizeKernel, type IntegerForm, type Quantizer,
} from './quantizer.js';
export { Delay, InitFlags, QuantizerBase } from './core.js';
export {
  affineFakeQuantize, affineParams, EmaRange, LearnedStep, QAT_EMA_DECAY, stepCount, TensorRange, Threshold, UniformQuantizer,
  type AffineParams, type Granularity, type Grid, type LearnedStepOptions, type ScaleSource, type ThresholdMode, type ZeroPoint,
} from './uniform.js';
export { LsqQuantizer, STEP_MIN, STEP_MAX, type LsqOptions } from './lsq.js';
export {
  granularityOf, MinMaxInputQuantizer, MinMaxWeightQuantizer, type InputRangeMode, type MinMaxInputOptions, type MinMaxWeightOptions,
} from './minmax.js';
export {
  NuqQuantizer, initialPoints, NUQ_DEFAULTS, NUQ_INITS, NUQ_MAX_BITS, NUQ_OPT_MODES,
  type NuqBuckets, type NuqInit, type NuqOptions, type NuqOptMode,
} from './nuq.js';
export { QatQuantizer, type QatOptions } from './qat.js';
export { DorefaQuantizer } from './dorefa.js';
export { NaiveQuantizer } from './naive.js';
export {
  quantizerBitsProblem, QUANT_TYPES, QUANTIZER_CONVENTIONS, QUANTIZER_NAMES,
  type QuantizerConvention, type QuantizerName, type QuantType,
} from './conventions.js';
