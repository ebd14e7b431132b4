/**
 * Min–max weight ranges at the three granularities of the MXNet simulated-quantization tool
 * (seed 003): one range per tensor ('layer'), per output channel ('channel'), or per group of
 * `groupSize` consecutive output channels ('group').
 *
 * Weights use tfjs layouts, output channel last: conv `[kh, kw, inC, outC]`, dense `[in, out]`,
 * depthwise `[kh, kw, inC, multiplier]` whose output channel `c * multiplier + m` is the flattened
 * pair of the last two axes. In every case the output channel of flat index i is `i % outChannels`.
 */

export type RangeGranularity = 'layer' | 'group' | 'channel';

export interface KernelLayout {
  /** `[in, out]` (dense) or `[kh, kw, inC, outC | multiplier]` (conv / depthwise) */
  shape: readonly number[];
  /** true for a depthwise kernel `[kh, kw, inC, multiplier]` */
  depthwise?: boolean;
}

export interface MinMax {
  min: Float32Array;
  max: Float32Array;
}

/** Number of output channels of a kernel, checking that `shape` describes `length` values. */
export function outputChannels(layout: KernelLayout, length: number): number {
  const { shape, depthwise = false } = layout;
  if (shape.length !== 2 && shape.length !== 4) {
    throw new RangeError(`kernel shape [${shape.join(', ')}] is neither dense [in, out] nor conv [kh, kw, inC, outC]`);
  }
  if (depthwise && shape.length !== 4) throw new RangeError(`depthwise kernel shape [${shape.join(', ')}] is not [kh, kw, inC, multiplier]`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== length) throw new RangeError(`kernel shape [${shape.join(', ')}] holds ${size} values, got ${length}`);
  return depthwise ? shape[2]! * shape[3]! : shape[shape.length - 1]!;
}

/**
 * Min and max of `values` per tensor, per output channel or per group of `groupSize` output
 * channels (which must divide the channel count, as MXNet's conv groups do).
 */
export function minMaxRange(
  values: Float32Array,
  granularity: RangeGranularity,
  shape: readonly number[],
  opts: { groupSize?: number; depthwise?: boolean } = {},
): MinMax {
  const channels = outputChannels({ shape, depthwise: opts.depthwise }, values.length);
  let channelsPerRange: number;
  if (granularity === 'layer') channelsPerRange = channels;
  else if (granularity === 'channel') channelsPerRange = 1;
  else {
    const g = opts.groupSize;
    if (g === undefined || !Number.isInteger(g) || g < 1 || channels % g !== 0) {
      throw new RangeError(`group size ${g} must be a positive divisor of the ${channels} output channels`);
    }
    channelsPerRange = g;
  }
  const ranges = channels / channelsPerRange;
  const min = new Float32Array(ranges).fill(Infinity);
  const max = new Float32Array(ranges).fill(-Infinity);
  for (let i = 0; i < values.length; i++) {
    const r = Math.floor((i % channels) / channelsPerRange);
    const v = values[i]!;
    if (v < min[r]!) min[r] = v;
    if (v > max[r]!) max[r] = v;
  }
  return { min, max };
}
