/**
 * Bit-widths: which ones mpq runs, in one place. Everything that takes a bit-width from a user or a
 * file — search candidates (`--bits`, `--w-bit-min/max`), policy files, layer tables, NNI config
 * lists, pretrain/finetune/eval/quantize, pack, simulate — checks it with `bitsProblem` against
 * SUPPORTED_BITS, so a width one command accepts is one the next command runs.
 *
 * Why 2..16: LSQ's signed weight grid needs 2 bits (a 1-bit two's-complement grid is {−1, 0}),
 * and every quantizer mpq offers runs 2..16 weights (NUQ to 8, naive 8 alone: narrower ranges of
 * their own, below); 16 is the widest code the packed container holds. FULL_PRECISION_BITS (32)
 * marks a side left unquantized.
 *
 * A quantizer's own arithmetic may reach further (an unsigned grid or a codebook of 2 levels works
 * at 1 bit; the container packs 1-bit codes): CODE_BITS is that range, used by the quantizer
 * classes and the container, never by the pipeline.
 */

/** Bit-widths at or above this are not quantized (full precision). */
export const FULL_PRECISION_BITS = 32;

export interface BitRange {
  readonly min: number;
  readonly max: number;
}

/** What mpq's pipeline runs. */
export const SUPPORTED_BITS: BitRange = { min: 2, max: 16 };

/** What a code can hold: the quantizers' arithmetic and the packed container. */
export const CODE_BITS: BitRange = { min: 1, max: 16 };

/** NUQ codebooks hold 2^b points each; PocketFlow's largest is 8 bits. */
export const CODEBOOK_BITS: BitRange = { min: 1, max: 8 };

/** NNI's NaiveQuantizer knows one width. */
export const NAIVE_BITS = 8;

function inRange(bits: number, range: BitRange): boolean {
  return Number.isInteger(bits) && bits >= range.min && bits <= range.max;
}

/** "2..16", or "8" for a range of one width. */
function widths(range: BitRange): string {
  return range.min === range.max ? `${range.min}` : `${range.min}..${range.max}`;
}

/**
 * Why `bits` is not a bit-width in `range` (or full precision, when `fullPrecision` allows it),
 * phrased to follow "<flag or field>: "; undefined when it is fine.
 */
export function bitsProblem(
  bits: number, range: BitRange = SUPPORTED_BITS, o: { fullPrecision?: boolean; /** how the value is shown (default: the number) */ shown?: string } = {},
): string | undefined {
  if ((o.fullPrecision && bits === FULL_PRECISION_BITS) || inRange(bits, range)) return undefined;
  return `${o.shown ?? bits} is not a bit-width in ${widths(range)}${o.fullPrecision ? ` (or ${FULL_PRECISION_BITS}: full precision)` : ''}`;
}

/** Throws a RangeError when a width of `bitsList` is outside `range`: "<what> takes 1..8 bits, got 9". */
export function checkBitsList(bitsList: readonly number[], range: BitRange, what: string): void {
  const bad = bitsList.find((bits) => !inRange(bits, range));
  if (bad !== undefined) throw new RangeError(`${what} takes ${widths(range)} bits${range.min === range.max ? ' only' : ''}, got ${bad}`);
}

/** The widths in both ranges, e.g. a quantizer family's own range within what the pipeline runs. */
export function within(range: BitRange, outer: BitRange = SUPPORTED_BITS): BitRange {
  return { min: Math.max(range.min, outer.min), max: Math.min(range.max, outer.max) };
}
