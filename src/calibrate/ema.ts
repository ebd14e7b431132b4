/**
 * Naive input calibration of the MXNet simulated-quantization tool (seed 003): an exponential
 * moving average of each batch's max |x|, `ema = decay * ema + (1 - decay) * batchValue`, with the
 * seed's default decay (its `momentum`) of 0.99. For signed inputs the per-batch min and max of x
 * are averaged too, for an asymmetric range.
 *
 * The first batch seeds the averages: the seed starts `input_max` at zero, which with decay 0.99
 * drags a short calibration run towards zero.
 */
/** The decay of an EMA, checked: in [0, 1). */
export function emaDecay(decay = 0.99): number {
  if (!(decay >= 0 && decay < 1)) throw new RangeError(`EMA decay must be in [0, 1), got ${decay}`);
  return decay;
}

/** One step of an exponential moving average, `decay · average + (1 − decay) · value`; the first value seeds it. */
export function emaStep(average: number | undefined, value: number, decay: number): number {
  return average === undefined ? value : decay * average + (1 - decay) * value;
}

export class EmaMaxObserver {
  readonly decay: number;
  readonly signed: boolean;
  private batches = 0;
  private emaMaxAbs = 0;
  private emaMin = 0;
  private emaMax = 0;

  constructor(opts: { decay?: number; signed?: boolean } = {}) {
    this.decay = emaDecay(opts.decay);
    this.signed = opts.signed ?? false;
  }

  /** Fold one batch of activations into the averages. */
  observe(batch: ArrayLike<number>): void {
    if (batch.length === 0) throw new RangeError('cannot calibrate on an empty batch');
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < batch.length; i++) {
      const v = batch[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const maxAbs = Math.max(Math.abs(lo), Math.abs(hi));
    const seeded = this.batches > 0;
    this.emaMaxAbs = emaStep(seeded ? this.emaMaxAbs : undefined, maxAbs, this.decay);
    this.emaMin = emaStep(seeded ? this.emaMin : undefined, lo, this.decay);
    this.emaMax = emaStep(seeded ? this.emaMax : undefined, hi, this.decay);
    this.batches++;
  }

  /** Number of batches observed. */
  get count(): number {
    return this.batches;
  }

  /** The averaged max |x|: the clipping threshold of a symmetric or one-sided (unsigned) quantizer. */
  get maxAbs(): number {
    this.requireObservation();
    return this.emaMaxAbs;
  }

  /** Unsigned inputs: [0, averaged max |x|]; signed inputs: [averaged min, averaged max]. */
  range(): { min: number; max: number } {
    this.requireObservation();
    return this.signed ? { min: this.emaMin, max: this.emaMax } : { min: 0, max: this.emaMaxAbs };
  }

  private requireObservation(): void {
    if (this.batches === 0) throw new RangeError('EmaMaxObserver has observed no batch yet');
  }
}
