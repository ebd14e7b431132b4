import * as tf from '@tensorflow/tfjs';
import { emaDecay, emaStep } from '../calibrate/ema.js';
import { minMaxRange } from '../calibrate/ranges.js';
import type { BitRange } from './bits.js';
import { InitFlags, QuantizerBase } from './core.js';
import { codebookCode, type IntegerForm } from './integer-form.js';
import { fakeQuantize, uniformCodes } from './quantizer.js';
import { quantRange, type QuantRange, type Signedness } from './range.js';
import { gradScale } from './ste.js';

/**
 * One uniform integer quantizer, composed of parts (after Brevitas' quantizer injectors):
 *   value = round(clamp(x / step, lo, hi)) · step   (round half to even, straight through)
 * - a scale source gives the step: learned (LSQ), observed from the tensor (min-max) or from
 *   batches (EMA), or calibrated offline (a threshold: EMA of batch maxima, KL);
 * - a zero point: symmetric (0, the integer window of the signedness) or affine (the window
 *   shifted so that a real range [min, max] is covered and 0 is exact, Jacob et al.);
 * - a granularity: one step per tensor, per channel (the last axis) or per group of channels;
 * - a bit-width range (bits.ts) and the rounding (ste.ts, the fused kernel behind fakeQuantize);
 * - the wrappers of QuantizerBase: the full-precision bypass and the delay.
 * LSQ (lsq.ts), min-max (minmax.ts) and QAT (qat.ts) are configurations of it.
 */

/** Which elements share a step: the whole tensor, each channel (x's last axis), or each group of `size` consecutive channels. */
export type Granularity = { per: 'tensor' } | { per: 'channel' } | { per: 'group'; size: number };

/** How many steps a granularity holds for `channels` channels (which a group size must divide). */
export function stepCount(granularity: Granularity, channels: number): number {
  if (granularity.per === 'tensor') return 1;
  if (granularity.per === 'channel') return channels;
  const { size } = granularity;
  if (!Number.isInteger(size) || size < 1 || channels % size !== 0) throw new RangeError(`group size ${size} must be a positive divisor of the ${channels} channels`);
  return channels / size;
}

/** How a real range becomes a grid: zero point 0 (symmetric) or a zero point that makes 0 exact (affine). */
export type ZeroPoint = 'symmetric' | 'affine';

/** The grid x is rounded onto. */
export interface Grid {
  /** one step, or one per channel of x's last axis */
  step: tf.Tensor;
  /** the integer window of the codes; an affine grid's is [−zp, qmax − zp] */
  range: QuantRange;
  /** an affine grid's zero point: code c + zp ∈ [0, qmax] stands for c · step */
  zeroPoint?: number;
}

/**
 * Where a uniform quantizer's grid comes from. `grid` runs inside tf.tidy: it may learn or observe
 * when `training`; undefined means no grid yet (x passes through).
 */
export interface ScaleSource {
  grid(x: tf.Tensor, bits: number, training: boolean): Grid | undefined;
  trainableVariables(): tf.Variable[];
  namedState(): Map<string, tf.Variable>;
}

export class UniformQuantizer extends QuantizerBase {
  /** `range`: the bit-widths of the source's grid (gridBits of its signedness). */
  constructor(readonly kind: string, bitsList: readonly number[], readonly source: ScaleSource, range: BitRange) {
    super(bitsList, range, `a ${kind} quantizer`);
  }

  protected quantizeAt(x: tf.Tensor, bits: number, training: boolean): tf.Tensor {
    return tf.tidy(() => {
      const grid = this.source.grid(x, bits, training);
      return grid ? fakeQuantize(x, grid.step, grid.range) : x;
    });
  }

  /** The codes of the grid (uniform scales; an affine grid's as a codebook). */
  protected codesAt(x: tf.Tensor, bits: number): IntegerForm | undefined {
    let grid: Grid | undefined;
    tf.tidy(() => {
      grid = this.source.grid(x, bits, false);
      if (grid) tf.keep(grid.step);
    });
    if (!grid) return undefined;
    const q = uniformCodes(x, grid.step, grid.range);
    const steps = Float32Array.from(grid.step.dataSync());
    grid.step.dispose();
    return grid.zeroPoint === undefined ? { bits, q, scales: steps } : affineCodebook(bits, q, grid.zeroPoint, steps[0]!);
  }

  override trainableVariables(): tf.Variable[] {
    return this.source.trainableVariables();
  }

  override namedState(): Map<string, tf.Variable> {
    return new Map([...super.namedState(), ...this.source.namedState()]);
  }
}

/** Codes q of an affine grid as a codebook: q + zp indexes the levels (c − zp)·scale, in float32. */
function affineCodebook(bits: number, q: Int32Array, zeroPoint: number, scale: number): IntegerForm {
  return {
    bits,
    q: q.map((c) => codebookCode(c + zeroPoint, bits)),
    scales: new Float32Array(0),
    codebook: Float32Array.from({ length: 2 ** bits }, (_, c) => (c - zeroPoint) * scale),
  };
}

// ---------------------------------------------------------------------------------------------
// zero points
// ---------------------------------------------------------------------------------------------

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

/** The affine grid of a real range: the integer window [−zp, qmax − zp] at step `scale`. */
function affineGrid(bits: number, min: number, max: number): Grid | undefined {
  const p = affineParams(bits, min, max);
  return p && { step: tf.scalar(p.scale), range: { lo: -p.zeroPoint, hi: p.qmax - p.zeroPoint }, zeroPoint: p.zeroPoint };
}

/**
 * scale·(clamp(round(x/scale + zp), 0, qmax) − zp), i.e. fakeQuantize on the integer window
 * [−zp, qmax − zp]: straight-through inside, zero gradient outside (as TF's FakeQuant).
 */
export function affineFakeQuantize(x: tf.Tensor, p: AffineParams): tf.Tensor {
  return tf.tidy(() => fakeQuantize(x, tf.scalar(p.scale), { lo: -p.zeroPoint, hi: p.qmax - p.zeroPoint }));
}

/** min and max of a whole tensor. */
function tensorMinMax(x: tf.Tensor): { min: number; max: number } {
  const [min, max] = tf.tidy(() => [tf.min(x).dataSync()[0]!, tf.max(x).dataSync()[0]!]);
  return { min: min!, max: max! };
}

// ---------------------------------------------------------------------------------------------
// scale sources
// ---------------------------------------------------------------------------------------------

/** Bounds LIMPQ clamps the learned step size to before use. */
export const STEP_MIN = 1e-5;
export const STEP_MAX = 1;

export interface LearnedStepOptions {
  /** candidate bit-widths; one learned step (or one per channel or group) each */
  bitsList: readonly number[];
  signedness: Signedness;
  granularity: Granularity;
  /** channels of x's last axis (per-channel and per-group steps) */
  channels?: number;
  /** how the step is initialised from the first tensor quantized in training */
  init: 'weight' | 'activation';
  /** LSQ's 1/√(numel·hi) gradient scale on the step; on by default */
  scaleGrad?: boolean;
}

/**
 * LSQ's learned step (Esser et al. 2020): a variable per candidate bit-width, clamped to
 * [STEP_MIN, STEP_MAX] before use, its gradient scaled by 1/√(numel·hi). Initialised from the first
 * tensor quantized in training: weights max(|mean−3·std|, |mean+3·std|)/2^(b−1), activations
 * 2·mean|x|/√hi (over each channel's or group's elements when the step is not per tensor).
 */
export class LearnedStep implements ScaleSource {
  private readonly steps = new Map<number, tf.Variable>();
  readonly initialised: InitFlags;
  private readonly groups: number;

  constructor(readonly o: LearnedStepOptions) {
    const perTensor = o.granularity.per === 'tensor';
    if (!perTensor && o.channels === undefined) throw new RangeError('per-channel or per-group steps need the channel count');
    this.groups = perTensor ? 1 : stepCount(o.granularity, o.channels!);
    for (const bits of o.bitsList) this.steps.set(bits, tf.variable(tf.ones(perTensor ? [] : [this.groups]), true));
    this.initialised = new InitFlags(o.bitsList);
  }

  /** The step variable for `bits` (LSQ's step sizes are LIMPQ's indicators). */
  step(bits: number): tf.Variable {
    const s = this.steps.get(bits);
    if (!s) throw new RangeError(`no step size for ${bits} bits (candidates: ${this.o.bitsList.join(', ')})`);
    return s;
  }

  grid(x: tf.Tensor, bits: number, training: boolean): Grid {
    const range = quantRange(bits, this.o.signedness);
    const step = this.step(bits);
    if (training && !this.initialised.has(bits)) {
      step.assign(this.initialStep(x, bits, range.hi));
      this.initialised.set(bits);
    }
    let s: tf.Tensor = tf.clipByValue(step, STEP_MIN, STEP_MAX);
    if (this.o.scaleGrad ?? true) s = gradScale(s, 1 / Math.sqrt(x.size * range.hi));
    return { step: this.perChannel(s), range };
  }

  trainableVariables(): tf.Variable[] {
    return [...this.steps.values()];
  }

  namedState(): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>();
    for (const bits of this.o.bitsList) {
      state.set(`s.${bits}`, this.steps.get(bits)!);
      state.set(`s_init.${bits}`, this.initialised.variable(bits));
    }
    return state;
  }

  /** Per-group steps repeated over their channels (the fused kernel takes one step or one per channel). */
  private perChannel(s: tf.Tensor): tf.Tensor {
    if (this.o.granularity.per !== 'group') return s;
    return tf.reshape(tf.tile(tf.reshape(s, [this.groups, 1]), [1, this.o.granularity.size]), [this.o.channels!]);
  }

  private initialStep(x: tf.Tensor, bits: number, hi: number): tf.Tensor {
    return tf.tidy(() => {
      const { granularity } = this.o;
      // per group: the channels of a group side by side, reduced with everything but the group axis
      const grouped = granularity.per === 'group' ? tf.reshape(x, [-1, this.groups, granularity.size]) : x;
      const axes = granularity.per === 'tensor' ? undefined : granularity.per === 'group' ? [0, 2] : [...Array(x.rank - 1).keys()];
      if (this.o.init === 'activation') {
        return tf.div(tf.mul(tf.mean(tf.abs(grouped), axes), 2), Math.sqrt(hi));
      }
      const { mean, variance } = tf.moments(grouped, axes);
      // unbiased std, as torch's x.std()
      const n = x.size / this.groups;
      const std = tf.sqrt(tf.mul(variance, n / Math.max(n - 1, 1)));
      const bound = tf.maximum(tf.abs(tf.sub(mean, tf.mul(std, 3))), tf.abs(tf.add(mean, tf.mul(std, 3))));
      return tf.div(bound, 2 ** (bits - 1));
    });
  }
}

/**
 * A range observed from the tensor itself at every call (weights): min-max's symmetric steps
 * max|x|/hi per tensor, channel or group (an all-zero range gets step 1: its codes are 0), or
 * QAT's affine grid of the whole tensor's [min, max].
 */
export class TensorRange implements ScaleSource {
  constructor(readonly o: { granularity: Granularity; zeroPoint: ZeroPoint }) {
    if (o.zeroPoint === 'affine' && o.granularity.per !== 'tensor') throw new RangeError('an affine grid is per tensor');
  }

  grid(x: tf.Tensor, bits: number): Grid | undefined {
    if (this.o.zeroPoint === 'affine') {
      const { min, max } = tensorMinMax(x);
      return affineGrid(bits, min, max);
    }
    const steps = this.steps(x, bits);
    return { step: this.o.granularity.per === 'tensor' ? tf.scalar(steps[0]!) : tf.tensor1d(steps), range: quantRange(bits, 'symmetric') };
  }

  /** Symmetric steps at `bits`: one, or one per channel (a group's repeated over its channels), float32. */
  steps(x: tf.Tensor, bits: number): Float32Array {
    const { granularity } = this.o;
    const hi = quantRange(bits, 'symmetric').hi;
    const ranges = granularity.per === 'tensor' ? (({ min, max }) => ({ min: Float32Array.of(min), max: Float32Array.of(max) }))(tensorMinMax(x))
      : minMaxRange(x.dataSync() as Float32Array, granularity.per, x.shape, granularity.per === 'group' ? { groupSize: granularity.size } : {});
    const perRange = ranges.min.map((lo, r) => {
      const absMax = Math.max(-lo, ranges.max[r]!);
      return absMax === 0 ? 1 : absMax / hi;
    });
    if (granularity.per === 'tensor') return perRange;
    const channels = x.shape[x.rank - 1]!;
    const perStep = channels / perRange.length;
    return Float32Array.from({ length: channels }, (_, c) => perRange[Math.floor(c / perStep)]!);
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map();
  }
}

/** NNI's QAT_Quantizer EMA decay of tracked ranges. */
export const QAT_EMA_DECAY = 0.99;

/**
 * A range observed over batches (QAT's activations): an EMA of each training batch's min and max
 * (the first batch seeds it; calibrate/ema.ts emaStep), held in checkpointed variables, read as an
 * affine grid. `calibrating` observes inference forwards too (post-training calibration).
 */
export class EmaRange implements ScaleSource {
  readonly decay: number;
  calibrating = false;
  /** tracked [min, max], and 1 once a batch was observed */
  private readonly range = tf.variable(tf.zeros([2]), false);
  private readonly observed = tf.variable(tf.scalar(0), false);

  constructor(decay = QAT_EMA_DECAY) {
    this.decay = emaDecay(decay);
  }

  /** The tracked range, undefined before the first observed batch. */
  tracked(): { min: number; max: number } | undefined {
    if (this.observed.dataSync()[0] !== 1) return undefined;
    const [min, max] = this.range.dataSync();
    return { min: min!, max: max! };
  }

  /** One EMA step of the tracked range with x's min and max. */
  observe(x: tf.Tensor): void {
    const batch = tensorMinMax(x);
    const previous = this.tracked();
    tf.tidy(() => {
      this.range.assign(tf.tensor1d([emaStep(previous?.min, batch.min, this.decay), emaStep(previous?.max, batch.max, this.decay)]));
      this.observed.assign(tf.scalar(1));
    });
  }

  grid(x: tf.Tensor, bits: number, training: boolean): Grid | undefined {
    if (training || this.calibrating) this.observe(x);
    const range = this.tracked();
    if (!range) throw new Error('QAT activation quantizer has no tracked range: calibrate or train first');
    return affineGrid(bits, range.min, range.max);
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map([['tracked_range', this.range], ['tracked', this.observed]]);
  }
}

/** How a threshold source gets T: each batch's max |x| (online), or a constant set by calibration. */
export type ThresholdMode = 'online' | 'calibrated';

/**
 * A clipping threshold T (min-max inputs): step = T / hi on a symmetric [−T, T] or one-sided
 * [0, T] grid. Online, T is each batch's max |x|; calibrated, a constant found offline (an EMA of
 * batch maxima, or KL divergence: simulate/calibrate.ts) and kept in the state as `max`.
 */
export class Threshold implements ScaleSource {
  private readonly threshold = tf.variable(tf.scalar(0), false);

  constructor(readonly o: { mode: ThresholdMode; signedness: 'symmetric' | 'unsigned' }) {}

  /** Set the calibrated threshold (a positive finite number). */
  calibrate(threshold: number): void {
    if (!(threshold > 0) || !Number.isFinite(threshold)) throw new RangeError(`input threshold must be positive and finite, got ${threshold}`);
    this.threshold.assign(tf.scalar(threshold));
  }

  get calibrated(): number {
    return this.threshold.dataSync()[0]!;
  }

  grid(x: tf.Tensor, bits: number): Grid {
    if (this.o.mode === 'calibrated' && !(this.calibrated > 0)) throw new RangeError('calibrated input quantizer used before calibration');
    const range = quantRange(bits, this.o.signedness);
    const t = this.o.mode === 'online' ? tf.max(tf.abs(x)) : this.threshold;
    // an all-zero batch: any positive step quantizes it to zeros
    return { step: tf.maximum(tf.div(t, range.hi), 1e-30), range };
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map([['max', this.threshold]]);
  }
}
