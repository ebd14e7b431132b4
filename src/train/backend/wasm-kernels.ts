/**
 * Convolution gradient kernels for tfjs's wasm backend, built from its fast forward ops.
 *
 * Stock tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter and no depthwise gradients (training
 * throws), and its Conv2DBackpropInput is a scalar loop. Here every gradient is one forward
 * convolution (XNNPACK) plus cheap reshapes:
 *  - input gradient: convolve the padded dy with the flipped, in/out-swapped filter; at stride > 1,
 *    one such convolution per phase of the input (the filter taps that reach it), not dy spread
 *    with zeros;
 *  - filter gradient: convolve x with dy as the filter, batch and channel axes swapped, the forward
 *    stride becoming the dilation;
 *  - depthwise filter gradient: the same with a depthwise convolution, (sample, channel) pairs as
 *    channels, then a sum over samples.
 * It also replaces the stock MaxPoolGrad, which is wrong for windows whose maximum is <= 0, and the
 * stock StridedSlice and Identity, which are slow.
 * Only NHWC with dilation 1 reaches these kernels (tfjs's gradients reject dilated convolutions).
 */
import * as tf from '@tensorflow/tfjs';
import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelConfig,
  MaxPoolGradAttrs,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  Tensor4D,
  TensorInfo,
} from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { UserError } from '../../util/errors.js';
import { scatterStrided, stridedRead } from './gradients.js';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/** Kernels run from tfjs ops, which pass Tensors (typed as TensorInfo). */
function tensor4d(inputs: NamedTensorInfoMap, name: string): Tensor4D {
  const value = inputs[name];
  if (!(value instanceof tf.Tensor) || value.rank !== 4) {
    throw new Error(`mpq wasm kernel: input '${name}' must be a rank-4 tf.Tensor`);
  }
  return value as Tensor4D;
}

function requireNHWC(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new UserError(`${kernel} on the wasm backend supports data format NHWC only, got ${dataFormat}`);
  }
}

function requireNoDilation(kernel: string, dilations: number | [number, number] | undefined): void {
  const [dh, dw] = typeof dilations === 'number' ? [dilations, dilations] : (dilations ?? [1, 1]);
  if (dh !== 1 || dw !== 1) {
    throw new UserError(`${kernel} on the wasm backend supports dilation 1 only, got dilations [${dh}, ${dw}]`);
  }
}

function convInfo(
  inShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: { strides: number | [number, number]; pad: Conv2DBackpropInputAttrs['pad']; dimRoundingMode?: 'floor' | 'round' | 'ceil' },
  depthwise: boolean,
): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, depthwise, 'channelsLast');
}

/**
 * dy spread back onto the input grid: stride-dilated (zeros between rows/columns) and cropped where
 * the forward padding exceeded the filter, plus the padding that makes a stride-1 'full'
 * convolution with the filter size return exactly the input's height and width.
 */
function spreadGradient(dy: Tensor4D, info: Conv2DInfo): { spread: Tensor4D; padding: ExplicitPadding } {
  const { batchSize, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, inHeight, inWidth } = info;
  const channels = dy.shape[3];
  let spread = dy;
  if (strideHeight > 1 || strideWidth > 1) {
    // Interleave zeros: [n, oh, 1, ow, 1, c] padded to [n, oh, sh, ow, sw, c] reads as [n, oh*sh, ow*sw, c].
    spread = dy
      .reshape([batchSize, outHeight, 1, outWidth, 1, channels])
      .pad([[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]])
      .reshape([batchSize, outHeight * strideHeight, outWidth * strideWidth, channels]);
  }
  const top = filterHeight - 1 - info.padInfo.top;
  const left = filterWidth - 1 - info.padInfo.left;
  const bottom = inHeight + filterHeight - 1 - top - spread.shape[1];
  const right = inWidth + filterWidth - 1 - left - spread.shape[2];
  // Negative padding: those dy rows/columns (or interleaved zeros) only ever saw forward padding.
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    spread = spread.slice(
      [0, cropTop, cropLeft, 0],
      [batchSize, spread.shape[1] - cropTop - Math.max(0, -bottom), spread.shape[2] - cropLeft - Math.max(0, -right), channels],
    );
  }
  const padding: ExplicitPadding = [
    [0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0],
  ];
  return { spread, padding };
}

/**
 * Padding of x for the filter-gradient convolution: the forward top/left padding, and bottom/right
 * padding such that the last filter tap lines up with the last output row. Where the forward pass
 * never reached x's last rows/columns, the convolution yields extra taps: `extra` says how many.
 */
function filterGradientPadding(info: Conv2DInfo): { padding: ExplicitPadding; extra: [number, number] } {
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, inHeight, inWidth } = info;
  const { top, left } = info.padInfo;
  const bottom = (outHeight - 1) * strideHeight + filterHeight - inHeight - top;
  const right = (outWidth - 1) * strideWidth + filterWidth - inWidth - left;
  return {
    padding: [[0, 0], [top, Math.max(0, bottom)], [left, Math.max(0, right)], [0, 0]],
    extra: [Math.max(0, -bottom), Math.max(0, -right)],
  };
}

/**
 * filter rotated 180 degrees in its spatial axes. tfjs's wasm Reverse is a slow generic loop
 * (~1.5 ms even for a 3x3x64x64 filter), so gather the kh*kw taps in reverse order instead.
 */
function rotate180(filter: Tensor4D): Tensor4D {
  const [kh, kw, cin, cout] = filter.shape;
  const taps = kh * kw;
  const reversedTaps = tf.tensor1d(Array.from({ length: taps }, (_, i) => taps - 1 - i), 'int32');
  return tf.gather(filter.reshape([taps, cin, cout]), reversedTaps).reshape([kh, kw, cin, cout]);
}

function conv2dBackpropInput({ inputs, attrs }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) {
  const dy = tensor4d(inputs, 'dy');
  const filter = tensor4d(inputs, 'filter');
  const { dataFormat, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
  requireNHWC('Conv2DBackpropInput', dataFormat);
  const info = convInfo(inputShape, filter.shape, attrs as unknown as Conv2DBackpropInputAttrs, false);
  if (info.strideHeight > 1 || info.strideWidth > 1) return polyphaseBackpropInput(dy, filter, info);
  return tf.tidy(() => {
    const { spread, padding } = spreadGradient(dy, info);
    // [kh, kw, in, out] -> rotated 180 degrees, [kh, kw, out, in].
    const adjointFilter = rotate180(filter).transpose([0, 1, 3, 2]) as Tensor4D;
    return tf.conv2d(spread, adjointFilter, 1, padding);
  });
}

/**
 * One phase of a strided convolution's input gradient along one axis: the input rows t = s·m + p
 * (m < count) are reached only by the filter taps first, first + s, … (`taps` of them), from dy
 * rows m + offset − k (k: the tap's index). So that phase is a stride-1 correlation of dy with
 * those taps reversed, padded by `before` (negative: crop) so that it yields `count` rows.
 */
interface Phase {
  count: number;
  /** the taps, in the order the correlation uses them */
  taps: number[];
  before: number;
  after: number;
}

function phases(inSize: number, outSize: number, filterSize: number, stride: number, padBefore: number): Phase[] {
  return Array.from({ length: stride }, (_, p) => {
    const first = (p + padBefore) % stride;
    const count = Math.ceil((inSize - p) / stride);
    const taps = [];
    for (let i = first; i < filterSize; i += stride) taps.unshift(i);
    const offset = (p + padBefore - first) / stride;
    const before = taps.length - 1 - offset;
    return { count, taps, before, after: count - outSize - before + taps.length - 1 };
  });
}

/**
 * Input gradient of a strided convolution by phases: each (row phase, column phase) of the input
 * is one stride-1 convolution of dy with the filter taps that reach it, so no multiplication
 * touches the zeros that spreading dy by the stride would insert (3/4 of the work at stride 2).
 */
function polyphaseBackpropInput(dy: Tensor4D, filter: Tensor4D, info: Conv2DInfo): Tensor4D {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const rows = phases(inHeight, outHeight, info.filterHeight, info.strideHeight, info.padInfo.top);
  const cols = phases(inWidth, outWidth, info.filterWidth, info.strideWidth, info.padInfo.left);
  // every phase padded to the first's size (the others may be one row/column shorter)
  const [height, width] = [rows[0].count, cols[0].count];
  return tf.tidy(() => {
    // [kh, kw, in, out] -> [kh, kw, out, in]
    const adjoint = filter.transpose([0, 1, 3, 2]) as Tensor4D;
    const phase = (row: Phase, col: Phase): Tensor4D => {
      if (row.count <= 0 || col.count <= 0 || row.taps.length === 0 || col.taps.length === 0) {
        return tf.zeros([batchSize, height, width, inChannels]);
      }
      const taps = tf.gather(tf.gather(adjoint, tf.tensor1d(row.taps, 'int32'), 0), tf.tensor1d(col.taps, 'int32'), 1) as Tensor4D;
      // negative padding: crop those dy rows/columns instead
      const top = Math.max(0, -row.before);
      const left = Math.max(0, -col.before);
      const cropped = dy.slice([0, top, left, 0], [batchSize, outHeight - top - Math.max(0, -row.after), outWidth - left - Math.max(0, -col.after), -1]);
      const padding: ExplicitPadding = [
        [0, 0], [Math.max(0, row.before), Math.max(0, row.after) + height - row.count],
        [Math.max(0, col.before), Math.max(0, col.after) + width - col.count], [0, 0],
      ];
      return tf.conv2d(cropped, taps, 1, padding);
    };
    // interleave: columns of each row phase, then the row phases ([n, h, w, s, c] reads as [n, h, w·s, c])
    const rowPhases = rows.map((row) => tf.stack(cols.map((col) => phase(row, col)), 3).reshape([batchSize, height, width * cols.length, inChannels]));
    const full = tf.stack(rowPhases, 2).reshape([batchSize, height * rows.length, width * cols.length, inChannels]) as Tensor4D;
    return full.shape[1] === inHeight && full.shape[2] === inWidth ? full : full.slice([0, 0, 0, 0], [batchSize, inHeight, inWidth, inChannels]);
  });
}

function conv2dBackpropFilter({ inputs, attrs }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) {
  const x = tensor4d(inputs, 'x');
  const dy = tensor4d(inputs, 'dy');
  const { dataFormat, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  requireNHWC('Conv2DBackpropFilter', dataFormat);
  const info = convInfo(x.shape, filterShape, attrs as unknown as Conv2DBackpropFilterAttrs, false);
  return tf.tidy(() => {
    const { padding, extra } = filterGradientPadding(info);
    // dW[i, j, ci, co] = sum_{n, oh, ow} x[n, oh*s + i, ow*s + j, ci] * dy[n, oh, ow, co]: a convolution
    // over (oh, ow) with "batch" ci, "channels" n and dy as an (oh x ow) filter dilated by the stride.
    const channelsAsBatch = x.transpose([3, 1, 2, 0]) as Tensor4D;
    const dyAsFilter = dy.transpose([1, 2, 0, 3]) as Tensor4D;
    const dilations: [number, number] = [info.strideHeight, info.strideWidth];
    let grad = tf.conv2d(channelsAsBatch, dyAsFilter, 1, padding, 'NHWC', dilations);
    // Cropping the (small) result is cheaper than cropping x.
    if (extra[0] > 0 || extra[1] > 0) grad = grad.slice([0, 0, 0, 0], [-1, info.filterHeight, info.filterWidth, -1]);
    return grad.transpose([1, 2, 0, 3]);
  });
}

function depthwiseBackpropInput({ inputs, attrs }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) {
  const dy = tensor4d(inputs, 'dy');
  const filter = tensor4d(inputs, 'filter');
  const typed = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  requireNoDilation('DepthwiseConv2dNativeBackpropInput', typed.dilations);
  const info = convInfo(typed.inputShape, filter.shape, typed, true);
  const [, , channels, multiplier] = filter.shape;
  return tf.tidy(() => {
    const { spread, padding } = spreadGradient(dy, info);
    const rotated = rotate180(filter);
    if (multiplier === 1) return tf.depthwiseConv2d(spread, rotated, 1, padding);
    // Output channel c*m + q came from input channel c through filter[:, :, c, q]: sum over q.
    const [n, h, w] = spread.shape;
    const byMultiplier = spread.reshape([n, h, w, channels, multiplier]);
    const terms: tf.Tensor4D[] = [];
    for (let q = 0; q < multiplier; q++) {
      const dyPart = byMultiplier.slice([0, 0, 0, 0, q], [n, h, w, channels, 1]).reshape([n, h, w, channels]) as Tensor4D;
      const filterPart = rotated.slice([0, 0, 0, q], [-1, -1, -1, 1]) as Tensor4D;
      terms.push(tf.depthwiseConv2d(dyPart, filterPart, 1, padding));
    }
    return tf.addN(terms);
  });
}

function depthwiseBackpropFilter({ inputs, attrs }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) {
  const x = tensor4d(inputs, 'x');
  const dy = tensor4d(inputs, 'dy');
  const typed = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  requireNoDilation('DepthwiseConv2dNativeBackpropFilter', typed.dilations);
  const info = convInfo(x.shape, typed.filterShape, typed, true);
  const { batchSize, inHeight, inWidth, outHeight, outWidth, filterHeight, filterWidth } = info;
  const [, , channels, multiplier] = typed.filterShape;
  return tf.tidy(() => {
    const { padding, extra } = filterGradientPadding(info);
    // dW[i, j, c, q] = sum_{n, oh, ow} x[n, oh*s + i, ow*s + j, c] * dy[n, oh, ow, c*m + q]: as for
    // conv2dBackpropFilter, but channels stay independent: one depthwise convolution over (oh, ow)
    // with (n, c) as channels and dy as an (oh x ow) filter dilated by the stride, then a sum over n.
    // (Per-tap strided slices were ~10x slower at stride 2: wasm's StridedSlice is a generic loop.)
    const channelsOfSamples = x.transpose([1, 2, 0, 3]).reshape([1, inHeight, inWidth, batchSize * channels]) as Tensor4D;
    const dyAsFilter = dy.transpose([1, 2, 0, 3]).reshape([outHeight, outWidth, batchSize * channels, multiplier]) as Tensor4D;
    const dilations: [number, number] = [info.strideHeight, info.strideWidth];
    let grad = tf.depthwiseConv2d(channelsOfSamples, dyAsFilter, 1, padding, 'NHWC', dilations);
    if (extra[0] > 0 || extra[1] > 0) grad = grad.slice([0, 0, 0, 0], [-1, filterHeight, filterWidth, -1]);
    return grad.reshape([filterHeight, filterWidth, batchSize, channels, multiplier]).sum(2);
  });
}

/**
 * Replaces tfjs-backend-wasm 4.22's MaxPoolGrad, which starts its running maximum at
 * numeric_limits<float>::min() (the smallest positive float), so windows whose maximum is <= 0 (all
 * zeros after a ReLU, for one) send their gradient to the tensor's first element. As on the cpu
 * backend, each window's gradient goes to its first maximal element in row-major order.
 */
function maxPoolGrad({ inputs, attrs }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) {
  const dy = tensor4d(inputs, 'dy');
  const x = tensor4d(inputs, 'input');
  const y = tensor4d(inputs, 'output');
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(x.shape, filterSize, strides, 1, pad, dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const height = Math.max(inHeight + top, (outHeight - 1) * strideHeight + filterHeight);
  const width = Math.max(inWidth + left, (outWidth - 1) * strideWidth + filterWidth);
  return tf.tidy(() => {
    const padded = x.pad([[0, 0], [top, height - inHeight - top], [left, width - inWidth - left], [0, 0]], -Infinity);
    let unclaimed: Tensor4D = dy;
    const zeros = tf.zerosLike(dy);
    const contributions: Tensor4D[] = [];
    for (let i = 0; i < filterHeight; i++) {
      for (let j = 0; j < filterWidth; j++) {
        const seen = tf.stridedSlice(
          padded,
          [0, i, j, 0],
          [batchSize, i + (outHeight - 1) * strideHeight + 1, j + (outWidth - 1) * strideWidth + 1, inChannels],
          [1, strideHeight, strideWidth, 1],
        );
        const isMax = tf.equal(seen, y);
        const tap = scatterStrided(tf.where(isMax, unclaimed, zeros), [0, i, j, 0], [1, strideHeight, strideWidth, 1], [batchSize, height, width, inChannels]);
        contributions.push(tap as Tensor4D);
        unclaimed = tf.where(isMax, zeros, unclaimed);
      }
    }
    return tf.addN(contributions).slice([0, top, left, 0], x.shape);
  });
}

/**
 * Replaces tfjs-backend-wasm 4.22's StridedSlice, a generic C++ loop (~40 ms to subsample a
 * 32x32x32x16 activation by 2, ResNet-20's option-A shortcut): a JS loop over the heap. String and
 * scalar tensors go to the stock kernel.
 */
function stridedSlice(args: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown }) {
  const x = args.inputs.x as TensorInfo;
  if (x.dtype === 'string' || x.shape.length === 0) return stockStridedSlice!.kernelFunc(args as Parameters<KernelFunc>[0]);
  const { begin, strides, counts, outShape } = stridedRead(x.shape, args.attrs ?? {});
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(outShape, x.dtype);
  if (tf.util.sizeFromShape(outShape) > 0) copyStrided(backend.typedArrayFromHeap(x), x.shape, begin, strides, counts, backend.typedArrayFromHeap(out));
  return out;
}

/** dst[k0, k1, ...] = src[begin + k·strides] over the output shape `counts`, row-major. */
function copyStrided(
  src: tf.TypedArray, shape: readonly number[], begin: readonly number[], strides: readonly number[], counts: readonly number[], dst: tf.TypedArray,
): void {
  const rank = shape.length;
  const srcStrides = tf.util.computeStrides([...shape]).concat(1);
  const last = rank - 1;
  const runLength = counts[last];
  const step = strides[last];
  let offset = 0;
  for (let j = 0; j < rank; j++) offset += begin[j] * srcStrides[j];
  const index = new Array<number>(rank).fill(0);
  let written = 0;
  const total = dst.length;
  while (written < total) {
    // a subarray per run costs more than copying a short run element by element
    if (step === 1 && runLength >= 256) dst.set(src.subarray(offset, offset + runLength), written);
    else for (let k = 0; k < runLength; k++) dst[written + k] = src[offset + k * step];
    written += runLength;
    // odometer over the outer axes
    for (let j = last - 1; j >= 0; j--) {
      offset += strides[j] * srcStrides[j];
      if (++index[j] < counts[j]) break;
      offset -= counts[j] * strides[j] * srcStrides[j];
      index[j] = 0;
    }
  }
}

/**
 * Identity sharing x's memory (as the cpu backend's does) instead of copying it: tensors are never
 * written after they are made, and customGrad and the gradient tape issue ~700 identities per
 * ResNet-20 training step (3% of it, copying).
 */
function identity(args: { inputs: NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  if (x.dtype === 'string') return stockIdentity!.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let stockStridedSlice: KernelConfig | undefined;
let stockIdentity: KernelConfig | undefined;

function wasmKernel(kernelName: string, kernelFunc: (args: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap }) => tf.Tensor): KernelConfig {
  return { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}

const wasmTrainingKernels: KernelConfig[] = [
  wasmKernel(tf.Conv2DBackpropInput, conv2dBackpropInput),
  wasmKernel(tf.Conv2DBackpropFilter, conv2dBackpropFilter),
  wasmKernel(tf.DepthwiseConv2dNativeBackpropInput, depthwiseBackpropInput),
  wasmKernel(tf.DepthwiseConv2dNativeBackpropFilter, depthwiseBackpropFilter),
  wasmKernel(tf.MaxPoolGrad, maxPoolGrad),
];

/**
 * Registers the training kernels for 'wasm', replacing tfjs's slow Conv2DBackpropInput,
 * StridedSlice and Identity and its wrong MaxPoolGrad. Idempotent.
 */
export function registerWasmTrainingKernels(): void {
  // the stock kernel stays for string tensors; its setup (binding the C++ function) must still run
  stockStridedSlice ??= tf.getKernel(tf.StridedSlice, 'wasm');
  stockIdentity ??= tf.getKernel(tf.Identity, 'wasm');
  const configs: KernelConfig[] = [...wasmTrainingKernels, {
    kernelName: tf.StridedSlice, backendName: 'wasm', kernelFunc: stridedSlice as unknown as KernelFunc, setupFunc: stockStridedSlice?.setupFunc,
  }, { kernelName: tf.Identity, backendName: 'wasm', kernelFunc: identity as unknown as KernelFunc }];
  for (const config of configs) {
    if (tf.getKernel(config.kernelName, 'wasm') !== undefined) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}
