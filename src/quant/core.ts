import * as tf from '@tensorflow/tfjs';
import { checkBitsList, FULL_PRECISION_BITS, type BitRange } from './bits.js';
import type { IntegerForm } from './integer-form.js';
import type { Quantizer } from './quantizer.js';

/**
 * The scaffolding every quantizer stands on (uniform.ts builds the uniform ones from parts; NUQ,
 * DoReFa and naive bring their own arithmetic): the bit-width check, the two wrappers every
 * quantizer gets around its arithmetic — the full-precision bypass and the delay — and the
 * integer form as a query.
 */

/**
 * The delay wrapper: the quantizer passes its input through before training step `startStep`
 * (NNI's quant_start_step: steps count from 1, so 0 and 1 both quantize from the first). Training
 * forwards are counted in `steps`, a checkpointed variable, so a resumed run starts where it would
 * have.
 */
export class Delay {
  readonly steps = tf.variable(tf.scalar(0), false);

  constructor(public startStep: number) {}

  /** Training steps (forwards) seen. */
  get seen(): number {
    return this.steps.dataSync()[0]!;
  }

  /** NNI quantizes once quant_start_step <= the step being run. */
  get started(): boolean {
    return this.startStep <= this.seen + 1;
  }

  /** Whether this forward quantizes; a training forward counts as a step. */
  tick(training: boolean): boolean {
    const started = this.started;
    if (training) tf.tidy(() => this.steps.assign(tf.scalar(this.seen + 1)));
    return started;
  }
}

/**
 * Per-bit-width "initialised from data" flags (LSQ's step sizes, NUQ's codebooks start from the
 * first tensor they see), as variables that checkpoints keep: 1 once set.
 */
export class InitFlags {
  private readonly flags = new Map<number, tf.Variable>();

  constructor(bitsList: readonly number[]) {
    for (const bits of bitsList) this.flags.set(bits, tf.variable(tf.scalar(0), false));
  }

  has(bits: number): boolean {
    return this.flags.get(bits)?.dataSync()[0] === 1;
  }

  set(bits: number): void {
    tf.tidy(() => this.flags.get(bits)!.assign(tf.scalar(1)));
  }

  variable(bits: number): tf.Variable {
    return this.flags.get(bits)!;
  }
}

export abstract class QuantizerBase implements Quantizer {
  abstract readonly kind: string;
  readonly bitsList: readonly number[];
  activeBits: number = FULL_PRECISION_BITS;
  /** absent: quantizes from the first step (no step counter in the state) */
  protected delay?: Delay;

  /** `range`: the widths this quantizer's arithmetic takes (`what` names it in the error). */
  constructor(bitsList: readonly number[], range: BitRange, what: string) {
    checkBitsList(bitsList, range, what);
    this.bitsList = [...bitsList];
  }

  quantize(x: tf.Tensor, training: boolean): tf.Tensor {
    const bits = this.activeBits;
    // the full-precision bypass: 32 bits (or more) is the tensor itself
    if (bits >= FULL_PRECISION_BITS) return x;
    if (this.delay && !this.delay.tick(training)) return x;
    return this.quantizeAt(x, bits, training);
  }

  integerForm(x: tf.Tensor): IntegerForm | undefined {
    const bits = this.activeBits;
    if (bits >= FULL_PRECISION_BITS || !this.started) return undefined;
    return this.codesAt(x, bits);
  }

  /** The training step quantization starts at (NNI's quant_start_step; 0 or 1: the first). */
  get startStep(): number {
    return this.delay?.startStep ?? 0;
  }

  /** Sets the start step; a delay (and its `steps` counter in the state) is added when it matters. */
  set startStep(step: number) {
    if (!Number.isInteger(step) || step < 0) throw new RangeError(`start step must be a whole number >= 0, got ${step}`);
    if (this.delay) this.delay.startStep = step;
    else if (step > 1) this.delay = new Delay(step);
  }

  get started(): boolean {
    return this.delay?.started ?? true;
  }

  /** Training steps the delay counted (0 without a delay). */
  get stepsSeen(): number {
    return this.delay?.seen ?? 0;
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  namedState(): Map<string, tf.Variable> {
    return new Map(this.delay ? [['steps', this.delay.steps]] : []);
  }

  /** x fake-quantized at `bits` (below full precision, once started). */
  protected abstract quantizeAt(x: tf.Tensor, bits: number, training: boolean): tf.Tensor;

  /** x's integer form at `bits`, changing no state; undefined where the quantizer has none. */
  protected codesAt(_x: tf.Tensor, _bits: number): IntegerForm | undefined {
    return undefined;
  }
}
