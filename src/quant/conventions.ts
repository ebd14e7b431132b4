/**
 * The quantizers a user can pick (`--quantizer`), and what each one quantizes by convention. Kept
 * apart from the quantizers and train/quantizer-factory.ts (which builds them into models) so that
 * config-list validation (train/config-list.ts) loads no tfjs.
 */
import { bitsProblem, CODEBOOK_BITS, FULL_PRECISION_BITS, NAIVE_BITS, SUPPORTED_BITS, within, type BitRange } from './bits.js';

export const QUANTIZER_NAMES = ['lsq', 'nuq', 'qat', 'dorefa', 'naive'] as const;
export type QuantizerName = (typeof QUANTIZER_NAMES)[number];

/** NNI's quant types: a layer's weight, its input, an op's output. */
export const QUANT_TYPES = ['weight', 'input', 'output'] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

export interface QuantizerConvention {
  /** one line for help and reports */
  summary: string;
  /** how layer inputs (activations) are quantized: LSQ, QAT's EMA min/max, or not at all */
  activations: 'lsq' | 'ema-minmax' | 'none';
  /** weight bit-widths it accepts (within SUPPORTED_BITS) */
  weightBits: BitRange;
  /** activation bits of a uniform run when --act-bits is not given */
  defaultActBits(weightBits: number): number;
  /** whether the first and last layers are quantized (at 8 bits) unless told otherwise */
  quantizeFirstLast: boolean;
  /** NNI quant types its config list may ask for (any of them may give a quant_start_step: the delay wraps every quantizer) */
  quantTypes: readonly QuantType[];
}

export const QUANTIZER_CONVENTIONS: Record<QuantizerName, QuantizerConvention> = {
  lsq: {
    summary: 'LSQ (LIMPQ): learned step size per bit-width, weights and activations',
    activations: 'lsq', weightBits: SUPPORTED_BITS, defaultActBits: (w) => w,
    quantizeFirstLast: true, quantTypes: ['weight', 'input', 'output'],
  },
  nuq: {
    summary: 'non-uniform (PocketFlow NUQ): 2^b learned points per layer or bucket; activations uniform (EMA min/max), off by default',
    activations: 'ema-minmax', weightBits: within(CODEBOOK_BITS), defaultActBits: () => FULL_PRECISION_BITS,
    quantizeFirstLast: false, quantTypes: ['weight', 'input', 'output'],
  },
  qat: {
    summary: 'QAT (Jacob et al., NNI): asymmetric min/max, EMA-tracked activation ranges, BN folded into convs',
    activations: 'ema-minmax', weightBits: SUPPORTED_BITS, defaultActBits: (w) => w,
    quantizeFirstLast: true, quantTypes: ['weight', 'input', 'output'],
  },
  dorefa: {
    summary: 'DoReFa (NNI): tanh-normalised weights on a uniform grid in [-1, 1]; weights only',
    activations: 'none', weightBits: SUPPORTED_BITS, defaultActBits: () => FULL_PRECISION_BITS,
    quantizeFirstLast: true, quantTypes: ['weight'],
  },
  naive: {
    summary: 'naive (NNI): weights to 8 bits, running max-abs scale, truncated; weights only',
    activations: 'none', weightBits: within({ min: NAIVE_BITS, max: NAIVE_BITS }), defaultActBits: () => FULL_PRECISION_BITS,
    quantizeFirstLast: true, quantTypes: ['weight'],
  },
};

/** A bit-width a quantizer can take for weights (or activations), or why not; undefined if fine. */
export function quantizerBitsProblem(name: QuantizerName, side: 'weight' | 'activation', bits: number): string | undefined {
  if (bits === FULL_PRECISION_BITS) return undefined;
  const convention = QUANTIZER_CONVENTIONS[name];
  if (side === 'activation') {
    if (convention.activations === 'none') return `${name} quantizes weights only (activations stay at ${FULL_PRECISION_BITS} bits), got ${bits}`;
    return bitsProblem(bits, SUPPORTED_BITS, { fullPrecision: true });
  }
  const range = convention.weightBits;
  if (bitsProblem(bits, range) === undefined) return undefined;
  return range.min === range.max ? `${name} quantizes weights to ${range.min} bits only, got ${bits}` : `${name} takes ${range.min}..${range.max} weight bits or ${FULL_PRECISION_BITS}, got ${bits}`;
}
