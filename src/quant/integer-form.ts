import { bitsProblem, CODE_BITS } from './bits.js';

/**
 * Integer codes of a quantized tensor: what a packed model stores for a layer's weights, and the
 * contract between the quantizers (Quantizer.integerForm) and the container (export/packed.ts),
 * which both check with integerFormProblem. No tfjs here: the container reads it without tfjs.
 *
 * Uniform: value = q · scales[k], k the channel (last axis) when there is one scale per channel,
 * else 0. Codebook (non-uniform, or affine as QAT's): value = codebook[g · 2^bits + (q mod 2^bits)],
 * g the element's group: index / groupSize (runs of consecutive codes; one group when groupSize is
 * absent), or with `perChannel` its channel, index mod channels (one codebook per channel of the
 * last axis). A codebook form has no scales (an empty array).
 */
export interface IntegerForm {
  bits: number;
  /** one code per element of x, in x's (row-major) layout, in bits-bit two's complement */
  q: Int32Array;
  /** uniform: one scale, or one per channel; codebook: unused (empty) */
  scales: Float32Array;
  codebook?: Float32Array;
  /** codebook groups are runs of this many consecutive codes */
  groupSize?: number;
  /** codebook groups are the channels of the last axis (codebook.length / 2^bits of them) */
  perChannel?: true;
}

/**
 * Why `form` is not a valid integer form, if it is not (one line, to follow "layer 'x': "). With
 * the tensor's `shape`, the codes must fill it and per-channel scales or codebooks match its last
 * axis.
 */
export function integerFormProblem(form: IntegerForm, shape?: readonly number[]): string | undefined {
  const count = form.q.length;
  const bits = bitsProblem(form.bits, CODE_BITS);
  if (bits) return `bits: ${bits}`;
  const lastAxis = shape?.[shape.length - 1];
  if (shape) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== count) return `shape [${shape.join(', ')}] holds ${size} codes, q has ${count}`;
  }
  const channelsProblem = (channels: number, what: string) =>
    (shape && channels !== lastAxis ? `${what} for ${channels} channels, the last axis of [${shape.join(', ')}] has ${lastAxis}` : undefined);
  if (!form.scales.every(Number.isFinite)) return 'scales must be finite';
  if (!form.codebook) {
    if (form.groupSize !== undefined || form.perChannel) return `${form.groupSize !== undefined ? 'groupSize' : 'perChannel'} without a codebook`;
    if (form.scales.length === 0) return 'scales is empty (a uniform form has one scale per tensor or channel)';
    if (form.scales.length === 1) return undefined;
    if (count % form.scales.length !== 0) return `${form.scales.length} scales do not divide ${count} codes into channels`;
    return channelsProblem(form.scales.length, 'scales');
  }
  const levels = 2 ** form.bits;
  const { length } = form.codebook;
  if (length === 0) return 'codebook is empty';
  if (!form.codebook.every(Number.isFinite)) return 'codebook must be finite';
  if (form.perChannel) {
    if (form.groupSize !== undefined) return 'groupSize and perChannel together (codebook groups are runs or channels)';
    const channels = length / levels;
    if (!Number.isInteger(channels) || count % channels !== 0) return `${length} codebook entries are not 2^${form.bits} per channel of ${count} codes`;
    return channelsProblem(channels, 'codebooks');
  }
  if (form.groupSize === undefined) return length > levels ? `${length} codebook entries exceed 2^${form.bits}` : undefined;
  if (!Number.isInteger(form.groupSize) || form.groupSize < 1) return `groupSize must be a positive whole number, got ${form.groupSize}`;
  const groups = Math.max(1, Math.ceil(count / form.groupSize));
  return length > groups * levels ? `${length} codebook entries exceed ${groups} groups × 2^${form.bits}` : undefined;
}

/** Values of an integer form (the inverse of `integerForm`), in the tensor's layout. */
export function dequantize(form: IntegerForm): Float32Array {
  const out = new Float32Array(form.q.length);
  const levels = 2 ** form.bits;
  if (form.codebook) {
    const channels = form.codebook.length / levels;
    const groupSize = form.groupSize ?? form.q.length;
    for (let i = 0; i < out.length; i++) {
      const code = ((form.q[i]! % levels) + levels) % levels;
      const group = form.perChannel ? i % channels : Math.floor(i / groupSize);
      out[i] = form.codebook[group * levels + code]!;
    }
    return out;
  }
  const channels = form.scales.length;
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(form.q[i]! * form.scales[channels === 1 ? 0 : i % channels]!);
  return out;
}

/**
 * A codebook index c ∈ [0, 2^bits) as the bits-bit two's-complement code that stands for it (the
 * pattern whose low bits are c): dequantize reads it back as q mod 2^bits.
 */
export function codebookCode(c: number, bits: number): number {
  const half = 2 ** (bits - 1);
  return c >= half ? c - 2 * half : c;
}
