import * as tf from '@tensorflow/tfjs';

/**
 * Straight-through estimators: operations whose forward value and backward gradient differ.
 * Written with tf.customGrad because tfjs has no stop-gradient op.
 */

/** round(x) forward, identity gradient. */
export const roundSte = tf.customGrad((x) => ({
  value: tf.round(x as tf.Tensor),
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
