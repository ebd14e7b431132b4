import { bitsProblem, CODE_BITS, type BitRange } from './bits.js';

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

/** Widths a grid of this signedness exists at: a signed grid needs a sign bit and a magnitude bit. */
export function gridBits(signedness: Signedness): BitRange {
  return signedness === 'unsigned' ? CODE_BITS : { min: 2, max: CODE_BITS.max };
}

export function quantRange(bits: number, signedness: Signedness): QuantRange {
  const problem = bitsProblem(bits, gridBits(signedness));
  if (problem) throw new RangeError(`a ${signedness} grid: ${problem}`);
  if (signedness === 'unsigned') return { lo: 0, hi: 2 ** bits - 1 };
  const half = 2 ** (bits - 1);
  return signedness === 'signed' ? { lo: -half, hi: half - 1 } : { lo: -half + 1, hi: half - 1 };
}
