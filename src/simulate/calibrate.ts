/**
 * Offline input calibration of a min-max quantized model, as the seed's tool does it:
 *
 * - naive: `epochs` passes over the calibration samples with the inputs unquantized (the weights
 *   quantized), an EMA of each layer's per-batch max |x| (EmaMaxObserver);
 * - kl: one pass of the FP model for each layer's max |x|, a second for a histogram of |x| in
 *   2048 bins over [0, max], then TensorRT's KL-divergence threshold search with 2^(b−1) target
 *   bins for a signed b-bit input and 2^b for an unsigned one (128 for int8, as TensorRT; 256 for
 *   uint8, as the seed), among the thresholds that clip at most CLIP_LIMIT of the input's values.
 *
 * Then one more pass counts what each threshold clips: the share of the input's calibration values
 * (zeros included) with |x| above it. Over CLIP_LIMIT, `clippingWarning` says so.
 *
 * Calibration samples: `perClass` training images of every class, the first ones of a seeded
 * shuffle (the seed's UniformSampler).
 */
import * as tf from '@tensorflow/tfjs';
import { EmaMaxObserver } from '../calibrate/ema.js';
import { histogramOf, klThreshold } from '../calibrate/kl.js';
import { MinMaxInputQuantizer } from '../quant/minmax.js';
import { FULL_PRECISION_BITS } from '../quant/bits.js';
import { batches, type ImageSet } from '../train/data.js';
import type { BitsPolicy, QuantModel } from '../train/models.js';
import { FieldError } from '../util/errors.js';
import { Prng } from '../util/prng.js';

export type CalibrationMode = 'naive' | 'kl';

export const KL_HISTOGRAM_BINS = 2048;

/**
 * The share of an input's calibration values (zeros included) a calibrated threshold may clip
 * without a warning, and KL's search keeps within it: KL's threshold is never below the 99.9th
 * percentile of |x|. Measured on MNIST models, KL's own minima clipped 8–16% where they collapsed
 * top-1 (the image, conv2), and 0.5% where they cost 1.5 points on a weak (66%) model; at
 * 0.1% W8A8 stays within 1 point of FP on both.
 */
export const CLIP_LIMIT = 0.001;

/** `perClass` samples of every class from a seeded shuffle of `set`, in shuffle order. */
export function samplePerClass(set: ImageSet, perClass: number, numClasses: number, seed: number): ImageSet {
  const order = new Prng(seed).shuffle(Int32Array.from({ length: set.count }, (_, i) => i));
  const taken = new Array<number>(numClasses).fill(0);
  const picked: number[] = [];
  for (const i of order) {
    const label = set.labels[i]!;
    if (taken[label]! < perClass) {
      taken[label]!++;
      picked.push(i);
      if (picked.length === perClass * numClasses) break;
    }
  }
  const short = taken.findIndex((n) => n < perClass);
  if (short >= 0) throw new FieldError((n) => `${n('numSample')} ${perClass}: class ${short} has only ${taken[short]} training samples`);
  const size = set.shape[0] * set.shape[1] * set.shape[2];
  const images = new Float32Array(picked.length * size);
  picked.forEach((i, k) => images.set(set.images.subarray(i * size, (i + 1) * size), k * size));
  return { images, labels: Int32Array.from(picked, (i) => set.labels[i]!), shape: set.shape, count: picked.length };
}

/** KL target bins for a b-bit input: its positive levels rounded up to a power of two. */
export function klTargetBins(bits: number, signed: boolean): number {
  return 2 ** (signed ? bits - 1 : bits);
}

/** The layers whose inputs the policy quantizes, with their min-max input quantizers. */
function quantizedInputs(model: QuantModel, policy: BitsPolicy): Array<{ name: string; quantizer: MinMaxInputQuantizer; bits: number }> {
  return model.layers.flatMap((layer) => {
    const bits = policy[layer.name]?.actBits ?? FULL_PRECISION_BITS;
    if (bits >= FULL_PRECISION_BITS) return [];
    if (!(layer.inputQuantizer instanceof MinMaxInputQuantizer)) throw new Error(`${layer.name}: input quantizer is not min-max`);
    return [{ name: layer.name, quantizer: layer.inputQuantizer, bits }];
  });
}

/** One pass over `set` at `policy`, each probe's observer seeing its layer's input. */
function observePass(model: QuantModel, set: ImageSet, policy: BitsPolicy, batchSize: number): void {
  for (const batch of batches(set, batchSize)) {
    tf.tidy(() => {
      model.forward(batch.x, policy, false);
    });
    batch.x.dispose();
    batch.y.dispose();
  }
}

export interface CalibrationOptions {
  mode: CalibrationMode;
  /** naive: passes over the samples (the seed's --calib-epoch) */
  epochs: number;
  batchSize: number;
}

/** Calibrated input thresholds and what they clip, by layer name. */
export interface Calibration {
  thresholds: Map<string, number>;
  /** share of the input's calibration values, zeros included, with |x| above the threshold */
  clipped: Map<string, number>;
}

/**
 * Calibrates every quantized input of `model` at `policy` on `set`, sets the thresholds and
 * returns them with what each clips.
 */
export function calibrateInputs(model: QuantModel, policy: BitsPolicy, set: ImageSet, o: CalibrationOptions): Calibration {
  const probes = quantizedInputs(model, policy);
  const thresholds = new Map<string, number>();
  // the seed calibrates KL on the FP network (weights unquantized too), naive at the weights' bits
  const passPolicy: BitsPolicy = o.mode === 'naive' ? policy
    : Object.fromEntries(Object.entries(policy).map(([n, b]) => [n, { ...b, weightBits: FULL_PRECISION_BITS }]));
  const observeAll = (observer: (i: number, values: Float32Array) => void) => {
    probes.forEach(({ quantizer }, i) => {
      quantizer.observe = (values) => observer(i, values);
    });
    observePass(model, set, passPolicy, o.batchSize);
  };
  try {
    if (o.mode === 'naive') {
      const observers = probes.map(({ quantizer }) => new EmaMaxObserver({ signed: quantizer.options.signed }));
      // one observation per batch: the batch's max |x| (seed: update_ema after each forward)
      for (let epoch = 0; epoch < o.epochs; epoch++) observeAll((i, values) => observers[i]!.observe(values));
      probes.forEach(({ name }, i) => thresholds.set(name, observers[i]!.maxAbs));
    } else {
      const maxima = probes.map(() => 0);
      const counts = probes.map(() => 0);
      observeAll((i, values) => {
        for (let k = 0; k < values.length; k++) maxima[i] = Math.max(maxima[i]!, Math.abs(values[k]!));
        counts[i] += values.length;
      });
      probes.forEach(({ name }, i) => {
        if (!(maxima[i]! > 0)) throw new FieldError((n) => `${n('calib')} kl: the input of ${name} is zero on every calibration sample`);
      });
      const histograms = probes.map(() => new Float64Array(KL_HISTOGRAM_BINS));
      observeAll((i, values) => {
        const h = histogramOf(values, KL_HISTOGRAM_BINS, maxima[i]!);
        for (let k = 0; k < h.length; k++) histograms[i]![k] += h[k]!;
      });
      probes.forEach(({ name, quantizer, bits }, i) => {
        const targetBins = klTargetBins(bits, quantizer.options.signed);
        if (targetBins >= KL_HISTOGRAM_BINS) throw new FieldError((n) => `${n('calib')} kl: ${bits}-bit inputs need ${targetBins} target bins, more than the ${KL_HISTOGRAM_BINS}-bin histogram`);
        thresholds.set(name, klThreshold(histograms[i]!, maxima[i]! / KL_HISTOGRAM_BINS, { targetBins, maxOutliers: CLIP_LIMIT * counts[i]! }));
      });
    }
    const above = probes.map(() => 0);
    const seen = probes.map(() => 0);
    const limits = probes.map(({ name }) => thresholds.get(name)!);
    observeAll((i, values) => {
      for (let k = 0; k < values.length; k++) if (Math.abs(values[k]!) > limits[i]!) above[i]++;
      seen[i] += values.length;
    });
    const clipped = new Map(probes.map(({ name }, i) => [name, above[i]! / seen[i]!]));
    applyThresholds(model, policy, thresholds);
    return { thresholds, clipped };
  } finally {
    for (const { quantizer } of probes) quantizer.observe = undefined;
  }
}

/**
 * One line naming the inputs whose calibrated thresholds clip more than CLIP_LIMIT of their
 * calibration values (worst first), or undefined when none does.
 */
export function clippingWarning(clipped: ReadonlyMap<string, number>): string | undefined {
  const over = [...clipped].filter(([, share]) => share > CLIP_LIMIT).sort((a, b) => b[1] - a[1]);
  if (over.length === 0) return undefined;
  const pct = (share: number) => `${(100 * share).toFixed(share < 0.1 ? 2 : 1)}%`;
  return `calibrated input thresholds clip more than ${pct(CLIP_LIMIT)} of the calibration values: `
    + `${over.map(([name, share]) => `${name} ${pct(share)}`).join(', ')} (those inputs lose their largest values; try another calibration mode)`;
}

/** Sets calibrated thresholds (by layer name) on the quantized inputs of `model` at `policy`. */
export function applyThresholds(model: QuantModel, policy: BitsPolicy, thresholds: ReadonlyMap<string, number>): void {
  for (const { name, quantizer } of quantizedInputs(model, policy)) {
    const t = thresholds.get(name);
    if (t === undefined) throw new Error(`no calibrated threshold for the input of ${name}`);
    quantizer.calibrate(t);
  }
}
