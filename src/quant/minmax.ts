import * as tf from '@tensorflow/tfjs';
import { minMaxRange, type RangeGranularity } from '../calibrate/ranges.js';
import { fakeQuantize, uniformCodes, type IntegerForm, type Quantizer } from './quantizer.js';
import { FULL_PRECISION_BITS } from './bits.js';
import { quantRange, type QuantRange } from './range.js';

/**
 * Post-training min-max linear quantizers, as the MXNet simulated-quantization tool (seed 003)
 * does it: no learned parameters, ranges read off the tensor (weights) or off the data (inputs).
 *
 * Weights: symmetric, step = max|w| / (2^(b−1) − 1) over the tensor, each group of output
 * channels, or each output channel. Inputs: one-sided (unsigned, after ReLU) step = T / (2^b − 1)
 * on [0, T], or signed symmetric step = T / (2^(b−1) − 1) on [−T, T], with the threshold T either
 * the max |x| of each batch (online) or a calibrated constant (EMA of batch maxima, or KL).
 */

/** Largest positive level of a symmetric signed b-bit grid, or of an unsigned one. */
function positiveLevels(bits: number, signed: boolean): number {
  return quantRange(bits, signed ? 'symmetric' : 'unsigned').hi;
}

export interface MinMaxWeightOptions {
  bitsList: readonly number[];
  granularity: RangeGranularity;
  /** weight shape, output channel last (tfjs layouts) */
  shape: readonly number[];
  /** output channels per range when granularity is 'group' */
  groupSize?: number;
}

/** Min-max weight quantizer; its state is the weight itself, so it has no variables. */
export class MinMaxWeightQuantizer implements Quantizer {
  readonly kind = 'minmax';
  readonly bitsList: readonly number[];
  activeBits: number = FULL_PRECISION_BITS;

  constructor(readonly options: MinMaxWeightOptions) {
    this.bitsList = [...options.bitsList];
  }

  /**
   * Steps at the active bit-width: one (layer granularity) or one per output channel (a group's
   * step repeated over its channels), as float32. An all-zero range gets step 1 (its codes are 0).
   */
  steps(x: tf.Tensor): Float32Array {
    const { min, max } = minMaxRange(x.dataSync() as Float32Array, this.options.granularity, this.options.shape, { groupSize: this.options.groupSize });
    const hi = positiveLevels(this.activeBits, true);
    const perRange = min.map((lo, r) => {
      const absMax = Math.max(-lo, max[r]!);
      return absMax === 0 ? 1 : absMax / hi;
    });
    if (this.options.granularity === 'layer') return perRange;
    const channels = this.options.shape[this.options.shape.length - 1]!;
    const perChannel = channels / perRange.length;
    return Float32Array.from({ length: channels }, (_, c) => perRange[Math.floor(c / perChannel)]!);
  }

  quantize(x: tf.Tensor, _training: boolean): tf.Tensor {
    if (this.activeBits >= FULL_PRECISION_BITS) return x;
    const steps = this.steps(x);
    return tf.tidy(() => fakeQuantize(x, this.stepTensor(steps), this.range()));
  }

  integerForm(x: tf.Tensor): IntegerForm {
    const steps = this.steps(x);
    const range = this.range();
    const step = this.stepTensor(steps);
    const q = uniformCodes(x, step, range);
    step.dispose();
    return { bits: this.activeBits, q, scales: steps };
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map();
  }

  private range(): QuantRange {
    return quantRange(this.activeBits, 'symmetric');
  }

  private stepTensor(steps: Float32Array): tf.Tensor {
    return this.options.granularity === 'layer' ? tf.scalar(steps[0]!) : tf.tensor1d(steps);
  }
}

/** How an input quantizer gets its threshold. */
export type InputRangeMode = 'online' | 'calibrated';

export interface MinMaxInputOptions {
  bitsList: readonly number[];
  /** signed symmetric grid on [−T, T]; else one-sided [0, T] */
  signed: boolean;
  mode: InputRangeMode;
}

/**
 * Min-max input (activation) quantizer. `observe`, when set, turns it into a calibration probe:
 * the input passes through unquantized and its values are handed to the callback.
 */
export class MinMaxInputQuantizer implements Quantizer {
  readonly kind = 'minmax';
  readonly bitsList: readonly number[];
  activeBits: number = FULL_PRECISION_BITS;
  observe?: (values: Float32Array) => void;
  /** the calibrated threshold T (mode 'calibrated'); 0 until calibrated */
  private readonly threshold = tf.variable(tf.scalar(0), false);

  constructor(readonly options: MinMaxInputOptions) {
    this.bitsList = [...options.bitsList];
  }

  /** Set the calibrated threshold (a positive finite number). */
  calibrate(threshold: number): void {
    if (!(threshold > 0) || !Number.isFinite(threshold)) throw new RangeError(`input threshold must be positive and finite, got ${threshold}`);
    this.threshold.assign(tf.scalar(threshold));
  }

  get calibratedThreshold(): number {
    return this.threshold.dataSync()[0]!;
  }

  quantize(x: tf.Tensor, _training: boolean): tf.Tensor {
    if (this.activeBits >= FULL_PRECISION_BITS) return x;
    if (this.observe) {
      this.observe(x.dataSync() as Float32Array);
      return x;
    }
    if (this.options.mode === 'calibrated' && !(this.calibratedThreshold > 0)) {
      throw new RangeError('calibrated input quantizer used before calibration');
    }
    const { signed } = this.options;
    const hi = positiveLevels(this.activeBits, signed);
    return tf.tidy(() => {
      const t = this.options.mode === 'online' ? tf.max(tf.abs(x)) : this.threshold;
      // an all-zero batch: any positive step quantizes it to zeros
      const step = tf.maximum(tf.div(t, hi), 1e-30);
      return fakeQuantize(x, step, quantRange(this.activeBits, signed ? 'symmetric' : 'unsigned'));
    });
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  /** The calibrated threshold, as `max` (meaningful in 'calibrated' mode). */
  namedState(): Map<string, tf.Variable> {
    return new Map([['max', this.threshold]]);
  }
}
