/**
 * Calibration files for int8 deployment runtimes.
 *
 * ncnn (`ncnn2table`, tools/quantize/ncnn2table.cpp, `QuantNet::save_table`): first one line per
 * conv / depthwise / dense layer, `<layer>_param_0 ` followed by `%f ` per weight scale (note the
 * trailing space), then one line per layer for its input blob, `<layer> %f `, keyed by the layer
 * name; `\n` ends every line, no blank lines. Scales are float32: weights 127 / max|w| per output
 * channel (per group — input channel — for ConvolutionDepthWise), inputs 127 / threshold.
 *
 * TensorRT (`IInt8EntropyCalibrator2::writeCalibrationCache` output, as in NVIDIA's sampleINT8
 * `CalibrationTable<network>` files and TAO's QAT exporters): `TRT-<version>-EntropyCalibration2`,
 * then `<tensor>: <hex>` per tensor, hex being the big-endian bits of the float32 scale
 * threshold / 127, eight lowercase digits, one `\n` after every line.
 */
import { minMaxRange, type KernelLayout } from '../calibrate/ranges.js';

export interface NcnnLayerCalibration {
  /** ncnn layer name (no whitespace: the table is space-separated) */
  name: string;
  /** kernel in tfjs layout, batch norm already folded in (ncnn requires it) */
  weights: Float32Array;
  layout: KernelLayout;
  /** clipping threshold of the layer's input blob, e.g. from `klThreshold` */
  inputThreshold: number;
}

export interface TensorRtCalibration {
  tensor: string;
  /** clipping threshold (dynamic range) of the tensor */
  threshold: number;
}

/**
 * ncnn weight scales, float32 127 / max|w|: per output channel, or per input channel (ncnn's
 * depthwise group, spanning all multipliers) for a depthwise kernel. An all-zero channel gets 1,
 * as ncnn does for Embed and MultiHeadAttention weights (its conv branch would print `inf`).
 */
export function ncnnWeightScales(weights: Float32Array, layout: KernelLayout): Float32Array {
  const { min, max } = layout.depthwise
    ? minMaxRange(weights, 'group', layout.shape, { groupSize: layout.shape[3]!, depthwise: true })
    : minMaxRange(weights, 'channel', layout.shape);
  return min.map((lo, c) => {
    const absMax = Math.max(-lo, max[c]!);
    return absMax === 0 ? 1 : 127 / absMax;
  });
}

/** The ncnn int8 calibration table, byte for byte as `ncnn2table` writes it. */
export function writeNcnnTable(layers: readonly NcnnLayerCalibration[]): string {
  let weightLines = '';
  let inputLines = '';
  for (const layer of layers) {
    if (!/^\S+$/.test(layer.name)) throw new RangeError(`ncnn layer name '${layer.name}' must be non-empty and free of whitespace`);
    weightLines += `${layer.name}_param_0 `;
    for (const scale of ncnnWeightScales(layer.weights, layer.layout)) weightLines += `${printfFixed(scale)} `;
    weightLines += '\n';
    inputLines += `${layer.name} ${printfFixed(Math.fround(127 / float32Threshold(layer.name, layer.inputThreshold)))} \n`;
  }
  return weightLines + inputLines;
}

/** A TensorRT EntropyCalibration2 cache; `version` as TensorRT spells it, e.g. 8601 for 8.6.1. */
export function writeTensorRtCache(tensors: readonly TensorRtCalibration[], opts: { version: number }): string {
  if (!Number.isInteger(opts.version) || opts.version < 0) throw new RangeError(`TensorRT version must be a whole number like 8601, got ${opts.version}`);
  let text = `TRT-${opts.version}-EntropyCalibration2\n`;
  for (const { tensor, threshold } of tensors) {
    if (tensor === '' || /[\r\n]/.test(tensor)) throw new RangeError(`TensorRT tensor name ${JSON.stringify(tensor)} must be one non-empty line`);
    text += `${tensor}: ${float32HexBigEndian(float32Threshold(tensor, threshold) / 127)}\n`;
  }
  return text;
}

/** Big-endian hex of the float32 bit pattern of x (rounded to float32), 8 lowercase digits. */
export function float32HexBigEndian(x: number): string {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x, false);
  return view.getUint32(0, false).toString(16).padStart(8, '0');
}

/**
 * C's printf("%f", x): six decimals from the exact binary value, ties to even (glibc), so e.g.
 * 1/128 prints 0.007812 where Number#toFixed(6) gives 0.007813; `inf`, `-inf`, `nan` as glibc.
 */
export function printfFixed(x: number, decimals = 6): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const negative = x < 0 || Object.is(x, -0);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biasedExponent = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent = -1074; // subnormal
  if (biasedExponent !== 0) {
    mantissa |= 1n << 52n;
    exponent = biasedExponent - 1075;
  }
  // |x| · 10^decimals = mantissa · 10^decimals · 2^exponent, rounded half to even
  const scaled = mantissa * 10n ** BigInt(decimals);
  let digits: bigint;
  if (exponent >= 0) digits = scaled << BigInt(exponent);
  else {
    const shift = BigInt(-exponent);
    digits = scaled >> shift;
    const remainder = scaled - (digits << shift);
    const half = 1n << (shift - 1n);
    if (remainder > half || (remainder === half && (digits & 1n) === 1n)) digits += 1n;
  }
  const text = digits.toString().padStart(decimals + 1, '0');
  const sign = negative ? '-' : '';
  return decimals === 0 ? sign + text : `${sign}${text.slice(0, -decimals)}.${text.slice(-decimals)}`;
}

function float32Threshold(name: string, threshold: number): number {
  const t = Math.fround(threshold);
  if (!(t > 0) || !Number.isFinite(t)) throw new RangeError(`calibration threshold of '${name}' must be positive and finite, got ${threshold}`);
  return t;
}
