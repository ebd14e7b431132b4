/**
 * Wiring post-training quantization into the ordinary training model: min-max quantizers plugged
 * in through the layers' quantizer factory, an FP checkpoint loaded into it, and batch norm merged
 * into the convolutions (`--merge-bn`). The forward pass is the model's own.
 */
import * as tf from '@tensorflow/tfjs';
import type { RangeGranularity } from '../calibrate/ranges.js';
import { foldBatchNorm } from '../fold/bn-fold.js';
import { MinMaxInputQuantizer, MinMaxWeightQuantizer, type InputRangeMode } from '../quant/minmax.js';
import type { Checkpoint } from '../train/checkpoint.js';
import { loadWeights } from '../train/run.js';
import { SwitchableBatchNorm, type QuantizerFactory } from '../train/layers.js';
import type { QuantModel } from '../train/models.js';
import { FieldError } from '../util/errors.js';

export interface MinMaxFactoryOptions {
  granularity: RangeGranularity;
  /** output channels per weight range for 'group' (dense layers use one range per unit, as the seed) */
  groupSize?: number;
  inputMode: InputRangeMode;
  /** quantize every input on a signed grid; else only inputs the model marks signed (the image) */
  inputSigned: boolean;
}

/** Min-max quantizers for every layer (seed 003's simulated quantization). */
export function minMaxQuantizers(o: MinMaxFactoryOptions): QuantizerFactory {
  return (site) => {
    if (site.role === 'input') {
      return new MinMaxInputQuantizer({ bitsList: site.bitsList, signed: o.inputSigned || site.signedness !== 'unsigned', mode: o.inputMode });
    }
    const granularity = o.granularity === 'group' && site.kind === 'linear' ? 'channel' : o.granularity;
    if (granularity === 'group' && (o.groupSize === undefined || site.outChannels % o.groupSize !== 0)) {
      throw new FieldError((n) => `${n('groupSize')} ${o.groupSize}: does not divide the ${site.outChannels} output channels of ${site.layerName}`);
    }
    return new MinMaxWeightQuantizer({ bitsList: site.bitsList, granularity, shape: site.weightShape, groupSize: o.groupSize });
  };
}

/**
 * Loads a checkpoint's weights, biases and batch norms into `model`, leaving its quantizer state
 * alone (an FP checkpoint has LSQ step sizes, a post-training model has none to load).
 */
export function loadWeightsOnly(model: QuantModel, dir: string, checkpoint?: Checkpoint): void {
  loadWeights(model, dir, { checkpoint, include: (name) => !/\.quan_[wa]_fn\./.test(name) });
}

/**
 * A variance v with float32(v + ε) = 1 exactly (ε the batch norm's own), so that a batch-norm set
 * with mean 0, variance v and γ 1 multiplies by exactly 1: the set then only adds β.
 */
export function identityVariance(bn: SwitchableBatchNorm): number {
  return Math.fround(1 - bn.epsilon);
}

/**
 * `--merge-bn`: folds each layer's full-precision batch-norm set into its weights (foldBatchNorm)
 * and turns every set of that batch norm into an identity plus the folded bias (mean 0,
 * variance identityVariance(bn), γ 1, β the bias), so the model's own forward pass runs the merged
 * network and the quantizers see the merged weights. FP outputs are preserved up to rounding.
 */
export function mergeBatchNorm(model: QuantModel): void {
  for (const layer of model.layers) {
    const bn = model.layerBatchNorms.get(layer.name);
    if (!bn) continue;
    const fp = bn.set('fp');
    const folded = foldBatchNorm(layer.weight.dataSync() as Float32Array, { shape: layer.weight.shape }, undefined, {
      gamma: fp.gamma.dataSync(), beta: fp.beta.dataSync(), movingMean: fp.movingMean.dataSync(),
      movingVariance: fp.movingVar.dataSync(), epsilon: bn.epsilon,
    });
    layer.weight.assign(tf.tensor(folded.weights, layer.weight.shape));
    for (const set of bn.sets.values()) {
      set.gamma.assign(tf.onesLike(set.gamma));
      set.beta.assign(tf.tensor1d(folded.bias));
      set.movingMean.assign(tf.zerosLike(set.movingMean));
      set.movingVar.assign(tf.fill(set.movingVar.shape, identityVariance(bn)));
    }
  }
}

/** The set `key` of `bn`, created as a copy of its full-precision set when missing. */
export function batchNormSet(bn: SwitchableBatchNorm, key: string): ReturnType<SwitchableBatchNorm['set']> {
  const existing = bn.sets.get(key);
  if (existing) return existing;
  const fp = bn.set('fp');
  const created = {
    gamma: tf.variable(fp.gamma.clone(), true), beta: tf.variable(fp.beta.clone(), true),
    movingMean: tf.variable(fp.movingMean.clone(), false), movingVar: tf.variable(fp.movingVar.clone(), false),
  };
  bn.sets.set(key, created);
  return created;
}

/**
 * Makes every batch norm's set `key` a copy of its full-precision set (creating it where missing).
 * Post-training quantization normalises with the FP statistics whatever the bit-width, and the
 * model may have no set, or an untrained one, for the bits a run quantizes a layer at (an FP
 * checkpoint's fixed layers carry an 8-bit set that FP training never used).
 */
export function useFullPrecisionBatchNorm(model: QuantModel, key: string): void {
  if (key === 'fp') return;
  for (const bn of model.batchNorms) {
    const fp = bn.set('fp');
    const set = batchNormSet(bn, key);
    set.gamma.assign(fp.gamma);
    set.beta.assign(fp.beta);
    set.movingMean.assign(fp.movingMean);
    set.movingVar.assign(fp.movingVar);
  }
}
