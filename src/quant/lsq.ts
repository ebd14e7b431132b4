import { gridBits, type Signedness } from './range.js';
import { LearnedStep, UniformQuantizer, type Granularity } from './uniform.js';

export { STEP_MAX, STEP_MIN } from './uniform.js';

export interface LsqOptions {
  /** candidate bit-widths; one learned step size each */
  bitsList: readonly number[];
  signedness: Signedness;
  /** per-channel step sizes over the last axis of x (`channels` of them); per-tensor if absent */
  channels?: number;
  /** with `channels`: one step per channel (the default) or per group of channels */
  granularity?: Granularity;
  /** how the step size is initialised from the first tensor quantized in training */
  init: 'weight' | 'activation';
  /** LSQ's 1/√(numel·hi) gradient scale on the step size; on by default */
  scaleGrad?: boolean;
}

/**
 * LSQ (Esser et al. 2020) as used by LIMPQ: the uniform quantizer with a learned step per
 * candidate bit-width (the step sizes learned in joint pretraining are LIMPQ's importance
 * indicators), switched by `activeBits`, zero point 0. A step size is initialised from the first
 * tensor it quantizes in training: weights max(|mean−3·std|, |mean+3·std|)/2^(b−1), activations
 * 2·mean|x|/√hi.
 */
export class LsqQuantizer extends UniformQuantizer {
  declare readonly source: LearnedStep;

  constructor(readonly options: LsqOptions) {
    const granularity = options.channels === undefined ? { per: 'tensor' as const } : options.granularity ?? { per: 'channel' as const };
    super('lsq', options.bitsList, new LearnedStep({ ...options, granularity }), gridBits(options.signedness));
  }

  /** The step-size variable for `bits` (its values are the indicators). */
  step(bits: number) {
    return this.source.step(bits);
  }

  isInitialised(bits: number): boolean {
    return this.source.initialised.has(bits);
  }
}
