/**
 * Training ops written for speed on tfjs's wasm backend (correct on every backend).
 *
 * tf.batchNorm's gradient tiles mean/variance/scale up to the full activation shape; on wasm
 * that made batch norm the slowest part of a CNN training step. batchNormTrain uses the
 * closed-form batch-norm gradient instead. On wasm, per-channel reductions and broadcasting
 * arithmetic are slow generic loops, so both are routed through XNNPACK operators: reductions as
 * average pooling (sumPerChannel), per-channel affine maps as 1x1 depthwise convolutions
 * (scaleShiftPerChannel). Same-shape elementwise ops are fast and are used as they are.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, NamedAttrMap, Tensor, Tensor1D } from '@tensorflow/tfjs';
import {
  BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, GROUPED_CONV, GROUPED_CONV_BACKPROP_FILTER, GROUPED_CONV_BACKPROP_INPUT, nativeKernelsActive,
  type BatchNormAttrs, type GroupedConvAttrs,
} from './native.js';

export interface BatchNormTrainResult<T extends Tensor> {
  /** normalised, scaled and shifted x; differentiable w.r.t. x, gamma and beta */
  y: T;
  /** per-channel batch mean (no gradient), for the running average */
  mean: Tensor1D;
  /** per-channel biased batch variance (no gradient), for the running average */
  variance: Tensor1D;
}

/** Largest pooling window sumPerChannel uses; a divisor of the row count, so x needs no padding. */
const MAX_POOL_WINDOW = 1024;

/**
 * Sum over every axis but the last (N, H, W of an NHWC tensor). tfjs's wasm Sum first transposes
 * the reduced axes innermost (a full copy) and a matMul against ones repacks x as weights on every
 * call; XNNPACK's average pooling reads x once. View x as [a, b, 1, C] (b divides the row count),
 * average-pool windows of b rows, then sum the a partial sums.
 */
export function sumPerChannel(x: Tensor): Tensor1D {
  const channels = x.shape[x.rank - 1];
  const rows = x.size / channels;
  let window = Math.min(rows, MAX_POOL_WINDOW);
  while (rows % window !== 0) window--;
  return tf.tidy(() => {
    const pooled = tf.avgPool(x.reshape([rows / window, window, 1, channels]) as tf.Tensor4D, [window, 1], 1, 'valid');
    return pooled.reshape([rows / window, channels]).sum(0).mul(window) as Tensor1D;
  });
}

/**
 * x * scale + shift with per-channel (last-axis) scale and optional shift. tfjs-wasm's broadcasting
 * binary ops take a slow generic path (x.mul(scale).add(shift) costs ~5x a same-shape add); this is
 * one XNNPACK 1x1 depthwise convolution with bias over x viewed as [1, 1, rows, C]. Meant for
 * forward passes and custom gradients: its own gradient is that of a depthwise convolution.
 */
export function scaleShiftPerChannel<T extends Tensor>(x: T, scale: Tensor1D, shift?: Tensor1D): T {
  const channels = x.shape[x.rank - 1];
  return tf.tidy(() => {
    const result = tf.fused.depthwiseConv2d({
      x: x.reshape([1, 1, x.size / channels, channels]) as tf.Tensor4D,
      filter: scale.reshape([1, 1, channels, 1]) as tf.Tensor4D,
      strides: 1,
      pad: 'valid',
      bias: shift,
    });
    return result.reshape(x.shape) as T;
  });
}

/**
 * Training-mode batch normalisation over all axes but the last (channels-last), as in
 * torch.nn.BatchNorm2d.train(): y = gamma * (x - mean) / sqrt(variance + epsilon) + beta with the
 * batch's mean and biased variance. The caller disposes the returned mean/variance (or lets an
 * enclosing tf.tidy do it). With the native kernels, one oneDNN kernel each way.
 */
export function batchNormTrain<T extends Tensor>(x: T, gamma: Tensor1D, beta: Tensor1D, epsilon = 1e-5): BatchNormTrainResult<T> {
  const channels = x.shape[x.rank - 1];
  if (gamma.size !== channels || beta.size !== channels) {
    throw new Error(`batchNormTrain: gamma/beta have ${gamma.size}/${beta.size} values for ${channels} channels`);
  }
  if (nativeKernelsActive() && x.dtype === 'float32') {
    if (tf.getGradient(BATCH_NORM_TRAIN) === undefined) tf.registerGradient(batchNormTrainGradient);
    const attrs: BatchNormAttrs = { epsilon };
    const [y, mean, variance] = tf.engine().runKernel(BATCH_NORM_TRAIN, { x, gamma, beta }, attrs as unknown as NamedAttrMap) as Tensor[];
    return { y: y as T, mean: mean as Tensor1D, variance: variance as Tensor1D };
  }
  const count = x.size / channels;
  // Statistics leave the custom-gradient function kept (its forward runs inside a tidy) and are
  // re-homed below into the caller's scope.
  let keptMean: Tensor1D | undefined;
  let keptVariance: Tensor1D | undefined;
  const normalise = tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, scale, shift, save] = args as [T, Tensor1D, Tensor1D, tf.GradSaveFunc];
    const mean = sumPerChannel(xIn).div(count) as Tensor1D;
    const centred = scaleShiftPerChannel(xIn, tf.onesLike(mean), mean.neg() as Tensor1D);
    const variance = sumPerChannel(centred.square()).div(count) as Tensor1D;
    const invStd = tf.rsqrt(variance.add(epsilon)) as Tensor1D;
    const gain = scale.mul(invStd) as Tensor1D;
    const value = scaleShiftPerChannel(centred, gain, shift);
    keptMean = tf.keep(mean);
    keptVariance = tf.keep(variance);
    save([centred, invStd, gain]);
    return {
      value,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [centredSaved, invStdSaved, gainSaved] = saved as [T, Tensor1D, Tensor1D];
        // With xhat = (x - mean) * invStd: dbeta = sum(dy), dgamma = sum(dy * xhat) and
        // dx = gain * (dy - dbeta / M - xhat * dgamma / M), arranged so only dy and x - mean are full size.
        const dBeta = sumPerChannel(dy);
        const dGamma = sumPerChannel(dy.mul(centredSaved)).mul(invStdSaved) as Tensor1D;
        const centredCoef = gainSaved.mul(invStdSaved).mul(dGamma).div(-count) as Tensor1D;
        const offset = gainSaved.mul(dBeta).div(-count) as Tensor1D;
        const dx = scaleShiftPerChannel(dy, gainSaved).add(scaleShiftPerChannel(centredSaved, centredCoef, offset));
        return [dx, dGamma, dBeta];
      },
    };
  });
  const y = normalise(x, gamma, beta) as T;
  const mean = (keptMean as Tensor1D).clone();
  const variance = (keptVariance as Tensor1D).clone();
  keptMean?.dispose();
  keptVariance?.dispose();
  return { y, mean, variance };
}

/**
 * The native batch norm's gradient: dx, dgamma and dbeta from one kernel. It runs here, not in the
 * returned functions: the tape runs each of those in its own tidy, which would dispose the others.
 */
const batchNormTrainGradient: GradConfig = {
  kernelName: BATCH_NORM_TRAIN,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, gamma, mean, variance] = saved;
    const dy = (dys as Tensor[])[0];
    const [dx, dGamma, dBeta] = tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD, { x, dy, gamma, mean, variance }, attrs) as Tensor[];
    return { x: () => dx, gamma: () => dGamma, beta: () => dBeta };
  },
};

export interface GroupedConvOptions {
  strides?: number | [number, number];
  /** as tf.conv2d: 'same', 'valid', a number, or explicit [[0, 0], [top, bottom], [left, right], [0, 0]] */
  pad: GroupedConvAttrs['pad'];
  dilations?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined): [number, number] => (v === undefined ? [1, 1] : typeof v === 'number' ? [v, v] : v);

/**
 * A 2-D convolution with groups and dilation (PyTorch's Conv2d), NHWC, the filter
 * [kh, kw, in/groups, out] with output channels group-major (group g's are g·out/groups onwards).
 * With the native kernels, one oneDNN convolution each way, dilated gradients included; else
 * tf.conv2d per group and a concat (tfjs has no gradient for dilated convolutions).
 */
export function groupedConv2d(x: tf.Tensor4D, filter: tf.Tensor4D, o: GroupedConvOptions): tf.Tensor4D {
  const groups = o.groups ?? 1;
  const [strides, dilations] = [pair(o.strides), pair(o.dilations)];
  const [inChannels, [, , groupChannels, outChannels]] = [x.shape[3], filter.shape];
  if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0 || groupChannels !== inChannels / groups) {
    throw new Error(`groupedConv2d: ${inChannels} input and ${outChannels} output channels in ${groups} groups need a filter [kh, kw, ${inChannels / groups}, out], got [${filter.shape}]`);
  }
  if (nativeKernelsActive() && x.dtype === 'float32' && (groups > 1 || dilations.some((d) => d > 1))) {
    if (tf.getGradient(GROUPED_CONV) === undefined) tf.registerGradient(groupedConvGradient);
    const attrs: GroupedConvAttrs = { strides, pad: o.pad, dilations, groups };
    return tf.engine().runKernel(GROUPED_CONV, { x, filter }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
  }
  const conv = (input: tf.Tensor4D, weights: tf.Tensor4D) => tf.conv2d(input, weights, strides, o.pad as 'same', 'NHWC', dilations) as tf.Tensor4D;
  if (groups === 1) return conv(x, filter);
  return tf.tidy(() => {
    const filters = tf.split(filter, groups, 3) as tf.Tensor4D[];
    return tf.concat((tf.split(x, groups, 3) as tf.Tensor4D[]).map((part, g) => conv(part, filters[g])), 3);
  });
}

const groupedConvGradient: GradConfig = {
  kernelName: GROUPED_CONV,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, filter] = saved;
    return {
      x: () => tf.engine().runKernel(GROUPED_CONV_BACKPROP_INPUT, { dy: dy as Tensor, filter }, { ...attrs, inputShape: x.shape }) as Tensor,
      filter: () => tf.engine().runKernel(GROUPED_CONV_BACKPROP_FILTER, { x, dy: dy as Tensor }, { ...attrs, filterShape: filter.shape }) as Tensor,
    };
  },
};
