import { readPolicy } from '../export/policy-file.js';
import type { LayerSelection } from '../model/graph-table.js';
import { FULL_PRECISION_BITS, NUQ_DEFAULTS, QatQuantizer, quantizerBitsProblem, QUANTIZER_CONVENTIONS } from '../quant/index.js';
import { FieldError, type FieldNamer } from '../util/errors.js';
import { configListBits, readConfigList, resolveConfigList } from './config-list.js';
import type { ImageSet } from './data.js';
import { evaluate } from './loops.js';
import { FIXED_LAYER_BITS, type BitsPolicy, type QuantModel } from './models.js';
import { policyBits, policyFromFile, withFixedLayers } from './policies.js';
import { bindBatchNormFolds, modelQuantizers, quantizerFactory, type QuantizerChoice, type RecordingFactory } from './quantizer-factory.js';

/**
 * What a quantized run asks for — which quantizer, and bits from a policy file, uniform flags or an
 * NNI config list — turned into the model's candidate bits, its quantizer factory and, once the
 * model is built, the bits of every layer.
 */
export interface QuantizeRequest {
  /** default: LSQ, the engine's own quantizer */
  quantizer?: QuantizerChoice;
  policyPath?: string;
  /** uniform bits of the searchable layers (32: not quantized) */
  weightBits?: number;
  /** default: the quantizer's convention (LSQ/QAT: = weight bits; NUQ: 32; DoReFa/naive: weights only) */
  actBits?: number;
  /** NNI config list: bits and start steps per layer */
  configPath?: string;
  /** LSQ weight step sizes per output channel instead of per tensor */
  perChannelWeights?: boolean;
  /**
   * first/last layers at 8 bits (their batch norms exist for 8 bits and FP only) or unquantized;
   * default: as a policy file says (8), else the quantizer's convention (NUQ: unquantized)
   */
  quantizeFirstLast?: boolean;
}

export interface QuantizationPlan {
  /** candidate bit-widths the model is built with */
  bits: number[];
  /** absent: the model's default quantizers (LSQ) */
  quantizers?: RecordingFactory;
  /** LSQ weight steps per output channel (ModelOptions.perChannelWeights) */
  perChannelWeights: boolean;
  /** the fixed layers a policy file names (the model must be built with them) */
  layers?: LayerSelection;
  /**
   * Binds the plan to the built model: the bits of every layer, with a config list's start steps
   * and QAT's batch-norm folds set on its quantizers.
   */
  attach(model: QuantModel): BitsPolicy;
  /** what was asked, for run metadata and summaries */
  describe: Record<string, unknown>;
}

const NOT_QUANTIZED = FULL_PRECISION_BITS;

/** `where`: the option field (or file entry) that gives these bits. */
function checkBits(name: QuantizerChoice['name'], side: 'weight' | 'activation', bits: number, where: (n: FieldNamer) => string): void {
  const problem = quantizerBitsProblem(name, side, bits);
  if (problem) throw new FieldError((n) => `${where(n)}: ${problem}`);
}

/** The plan, or undefined when nothing asks for quantization (a full-precision run). */
export function planQuantization(req: QuantizeRequest): QuantizationPlan | undefined {
  const sources = (['policyPath', 'weightBits', 'configPath'] as const).filter((field) => req[field] !== undefined);
  if (sources.length > 1) throw new FieldError((n) => `${sources.map(n).join(' and ')}: give one source of bits (a policy file, uniform bits or a config list)`);
  if (req.actBits !== undefined && req.weightBits === undefined) throw new FieldError((n) => `${n('actBits')}: needs ${n('weightBits')} (uniform bits)`);
  const choice = req.quantizer ?? { name: 'lsq' as const };
  const perChannelWeights = req.perChannelWeights === true;
  if (perChannelWeights && choice.name !== 'lsq') throw new FieldError((n) => `${n('perChannelWeights')}: LSQ step sizes only, not ${n('quantizer')} ${choice.name}`);
  const quantizers = req.quantizer ? quantizerFactory(req.quantizer, perChannelWeights) : undefined;
  const convention = QUANTIZER_CONVENTIONS[choice.name];
  const describe: Record<string, unknown> = {
    quantizer: choice.name, ...(choice.nuq && { nuq: choice.nuq }), ...(perChannelWeights && { weight_steps: 'per-channel' }),
  };
  const bindQat = (model: QuantModel) => {
    const folded = bindBatchNormFolds(model);
    if (folded.length > 0) describe.bn_folded = folded;
  };
  /** First/last layers kept or dropped; a weight-only quantizer's activations said to be 32 bits. */
  const firstLast = (model: QuantModel, policy: BitsPolicy, byDefault: boolean): BitsPolicy => {
    const keep = req.quantizeFirstLast ?? byDefault;
    return Object.fromEntries(Object.entries(policy)
      .filter(([name]) => keep || !model.fixedLayerNames.includes(name))
      .map(([name, bits]) => [name, convention.activations === 'none' ? { ...bits, actBits: NOT_QUANTIZED } : bits]));
  };

  if (req.policyPath !== undefined) {
    const path = req.policyPath;
    const file = readPolicy(path);
    for (const l of file.layers) {
      checkBits(choice.name, 'weight', l.weightBits, () => `${path}: layer ${l.name} weight bits`);
      checkBits(choice.name, 'activation', l.actBits, () => `${path}: layer ${l.name} activation bits`);
    }
    Object.assign(describe, { policy: path });
    return {
      bits: policyBits(file), quantizers, perChannelWeights, describe, layers: { fixed: file.fixed.map((l) => l.name), fixedFrom: `${path}: field 'fixed'` },
      attach(model) {
        bindQat(model);
        return firstLast(model, policyFromFile(model, file, path), true);
      },
    };
  }

  // PocketFlow's learner has a default width (nuql_weight_bits 4); the others need bits
  const nuqDefault = choice.name === 'nuq' && req.policyPath === undefined && req.configPath === undefined;
  if (req.weightBits !== undefined || nuqDefault) {
    const weightBits = req.weightBits ?? NUQ_DEFAULTS.weightBits;
    const actBits = req.actBits ?? convention.defaultActBits(weightBits);
    checkBits(choice.name, 'weight', weightBits, (n) => n('weightBits'));
    checkBits(choice.name, 'activation', actBits, (n) => n('actBits'));
    if (weightBits === NOT_QUANTIZED && actBits === NOT_QUANTIZED) throw new FieldError((n) => `${n('weightBits')} 32 ${n('actBits')} 32: nothing to quantize`);
    Object.assign(describe, { weight_bits: weightBits, act_bits: actBits });
    return {
      bits: [...new Set([weightBits, actBits])].filter((b) => b < NOT_QUANTIZED).sort((a, b) => b - a), quantizers, perChannelWeights, describe,
      attach(model) {
        bindQat(model);
        const searchable = Object.fromEntries(model.searchableLayerNames.map((n) => [n, { weightBits, actBits }]));
        const policy = firstLast(model, withFixedLayers(model, searchable), convention.quantizeFirstLast);
        describe.quantize_first_last = model.fixedLayerNames.some((n) => n in policy);
        return policy;
      },
    };
  }

  if (req.configPath !== undefined) {
    const path = req.configPath;
    const entries = readConfigList(path, choice.name);
    // the sites tell which layers take a ReLU's output (an unsigned input)
    const recording = quantizers ?? quantizerFactory(choice, perChannelWeights);
    Object.assign(describe, { config: path });
    return {
      bits: configListBits(entries), quantizers: recording, perChannelWeights, describe,
      attach(model) {
        const resolved = resolveConfigList(entries, model.layers.map((l) => ({
          name: l.name, kind: l.kind,
          reluInput: recording.sites.some((s) => s.layerName === l.name && s.role === 'input' && s.signedness === 'unsigned'),
          fixed: model.fixedLayerNames.includes(l.name),
        })), { source: path, model: model.name, fixedBits: FIXED_LAYER_BITS });
        for (const layer of model.layers) {
          const r = resolved[layer.name];
          for (const [q, site] of [[layer.weightQuantizer, r?.weight], [layer.inputQuantizer, r?.input]] as const) q.startStep = site?.startStep ?? 0;
        }
        bindQat(model);
        return Object.fromEntries(Object.entries(resolved).map(([name, r]) => [name, {
          weightBits: r.weight?.bits ?? NOT_QUANTIZED, actBits: r.input?.bits ?? NOT_QUANTIZED,
        }]));
      },
    };
  }
  return undefined;
}

/** Training images post-training calibration looks at (QAT/NUQ activation ranges). */
export const CALIBRATION_IMAGES = 512;

/**
 * Activation quantizers that track ranges (QAT's EMA min/max) and have none yet — a run that was not
 * trained at its bits — observe inference-mode forwards over `set` first. Returns how many were
 * calibrated.
 */
export function calibrateActivationRanges(model: QuantModel, set: ImageSet, policy: BitsPolicy): number {
  const pending = modelQuantizers(model).filter((q): q is QatQuantizer => q instanceof QatQuantizer && q.needsCalibration());
  if (pending.length === 0) return 0;
  for (const q of pending) q.calibrating = true;
  try {
    evaluate(model, set, policy);
  } finally {
    for (const q of pending) q.calibrating = false;
  }
  return pending.filter((q) => q.trackedRange() !== undefined).length;
}
