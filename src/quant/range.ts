/**
 * Integer ranges of uniform quantizers. `unsigned` is for non-negative tensors (activations after
 * ReLU), `signed` is two's complement, `symmetric` drops the most negative level so that the grid
 * is symmetric around zero.
 */
export type Signedness = 'unsigned' | 'signed' | 'symmetric';

export interface QuantRange {
  /** lowest integer level */
  lo: number;
  /** highest integer level */
  hi: number;
}

/** Bit-widths at or above this are not quantized (full precision). */
export const FULL_PRECISION_BITS = 32;

export function quantRange(bits: number, signedness: Signedness): QuantRange {
  if (!Number.isInteger(bits) || bits < 1) throw new RangeError(`bit-width must be a positive integer, got ${bits}`);
  if (signedness === 'unsigned') return { lo: 0, hi: 2 ** bits - 1 };
  if (bits < 2) throw new RangeError(`a ${signedness} quantizer needs at least 2 bits, got ${bits}`);
  const half = 2 ** (bits - 1);
  return signedness === 'signed' ? { lo: -half, hi: half - 1 } : { lo: -half + 1, hi: half - 1 };
}
