import type { RangeGranularity } from '../calibrate/ranges.js';
import type * as tf from '@tensorflow/tfjs';
import { gridBits } from './range.js';
import { TensorRange, Threshold, UniformQuantizer, type Granularity, type ThresholdMode } from './uniform.js';

/**
 * Post-training min-max linear quantizers, as the MXNet simulated-quantization tool (seed 003)
 * does it: no learned parameters, ranges read off the tensor (weights) or off the data (inputs).
 *
 * Weights: symmetric, step = max|w| / (2^(b−1) − 1) over the tensor, each group of output
 * channels, or each output channel. Inputs: one-sided (unsigned, after ReLU) step = T / (2^b − 1)
 * on [0, T], or signed symmetric step = T / (2^(b−1) − 1) on [−T, T], with the threshold T either
 * the max |x| of each batch (online) or a calibrated constant (EMA of batch maxima, or KL).
 */

/** The simulate tool's granularity flags as the quantizer's one parameter. */
export function granularityOf(granularity: RangeGranularity, groupSize?: number): Granularity {
  if (granularity === 'layer') return { per: 'tensor' };
  if (granularity === 'channel') return { per: 'channel' };
  return { per: 'group', size: groupSize ?? NaN };
}

export interface MinMaxWeightOptions {
  bitsList: readonly number[];
  granularity: RangeGranularity;
  /** weight shape, output channel last (tfjs layouts) */
  shape: readonly number[];
  /** output channels per range when granularity is 'group' */
  groupSize?: number;
}

/** Min-max weight quantizer: the uniform quantizer with the range observed from the weight itself (no variables). */
export class MinMaxWeightQuantizer extends UniformQuantizer {
  declare readonly source: TensorRange;

  constructor(readonly options: MinMaxWeightOptions) {
    super('minmax', options.bitsList, new TensorRange({ granularity: granularityOf(options.granularity, options.groupSize), zeroPoint: 'symmetric' }), gridBits('symmetric'));
  }

  /**
   * Steps at the active bit-width: one (layer granularity) or one per output channel (a group's
   * step repeated over its channels), as float32. An all-zero range gets step 1 (its codes are 0).
   */
  steps(x: tf.Tensor): Float32Array {
    return this.source.steps(x, this.activeBits);
  }
}

/** How an input quantizer gets its threshold. */
export type InputRangeMode = ThresholdMode;

export interface MinMaxInputOptions {
  bitsList: readonly number[];
  /** signed symmetric grid on [−T, T]; else one-sided [0, T] */
  signed: boolean;
  mode: InputRangeMode;
}

/**
 * Min-max input (activation) quantizer: the uniform quantizer with a threshold source. `observe`,
 * when set, turns it into a calibration probe: the input passes through unquantized and its values
 * are handed to the callback.
 */
export class MinMaxInputQuantizer extends UniformQuantizer {
  declare readonly source: Threshold;
  observe?: (values: Float32Array) => void;

  constructor(readonly options: MinMaxInputOptions) {
    const signedness = options.signed ? 'symmetric' : 'unsigned';
    super('minmax', options.bitsList, new Threshold({ mode: options.mode, signedness }), gridBits(signedness));
  }

  /** Set the calibrated threshold (a positive finite number). */
  calibrate(threshold: number): void {
    this.source.calibrate(threshold);
  }

  get calibratedThreshold(): number {
    return this.source.calibrated;
  }

  protected override quantizeAt(x: tf.Tensor, bits: number, training: boolean): tf.Tensor {
    if (!this.observe) return super.quantizeAt(x, bits, training);
    this.observe(x.dataSync() as Float32Array);
    return x;
  }
}
