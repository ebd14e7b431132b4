import * as tf from '@tensorflow/tfjs';
import { CODE_BITS } from './bits.js';
import { QuantizerBase } from './core.js';
import { codebookCode, type IntegerForm } from './integer-form.js';
import { roundSte } from './ste.js';

/** Below this max |tanh(w)| the tensor is taken as all zeros (avoids 0/0). */
const TINY = 1e-12;

/**
 * DoReFa-Net weight quantization (Zhou et al. 2016; NNI's DoReFaQuantizer):
 *   t = tanh(w),  n = t / (2·max|t|) + 0.5 ∈ [0, 1],  w_q = 2·round(n·k)/k − 1,  k = 2^b − 1.
 * Values lie on k+1 evenly spaced levels in [−1, 1]. The round is straight-through; the gradient
 * flows through tanh and the max normalisation as in the paper. Weights only, as NNI's. Its own
 * arithmetic (the tanh normalisation) on the shared scaffolding.
 */
export class DorefaQuantizer extends QuantizerBase {
  readonly kind = 'dorefa';

  constructor(bitsList: readonly number[]) {
    super(bitsList, CODE_BITS, 'DoReFa');
  }

  protected quantizeAt(x: tf.Tensor, bits: number): tf.Tensor {
    return tf.tidy(() => tf.sub(tf.mul(roundSte(this.levels(x, bits)), 2 / (2 ** bits - 1)), 1));
  }

  /** Codebook form: code c ∈ [0, k] stands for 2c/k − 1 (stored as its two's-complement pattern). */
  protected override codesAt(x: tf.Tensor, bits: number): IntegerForm {
    const k = 2 ** bits - 1;
    const codes = tf.tidy(() => tf.round(this.levels(x, bits)).dataSync());
    // in quantize's float32 arithmetic, c·(2/k) − 1, so that the codes dequantize to its values exactly
    const codebook = Float32Array.from({ length: k + 1 }, (_, c) => Math.fround(c * Math.fround(2 / k)) - 1);
    return { bits, q: Int32Array.from(codes, (c) => codebookCode(c, bits)), scales: new Float32Array(0), codebook };
  }

  /** n·k: the normalised weights on the integer grid's scale, before rounding. */
  private levels(x: tf.Tensor, bits: number): tf.Tensor {
    const t = tf.tanh(x);
    const maxAbs = tf.maximum(tf.max(tf.abs(t)), TINY);
    return tf.mul(tf.add(tf.div(t, tf.mul(maxAbs, 2)), 0.5), 2 ** bits - 1);
  }
}
