import * as tf from '@tensorflow/tfjs';
import { NAIVE_BITS } from './bits.js';
import { QuantizerBase } from './core.js';
import type { IntegerForm } from './integer-form.js';
import { truncSte } from './ste.js';

export { NAIVE_BITS };
const NAIVE_MAX_CODE = 2 ** (NAIVE_BITS - 1) - 1;

/**
 * NNI's NaiveQuantizer: weights to 8 bits with no configuration. The scale is the running
 * maximum over calls of max|w|/127, and w/scale is cast to int8, which truncates towards zero.
 * The gradient passes straight through. Weights only: it has no activation quantization. Its own
 * arithmetic (no clamp, truncation) on the shared scaffolding.
 */
export class NaiveQuantizer extends QuantizerBase {
  readonly kind = 'naive';
  /** running max of max|w|/127 (0 until the first call); kept in checkpoints */
  private readonly scale = tf.variable(tf.scalar(0), false);

  constructor(bitsList: readonly number[] = [NAIVE_BITS]) {
    super(bitsList, { min: NAIVE_BITS, max: NAIVE_BITS }, 'the naive quantizer');
  }

  /** The scale in use (after the last call). */
  currentScale(): number {
    return this.scale.dataSync()[0]!;
  }

  protected quantizeAt(x: tf.Tensor): tf.Tensor {
    const scale = this.scaleFor(x);
    tf.tidy(() => this.scale.assign(tf.scalar(scale)));
    if (scale === 0) return x;
    return tf.tidy(() => tf.mul(truncSte(tf.div(x, scale)), scale));
  }

  /** The codes quantize(x) would give, at the scale it would raise to; the running scale stays. */
  protected override codesAt(x: tf.Tensor): IntegerForm {
    const scale = this.scaleFor(x);
    const q = tf.tidy(() => (scale === 0 ? tf.zerosLike(x) : truncSte(tf.div(x, scale))).dataSync());
    return { bits: NAIVE_BITS, q: Int32Array.from(q), scales: Float32Array.of(scale) };
  }

  override namedState(): Map<string, tf.Variable> {
    return new Map([...super.namedState(), ['scale', this.scale]]);
  }

  /** The running scale after seeing x: max(current, max|x|/127), as float32. */
  private scaleFor(x: tf.Tensor): number {
    const maxAbs = tf.tidy(() => tf.max(tf.abs(x)).dataSync()[0]!);
    return Math.fround(Math.max(this.currentScale(), maxAbs / NAIVE_MAX_CODE));
  }
}
