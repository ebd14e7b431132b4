/**
 * Fold an inference-mode batch norm into the conv / dense layer before it, as the seed's
 * `merge_bn` does before computing weight scales (ncnn requires it too): per output channel o,
 *   s = γ_o / √(σ²_o + ε),  w'[…, o] = w[…, o] · s,  b'_o = (b_o − μ_o) · s + β_o.
 * Layouts are tfjs, output channel last (see `outputChannels`); for a depthwise kernel
 * `[kh, kw, inC, multiplier]` the batch norm runs over the inC · multiplier outputs.
 */
import { outputChannels, type KernelLayout } from '../calibrate/ranges.js';

export interface BatchNormParams {
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  movingMean: ArrayLike<number>;
  movingVariance: ArrayLike<number>;
  /** tfjs / Keras default 1e-3, PyTorch 1e-5: pass the layer's own */
  epsilon: number;
}

export interface FoldedLayer {
  weights: Float32Array;
  bias: Float32Array;
}

export function foldBatchNorm(
  weights: Float32Array,
  layout: KernelLayout,
  bias: ArrayLike<number> | undefined,
  bn: BatchNormParams,
): FoldedLayer {
  const channels = outputChannels(layout, weights.length);
  const vectors: [string, ArrayLike<number> | undefined][] = [
    ['bias', bias],
    ['gamma', bn.gamma],
    ['beta', bn.beta],
    ['moving mean', bn.movingMean],
    ['moving variance', bn.movingVariance],
  ];
  for (const [name, v] of vectors) {
    if (v !== undefined && v.length !== channels) {
      throw new RangeError(`batch-norm fold: ${name} has ${v.length} entries for ${channels} output channels`);
    }
  }
  if (!(bn.epsilon >= 0)) throw new RangeError(`batch-norm fold: epsilon must be >= 0, got ${bn.epsilon}`);

  // computed in float64, rounded once when stored
  const scale = new Float64Array(channels);
  const folded: FoldedLayer = { weights: new Float32Array(weights.length), bias: new Float32Array(channels) };
  for (let o = 0; o < channels; o++) {
    scale[o] = bn.gamma[o]! / Math.sqrt(bn.movingVariance[o]! + bn.epsilon);
    folded.bias[o] = ((bias?.[o] ?? 0) - bn.movingMean[o]!) * scale[o]! + bn.beta[o]!;
  }
  for (let i = 0; i < weights.length; i++) folded.weights[i] = weights[i]! * scale[i % channels]!;
  return folded;
}
