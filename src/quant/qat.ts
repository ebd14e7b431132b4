import * as tf from '@tensorflow/tfjs';
import { CODE_BITS } from './bits.js';
import { Delay } from './core.js';
import type { IntegerForm } from './integer-form.js';
import { fakeQuantize } from './quantizer.js';
import { EmaRange, QAT_EMA_DECAY, TensorRange, UniformQuantizer, type Grid } from './uniform.js';


export interface QatOptions {
  bitsList: readonly number[];
  /** weights: range from the tensor itself; activations: EMA-tracked range */
  role: 'weight' | 'activation';
  /** EMA decay of activation ranges (default 0.99) */
  decay?: number;
  /** quantization starts at this training step (1-based; 0 and 1 both mean from the first) */
  quantStartStep?: number;
}

/**
 * QAT (Jacob et al. 2018) as NNI's QAT_Quantizer: the uniform quantizer with an affine zero point,
 * per tensor. Weights take their current min/max (TensorRange); activations a min/max tracked by
 * an exponential moving average over training batches (EmaRange, decay 0.99). Nothing is quantized
 * before `quantStartStep` training steps: the delay, which QAT always carries (its `steps` are in
 * every QAT checkpoint).
 *
 * Batch-norm folding (which NNI leaves out): with `foldScale` set, a conv's weights are quantized
 * as the inference engine holds them, folded w·s with s = γ/√(σ²+ε) of the BN set in use, and
 * divided back by s so that the BN that follows restores exactly conv(x, q(w·s)) at inference; in
 * training its batch statistics give Jacob's σ/σ_B correction.
 */
export class QatQuantizer extends UniformQuantizer {
  readonly role: 'weight' | 'activation';
  readonly decay: number;
  /** per-output-channel fold scale of the BN that follows, for the active bits (weights only) */
  foldScale?: (bits: number) => Float32Array | undefined;

  constructor(options: QatOptions) {
    const decay = options.decay ?? QAT_EMA_DECAY;
    super('qat', options.bitsList, options.role === 'weight' ? new TensorRange({ granularity: { per: 'tensor' }, zeroPoint: 'affine' }) : new EmaRange(decay), CODE_BITS);
    this.role = options.role;
    this.decay = decay;
    this.delay = new Delay(options.quantStartStep ?? 0);
  }

  get quantStartStep(): number {
    return this.startStep;
  }

  set quantStartStep(step: number) {
    this.startStep = step;
  }

  /** activations: track ranges in inference-mode forwards too (post-training calibration) */
  get calibrating(): boolean {
    return this.source instanceof EmaRange && this.source.calibrating;
  }

  set calibrating(on: boolean) {
    if (this.source instanceof EmaRange) this.source.calibrating = on;
  }

  /** Tracked activation range, undefined before the first observed batch (and for weights). */
  trackedRange(): { min: number; max: number } | undefined {
    return this.source instanceof EmaRange ? this.source.tracked() : undefined;
  }

  /** An activation quantizer that has started but has no range yet needs calibration batches. */
  needsCalibration(): boolean {
    return this.role === 'activation' && this.started && this.trackedRange() === undefined;
  }

  protected override quantizeAt(x: tf.Tensor, bits: number, training: boolean): tf.Tensor {
    const s = this.foldScale?.(bits);
    if (!s) return super.quantizeAt(x, bits, training);
    return tf.tidy(() => {
      const { safe, folded, grid } = this.foldedGrid(x, s, bits, training);
      return grid ? tf.div(fakeQuantize(folded, grid.step, grid.range), safe) : x;
    });
  }

  /**
   * Codebook form: code c stands for (c − zp)·scale. Folded weights, divided by their channel's s,
   * have a codebook per channel. An empty range (all zeros) has all-zero codes and levels.
   */
  protected override codesAt(x: tf.Tensor, bits: number): IntegerForm | undefined {
    const s = this.foldScale?.(bits);
    const folded = s && tf.tidy(() => tf.mul(x, tf.tensor1d(s.map(safeScale))));
    const form = super.codesAt(folded ?? x, bits) ?? { bits, q: new Int32Array(x.size), scales: new Float32Array(0), codebook: new Float32Array(2 ** bits) };
    folded?.dispose();
    if (!s) return form;
    const levels = form.codebook!;
    // as quantizeAt divides: float32 level / float32 s of the channel
    const codebook = Float32Array.from({ length: s.length * levels.length }, (_, i) => levels[i % levels.length]! / safeScale(s[Math.floor(i / levels.length)]!));
    return { ...form, codebook, perChannel: true };
  }

  private foldedGrid(x: tf.Tensor, s: Float32Array, bits: number, training: boolean): { safe: tf.Tensor; folded: tf.Tensor; grid: Grid | undefined } {
    const safe = tf.tensor1d(s.map(safeScale));
    const folded = tf.mul(x, safe);
    return { safe, folded, grid: this.source.grid(folded, bits, training) };
  }
}

/** A channel whose γ is 0 has nothing to fold: keep it as is rather than divide by 0. */
function safeScale(v: number): number {
  return v === 0 ? 1 : v;
}
