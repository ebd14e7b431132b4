import * as tf from '@tensorflow/tfjs';
import { EmaMaxObserver } from '../calibrate/ema.js';
import { fakeQuantize, uniformCodes, type IntegerForm, type Quantizer } from './quantizer.js';
import { checkBitsList, CODE_BITS, FULL_PRECISION_BITS } from './bits.js';

/** NNI's QAT_Quantizer EMA decay of tracked ranges. */
export const QAT_EMA_DECAY = 0.99;

export interface AffineParams {
  scale: number;
  /** integer in [0, 2^b − 1] */
  zeroPoint: number;
  /** 2^b − 1 */
  qmax: number;
}

/**
 * Asymmetric b-bit quantization parameters of a real range (Jacob et al.; NNI's
 * update_quantization_param): the range is widened to hold 0, scale = (max − min)/(2^b − 1), and
 * the zero point −min/scale is rounded (half to even) and clamped to [0, 2^b − 1] so that 0 is
 * exactly representable. Undefined for an empty range (max = min = 0).
 */
export function affineParams(bits: number, min: number, max: number): AffineParams | undefined {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const qmax = 2 ** bits - 1;
  const scale = Math.fround((hi - lo) / qmax);
  if (!(scale > 0)) return undefined;
  const initial = -lo / scale;
  return { scale, zeroPoint: Math.min(Math.max(roundHalfEven(initial), 0), qmax), qmax };
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * scale·(clamp(round(x/scale + zp), 0, qmax) − zp), i.e. fakeQuantize on the integer window
 * [−zp, qmax − zp]: straight-through inside, zero gradient outside (as TF's FakeQuant).
 */
export function affineFakeQuantize(x: tf.Tensor, p: AffineParams): tf.Tensor {
  return tf.tidy(() => fakeQuantize(x, tf.scalar(p.scale), { lo: -p.zeroPoint, hi: p.qmax - p.zeroPoint }));
}

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
 * QAT (Jacob et al. 2018) as NNI's QAT_Quantizer: per-tensor asymmetric quantization. Weights
 * take their current min/max; activations a min/max tracked by an exponential moving average
 * (EmaMaxObserver, decay 0.99) over training batches. Nothing is quantized before
 * `quantStartStep` training steps (counted per quantizer, kept in checkpoints).
 *
 * Batch-norm folding (which NNI leaves out): with `foldScale` set, a conv's weights are quantized
 * as the inference engine holds them, folded w·s with s = γ/√(σ²+ε) of the BN set in use, and
 * divided back by s so that the BN that follows restores exactly conv(x, q(w·s)) at inference; in
 * training its batch statistics give Jacob's σ/σ_B correction.
 */
export class QatQuantizer implements Quantizer {
  readonly kind = 'qat';
  readonly bitsList: readonly number[];
  readonly role: 'weight' | 'activation';
  readonly decay: number;
  activeBits: number = FULL_PRECISION_BITS;
  quantStartStep: number;
  /** activations: track ranges in inference-mode forwards too (post-training calibration) */
  calibrating = false;
  /** per-output-channel fold scale of the BN that follows, for the active bits (weights only) */
  foldScale?: (bits: number) => Float32Array | undefined;
  /** training steps (forwards) seen */
  private readonly steps = tf.variable(tf.scalar(0), false);
  /** tracked [min, max] of activations, and 1 once a batch was observed */
  private readonly range = tf.variable(tf.zeros([2]), false);
  private readonly observed = tf.variable(tf.scalar(0), false);

  constructor(options: QatOptions) {
    checkBitsList(options.bitsList, CODE_BITS, 'QAT');
    this.bitsList = [...options.bitsList];
    this.role = options.role;
    this.decay = options.decay ?? QAT_EMA_DECAY;
    this.quantStartStep = options.quantStartStep ?? 0;
  }

  get stepsSeen(): number {
    return this.steps.dataSync()[0]!;
  }

  /** Tracked activation range, undefined before the first observed batch. */
  trackedRange(): { min: number; max: number } | undefined {
    if (this.observed.dataSync()[0] !== 1) return undefined;
    const [min, max] = this.range.dataSync();
    return { min: min!, max: max! };
  }

  /** An activation quantizer that has started but has no range yet needs calibration batches. */
  needsCalibration(): boolean {
    return this.role === 'activation' && this.started() && this.trackedRange() === undefined;
  }

  quantize(x: tf.Tensor, training: boolean): tf.Tensor {
    const bits = this.activeBits;
    if (bits >= FULL_PRECISION_BITS) return x;
    const active = this.started();
    if (training) tf.tidy(() => this.steps.assign(tf.scalar(this.stepsSeen + 1)));
    if (!active) return x;
    return this.role === 'weight' ? this.quantizeWeight(x, bits) : this.quantizeActivation(x, bits, training || this.calibrating);
  }

  /** Codebook form, one group: code c stands for (c − zp)·scale. Absent for BN-folded weights. */
  get integerForm(): ((x: tf.Tensor) => IntegerForm) | undefined {
    if (this.foldScale) return undefined;
    return (x) => {
      const bits = this.activeBits;
      const p = this.role === 'weight' ? this.weightParams(x, bits) : this.activationParams(bits);
      const half = 2 ** (bits - 1);
      const levels = 2 ** bits;
      if (!p) return { bits, q: new Int32Array(x.size), scales: new Float32Array(0), codebook: new Float32Array(levels) };
      // the rounding of affineFakeQuantize, shifted by the zero point
      const scale = tf.scalar(p.scale);
      const codes = uniformCodes(x, scale, { lo: -p.zeroPoint, hi: p.qmax - p.zeroPoint });
      scale.dispose();
      const q = codes.map((c) => (c + p.zeroPoint >= half ? c + p.zeroPoint - levels : c + p.zeroPoint));
      const codebook = Float32Array.from({ length: levels }, (_, c) => (c - p.zeroPoint) * p.scale);
      return { bits, q, scales: new Float32Array(0), codebook };
    };
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>([['steps', this.steps]]);
    if (this.role === 'activation') {
      state.set('tracked_range', this.range);
      state.set('tracked', this.observed);
    }
    return state;
  }

  /** NNI counts steps from 1 and quantizes once quant_start_step <= step. */
  private started(): boolean {
    return this.quantStartStep <= this.stepsSeen + 1;
  }

  private quantizeWeight(x: tf.Tensor, bits: number): tf.Tensor {
    const s = this.foldScale?.(bits);
    return tf.tidy(() => {
      if (!s) {
        const p = this.weightParams(x, bits);
        return p ? affineFakeQuantize(x, p) : x;
      }
      // a channel whose γ is 0 has nothing to fold; keep it as is rather than divide by 0
      const safe = tf.tensor1d(s.map((v) => (v === 0 ? 1 : v)));
      const folded = tf.mul(x, safe);
      const p = this.weightParams(folded, bits);
      return p ? tf.div(affineFakeQuantize(folded, p), safe) : x;
    });
  }

  private weightParams(x: tf.Tensor, bits: number): AffineParams | undefined {
    const [min, max] = tf.tidy(() => [tf.min(x).dataSync()[0]!, tf.max(x).dataSync()[0]!]);
    return affineParams(bits, min, max);
  }

  private quantizeActivation(x: tf.Tensor, bits: number, observe: boolean): tf.Tensor {
    if (observe) this.observe(x);
    const p = this.activationParams(bits);
    if (!p) {
      if (this.trackedRange() === undefined) throw new Error('QAT activation quantizer has no tracked range: calibrate or train first');
      return x;
    }
    return affineFakeQuantize(x, p);
  }

  private activationParams(bits: number): AffineParams | undefined {
    const r = this.trackedRange();
    return r && affineParams(bits, r.min, r.max);
  }

  /** One EMA update of the tracked range; the state lives in the checkpointed variables. */
  private observe(x: tf.Tensor): void {
    const [min, max] = tf.tidy(() => [tf.min(x).dataSync()[0]!, tf.max(x).dataSync()[0]!]);
    const observer = new EmaMaxObserver({ decay: this.decay, signed: true });
    const previous = this.trackedRange();
    // the first observation seeds the averages: replaying the stored range restores them exactly
    if (previous) observer.observe([previous.min, previous.max]);
    observer.observe([min, max]);
    const range = observer.range();
    tf.tidy(() => {
      this.range.assign(tf.tensor1d([range.min, range.max]));
      this.observed.assign(tf.scalar(1));
    });
  }
}
