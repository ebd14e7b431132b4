/**
 * Offline input calibration of a min-max quantized model, as the seed's tool does it:
 *
 * - naive: `epochs` passes over the calibration samples with the inputs unquantized (the weights
 *   quantized), an EMA of each layer's per-batch max |x| (EmaMaxObserver);
 * - kl: one pass of the FP model for each layer's max |x|, a second for a histogram of |x| in
 *   2048 bins over [0, max], then TensorRT's KL-divergence threshold search with 2^(b−1) target
 *   bins for a signed b-bit input and 2^b for an unsigned one (128 for int8, as TensorRT; 256 for
 *   uint8, as the seed).
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
import { UserError } from '../util/errors.js';
import { Prng } from '../util/prng.js';

export type CalibrationMode = 'naive' | 'kl';

export const KL_HISTOGRAM_BINS = 2048;

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
  if (short >= 0) throw new UserError(`--num-sample ${perClass}: class ${short} has only ${taken[short]} training samples`);
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
function observePass(model: QuantModel, set: ImageSet, policy: BitsPolicy, batchSize: number, onBatchEnd?: () => void): void {
  for (const batch of batches(set, batchSize)) {
    tf.tidy(() => {
      model.forward(batch.x, policy, false);
    });
    batch.x.dispose();
    batch.y.dispose();
    onBatchEnd?.();
  }
}

export interface CalibrationOptions {
  mode: CalibrationMode;
  /** naive: passes over the samples (the seed's --calib-epoch) */
  epochs: number;
  batchSize: number;
}

/**
 * Calibrates every quantized input of `model` at `policy` on `set` and sets the thresholds;
 * returns them by layer name.
 */
export function calibrateInputs(model: QuantModel, policy: BitsPolicy, set: ImageSet, o: CalibrationOptions): Map<string, number> {
  const probes = quantizedInputs(model, policy);
  const thresholds = new Map<string, number>();
  try {
    if (o.mode === 'naive') {
      const observers = probes.map(({ quantizer }) => {
        const observer = new EmaMaxObserver({ signed: quantizer.options.signed });
        // one observation per batch: the batch's max |x| (seed: update_ema after each forward)
        quantizer.observe = (values) => observer.observe(values);
        return observer;
      });
      for (let epoch = 0; epoch < o.epochs; epoch++) observePass(model, set, policy, o.batchSize);
      probes.forEach(({ name }, i) => thresholds.set(name, observers[i]!.maxAbs));
    } else {
      // the seed calibrates KL on the FP network: weights unquantized too
      const fpWeights: BitsPolicy = Object.fromEntries(Object.entries(policy).map(([n, b]) => [n, { ...b, weightBits: FULL_PRECISION_BITS }]));
      const maxima = probes.map(() => 0);
      probes.forEach(({ quantizer }, i) => {
        quantizer.observe = (values) => {
          for (let k = 0; k < values.length; k++) maxima[i] = Math.max(maxima[i]!, Math.abs(values[k]!));
        };
      });
      observePass(model, set, fpWeights, o.batchSize);
      const histograms = probes.map(() => new Float64Array(KL_HISTOGRAM_BINS));
      probes.forEach(({ name, quantizer }, i) => {
        if (!(maxima[i]! > 0)) throw new UserError(`--calib kl: the input of ${name} is zero on every calibration sample`);
        quantizer.observe = (values) => {
          const h = histogramOf(values, KL_HISTOGRAM_BINS, maxima[i]!);
          for (let k = 0; k < h.length; k++) histograms[i]![k] += h[k]!;
        };
      });
      observePass(model, set, fpWeights, o.batchSize);
      probes.forEach(({ name, quantizer, bits }, i) => {
        const targetBins = klTargetBins(bits, quantizer.options.signed);
        if (targetBins >= KL_HISTOGRAM_BINS) throw new UserError(`--calib kl: ${bits}-bit inputs need ${targetBins} target bins, more than the ${KL_HISTOGRAM_BINS}-bin histogram`);
        thresholds.set(name, klThreshold(histograms[i]!, maxima[i]! / KL_HISTOGRAM_BINS, { targetBins }));
      });
    }
  } finally {
    for (const { quantizer } of probes) quantizer.observe = undefined;
  }
  applyThresholds(model, policy, thresholds);
  return thresholds;
}

/** Sets calibrated thresholds (by layer name) on the quantized inputs of `model` at `policy`. */
export function applyThresholds(model: QuantModel, policy: BitsPolicy, thresholds: ReadonlyMap<string, number>): void {
  for (const { name, quantizer } of quantizedInputs(model, policy)) {
    const t = thresholds.get(name);
    if (t === undefined) throw new Error(`no calibrated threshold for the input of ${name}`);
    quantizer.calibrate(t);
  }
}
