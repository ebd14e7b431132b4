import * as tf from '@tensorflow/tfjs';

/**
 * Straight-through estimators: operations whose forward value and backward gradient differ — the
 * roundings of the quantizers (half to even, truncation) and LSQ's gradient scale. Written with
 * tf.customGrad because tfjs has no stop-gradient op.
 */

/** round(x) forward, identity gradient. */
export const roundSte = tf.customGrad((x) => ({
  value: tf.round(x as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (x: tf.Tensor) => tf.Tensor;

/** trunc(x) forward (towards zero, as a cast to int8: NNI's naive quantizer), identity gradient. */
export const truncSte = tf.customGrad((x) => ({
  value: tf.tidy(() => {
    const t = x as tf.Tensor;
    return tf.where(tf.greaterEqual(t, 0), tf.floor(t), tf.ceil(t));
  }),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (x: tf.Tensor) => tf.Tensor;

/**
 * x forward, gradient multiplied by `scale` (LSQ's grad_scale: keeps a step size's update on the
 * same order as the weights' however many elements it quantizes).
 */
export function gradScale(x: tf.Tensor, scale: number): tf.Tensor {
  const scaled = tf.customGrad((input) => ({
    value: tf.clone(input as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, scale),
  })) as (t: tf.Tensor) => tf.Tensor;
  return scaled(x);
}
