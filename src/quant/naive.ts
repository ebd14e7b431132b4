import * as tf from '@tensorflow/tfjs';
import type { IntegerForm, Quantizer } from './quantizer.js';
import { checkBitsList, FULL_PRECISION_BITS, NAIVE_BITS } from './bits.js';

export { NAIVE_BITS };
const NAIVE_MAX_CODE = 2 ** (NAIVE_BITS - 1) - 1;

/** trunc(x) forward (towards zero, as a cast to int8), identity gradient. */
const truncSte = tf.customGrad((x) => ({
  value: tf.tidy(() => {
    const t = x as tf.Tensor;
    return tf.where(tf.greaterEqual(t, 0), tf.floor(t), tf.ceil(t));
  }),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (x: tf.Tensor) => tf.Tensor;

/**
 * NNI's NaiveQuantizer: weights to 8 bits with no configuration. The scale is the running
 * maximum over calls of max|w|/127, and w/scale is cast to int8, which truncates towards zero.
 * The gradient passes straight through. Weights only: it has no activation quantization.
 */
export class NaiveQuantizer implements Quantizer {
  readonly kind = 'naive';
  readonly bitsList: readonly number[];
  activeBits: number = FULL_PRECISION_BITS;
  /** running max of max|w|/127 (0 until the first call); kept in checkpoints */
  private readonly scale = tf.variable(tf.scalar(0), false);

  constructor(bitsList: readonly number[] = [NAIVE_BITS]) {
    checkBitsList(bitsList, { min: NAIVE_BITS, max: NAIVE_BITS }, 'the naive quantizer');
    this.bitsList = [...bitsList];
  }

  /** The scale in use (after the last call). */
  currentScale(): number {
    return this.scale.dataSync()[0]!;
  }

  quantize(x: tf.Tensor, _training: boolean): tf.Tensor {
    if (this.activeBits >= FULL_PRECISION_BITS) return x;
    const scale = this.updateScale(x);
    if (scale === 0) return x;
    return tf.tidy(() => tf.mul(truncSte(tf.div(x, scale)), scale));
  }

  integerForm(x: tf.Tensor): IntegerForm {
    const scale = this.updateScale(x);
    const q = tf.tidy(() => (scale === 0 ? tf.zerosLike(x) : truncSte(tf.div(x, scale))).dataSync());
    return { bits: NAIVE_BITS, q: Int32Array.from(q), scales: Float32Array.of(scale) };
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map([['scale', this.scale]]);
  }

  private updateScale(x: tf.Tensor): number {
    const maxAbs = tf.tidy(() => tf.max(tf.abs(x)).dataSync()[0]!);
    const scale = Math.max(this.currentScale(), maxAbs / NAIVE_MAX_CODE);
    tf.tidy(() => this.scale.assign(tf.scalar(scale)));
    return this.scale.dataSync()[0]!;
  }
}
