import * as tf from '@tensorflow/tfjs';
import { foldBatchNorm } from '../fold/bn-fold.js';
import {
  CODE_BITS, DorefaQuantizer, NAIVE_BITS, NaiveQuantizer, NUQ_MAX_BITS, NuqQuantizer, QatQuantizer, QUANTIZER_CONVENTIONS, QUANTIZER_NAMES, QuantizerBase,
  type NuqBuckets, type NuqInit, type NuqOptMode, type Quantizer, type QuantizerName,
} from '../quant/index.js';
import { UserError } from '../util/errors.js';
import type { CheckpointManifest } from './checkpoint.js';
import { bnKey, lsqQuantizers, SwitchableBatchNorm, type QuantizerFactory, type QuantizerSite } from './layers.js';
import type { QuantModel } from './models.js';

/** Quantizers by name, built into a model's layers through the QuantizerFactory seam (the wiring of quant/ into train/). */

export interface QuantizerChoice {
  name: QuantizerName;
  nuq?: { init?: NuqInit; optMode?: NuqOptMode; buckets?: NuqBuckets };
  qat?: { decay?: number };
}

/**
 * The quantizer a checkpoint was finetuned with, as its meta records it (`quantizer`, and NUQ's
 * `nuq` options, which shape its codebooks); LSQ when it names none (full-precision, pretrained).
 */
export function savedQuantizerChoice(manifest: CheckpointManifest, dir: string): QuantizerChoice {
  const { quantizer, nuq } = manifest.meta;
  if (quantizer === undefined) return { name: 'lsq' };
  if (!(QUANTIZER_NAMES as readonly unknown[]).includes(quantizer)) {
    throw new UserError(`${dir}: meta.quantizer ${JSON.stringify(quantizer)} is not one of ${QUANTIZER_NAMES.join(', ')}`);
  }
  const name = quantizer as QuantizerName;
  return name === 'nuq' && typeof nuq === 'object' && nuq !== null ? { name, nuq: nuq as QuantizerChoice['nuq'] } : { name };
}

/** A pass-through for the sides a quantizer leaves in full precision (weight-only quantizers' inputs). */
export class PassThroughQuantizer extends QuantizerBase {
  readonly kind = 'none';
  constructor(bitsList: readonly number[]) {
    super(bitsList, CODE_BITS, 'a pass-through');
  }
  protected quantizeAt(x: tf.Tensor): tf.Tensor {
    return x;
  }
}

/** A factory that also records the sites it built quantizers for (config lists map onto them). */
export type RecordingFactory = QuantizerFactory & { sites: QuantizerSite[] };

/** `perChannelWeights`: LSQ weight step sizes per output channel (QuantizerChoice 'lsq' only). */
export function quantizerFactory(choice: QuantizerChoice, perChannelWeights = false): RecordingFactory {
  const lsq = lsqQuantizers(perChannelWeights);
  const activations = QUANTIZER_CONVENTIONS[choice.name].activations;
  const sites: QuantizerSite[] = [];
  const build = (site: QuantizerSite): Quantizer => {
    sites.push(site);
    if (site.role === 'input') {
      if (activations === 'lsq') return lsq(site);
      if (activations === 'ema-minmax') return new QatQuantizer({ bitsList: site.bitsList, role: 'activation', decay: choice.qat?.decay });
      return new PassThroughQuantizer(site.bitsList);
    }
    switch (choice.name) {
      case 'lsq': return lsq(site);
      // the model's bit list also holds activation widths, which may exceed a codebook's
      case 'nuq': return new NuqQuantizer({ bitsList: site.bitsList.filter((b) => b <= NUQ_MAX_BITS), shape: site.weightShape, ...choice.nuq });
      case 'qat': return new QatQuantizer({ bitsList: site.bitsList, role: 'weight' });
      case 'dorefa': return new DorefaQuantizer(site.bitsList);
      case 'naive': return new NaiveQuantizer(site.bitsList.filter((b) => b === NAIVE_BITS));
    }
  };
  return Object.assign(build, { sites });
}

/** Every quantizer of a model, weights and inputs, in layer order. */
export function modelQuantizers(model: QuantModel): Quantizer[] {
  return model.layers.flatMap((l) => [l.weightQuantizer, l.inputQuantizer]);
}

/**
 * QAT's batch-norm folding: each conv's QAT weight quantizer gets the fold scale γ/√(σ²+ε) of the
 * batch norm after it (the BN set its weight bits select), computed by foldBatchNorm on a unit
 * kernel. Each conv's batch norm is the one right after it in the model's graph; a conv without
 * one is left unfolded. Returns the names of the folded layers.
 */
export function bindBatchNormFolds(model: QuantModel): string[] {
  const folded: string[] = [];
  for (const conv of model.layers) {
    const q = conv.weightQuantizer;
    const bn = model.layerBatchNorms.get(conv.name);
    if (conv.kind !== 'conv' || !bn || !(q instanceof QatQuantizer)) continue;
    q.foldScale = (bits) => foldScaleOf(bn, bits);
    folded.push(conv.name);
  }
  return folded;
}

function foldScaleOf(bn: SwitchableBatchNorm, bits: number): Float32Array | undefined {
  const set = bn.sets.get(bnKey(bits));
  if (!set) return undefined;
  const unit = new Float32Array(bn.channels).fill(1);
  return foldBatchNorm(unit, { shape: [1, bn.channels] }, undefined, {
    gamma: set.gamma.dataSync(), beta: set.beta.dataSync(), movingMean: set.movingMean.dataSync(),
    movingVariance: set.movingVar.dataSync(), epsilon: bn.epsilon,
  }).weights;
}
