/**
 * `mpq export-model`: a trained model, in full precision or at a policy, as files another runtime
 * runs: ONNX (QDQ at a policy, ./onnx-model.ts) or a tfjs LayersModel (./tfjs-model.ts). What the
 * files hold comes from the model's own forward pass: the weights and batch-norm sets it reads at
 * the policy, each quantized layer's weight codes and input grid from its quantizers.
 */
import * as tf from '@tensorflow/tfjs';
import { compressionRatio, costs } from '../model/costs.js';
import { graphLayers, type GraphWeights } from '../model/graph.js';
import { WEIGHT_BITS_METADATA } from '../model/onnx-import.js';
import { encodeOnnx } from '../model/onnx/proto.js';
import { FULL_PRECISION_BITS } from '../quant/bits.js';
import type { Quantizer } from '../quant/quantizer.js';
import type { BitsPolicy, QuantModel } from '../train/models.js';
import { FieldError, UserError } from '../util/errors.js';
import { activationStorage, graphToOnnx, storageOf, type ExportOpset, type InputGrid, type LayerQdq, type WeightCodes } from './onnx-model.js';
import { layersModelFiles } from './tfjs-model.js';

export const MODEL_EXPORT_FORMATS = ['onnx', 'tfjs'] as const;
export type ModelExportFormat = (typeof MODEL_EXPORT_FORMATS)[number];

const bitsOf = (policy: BitsPolicy, name: string) => policy[name] ?? { weightBits: FULL_PRECISION_BITS, actBits: FULL_PRECISION_BITS };

/**
 * The weights the model's forward pass at `policy` reads, by graph name (`<node>.<param>`): conv /
 * dense weights (fake-quantized at the policy's weight bits with `fakeQuantWeights`) and biases,
 * each batch norm's set the policy selects.
 */
export function forwardWeights(model: QuantModel, policy: BitsPolicy, fakeQuantWeights = false): GraphWeights {
  const weights: GraphWeights = new Map();
  const values = (t: tf.Tensor) => Float32Array.from(t.dataSync() as Float32Array);
  for (const layer of model.layers) {
    const { weightBits } = bitsOf(policy, layer.name);
    if (fakeQuantWeights && weightBits < FULL_PRECISION_BITS) {
      layer.weightQuantizer.activeBits = weightBits;
      const q = tf.tidy(() => layer.weightQuantizer.quantize(layer.weight, false));
      weights.set(`${layer.name}.weight`, values(q));
      q.dispose();
    } else {
      weights.set(`${layer.name}.weight`, values(layer.weight));
    }
    if (layer.bias) weights.set(`${layer.name}.bias`, values(layer.bias));
  }
  for (const bn of model.batchNorms) {
    const set = bn.set(model.batchNormKey(bn, policy));
    [set.gamma, set.beta, set.movingMean, set.movingVar].forEach((v, i) => weights.set(`${bn.name}.${['gamma', 'beta', 'mean', 'variance'][i]}`, values(v)));
  }
  return weights;
}

/**
 * The integer grid a quantizer puts x on at `bits`: its integer form, which must be uniform with
 * zero point 0 (value = q · scale), as LSQ's is. QDQ has no other form for mpq's quantizers.
 */
function uniformForm(q: Quantizer, bits: number, x: tf.Tensor, where: string): WeightCodes {
  q.activeBits = bits;
  const form = q.integerForm?.(x);
  if (!form || form.codebook) throw new UserError(`${where}: its '${q.kind}' quantizer has no uniform integer form (QDQ export takes LSQ fine-tunes: a step per tensor or channel, zero point 0)`);
  return { bits: form.bits, q: form.q, scales: form.scales };
}

/** An input quantizer's grid: the codes of −∞ and +∞ are its clamp bounds. */
function inputGrid(q: Quantizer, bits: number, where: string): InputGrid {
  const probe = tf.tensor1d([-3.4e38, 0, 3.4e38]);
  try {
    const form = uniformForm(q, bits, probe, where);
    if (form.scales.length !== 1) throw new UserError(`${where}: input steps per channel have no QDQ form (one scale per activation tensor)`);
    return { bits, step: form.scales[0], lo: form.q[0], hi: form.q[2] };
  } finally {
    probe.dispose();
  }
}

/** Each layer the policy quantizes: its weights' integer codes and its input's grid. */
export function qdqLayers(model: QuantModel, policy: BitsPolicy): Map<string, LayerQdq> {
  const layers = new Map<string, LayerQdq>();
  for (const layer of model.layers) {
    const { weightBits, actBits } = bitsOf(policy, layer.name);
    const where = `layer '${layer.name}'`;
    layers.set(layer.name, {
      ...(weightBits < FULL_PRECISION_BITS && { weight: uniformForm(layer.weightQuantizer, weightBits, layer.weight, `${where} weights`) }),
      ...(actBits < FULL_PRECISION_BITS && { input: inputGrid(layer.inputQuantizer, actBits, `${where} input`) }),
    });
  }
  return layers;
}

export interface ModelExportOptions {
  format: ModelExportFormat;
  /** the layers' bits; absent: full precision */
  policy?: BitsPolicy;
  opset?: ExportOpset;
  /** tfjs: the policy's fake-quantized weights (activations stay float) */
  fakeQuant?: boolean;
}

export interface ExportedFiles {
  /** file name (relative to the output: '' for the file itself, else beside it) → contents */
  files: Array<[string, Uint8Array | string]>;
  /** what each quantized layer's tensors are stored as, for the summary */
  storage: string[];
}

/** The files of one export (written by the caller, atomically). Errors name exportModelFile's fields (the policy is its `policyPath`). */
export async function exportModel(model: QuantModel, opts: ModelExportOptions): Promise<ExportedFiles> {
  const policy = opts.policy ?? {};
  if (opts.fakeQuant && !opts.policy) throw new FieldError((n) => `${n('fakeQuant')}: needs ${n('policyPath')} (the bits to fake-quantize the weights at)`);
  if (opts.format === 'tfjs') {
    if (opts.policy && !opts.fakeQuant) {
      throw new FieldError((n) => `${n('policyPath')}: a tfjs LayersModel holds float weights; add ${n('fakeQuant')} to write the policy's fake-quantized weights (activations stay float)`);
    }
    const files = await layersModelFiles(model.graph, forwardWeights(model, policy, opts.fakeQuant));
    return { files, storage: [] };
  }
  if (opts.fakeQuant) throw new FieldError((n) => `${n('fakeQuant')}: tfjs exports only; an ONNX export at a policy holds the integer weights and quantizes activations (QDQ)`);
  const opset = opts.opset ?? 13;
  const quantization = opts.policy ? qdqLayers(model, policy) : undefined;
  const storage = [...(quantization ?? [])].map(([name, q]) => [
    name,
    ...(q.weight ? [`W${q.weight.bits} in ${storageOf(q.weight.bits, true, opset, name).name}${q.weight.scales.length > 1 ? ' per channel' : ''}`] : []),
    ...(q.input ? [`A${q.input.bits} in ${activationStorage(q.input, opset, name).name}`] : []),
  ].join(' '));
  const weightBits = Object.fromEntries([...(quantization ?? [])].filter(([, q]) => q.weight).map(([name, q]) => [name, q.weight!.bits]));
  const onnx = graphToOnnx(model.graph, forwardWeights(model, policy), {
    opset, quantization, ...(quantization && { metadata: { [WEIGHT_BITS_METADATA]: JSON.stringify(weightBits) } }),
  });
  return { files: [['', encodeOnnx(onnx)]], storage };
}

export interface ExportSize {
  fileBytes: number;
  /** conv / dense weights of the model */
  weightParams: number;
  /** 4 bytes per weight */
  fp32WeightBytes: number;
  /** the policy's compression ratio as the search counts it: 32·params / Σ bits·params (1 in full precision) */
  compressionRatio: number;
  /** fp32WeightBytes / compressionRatio */
  targetBytes: number;
}

export function exportSize(model: QuantModel, policy: BitsPolicy, fileBytes: number): ExportSize {
  // weights as the search counts them (no MACs here), bits above 32 stored as float32
  const weights = costs(graphLayers(model.graph).map((l) => ({ macs: 0, params: l.params, weightBits: Math.min(bitsOf(policy, l.name).weightBits, FULL_PRECISION_BITS) })));
  const ratio = compressionRatio(weights);
  return { fileBytes, weightParams: weights.params, fp32WeightBytes: 4 * weights.params, compressionRatio: ratio, targetBytes: (4 * weights.params) / ratio };
}

/** One line, as `mpq pack` prints: the file against FP32 weights / compression ratio; `float` says what float weights are. */
export function formatExportSize(path: string, s: ExportSize, float = 'full precision'): string {
  const file = `${path}: ${s.fileBytes} bytes, ${(s.fileBytes / s.fp32WeightBytes).toFixed(2)}x FP32 weights (${s.fp32WeightBytes} bytes)`;
  if (s.compressionRatio === 1) return `${file}; ${float}`;
  return `${file}; FP32 weights / compression ratio ${s.compressionRatio.toFixed(2)} = ${Math.round(s.targetBytes)} bytes, the file ${(s.fileBytes / s.targetBytes).toFixed(2)}x that`;
}
