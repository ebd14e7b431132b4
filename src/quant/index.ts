export { FULL_PRECISION_BITS, quantRange, type QuantRange, type Signedness } from './range.js';
export { roundSte, gradScale } from './ste.js';
export { dequantize, fakeQuantize, type IntegerForm, type Quantizer } from './quantizer.js';
export { LsqQuantizer, STEP_MIN, STEP_MAX, type LsqOptions } from './lsq.js';
