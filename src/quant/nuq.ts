import * as tf from '@tensorflow/tfjs';
import { CODEBOOK_BITS } from './bits.js';
import { InitFlags, QuantizerBase } from './core.js';
import { codebookCode, type IntegerForm } from './integer-form.js';
import { gradScale } from './ste.js';

/**
 * Non-uniform quantization (PocketFlow's NonUniformQuantLearner, after Deep Compression, Han et
 * al. 2015): every weight is replaced by the nearest of 2^b learnable quantization points of its
 * layer or bucket. The forward uses the quantized weights; the backward passes the gradient
 * straight through to the full-precision weights, and each point's gradient is the sum of the
 * gradients of the weights assigned to it.
 */

/** What fine-tuning updates: the weights, the quantization points, or both. */
export type NuqOptMode = 'weights' | 'clusters' | 'both';
export const NUQ_OPT_MODES: readonly NuqOptMode[] = ['weights', 'clusters', 'both'];
/** Initial points: quantiles of the weights, or evenly spaced over [min, max]. */
export type NuqInit = 'quantile' | 'uniform';
export const NUQ_INITS: readonly NuqInit[] = ['quantile', 'uniform'];
/**
 * Buckets with their own points: 'split' cuts the row-major flattened weights into pieces of
 * `size` (the last one may be shorter); 'channel' gives every output channel (last axis) its own.
 */
export type NuqBuckets = { type: 'split'; size: number } | { type: 'channel' };

/** The seed's defaults (PocketFlow's nuql_* flags). */
export const NUQ_DEFAULTS = { optMode: 'weights', init: 'quantile', weightBits: 4, actBits: 32, bucketSize: 256 } as const;
/** Codebooks hold 2^b points each; PocketFlow's largest is 8 bits. */
export const NUQ_MAX_BITS = CODEBOOK_BITS.max;

export interface NuqOptions {
  bitsList: readonly number[];
  /** shape of the weight it quantizes: codebooks and indices are sized from it */
  shape: readonly number[];
  init?: NuqInit;
  optMode?: NuqOptMode;
  /** absent: one codebook for the whole tensor (PocketFlow's nuql_use_buckets = False) */
  buckets?: NuqBuckets;
}

/** value q forward; the gradient reaches both the weights (STE) and the gathered points. */
const straightThrough = tf.customGrad((x, q) => ({
  value: tf.clone(q as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => [dy, dy],
})) as (x: tf.Tensor, q: tf.Tensor) => tf.Tensor;

/**
 * The points at `index` (flat bucket·2^b + code) in `shape`. Backward: each point gets the sum of
 * the gradients at the elements assigned to it, summed here because the wasm backend has no
 * UnsortedSegmentSum kernel for tf.gather's gradient.
 */
function gatherPoints(table: tf.Tensor, index: Int32Array, shape: readonly number[]): tf.Tensor {
  const gather = tf.customGrad((t) => ({
    value: tf.tidy(() => tf.reshape(tf.gather(t as tf.Tensor, tf.tensor1d(index, 'int32')), [...shape])),
    gradFunc: (dy: tf.Tensor) => {
      const g = dy.dataSync();
      const sums = new Float32Array((t as tf.Tensor).size);
      for (let i = 0; i < index.length; i++) sums[index[i]!] += g[i]!;
      return tf.tensor(sums, (t as tf.Tensor).shape);
    },
  })) as (t: tf.Tensor) => tf.Tensor;
  return gather(table);
}

/** The p-quantile of sorted values, linear between order statistics (position p·(n−1)). */
function quantileOfSorted(sorted: Float64Array, p: number): number {
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * Initial points of one bucket: quantiles at (k+1)/(K+1), k = 0…K−1 (PocketFlow's percentiles),
 * or K points evenly spaced from the bucket's min to its max.
 */
export function initialPoints(values: ArrayLike<number>, levels: number, init: NuqInit): Float64Array {
  const sorted = Float64Array.from(values).sort();
  const points = new Float64Array(levels);
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  for (let k = 0; k < levels; k++) {
    points[k] = init === 'quantile'
      ? quantileOfSorted(sorted, (k + 1) / (levels + 1))
      : levels === 1 ? min : min + (k * (max - min)) / (levels - 1);
  }
  return points;
}

/** Index of the point nearest to v (ties: the smaller point), given the points' ascending order. */
function nearest(points: ArrayLike<number>, order: Int32Array, v: number): number {
  let lo = 0;
  let hi = order.length - 1;
  // first position whose point is >= v
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[order[mid]!]! < v) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && v - points[order[lo - 1]!]! <= points[order[lo]!]! - v) lo--;
  return order[lo]!;
}

/** The codebook family, beside the uniform quantizer: NUQ on the shared scaffolding (QuantizerBase). */
export class NuqQuantizer extends QuantizerBase {
  readonly kind = 'nuq';
  readonly init: NuqInit;
  readonly optMode: NuqOptMode;
  readonly buckets?: NuqBuckets;
  /** number of buckets (codebooks per bit-width) */
  readonly bucketCount: number;
  /**
   * Scale of the points' update: 1/√(weights per bucket), as LSQ scales its step size's. Their
   * gradient is the sum over the weights assigned to them, which grows with the bucket: unscaled,
   * 2-bit 'both' on mnist-cnn (31 steps, lr 0.01) drove conv3's points from ±0.05 to −0.23…0.35
   * and top-1 to 10.2%; scaled, 97.9%.
   */
  readonly pointGradScale: number;
  /** bucket of every element, row-major */
  private readonly bucketOf: Int32Array;
  /** [buckets, 2^b] points per bit-width */
  private readonly codebooks = new Map<number, tf.Variable>();
  /** each weight's point within its bucket (0…2^b−1), in the weight's shape: kept in checkpoints */
  private readonly indices = new Map<number, tf.Variable>();
  private readonly initialised: InitFlags;

  constructor(options: NuqOptions) {
    super(options.bitsList, CODEBOOK_BITS, 'non-uniform quantization');
    this.init = options.init ?? NUQ_DEFAULTS.init;
    this.optMode = options.optMode ?? NUQ_DEFAULTS.optMode;
    this.buckets = options.buckets;
    const size = options.shape.reduce((a, b) => a * b, 1);
    this.bucketOf = new Int32Array(size);
    const buckets = options.buckets;
    if (buckets?.type === 'split') {
      if (!Number.isInteger(buckets.size) || buckets.size < 1) throw new RangeError(`bucket size must be a positive integer, got ${buckets.size}`);
      for (let i = 0; i < size; i++) this.bucketOf[i] = Math.floor(i / buckets.size);
      this.bucketCount = Math.ceil(size / buckets.size);
    } else if (buckets?.type === 'channel') {
      const channels = options.shape[options.shape.length - 1] ?? 1;
      for (let i = 0; i < size; i++) this.bucketOf[i] = i % channels;
      this.bucketCount = channels;
    } else {
      this.bucketCount = 1;
    }
    for (const bits of this.bitsList) {
      this.codebooks.set(bits, tf.variable(tf.zeros([this.bucketCount, 2 ** bits]), this.optMode !== 'weights'));
      this.indices.set(bits, tf.variable(tf.zeros([...options.shape]), false));
    }
    this.initialised = new InitFlags(this.bitsList);
    this.pointGradScale = 1 / Math.sqrt(Math.max(1, size / this.bucketCount));
  }

  /** The [buckets, 2^bits] quantization points. */
  codebook(bits: number): tf.Variable {
    const c = this.codebooks.get(bits);
    if (!c) throw new RangeError(`no codebook for ${bits} bits (candidates: ${this.bitsList.join(', ')})`);
    return c;
  }

  /** Each weight's point within its bucket, as of the last quantization at `bits`. */
  assignment(bits: number): tf.Variable {
    this.codebook(bits);
    return this.indices.get(bits)!;
  }

  isInitialised(bits: number): boolean {
    return this.initialised.has(bits);
  }

  /**
   * Weights do not depend on the batch, so the points are initialised from the first tensor
   * quantized at a bit-width, in training or not (post-training k-quantile clustering).
   */
  protected quantizeAt(x: tf.Tensor, bits: number): tf.Tensor {
    const { codes, points } = this.assign(x, bits, true);
    tf.tidy(() => this.indices.get(bits)!.assign(tf.tensor(Float32Array.from(codes), x.shape)));
    const levels = 2 ** bits;
    const flatIndex = new Int32Array(codes.length);
    for (let i = 0; i < codes.length; i++) flatIndex[i] = this.bucketOf[i]! * levels + codes[i]!;
    return tf.tidy(() => {
      const table = this.optMode === 'weights' ? tf.tensor(points) : tf.reshape(gradScale(this.codebook(bits), this.pointGradScale), [-1]);
      const q = gatherPoints(table, flatIndex, x.shape);
      // 'clusters' freezes the weights: without a path to them they get no gradient (nor decay)
      return this.optMode === 'clusters' ? q : straightThrough(x, q);
    });
  }

  override trainableVariables(): tf.Variable[] {
    return this.optMode === 'weights' ? [] : [...this.codebooks.values()];
  }

  override namedState(): Map<string, tf.Variable> {
    const state = super.namedState();
    for (const bits of this.bitsList) {
      state.set(`codebook.${bits}`, this.codebooks.get(bits)!);
      state.set(`indices.${bits}`, this.indices.get(bits)!);
      state.set(`codebook_init.${bits}`, this.initialised.variable(bits));
    }
    return state;
  }

  /**
   * Codes as two's-complement bit patterns of the point index (what the packer stores), the
   * points as the codebook: one per run of `size` weights (split buckets) or per output channel.
   */
  protected override codesAt(x: tf.Tensor, bits: number): IntegerForm {
    const { codes, points } = this.assign(x, bits, false);
    const form: IntegerForm = { bits, q: codes.map((c) => codebookCode(c, bits)), scales: new Float32Array(0), codebook: points };
    if (this.buckets?.type === 'split') form.groupSize = this.buckets.size;
    if (this.buckets?.type === 'channel') form.perChannel = true;
    return form;
  }

  /**
   * Nearest point of every element. Points not initialised yet come from x: stored when `store`
   * (quantize), only used otherwise (integerForm is a query).
   */
  private assign(x: tf.Tensor, bits: number, store: boolean): { codes: Int32Array; points: Float32Array } {
    const values = x.dataSync();
    if (values.length !== this.bucketOf.length) {
      throw new RangeError(`NUQ quantizer built for ${this.bucketOf.length} weights got a tensor of ${values.length}`);
    }
    const levels = 2 ** bits;
    const codebook = this.codebook(bits);
    let points: Float32Array;
    if (this.isInitialised(bits)) {
      points = Float32Array.from(codebook.dataSync() as Float32Array);
    } else {
      const members: number[][] = Array.from({ length: this.bucketCount }, () => []);
      for (let i = 0; i < values.length; i++) members[this.bucketOf[i]!]!.push(values[i]!);
      points = new Float32Array(this.bucketCount * levels);
      members.forEach((m, b) => points.set(initialPoints(m, levels, this.init), b * levels));
      if (store) {
        tf.tidy(() => codebook.assign(tf.tensor(points, [this.bucketCount, levels])));
        this.initialised.set(bits);
      }
    }
    const orders = Array.from({ length: this.bucketCount }, (_, b) => {
      const row = points.subarray(b * levels, (b + 1) * levels);
      return Int32Array.from(row.keys()).sort((i, j) => row[i]! - row[j]! || i - j);
    });
    const codes = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const b = this.bucketOf[i]!;
      codes[i] = nearest(points.subarray(b * levels, (b + 1) * levels), orders[b]!, values[i]!);
    }
    return { codes, points };
  }
}
