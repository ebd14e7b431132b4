import * as tf from '@tensorflow/tfjs';
import { fakeQuantize, uniformCodes, type IntegerForm, type Quantizer } from './quantizer.js';
import { FULL_PRECISION_BITS } from './bits.js';
import { quantRange, type Signedness } from './range.js';
import { gradScale } from './ste.js';

/** Bounds LIMPQ clamps the learned step size to before use. */
export const STEP_MIN = 1e-5;
export const STEP_MAX = 1;

export interface LsqOptions {
  /** candidate bit-widths; one learned step size each */
  bitsList: readonly number[];
  signedness: Signedness;
  /** per-channel step sizes over the last axis of x (`channels` of them); per-tensor if absent */
  channels?: number;
  /** how the step size is initialised from the first tensor quantized in training */
  init: 'weight' | 'activation';
  /** LSQ's 1/√(numel·hi) gradient scale on the step size; on by default */
  scaleGrad?: boolean;
}

/**
 * LSQ (Esser et al. 2020) as used by LIMPQ: one learnable step size per candidate bit-width (the
 * step sizes learned in joint pretraining are LIMPQ's importance indicators), switched by
 * `activeBits`. A step size is initialised from the first tensor it quantizes in training:
 * weights max(|mean−3·std|, |mean+3·std|)/2^(b−1), activations 2·mean|x|/√hi.
 */
export class LsqQuantizer implements Quantizer {
  readonly kind = 'lsq';
  readonly bitsList: readonly number[];
  activeBits: number = FULL_PRECISION_BITS;
  private readonly steps = new Map<number, tf.Variable>();
  /** 1 once the step size for that bit-width has been initialised from data (kept in checkpoints) */
  private readonly initialised = new Map<number, tf.Variable>();

  constructor(readonly options: LsqOptions) {
    this.bitsList = [...options.bitsList];
    const shape = options.channels === undefined ? [] : [options.channels];
    for (const bits of this.bitsList) {
      quantRange(bits, options.signedness); // reject impossible bit-widths up front
      this.steps.set(bits, tf.variable(tf.ones(shape), true));
      this.initialised.set(bits, tf.variable(tf.scalar(0), false));
    }
  }

  /** The step-size variable for `bits` (its values are the indicators). */
  step(bits: number): tf.Variable {
    const s = this.steps.get(bits);
    if (!s) throw new RangeError(`no step size for ${bits} bits (candidates: ${this.bitsList.join(', ')})`);
    return s;
  }

  isInitialised(bits: number): boolean {
    return this.initialised.get(bits)!.dataSync()[0] === 1;
  }

  quantize(x: tf.Tensor, training: boolean): tf.Tensor {
    const bits = this.activeBits;
    if (bits >= FULL_PRECISION_BITS) return x;
    const range = quantRange(bits, this.options.signedness);
    const step = this.step(bits);
    if (training && !this.isInitialised(bits)) {
      step.assign(this.initialStep(x, bits, range.hi));
      this.initialised.get(bits)!.assign(tf.scalar(1));
    }
    return tf.tidy(() => {
      let s: tf.Tensor = tf.clipByValue(step, STEP_MIN, STEP_MAX);
      if (this.options.scaleGrad ?? true) s = gradScale(s, 1 / Math.sqrt(x.size * range.hi));
      return fakeQuantize(x, s, range);
    });
  }

  integerForm(x: tf.Tensor): IntegerForm {
    const bits = this.activeBits;
    const range = quantRange(bits, this.options.signedness);
    const s = tf.clipByValue(this.step(bits), STEP_MIN, STEP_MAX);
    const form = { bits, q: uniformCodes(x, s, range), scales: Float32Array.from(s.dataSync()) };
    s.dispose();
    return form;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.steps.values()];
  }

  namedState(): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>();
    for (const bits of this.bitsList) {
      state.set(`s.${bits}`, this.steps.get(bits)!);
      state.set(`s_init.${bits}`, this.initialised.get(bits)!);
    }
    return state;
  }

  private initialStep(x: tf.Tensor, bits: number, hi: number): tf.Tensor {
    return tf.tidy(() => {
      const perChannel = this.options.channels !== undefined;
      // reduce over every axis but the channel (last) one when per-channel
      const axes = perChannel ? [...Array(x.rank - 1).keys()] : undefined;
      if (this.options.init === 'activation') {
        return tf.div(tf.mul(tf.mean(tf.abs(x), axes), 2), Math.sqrt(hi));
      }
      const { mean, variance } = tf.moments(x, axes);
      // unbiased std, as torch's x.std()
      const n = perChannel ? x.size / this.options.channels! : x.size;
      const std = tf.sqrt(tf.mul(variance, n / Math.max(n - 1, 1)));
      const bound = tf.maximum(tf.abs(tf.sub(mean, tf.mul(std, 3))), tf.abs(tf.add(mean, tf.mul(std, 3))));
      return tf.div(bound, 2 ** (bits - 1));
    });
  }
}
