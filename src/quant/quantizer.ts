import * as tf from '@tensorflow/tfjs';
import { fusedFakeQuantize, fusedFakeQuantizeApplies } from '../train/backend/fake-quant.js';
import { roundSte } from './ste.js';
import type { QuantRange } from './range.js';

/**
 * What every quantizer offers the training code. Quantizers are built from small parts (an integer
 * range from bit-width and signedness, a step-size source, a rounding with its gradient estimator,
 * a clamp); LSQ is one implementation, others (min-max/EMA QAT, DoReFa, fixed-step naive,
 * learnable codebooks) plug in behind the same interface.
 */
export interface Quantizer {
  /** e.g. 'lsq' */
  readonly kind: string;
  /** bit-widths this quantizer holds parameters for */
  readonly bitsList: readonly number[];
  /** bit-width used by `quantize`; FULL_PRECISION_BITS (32) or more passes the tensor through */
  activeBits: number;
  /**
   * Fake-quantize x at the active bit-width: values on the quantization grid, float dtype,
   * differentiable w.r.t. x and the quantizer's parameters. `training` lets data-dependent
   * quantizers initialise or update their statistics.
   */
  quantize(x: tf.Tensor, training: boolean): tf.Tensor;
  /** parameters the optimizer updates */
  trainableVariables(): tf.Variable[];
  /** every piece of state a checkpoint must keep, by a name relative to the quantizer */
  namedState(): Map<string, tf.Variable>;
  /**
   * The integer form of x at the active bit-width (what a packed model stores), such that
   * dequantize(integerForm(x)) equals quantize(x, false). Absent for quantizers that cannot say.
   */
  integerForm?(x: tf.Tensor): IntegerForm;
}

/**
 * Integer codes of a quantized tensor. Uniform: value = q · scales[k], k the channel (last axis)
 * when there is one scale per channel, else 0. Non-uniform: value = codebook[g · 2^bits +
 * (q mod 2^bits)], g the element's group (index / groupSize; one group when groupSize is absent).
 */
export interface IntegerForm {
  bits: number;
  /** one code per element of x, in x's (row-major) layout */
  q: Int32Array;
  scales: Float32Array;
  codebook?: Float32Array;
  groupSize?: number;
}

/** Values of an integer form (the inverse of `integerForm`), in the tensor's layout. */
export function dequantize(form: IntegerForm): Float32Array {
  const out = new Float32Array(form.q.length);
  const levels = 2 ** form.bits;
  if (form.codebook) {
    const groupSize = form.groupSize ?? form.q.length;
    for (let i = 0; i < out.length; i++) {
      const code = ((form.q[i]! % levels) + levels) % levels;
      out[i] = form.codebook[Math.floor(i / groupSize) * levels + code]!;
    }
    return out;
  }
  const channels = form.scales.length;
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(form.q[i]! * form.scales[channels === 1 ? 0 : i % channels]!);
  return out;
}

/**
 * Uniform fake quantization with a given step: round(clamp(x/step, lo, hi))·step, with a
 * straight-through round. Gradients (LSQ): d/dx = 1 inside the range, 0 outside; d/dstep =
 * round(x/step) − x/step inside, lo or hi outside. `step` broadcasts against x (per-tensor scalar or
 * per-channel vector over the last axis). On wasm and cpu this is one fused kernel
 * (train/backend/fake-quant.ts); elsewhere, and for other step shapes, fakeQuantizeUnfused.
 */
export function fakeQuantize(x: tf.Tensor, step: tf.Tensor, range: QuantRange): tf.Tensor {
  if (fusedFakeQuantizeApplies(x, step)) return fusedFakeQuantize(x, step, range.lo, range.hi);
  return fakeQuantizeUnfused(x, step, range);
}

/** The integer codes fakeQuantize puts on its grid: round(clamp(x/step, lo, hi)), x's layout. */
export function uniformCodes(x: tf.Tensor, step: tf.Tensor, range: QuantRange): Int32Array {
  return Int32Array.from(tf.tidy(() => tf.round(tf.clipByValue(tf.div(x, step), range.lo, range.hi))).dataSync());
}

/** fakeQuantize from tfjs ops (div, clip, straight-through round, mul) and their gradients. */
export function fakeQuantizeUnfused(x: tf.Tensor, step: tf.Tensor, range: QuantRange): tf.Tensor {
  return tf.tidy(() => {
    const levels = tf.clipByValue(tf.div(x, step), range.lo, range.hi);
    return tf.mul(roundSte(levels), step);
  });
}
