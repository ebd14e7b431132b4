/**
 * mpq's optional native kernels: a Node-API addon on oneDNN (native/, built at `npm ci` when a
 * compiler, cmake and libdnnl-dev are there) registered as kernels of tfjs's wasm backend. Tensors
 * stay in the wasm heap: each kernel allocates its output there as the wasm kernels do and hands
 * the addon the heap and byte offsets, so nothing is copied. Everything the addon does not run
 * stays on wasm.
 *
 * Native here: convolution forward, backward-data and backward-weights (depthwise included; grouped
 * and dilated ones, which tfjs lacks, through groupedConv2d in ops.ts), the
 * batched matrix product, training-mode batch norm (batchNormTrain, ops.ts), the fused LSQ fake
 * quantization (fake-quant.ts), same-shape add, subtract, multiply and ReLU, slices, strided
 * slices and constant padding, ReLU's and clipping's gradients, and the SGD-momentum update
 * (fusedSgdMomentum). They run on OpenMP threads
 * (setNativeThreads), where the wasm kernels (but XNNPACK's, in the threaded build) run on one.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  BatchMatMulAttrs, ClipByValueAttrs, GradConfig, PadV2Attrs, SliceAttrs, Tensor, Conv2DAttrs, Conv2DBackpropFilterAttrs, Conv2DBackpropInputAttrs, DepthwiseConv2dNativeAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs, DepthwiseConv2dNativeBackpropInputAttrs, KernelConfig, KernelFunc, NamedAttrMap,
  NamedTensorInfoMap, TensorInfo,
} from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { stridedRead } from './gradients.js';
import { FAKE_QUANTIZE, FAKE_QUANTIZE_GRAD_STEP, FAKE_QUANTIZE_GRAD_X, registerFakeQuantizeKernels, type FakeQuantizeAttrs } from './fake-quant.js';

/** The addon's functions (native/src/*.cc). Offsets are byte offsets into `heap`. */
export interface NativeAddon {
  version(): { onednn: string; cpuRuntime: string };
  setThreads(threads: number): void;
  getThreads(): number;
  /** kind 0 forward, 1 backward-data, 2 backward-weights; geometry as convGeometry; bias −1: none */
  conv(kind: number, heap: Uint8Array, geometry: Int32Array, x: number, w: number, y: number, bias: number): void;
  convImplementation(kind: number, geometry: Int32Array): string;
  /** dims: [batchA, batchB, m, k, n, transposeA, transposeB] */
  matmul(heap: Uint8Array, a: number, b: number, out: number, dims: Int32Array): void;
  batchNormForward(heap: Uint8Array, nhwc: Int32Array, epsilon: number, x: number, gamma: number, beta: number, y: number, mean: number, variance: number): void;
  batchNormBackward(
    heap: Uint8Array, nhwc: Int32Array, epsilon: number, x: number, dy: number, gamma: number, mean: number, variance: number,
    dx: number, dgamma: number, dbeta: number): void;
  fakeQuantize(heap: Uint8Array, n: number, channels: number, lo: number, hi: number, steps: number, x: number, out: number): void;
  fakeQuantizeGradX(heap: Uint8Array, n: number, channels: number, lo: number, hi: number, steps: number, x: number, dy: number, dx: number): void;
  fakeQuantizeGradStep(heap: Uint8Array, n: number, channels: number, lo: number, hi: number, steps: number, x: number, dy: number, out: number): void;
  /** op 0 add, 1 subtract, 2 multiply; same-shape operands */
  binary(heap: Uint8Array, op: number, n: number, a: number, b: number, out: number): void;
  relu(heap: Uint8Array, n: number, x: number, y: number): void;
  reluGrad(heap: Uint8Array, n: number, x: number, dy: number, dx: number): void;
  clipGrad(heap: Uint8Array, n: number, x: number, dy: number, dx: number, lo: number, hi: number): void;
  /** element strides; a box of `counts` from src to dst */
  copyBox(heap: Uint8Array, counts: Int32Array, src: number, srcStrides: Int32Array, dst: number, dstStrides: Int32Array): void;
  fill(heap: Uint8Array, n: number, dst: number, value: number): void;
  sgdMomentum(heap: Uint8Array, n: number, w: number, v: number, g: number, newW: number, newV: number, lr: number, momentum: number, weightDecay: number): void;
}

const PACKAGE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const ADDON_PATH = `${PACKAGE_ROOT}native/build/Release/mpq_dnnl.node`;
/** Written by native/build.mjs at install: whether the addon was built, and why not. */
const STATUS_PATH = `${PACKAGE_ROOT}native/build/status.json`;

export type NativeLoad = { addon: NativeAddon; reason?: undefined } | { addon?: undefined; reason: string };

let loaded: NativeLoad | undefined;

/** Why the build left no addon, from its status file (or that it never ran). */
function buildFailure(): string {
  try {
    const status = JSON.parse(fs.readFileSync(STATUS_PATH, 'utf8')) as { built?: boolean; reason?: string };
    if (!status.built && status.reason) return `not built at install: ${status.reason}`;
  } catch {
    // no status: the build never ran
  }
  return 'not built (npm run build:native builds it)';
}

/** The addon, or why it cannot load. Loaded once per thread. */
export function loadNative(): NativeLoad {
  if (loaded) return loaded;
  if (!fs.existsSync(ADDON_PATH)) return (loaded = { reason: buildFailure() });
  try {
    loaded = { addon: createRequire(import.meta.url)(ADDON_PATH) as NativeAddon };
  } catch (error) {
    loaded = { reason: `${ADDON_PATH} failed to load (${String((error as Error).message).split('\n')[0]})` };
  }
  return loaded;
}

function addon(): NativeAddon {
  const load = loadNative();
  if (!load.addon) throw new Error(`mpq native kernels: ${load.reason}`);
  return load.addon;
}

/** oneDNN's threads for calls from this thread (each worker thread sets its own). */
export function setNativeThreads(threads: number): void {
  addon().setThreads(threads);
}

// ---------------------------------------------------------------------------------------------
// Kernels

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap };
type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

const FORWARD = 0;
const BACKWARD_DATA = 1;
const BACKWARD_WEIGHTS = 2;

/** The kernels the native ones replace, to fall back to (and to restore). */
const replaced = new Map<string, KernelConfig | undefined>();

function fallback(kernelName: string, args: KernelArgs): TensorInfo | TensorInfo[] {
  const stock = replaced.get(kernelName);
  if (!stock) throw new Error(`mpq native kernels: ${kernelName} has no wasm kernel for this case`);
  return stock.kernelFunc(args as Parameters<KernelFunc>[0]);
}

/** The wasm heap as bytes, current (taken after the kernel's allocations, which may grow it). */
function heap(backend: BackendWasm): Uint8Array {
  return (backend.wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8;
}

function offset(backend: BackendWasm, t: TensorInfo): number {
  return backend.getMemoryOffset(t.dataId);
}

const geometry = new Int32Array(16);

/** The addon's convolution geometry of a tfjs Conv2DInfo with `groups` groups. */
function convGeometry(info: Conv2DInfo, groups: number): Int32Array {
  geometry.set([
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left, groups,
  ]);
  return geometry;
}

const isFloat = (...tensors: TensorInfo[]) => tensors.every((t) => t.dtype === 'float32');
const isEmpty = (...shapes: number[][]) => shapes.some((shape) => shape.some((d) => d === 0));

/** What a convolution kernel runs: its geometry, its two inputs and its output's shape. */
interface ConvSpec {
  info: Conv2DInfo;
  groups: number;
  inputs: [TensorInfo, TensorInfo];
  outShape: number[];
}

/**
 * A convolution kernel of the given kind: `read` makes its spec from the kernel's arguments
 * (undefined: not a case the addon runs, so the wasm kernel does).
 */
function convKernel(kernelName: string, kind: number, read: (args: KernelArgs) => ConvSpec | undefined): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const spec = read(args);
    if (!spec) return fallback(kernelName, args);
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput(spec.outShape, 'float32');
    const [a, b] = spec.inputs.map((t) => offset(backend, t));
    const o = offset(backend, out);
    // (x, w, y) as the addon takes them: forward (x, w) → y, data (dy, w) → dx, weights (x, dy) → dw
    const [x, w, y] = kind === FORWARD ? [a, b, o] : kind === BACKWARD_DATA ? [o, b, a] : [a, o, b];
    addon().conv(kind, heap(backend), convGeometry(spec.info, spec.groups), x, w, y, -1);
    return out;
  };
  return { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}

const nhwc = (format: string | undefined) => format === undefined || format === 'NHWC' || format === 'channelsLast';

const conv2d = convKernel(tf.Conv2D, FORWARD, ({ inputs, attrs }) => {
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as Conv2DAttrs;
  if (!isFloat(x, filter) || !nhwc(a.dataFormat) || isEmpty(x.shape, filter.shape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(x.shape as never, filter.shape as never, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  return { info, groups: 1, inputs: [x, filter], outShape: info.outShape };
});

const conv2dBackpropInput = convKernel(tf.Conv2DBackpropInput, BACKWARD_DATA, ({ inputs, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as Conv2DBackpropInputAttrs;
  if (!isFloat(dy, filter) || !nhwc(a.dataFormat) || isEmpty(a.inputShape, filter.shape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as never, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  return { info, groups: 1, inputs: [dy, filter], outShape: a.inputShape };
});

const conv2dBackpropFilter = convKernel(tf.Conv2DBackpropFilter, BACKWARD_WEIGHTS, ({ inputs, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as Conv2DBackpropFilterAttrs;
  if (!isFloat(x, dy) || !nhwc(a.dataFormat) || isEmpty(x.shape, a.filterShape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(x.shape as never, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  return { info, groups: 1, inputs: [x, dy], outShape: a.filterShape };
});

/** Depthwise: groups = input channels, the filter [kh, kw, channels, multiplier]. */
const depthwiseConv2d = convKernel(tf.DepthwiseConv2dNative, FORWARD, ({ inputs, attrs }) => {
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as DepthwiseConv2dNativeAttrs;
  if (!isFloat(x, filter) || !nhwc(a.dataFormat) || isEmpty(x.shape, filter.shape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(x.shape as never, filter.shape as never, a.strides, a.dilations, a.pad, a.dimRoundingMode, true, 'channelsLast');
  return { info, groups: info.inChannels, inputs: [x, filter], outShape: info.outShape };
});

const depthwiseBackpropInput = convKernel(tf.DepthwiseConv2dNativeBackpropInput, BACKWARD_DATA, ({ inputs, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  if (!isFloat(dy, filter) || isEmpty(a.inputShape, filter.shape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as never, a.strides, a.dilations, a.pad, a.dimRoundingMode, true, 'channelsLast');
  return { info, groups: info.inChannels, inputs: [dy, filter], outShape: a.inputShape };
});

const depthwiseBackpropFilter = convKernel(tf.DepthwiseConv2dNativeBackpropFilter, BACKWARD_WEIGHTS, ({ inputs, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  if (!isFloat(x, dy) || isEmpty(x.shape, a.filterShape)) return undefined;
  const info = tf.backend_util.computeConv2DInfo(x.shape as never, a.filterShape, a.strides, a.dilations, a.pad, a.dimRoundingMode, true, 'channelsLast');
  return { info, groups: info.inChannels, inputs: [x, dy], outShape: a.filterShape };
});

// Grouped (and dilated) convolutions: tfjs has no such kernel, so these three are mpq's own, run
// by groupedConv2d (ops.ts) when the native kernels are on. The filter is [kh, kw, in/groups, out],
// output channels group-major.
export const GROUPED_CONV = 'MpqConv2DGrouped';
export const GROUPED_CONV_BACKPROP_INPUT = 'MpqConv2DGroupedBackpropInput';
export const GROUPED_CONV_BACKPROP_FILTER = 'MpqConv2DGroupedBackpropFilter';

export interface GroupedConvAttrs {
  strides: [number, number];
  pad: Conv2DAttrs['pad'];
  dilations: [number, number];
  groups: number;
  /** the backprop kernels': the shape of what they return */
  inputShape?: number[];
  filterShape?: number[];
}

function groupedInfo(xShape: number[], filterShape: number[], a: GroupedConvAttrs): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(xShape as never, filterShape as never, a.strides, a.dilations, a.pad, undefined, false, 'channelsLast');
}

const groupedConv = convKernel(GROUPED_CONV, FORWARD, ({ inputs, attrs }) => {
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as GroupedConvAttrs;
  const info = groupedInfo(x.shape, filter.shape, a);
  return { info, groups: a.groups, inputs: [x, filter], outShape: info.outShape };
});

const groupedConvBackpropInput = convKernel(GROUPED_CONV_BACKPROP_INPUT, BACKWARD_DATA, ({ inputs, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as GroupedConvAttrs;
  return { info: groupedInfo(a.inputShape!, filter.shape, a), groups: a.groups, inputs: [dy, filter], outShape: a.inputShape! };
});

const groupedConvBackpropFilter = convKernel(GROUPED_CONV_BACKPROP_FILTER, BACKWARD_WEIGHTS, ({ inputs, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as GroupedConvAttrs;
  return { info: groupedInfo(x.shape, a.filterShape!, a), groups: a.groups, inputs: [x, dy], outShape: a.filterShape! };
});

const matmulDims = new Int32Array(7);

/** tfjs's BatchMatMul: the product over the last two axes, batches (the other axes) broadcast when one is 1. */
function batchMatMul(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  const sameBatch = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
  if (!isFloat(a, b) || isEmpty(a.shape, b.shape) || !(sameBatch || batchA === 1 || batchB === 1)) return fallback(tf.BatchMatMul, args);
  const [rowsA, colsA] = a.shape.slice(-2);
  const [rowsB, colsB] = b.shape.slice(-2);
  const [m, k] = transposeA ? [colsA, rowsA] : [rowsA, colsA];
  const n = transposeB ? rowsB : colsB;
  if (k !== (transposeB ? colsB : rowsB)) return fallback(tf.BatchMatMul, args);
  const backend = args.backend as BackendWasm;
  const outer = batchA >= batchB ? outerA : outerB;
  const out = backend.makeOutput([...outer, m, n], 'float32');
  matmulDims.set([batchA, batchB, m, k, n, transposeA ? 1 : 0, transposeB ? 1 : 0]);
  addon().matmul(heap(backend), offset(backend, a), offset(backend, b), offset(backend, out), matmulDims);
  return out;
}

// Batch norm: kernels of batchNormTrain (ops.ts) when the native kernels are on.
export const BATCH_NORM_TRAIN = 'MpqBatchNormTrain';
export const BATCH_NORM_TRAIN_GRAD = 'MpqBatchNormTrainGrad';

export interface BatchNormAttrs {
  epsilon: number;
}

const bnShape = new Int32Array(4);

/** NHWC as the addon takes it: a rank-4 x as it is, any other as [rows, 1, 1, channels]. */
function nhwcShape(x: TensorInfo): Int32Array {
  const channels = x.shape[x.shape.length - 1];
  bnShape.set(x.shape.length === 4 ? x.shape : [tf.util.sizeFromShape(x.shape) / channels, 1, 1, channels]);
  return bnShape;
}

/** [y, mean, variance] of x with gamma, beta: the batch's statistics over all axes but the last. */
function batchNormTrain(args: KernelArgs): TensorInfo[] {
  const { x, gamma, beta } = args.inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
  const { epsilon } = args.attrs as unknown as BatchNormAttrs;
  const backend = args.backend as BackendWasm;
  const channels = [x.shape[x.shape.length - 1]];
  const [y, mean, variance] = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput(channels, 'float32'), backend.makeOutput(channels, 'float32')];
  const at = (t: TensorInfo) => offset(backend, t);
  addon().batchNormForward(heap(backend), nhwcShape(x), epsilon, at(x), at(gamma), at(beta), at(y), at(mean), at(variance));
  return [y, mean, variance];
}

/** [dx, dgamma, dbeta] of batchNormTrain, from x, dy, gamma and the forward's statistics. */
function batchNormTrainGrad(args: KernelArgs): TensorInfo[] {
  const { x, dy, gamma, mean, variance } = args.inputs as Record<'x' | 'dy' | 'gamma' | 'mean' | 'variance', TensorInfo>;
  const { epsilon } = args.attrs as unknown as BatchNormAttrs;
  const backend = args.backend as BackendWasm;
  const [dx, dgamma, dbeta] = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput(gamma.shape, 'float32'), backend.makeOutput(gamma.shape, 'float32')];
  const at = (t: TensorInfo) => offset(backend, t);
  addon().batchNormBackward(heap(backend), nhwcShape(x), epsilon, at(x), at(dy), at(gamma), at(mean), at(variance), at(dx), at(dgamma), at(dbeta));
  return [dx, dgamma, dbeta];
}

/** A fake-quantize kernel (fake-quant.ts's, same inputs and attributes) on the addon. */
function fakeQuantKernel(
  run: (native: NativeAddon, heap: Uint8Array, n: number, channels: number, lo: number, hi: number, steps: number, x: number, dy: number, out: number) => void,
  outputLike: 'x' | 'step',
) {
  return (args: KernelArgs): TensorInfo => {
    const { x, step, dy } = args.inputs as { x: TensorInfo; step: TensorInfo; dy?: TensorInfo };
    const { lo, hi } = args.attrs as unknown as FakeQuantizeAttrs;
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput((outputLike === 'x' ? x : step).shape, 'float32');
    const stepCount = tf.util.sizeFromShape(step.shape);
    run(addon(), heap(backend), tf.util.sizeFromShape(x.shape), stepCount, lo, hi, offset(backend, step), offset(backend, x),
      dy ? offset(backend, dy) : -1, offset(backend, out));
    return out;
  };
}

/** Add, Sub, Multiply of two float32 tensors of one shape; other cases (broadcasts) stay on wasm. */
function binaryKernel(kernelName: string, op: number): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (!isFloat(a, b) || !tf.util.arraysEqual(a.shape, b.shape)) return fallback(kernelName, args);
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput(a.shape, 'float32');
    addon().binary(heap(backend), op, tf.util.sizeFromShape(a.shape), offset(backend, a), offset(backend, b), offset(backend, out));
    return out;
  };
  return { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}

function relu(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs as { x: TensorInfo };
  if (!isFloat(x)) return fallback(tf.Relu, args);
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput(x.shape, 'float32');
  addon().relu(heap(backend), tf.util.sizeFromShape(x.shape), offset(backend, x), offset(backend, y));
  return y;
}

/**
 * Copies the box of `counts` elements from x, starting at `begin` and stepping `steps` along each
 * axis, into `out` at `at` (contiguous when `at` is absent): Slice, StridedSlice and PadV2.
 */
function copyBox(backend: BackendWasm, x: TensorInfo, begin: number[], steps: number[], counts: number[], out: TensorInfo, at?: number[]): void {
  if (counts.length === 0 || counts.some((c) => c === 0)) return;
  const xStrides = [...tf.util.computeStrides(x.shape), 1];
  const outStrides = [...tf.util.computeStrides(out.shape), 1];
  const start = begin.reduce((sum, b, j) => sum + b * xStrides[j], 0);
  const outStart = (at ?? []).reduce((sum, b, j) => sum + b * outStrides[j], 0);
  addon().copyBox(heap(backend), Int32Array.from(counts), offset(backend, x) + 4 * start, Int32Array.from(steps, (s, j) => s * xStrides[j]),
    offset(backend, out) + 4 * outStart, Int32Array.from(at ? outStrides : [...tf.util.computeStrides(counts), 1]));
}

function slice(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs as { x: TensorInfo };
  if (!isFloat(x) || x.shape.length === 0) return fallback(tf.Slice, args);
  const { begin, size } = args.attrs as unknown as SliceAttrs;
  const [start, counts] = tf.slice_util.parseSliceParams(x as never, begin, size);
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(counts, 'float32');
  copyBox(backend, x, start, counts.map(() => 1), counts, out);
  return out;
}

function stridedSlice(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs as { x: TensorInfo };
  if (!isFloat(x) || x.shape.length === 0) return fallback(tf.StridedSlice, args);
  const { begin, strides, counts, outShape } = stridedRead(x.shape, args.attrs ?? {});
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(outShape, 'float32');
  copyBox(backend, x, begin, strides, counts, out);
  return out;
}

function padV2(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs as { x: TensorInfo };
  if (!isFloat(x) || x.shape.length === 0) return fallback(tf.PadV2, args);
  const { paddings, constantValue } = args.attrs as unknown as PadV2Attrs;
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(x.shape.map((d, j) => paddings[j][0] + d + paddings[j][1]), 'float32');
  addon().fill(heap(backend), tf.util.sizeFromShape(out.shape), offset(backend, out), constantValue);
  copyBox(backend, x, x.shape.map(() => 0), x.shape.map(() => 1), x.shape, out, paddings.map(([before]) => before));
  return out;
}

/** ReLU's gradient in one pass (tfjs's is step, cast and multiply): dy where x > 0, else 0. */
const RELU_GRAD = 'MpqReluGrad';

function reluGrad(args: KernelArgs): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const backend = args.backend as BackendWasm;
  const dx = backend.makeOutput(x.shape, 'float32');
  addon().reluGrad(heap(backend), tf.util.sizeFromShape(x.shape), offset(backend, x), offset(backend, dy), offset(backend, dx));
  return dx;
}

/** Clipping's gradient in one pass (tfjs's: two compares, and, zeros, select): dy where lo <= x <= hi. */
const CLIP_GRAD = 'MpqClipByValueGrad';

function clipGrad(args: KernelArgs): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { clipValueMin, clipValueMax } = args.attrs as unknown as ClipByValueAttrs;
  const backend = args.backend as BackendWasm;
  const dx = backend.makeOutput(x.shape, 'float32');
  addon().clipGrad(heap(backend), tf.util.sizeFromShape(x.shape), offset(backend, x), offset(backend, dy), offset(backend, dx), clipValueMin, clipValueMax);
  return dx;
}

/** tfjs's gradients that nativeGradients replace while the native kernels are on. */
const stockGradients = new Map<string, GradConfig>();

/**
 * The gradient of the one-input kernel `kernelName` as the native `gradKernel` (x, dy) → dx with
 * the forward's attributes. Gradients are registered for every backend: off the native kernels
 * (another backend, another dtype) it is tfjs's.
 */
function nativeGradient(kernelName: string, gradKernel: string): GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
      const [x] = saved;
      if (!nativeKernelsActive() || x.dtype !== 'float32') return stockGradients.get(kernelName)!.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(gradKernel, { x, dy: dy as Tensor }, attrs) as Tensor };
    },
  };
}

const nativeGradients = [nativeGradient(tf.Relu, RELU_GRAD), nativeGradient(tf.ClipByValue, CLIP_GRAD)];

const SGD_MOMENTUM = 'MpqSgdMomentum';

interface SgdAttrs {
  lr: number;
  momentum: number;
  weightDecay: number;
}

function sgdMomentum(args: KernelArgs): TensorInfo[] {
  const { w, v, g } = args.inputs as { w: TensorInfo; v: TensorInfo; g: TensorInfo };
  const { lr, momentum, weightDecay } = args.attrs as unknown as SgdAttrs;
  const backend = args.backend as BackendWasm;
  const [newW, newV] = [backend.makeOutput(w.shape, 'float32'), backend.makeOutput(w.shape, 'float32')];
  const at = (t: TensorInfo) => offset(backend, t);
  addon().sgdMomentum(heap(backend), tf.util.sizeFromShape(w.shape), at(w), at(v), at(g), at(newW), at(newV), lr, momentum, weightDecay);
  return [newW, newV];
}

/**
 * SgdMomentum's update (optimizer.ts) in one kernel when the native kernels are on: the new weight
 * and velocity, w − lr·(μ·v + g + wd·w) and μ·v + g + wd·w, each operation in float32 as the ops
 * compute it. Undefined otherwise (the caller uses the ops).
 */
export function fusedSgdMomentum(w: Tensor, v: Tensor, g: Tensor, attrs: SgdAttrs): [Tensor, Tensor] | undefined {
  if (!nativeKernelsActive() || w.dtype !== 'float32' || g.dtype !== 'float32') return undefined;
  return tf.engine().runKernel(SGD_MOMENTUM, { w, v, g }, attrs as unknown as NamedAttrMap) as [Tensor, Tensor];
}

const nativeKernels: KernelConfig[] = [
  conv2d, conv2dBackpropInput, conv2dBackpropFilter, depthwiseConv2d, depthwiseBackpropInput, depthwiseBackpropFilter,
  groupedConv, groupedConvBackpropInput, groupedConvBackpropFilter,
  binaryKernel(tf.Add, 0), binaryKernel(tf.Sub, 1), binaryKernel(tf.Multiply, 2),
  ...([
    [tf.BatchMatMul, batchMatMul],
    [BATCH_NORM_TRAIN, batchNormTrain],
    [BATCH_NORM_TRAIN_GRAD, batchNormTrainGrad],
    [FAKE_QUANTIZE, fakeQuantKernel((a, h, n, c, lo, hi, s, x, _dy, out) => a.fakeQuantize(h, n, c, lo, hi, s, x, out), 'x')],
    [FAKE_QUANTIZE_GRAD_X, fakeQuantKernel((a, h, n, c, lo, hi, s, x, dy, out) => a.fakeQuantizeGradX(h, n, c, lo, hi, s, x, dy, out), 'x')],
    [FAKE_QUANTIZE_GRAD_STEP, fakeQuantKernel((a, h, n, c, lo, hi, s, x, dy, out) => a.fakeQuantizeGradStep(h, n, c, lo, hi, s, x, dy, out), 'step')],
    [tf.Relu, relu],
    [tf.Slice, slice],
    [tf.StridedSlice, stridedSlice],
    [tf.PadV2, padV2],
    [RELU_GRAD, reluGrad],
    [CLIP_GRAD, clipGrad],
    [SGD_MOMENTUM, sgdMomentum],
  ] as Array<[string, (args: KernelArgs) => TensorInfo | TensorInfo[]]>).map(([kernelName, kernelFunc]) => ({
    kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc,
  })),
];

let active = false;

/** True while the native kernels are registered over the wasm backend's. */
export function nativeKernelsActive(): boolean {
  return active && tf.getBackend() === 'wasm';
}

/**
 * Registers the native kernels over the wasm backend's (`on`), or puts the wasm kernels back.
 * The addon must load (loadNative).
 */
export function useNativeKernels(on: boolean): void {
  if (on === active) return;
  if (on) {
    addon();
    registerFakeQuantizeKernels();
    for (const gradient of nativeGradients) {
      stockGradients.set(gradient.kernelName, tf.getGradient(gradient.kernelName));
      tf.registerGradient(gradient);
    }
    for (const config of nativeKernels) {
      const previous = tf.getKernel(config.kernelName, 'wasm');
      replaced.set(config.kernelName, previous);
      if (previous) tf.unregisterKernel(config.kernelName, 'wasm');
      tf.registerKernel(config);
    }
  } else {
    for (const stock of stockGradients.values()) tf.registerGradient(stock);
    stockGradients.clear();
    for (const config of nativeKernels) {
      tf.unregisterKernel(config.kernelName, 'wasm');
      const previous = replaced.get(config.kernelName);
      if (previous) tf.registerKernel(previous);
    }
    replaced.clear();
  }
  active = on;
}
