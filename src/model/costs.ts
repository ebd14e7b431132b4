import { FULL_PRECISION_BITS } from '../quant/bits.js';

/**
 * BitOps, model size and compression ratio, defined once (LIMPQ's arithmetic): the search's
 * budget rows (search/problem.ts), its report (search/search.ts), a packed file's size check
 * (simulate/packed-model.ts) and an exported model's (export/model-export.ts) all sum these.
 */

/** A layer's BitOps at its bits: MACs · weight bits · activation bits. */
export function layerBitops(macs: number, weightBits: number, actBits: number): number {
  return macs * weightBits * actBits;
}

/** A layer's weight storage in bits: params · weight bits. */
export function layerSizeBits(params: number, weightBits: number): number {
  return params * weightBits;
}

/** A layer as the costs see it; bits it does not carry are `at`'s (full precision by default). */
export interface CostedLayer {
  macs: number;
  params: number;
  weightBits?: number;
  actBits?: number;
}

export interface Costs {
  /** Σ MACs · w · a */
  bitops: number;
  /** Σ params · w */
  sizeBits: number;
  /** Σ MACs */
  macs: number;
  /** Σ params */
  params: number;
}

/** The layers' summed costs, each at its own bits or else at `at`'s, in the order given. */
export function costs(layers: Iterable<CostedLayer>, at: { weightBits: number; actBits: number } = { weightBits: FULL_PRECISION_BITS, actBits: FULL_PRECISION_BITS }): Costs {
  const sum: Costs = { bitops: 0, sizeBits: 0, macs: 0, params: 0 };
  for (const l of layers) {
    const w = l.weightBits ?? at.weightBits;
    sum.bitops += layerBitops(l.macs, w, l.actBits ?? at.actBits);
    sum.sizeBits += layerSizeBits(l.params, w);
    sum.macs += l.macs;
    sum.params += l.params;
  }
  return sum;
}

/** The compression ratio against 32-bit weights: 32 · Σ params / Σ params · w. */
export function compressionRatio(c: Pick<Costs, 'params' | 'sizeBits'>): number {
  return (FULL_PRECISION_BITS * c.params) / c.sizeBits;
}

/** The weight storage in bits a compression ratio allows `params` weights: its inverse, 32 · params / ratio. */
export function sizeBitsAtCompressionRatio(params: number, ratio: number): number {
  return (FULL_PRECISION_BITS * params) / ratio;
}
