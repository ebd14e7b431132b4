import * as tf from '@tensorflow/tfjs';
import type { IntegerForm } from './integer-form.js';
import type { QuantRange } from './range.js';
import { roundSte } from './ste.js';

export { codebookCode, dequantize, integerFormProblem, type IntegerForm } from './integer-form.js';

/**
 * What every quantizer offers the training code. The quantizers are built from parts
 * (core.ts, uniform.ts): a bit-width range, a scale source (learned, observed or calibrated) with
 * its zero point and granularity, a rounding, and the wrappers every quantizer gets — the
 * full-precision bypass and the delay.
 */
export interface Quantizer {
  /** e.g. 'lsq' */
  readonly kind: string;
  /** bit-widths this quantizer holds parameters for */
  readonly bitsList: readonly number[];
  /** bit-width used by `quantize`; FULL_PRECISION_BITS (32) or more passes the tensor through */
  activeBits: number;
  /** training step quantization starts at (NNI's quant_start_step; 0 or 1: the first) */
  startStep: number;
  /** whether quantization has started (the start step reached) */
  readonly started: boolean;
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
   * dequantize(integerForm(x)) equals quantize(x, false). A query: it changes no state. Undefined
   * where there is none (full precision, before the start step, a quantizer that cannot say).
   */
  integerForm(x: tf.Tensor): IntegerForm | undefined;
}

/** A faster fakeQuantize for the tensors it `applies` to: same values, same gradients. */
export interface FakeQuantizeKernel {
  applies(x: tf.Tensor, step: tf.Tensor): boolean;
  run(x: tf.Tensor, step: tf.Tensor, lo: number, hi: number): tf.Tensor;
}

let kernel: FakeQuantizeKernel | undefined;

/**
 * Sets the kernel fakeQuantize prefers (undefined: tfjs ops alone). The training backends set
 * theirs when they start (train/backend/index.ts initBackend: one fused kernel on wasm and cpu),
 * so quant/ needs nothing of train/.
 */
export function useFakeQuantizeKernel(k: FakeQuantizeKernel | undefined): void {
  kernel = k;
}

/**
 * Uniform fake quantization with a given step: round(clamp(x/step, lo, hi))·step, with a
 * straight-through round. Gradients (LSQ): d/dx = 1 inside the range, 0 outside; d/dstep =
 * round(x/step) − x/step inside, lo or hi outside. `step` broadcasts against x (per-tensor scalar or
 * per-channel vector over the last axis). Through the kernel set by useFakeQuantizeKernel where it
 * applies, else fakeQuantizeUnfused.
 */
export function fakeQuantize(x: tf.Tensor, step: tf.Tensor, range: QuantRange): tf.Tensor {
  if (kernel?.applies(x, step)) return kernel.run(x, step, range.lo, range.hi);
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
