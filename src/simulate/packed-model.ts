/**
 * A quantized tfjs model to and from the MPQP container (src/export/packed.ts).
 *
 * What goes in:
 * - every layer quantized by the policy: its weight quantizer's integer form (codes at the
 *   layer's bits, scales, codebook) — the weights are never stored in float;
 * - as float32 tensors, under their checkpoint names: weights of layers the policy leaves in full
 *   precision, biases, and the input quantizers' state at the layer's activation bits (LSQ:
 *   `s.<bits>`, `s_init.<bits>`; min-max: the calibrated `max`; QAT: `tracked_range`, `tracked`),
 *   but the delay's step counter, which inference does not read (every quantizer in use must have
 *   started);
 * - each batch-norm set the policy's forward pass reads, as one [4, channels] float32 tensor
 *   `<bn>.bns.<key>` of rows γ, β, running mean, running variance (after `--merge-bn`: 1, the
 *   folded bias, 0, identityVariance(bn));
 * - meta: the model, its candidate bits, the policy, and which input quantizers to rebuild.
 *
 * Loading builds the same model, assigns the float tensors, sets each quantized layer's weight to
 * its dequantized codes and swaps its weight quantizer for one that passes them through: the
 * forward pass is the fake-quantized model's, on the same values, so its outputs are equal.
 */
import * as tf from '@tensorflow/tfjs';
import { packedByteLength, writePacked, type PackedFloat, type PackedLayer, type PackedModel } from '../export/packed.js';
import { compressionRatio as crOf, costs } from '../model/costs.js';
import { QUANTIZER_CONVENTIONS, type QuantizerName } from '../quant/conventions.js';
import { QuantizerBase } from '../quant/core.js';
import { QatQuantizer } from '../quant/qat.js';
import { dequantize, type IntegerForm } from '../quant/quantizer.js';
import { bitsProblem, CODE_BITS, FULL_PRECISION_BITS, SUPPORTED_BITS } from '../quant/bits.js';
import { lsqQuantizers, type QuantizerFactory } from '../train/layers.js';
import { createModel, namedVariables, type BitsPolicy, type QuantModel } from '../train/models.js';
import { PassThroughQuantizer } from '../train/quantizer-factory.js';
import { UserError } from '../util/errors.js';
import { batchNormSet, minMaxQuantizers } from './model.js';
import { parseGraphJson } from '../model/graph-file.js';
import { recordedGraph } from '../train/checkpoint.js';
import type { ModelSource } from '../model/resolve.js';
import { thousands } from '../util/format.js';

export const PACKED_MODEL_FORMAT = 'mpq-packed-model';

/**
 * Which input quantizers a packed model's layers are rebuilt with: LSQ steps, min-max thresholds,
 * QAT's tracked ranges (QAT and NUQ), or none (weight-only quantizers: DoReFa, naive).
 */
export type InputQuantizerSpec =
  | { kind: 'lsq' }
  | { kind: 'minmax'; inputMode: 'online' | 'calibrated'; inputSigned: boolean }
  | { kind: 'qat' }
  | { kind: 'none' };

const INPUT_KINDS: ReadonlyArray<InputQuantizerSpec['kind']> = ['lsq', 'minmax', 'qat', 'none'];

/** The input quantizers of a model a `--quantizer` built (its activation convention). */
export function inputQuantizersOf(name: QuantizerName): InputQuantizerSpec {
  const activations = QUANTIZER_CONVENTIONS[name].activations;
  return { kind: activations === 'lsq' ? 'lsq' : activations === 'ema-minmax' ? 'qat' : 'none' };
}

/** The factory that rebuilds the input quantizers (weight quantizers are replaced on load). */
function factoryFor(spec: InputQuantizerSpec): QuantizerFactory {
  switch (spec.kind) {
    case 'lsq': return lsqQuantizers();
    case 'minmax': return minMaxQuantizers({ granularity: 'layer', inputMode: spec.inputMode, inputSigned: spec.inputSigned });
    case 'qat': return (site) => (site.role === 'input' ? new QatQuantizer({ bitsList: site.bitsList, role: 'activation' }) : new PassThroughQuantizer(site.bitsList));
    case 'none': return (site) => new PassThroughQuantizer(site.bitsList);
  }
}

/** A weight quantizer for weights that already are their dequantized codes: passes them through. */
export class StoredCodesQuantizer extends QuantizerBase {
  readonly kind = 'stored-codes';

  constructor(readonly form: IntegerForm) {
    super([form.bits], CODE_BITS, 'stored codes');
    this.activeBits = form.bits;
  }

  protected quantizeAt(x: tf.Tensor): tf.Tensor {
    return x;
  }

  protected override codesAt(): IntegerForm {
    return this.form;
  }
}

/** Batch-norm sets (`<bn>.bns.<key>`) the model's forward pass at `policy` reads. */
export function batchNormSetsUsed(model: QuantModel, policy: BitsPolicy): Set<string> {
  return new Set(model.batchNorms.map((bn) => `${bn.name}.bns.${model.batchNormKey(bn, policy)}`));
}

/** Per-bit-width quantizer state is named `<key>.<bits>`; state without a bits suffix always applies. */
function stateForBits(key: string, bits: number): boolean {
  const m = /\.(\d+)$/.exec(key);
  return m === null || Number(m[1]) === bits;
}

function floatOf(name: string, v: tf.Variable): PackedFloat {
  return { name, shape: [...v.shape], values: Float32Array.from(v.dataSync() as Float32Array) };
}

/** Packs `model` at `policy` (see the file comment for what goes in). */
export function packModel(model: QuantModel, policy: BitsPolicy, inputs: InputQuantizerSpec, meta: Record<string, unknown> = {}): Uint8Array {
  const layers: PackedLayer[] = [];
  const floats: PackedFloat[] = [];
  for (const layer of model.layers) {
    const bits = policy[layer.name] ?? { weightBits: FULL_PRECISION_BITS, actBits: FULL_PRECISION_BITS };
    const inputPrefix = `${layer.name}.quan_a_fn.`;
    for (const [q, b, side] of [[layer.weightQuantizer, bits.weightBits, 'weight'], [layer.inputQuantizer, bits.actBits, 'input']] as const) {
      if (b < FULL_PRECISION_BITS && !q.started) throw new UserError(`${layer.name}: its ${side} quantizer has not reached its start step ${q.startStep} (train further first)`);
    }
    for (const [name, v] of layer.namedState()) {
      if (name === `${inputPrefix}steps`) continue;
      if (name === `${layer.name}.weight`) {
        if (bits.weightBits >= FULL_PRECISION_BITS) floats.push(floatOf(name, v));
      } else if (name.startsWith(inputPrefix)) {
        if (bits.actBits < FULL_PRECISION_BITS && stateForBits(name.slice(inputPrefix.length), bits.actBits)) floats.push(floatOf(name, v));
      } else if (!name.startsWith(`${layer.name}.quan_w_fn.`)) {
        floats.push(floatOf(name, v));
      }
    }
    if (bits.weightBits >= FULL_PRECISION_BITS) continue;
    const quantizer = layer.weightQuantizer;
    quantizer.activeBits = bits.weightBits;
    const form = quantizer.integerForm(layer.weight);
    if (!form) throw new UserError(`${layer.name}: its '${quantizer.kind}' weight quantizer gives no integer codes to pack at ${bits.weightBits} bits`);
    layers.push({ name: layer.name, shape: [...layer.weight.shape], ...form });
  }
  const sets = batchNormSetsUsed(model, policy);
  for (const bn of model.batchNorms) {
    for (const [key, set] of bn.sets) {
      const name = `${bn.name}.bns.${key}`;
      if (!sets.has(name)) continue;
      const rows = [set.gamma, set.beta, set.movingMean, set.movingVar].map((v) => v.dataSync() as Float32Array);
      const values = new Float32Array(4 * bn.channels);
      rows.forEach((row, r) => values.set(row, r * bn.channels));
      floats.push({ name, shape: [4, bn.channels], values });
    }
  }
  const graph = recordedGraph(model.graph);
  return writePacked(layers, {
    format: PACKED_MODEL_FORMAT, model: model.name, ...(graph ? { graph } : {}), fixed: model.fixedLayerNames, bits: [...model.bitsList],
    policy: Object.fromEntries(Object.entries(policy).map(([name, b]) => [name, [b.weightBits, b.actBits]])),
    inputs, ...meta,
  }, floats);
}

/** The model a packed file holds: its zoo name, or the graph it records (an imported model). */
export function packedModelSource(packed: PackedModel, source: string): ModelSource {
  return packed.meta.graph !== undefined ? { graph: parseGraphJson(packed.meta.graph, `${source}: meta.graph`) } : String(packed.meta.model);
}

export interface LoadedPackedModel {
  model: QuantModel;
  policy: BitsPolicy;
  packed: PackedModel;
}

/**
 * The tfjs model a packed file holds (read with readPacked), at its policy. Files that are not
 * packed models, or do not fit the model they name, are one-line UserErrors naming `source`.
 */
export function loadPackedModel(packed: PackedModel, source: string, from = packedModelSource(packed, source)): LoadedPackedModel {
  const { meta } = packed;
  const fail = (message: string): never => {
    throw new UserError(`${source}: ${message}`);
  };
  if (meta.format !== PACKED_MODEL_FORMAT) fail(`meta.format is ${JSON.stringify(meta.format)}, not a packed model ("${PACKED_MODEL_FORMAT}")`);
  const inputs = meta.inputs as InputQuantizerSpec | undefined;
  if (!INPUT_KINDS.includes(inputs?.kind as InputQuantizerSpec['kind'])) fail(`meta.inputs names no input quantizer this build can rebuild (${INPUT_KINDS.join(', ')})`);
  const bitsList = meta.bits;
  if (!Array.isArray(bitsList) || !bitsList.every((b) => bitsProblem(b) === undefined)) fail('meta.bits is not a list of bit-widths');
  const rawPolicy = (meta.policy ?? {}) as Record<string, unknown>;
  const policy: BitsPolicy = {};
  for (const [name, pair] of Object.entries(rawPolicy)) {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((b) => bitsProblem(b, SUPPORTED_BITS, { fullPrecision: true }) === undefined)) fail(`meta.policy.${name} is not [weightBits, actBits]`);
    policy[name] = { weightBits: (pair as number[])[0]!, actBits: (pair as number[])[1]! };
  }

  const fixed = meta.fixed;
  if (fixed !== undefined && (!Array.isArray(fixed) || !fixed.every((n) => typeof n === 'string'))) fail('meta.fixed is not a list of layer names');
  const model = createModel(from, { bits: bitsList as number[], quantizers: factoryFor(inputs!), ...(fixed ? { layers: { fixed: fixed as string[] } } : {}) });
  const batchNorms = new Map(model.batchNorms.map((bn) => [bn.name, bn]));
  const variables = namedVariables(model);
  for (const f of packed.floats) {
    const set = /^(.*)\.bns\.([^.]+)$/.exec(f.name);
    const bn = set ? batchNorms.get(set[1]!) : undefined;
    if (set && bn) {
      if (f.shape.join('x') !== `4x${bn.channels}`) fail(`batch-norm set '${f.name}' has shape [${f.shape}], ${bn.name} needs [4, ${bn.channels}]`);
      const { gamma, beta, movingMean, movingVar } = batchNormSet(bn, set[2]!);
      [gamma, beta, movingMean, movingVar].forEach((v, r) => v.assign(tf.tensor1d(f.values.subarray(r * bn.channels, (r + 1) * bn.channels))));
      continue;
    }
    const v = variables.get(f.name) ?? fail(`float tensor '${f.name}' is not a variable of ${model.name}`);
    if (v.shape.join('x') !== f.shape.join('x')) fail(`float tensor '${f.name}' has shape [${f.shape}], the model expects [${v.shape}]`);
    v.assign(tf.tensor(f.values, f.shape));
  }
  const byName = new Map(packed.layers.map((l) => [l.name, l]));
  for (const layer of model.layers) {
    const bits = policy[layer.name];
    if (!bits || bits.weightBits >= FULL_PRECISION_BITS) continue;
    const stored = byName.get(layer.name) ?? fail(`layer '${layer.name}' is quantized by the policy but has no codes`);
    if (stored.shape.join('x') !== layer.weight.shape.join('x')) fail(`layer '${layer.name}' has shape [${stored.shape}], the model expects [${layer.weight.shape}]`);
    if (stored.bits !== bits.weightBits) fail(`layer '${layer.name}' holds ${stored.bits}-bit codes, the policy says ${bits.weightBits}`);
    const { name: _name, shape: _shape, ...form } = stored;
    layer.weight.assign(tf.tensor(dequantize(form), stored.shape));
    layer.weightQuantizer = new StoredCodesQuantizer(form);
  }
  return { model, policy, packed };
}

/** How far a packed file may be from FP32 weight bytes / compression ratio (issue #6). */
export const PACKED_SIZE_TOLERANCE_PERCENT = 5;

export interface PackedSize {
  /** the file: header and compressed payload */
  fileBytes: number;
  /** the payload uncompressed: codeBytes + floatBytes + indexBytes */
  payloadBytes: number;
  /** bit-packed weight codes */
  codeBytes: number;
  /** float32 tensors (batch norm, biases, FP weights, activation steps) */
  floatBytes: number;
  /** index length word, JSON index (scales, codebooks, names, meta) and alignment padding */
  indexBytes: number;
  /** weight parameters of the model, all layers */
  weightParams: number;
  /** 4 bytes per weight parameter */
  fp32WeightBytes: number;
  /** the search's compression ratio: 32·params / Σ bits·params (FP layers at 32 bits) */
  compressionRatio: number;
  /** fp32WeightBytes / compressionRatio: what the weights should take */
  targetBytes: number;
  /** the whole file against targetBytes, signed: 100 · (fileBytes / targetBytes − 1) */
  deviationPercent: number;
  /** fileBytes − targetBytes, rounded: positive over, negative under */
  deviationBytes: number;
  /** |deviationPercent| ≤ PACKED_SIZE_TOLERANCE_PERCENT */
  withinTolerance: boolean;
  tolerancePercent: number;
}

/**
 * Where a packed file's bytes go, and the compression ratio of its policy computed as the search
 * does (weights only): the codes take targetBytes (up to rounding to whole bytes per layer); the
 * whole file — codes, float32 state and index, compressed — is compared with targetBytes.
 */
export function packedSize(file: Uint8Array, packed: PackedModel): PackedSize {
  const codeBytes = packed.layers.reduce((s, l) => s + packedByteLength(l.q.length, l.bits), 0);
  const floatBytes = packed.floats.reduce((s, f) => s + 4 * f.values.length, 0);
  // weights as the search counts them: codes at their bits, float weights at 32 (no MACs here)
  const weights = costs([
    ...packed.layers.map((l) => ({ macs: 0, params: l.q.length, weightBits: l.bits })),
    ...packed.floats.filter((f) => f.name.endsWith('.weight') && !f.name.includes('.bns.')).map((f) => ({ macs: 0, params: f.values.length })),
  ]);
  const weightParams = weights.params;
  const fp32WeightBytes = 4 * weightParams;
  const compressionRatio = crOf(weights);
  const targetBytes = fp32WeightBytes / compressionRatio;
  const deviationPercent = 100 * (file.length / targetBytes - 1);
  return {
    fileBytes: file.length, payloadBytes: packed.payloadBytes, codeBytes, floatBytes, indexBytes: packed.payloadBytes - codeBytes - floatBytes,
    weightParams, fp32WeightBytes, compressionRatio, targetBytes, deviationPercent, deviationBytes: Math.round(file.length - targetBytes),
    withinTolerance: Math.abs(deviationPercent) <= PACKED_SIZE_TOLERANCE_PERCENT, tolerancePercent: PACKED_SIZE_TOLERANCE_PERCENT,
  };
}

/** A deviation in percent with its sign, one decimal: "+18.1%", "−2.6%". */
export function signedPercent(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(1)}%`;
}

/** The file against FP32 / CR in words: "1,234 bytes (2.6%) under it, within 5%". */
export function sizeVerdict(s: PackedSize): string {
  const side = s.deviationBytes > 0 ? 'over' : 'under';
  const bytes = thousands(Math.abs(s.deviationBytes));
  const tolerance = s.withinTolerance ? `within ${s.tolerancePercent}%` : `more than ${s.tolerancePercent}% ${side}`;
  return `${bytes} bytes (${Math.abs(s.deviationPercent).toFixed(1)}%) ${side} it, ${tolerance}`;
}

/** One line: where the bytes go and how the file compares with FP32 weights / compression ratio. */
export function formatPackedSize(path: string, s: PackedSize): string {
  return `${path}: ${s.fileBytes} bytes, zlib of a ${s.payloadBytes}-byte payload = codes ${s.codeBytes} + float32 ${s.floatBytes} + index ${s.indexBytes}; `
    + `FP32 weights ${s.fp32WeightBytes} bytes / compression ratio ${s.compressionRatio.toFixed(2)} = ${Math.round(s.targetBytes)} bytes; `
    + `file ${sizeVerdict(s)}`;
}
